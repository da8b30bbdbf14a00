"""The engine of a drug screen (:mod:`scdeal.workflows.drug_screen`): what a Dask worker runs
for one drug, the Dask client and the submission loop, and the store of finished drugs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from anndata import AnnData

from .._io import atomic_dir, jsonable, write_text_atomic
from .._system import usable_cores
from ..errors import DrugError, ScdealError

log = logging.getLogger(__name__)

MANIFEST = "screen.json"
PARTS = "parts"
CONNECT_TIMEOUT_S = 10.0


# ----------------------------------------------------------------------------- the worker side


@functools.lru_cache(maxsize=1)
def _worker_bulk():
    # One GDSC load per worker process, not per drug.
    from ..data.gdsc import load_gdsc

    return load_gdsc()


@contextlib.contextmanager
def quiet_fit():
    """Only errors from scdeal's logger meanwhile: a screen's drug table carries each fit's
    reliability, and its warning would repeat it per drug. The logger is process-wide state:
    only for code that holds the process (:data:`~scdeal.model.process_lock.PROCESS_LOCK`)."""
    scdeal_log = logging.getLogger("scdeal")
    level = scdeal_log.level
    scdeal_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        scdeal_log.setLevel(level)


def fit_drug(adata: AnnData, drug: str, config, entries: dict, gene_ids: str) -> dict[str, Any]:
    """One drug's fit and predictions, as a Dask task runs it (module-level, so picklable).

    Returns the drug's summary (``status`` ``ok``, or ``skipped`` with the reason when the fit
    refuses the drug itself: :class:`~scdeal.errors.DrugError`) and, per cell of ``adata``,
    P(sensitive) and the members' spread. Any other error (GDSC cannot be loaded on this
    worker, no GPU, ...) is raised: the screen records the drug as ``failed`` and tries it
    again when resumed.

    The task holds the process (:data:`scdeal.model.process_lock.PROCESS_LOCK`) from start to
    end: a worker with several threads runs one fit at a time, so a drug's numbers do not
    depend on what else the worker runs.
    """
    from ..model import ScDEAL
    from ..model.cache import MemoryCache
    from ..model.process_lock import PROCESS_LOCK

    with PROCESS_LOCK:
        started, started_at = time.perf_counter(), time.time()
        bulk = _worker_bulk()  # outside the try: failing to load GDSC is not about the drug
        model = ScDEAL(config, cache=MemoryCache(entries))
        try:
            with quiet_fit():
                model.fit(adata, drug, bulk=bulk, gene_ids=gene_ids)
        except DrugError as err:
            return {"drug": drug, "status": "skipped", "reason": str(err)}
        predicted = model.predict(adata, copy=True)
    p = predicted.obs["sens_preds"].to_numpy(np.float32)
    sd = predicted.obs["sens_preds_sd"].to_numpy(np.float32)
    rel = model.reliability or {}
    called = p[~np.isnan(p)]
    cache = model.training["cache"]
    return {"drug": drug, "status": "ok", "reason": rel.get("reason", ""),
            "reliable": rel.get("reliable"), "member_agreement": rel.get("member_agreement"),
            "member_consensus": rel.get("member_consensus"),
            "bulk_test_auroc": model.training["bulk_test_metrics"]["auroc"],
            "fraction_sensitive": float(np.mean(called >= 0.5)) if called.size else np.nan,
            "n_cells": int(called.size), "reused_pretraining": reused_pretraining(cache),
            "cache": cache, "seconds": time.perf_counter() - started,
            "started_at": started_at, "finished_at": time.time(), "process": os.getpid(),
            "p": p, "sd": sd}


def reused_pretraining(cache: dict[str, str]) -> bool:
    """Whether a fit reused every drug-independent stage it needed (``training["cache"]``:
    per stage ``hit``, ``miss``, ``off`` or ``unused``) instead of training it.

    Examples
    --------
    >>> reused_pretraining({"bulk_extractor": "hit", "target_extractor": "unused"})
    True
    >>> reused_pretraining({"bulk_extractor": "hit", "target_extractor": "miss"})
    False
    """
    needed = [status for status in cache.values() if status != "unused"]
    return bool(needed) and all(status == "hit" for status in needed)


# ----------------------------------------------------------------------------- finished drugs


def _slug(drug: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", drug).strip("_")[:60] or "drug"
    return f"{readable}-{hashlib.sha256(drug.encode()).hexdigest()[:8]}"


class ScreenParts:
    """Finished drugs of one screen in ``OUT/parts/<drug>/`` (written atomically)."""

    def __init__(self, out: Path, fingerprint: str, manifest: dict):
        self.out = Path(out)
        self.folder = self.out / PARTS
        path = self.out / MANIFEST
        if path.is_file():
            try:
                found = json.loads(path.read_text()).get("fingerprint")
            except ValueError:
                found = None
            if found != fingerprint:
                raise ScdealError(
                    f"{self.out} holds a screen of other cells or settings; give another --out "
                    "or remove that folder")
        else:
            write_text_atomic(path, json.dumps({**manifest, "fingerprint": fingerprint},
                                               indent=2))

    def load(self) -> dict[str, dict]:
        """Finished drugs (ok or skipped) by name; failed ones are left to be tried again."""
        done = {}
        if not self.folder.is_dir():
            return done
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith(".") or not (entry / "result.json").is_file():
                continue
            row = json.loads((entry / "result.json").read_text())
            if row.get("status") not in ("ok", "skipped"):  # a failed drug is tried again
                continue
            if row.get("status") == "ok":
                with np.load(entry / "cells.npz") as cells:
                    row["p"], row["sd"] = cells["p"], cells["sd"]
            done[row["drug"]] = row
        return done

    def save(self, row: dict) -> None:
        with atomic_dir(self.folder / _slug(row["drug"])) as tmp:
            if "p" in row:
                np.savez(tmp / "cells.npz", p=row["p"], sd=row["sd"])
            summary = {k: v for k, v in row.items() if k not in ("p", "sd")}
            (tmp / "result.json").write_text(json.dumps(jsonable(summary), indent=1))


def screen_fingerprint(adata: AnnData, config, gene_ids: str,
                       strategy: str = "per-drug") -> str:
    from .. import __version__
    from ..model.cache import cache_key, fingerprint

    X = adata.X if hasattr(adata.X, "tocsr") else np.asarray(adata.X)
    from ..model.cache_keys import FIELD_ROLES

    # Every setting but those that change no number (how the work is spread over cores).
    settings = {k: v for k, v in config.to_dict().items()
                if FIELD_ROLES.get(k, ("", ""))[0] != "run"}
    return cache_key({"cells": fingerprint(X, list(adata.obs_names), list(adata.var_names)),
                      "config": settings, "gene_ids": gene_ids, "scdeal": __version__,
                      **({} if strategy == "per-drug" else {"strategy": strategy})})


# ----------------------------------------------------------------------------- Dask


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None,
                timeout: float = CONNECT_TIMEOUT_S):
    """A ``dask.distributed`` client: connected to ``scheduler``, or to a new
    ``LocalCluster`` of ``n_workers`` processes (default: the usable cores) with one thread each.
    Dask's own messages below errors are silenced meanwhile (the screen reports progress).
    """
    from distributed import Client, LocalCluster

    dask_log = logging.getLogger("distributed")
    level = dask_log.level
    dask_log.setLevel(logging.ERROR)
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as err:
                raise ScdealError(
                    f"no Dask scheduler answered at {scheduler} within {timeout:g} s ({err}); "
                    "check the address (e.g. tcp://HOST:8786) and that the scheduler is "
                    "running") from None
            with client:
                yield client
            return
        n = n_workers or usable_cores()
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers so that they hand
        # memory back to the system at once; a fit's many small tensors then cost page faults
        # (benchmarks/README.md, section 7). Not here.
        import dask

        # None unsets it (distributed.nanny._get_env_variables).
        no_trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
        # The nanny sets its workers' variables (OMP_NUM_THREADS=1, ...) in this process's
        # environment too; they are put back afterwards, or later work here would inherit them.
        environ = dict(os.environ)
        try:
            with dask.config.set(no_trim), \
                    LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                 dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                    Client(cluster) as client:
                yield client
        finally:
            os.environ.clear()
            os.environ.update(environ)
    finally:
        dask_log.setLevel(level)


def _hold(value):
    return value


def warm_worker() -> int:
    """Import the training code (scanpy's preprocessing with it) and load GDSC in a worker,
    while the pre-training runs: a worker's first fit then pays none of it."""
    import scanpy  # noqa: F401 - the imports are the point (about 2 s in a fresh process)

    from .. import model  # noqa: F401

    _worker_bulk()
    return os.getpid()


def run_tasks(client, adata: AnnData, drugs: list[str], config, entries: dict, gene_ids: str,
               parts: ScreenParts | None, progress: bool, task=fit_drug) -> dict[str, dict]:
    """Submit ``task`` (:func:`fit_drug`) per drug; save each result as it arrives. A task that
    raised, or whose workers kept dying, becomes a ``failed`` row."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    # The cells and the pre-trained stages enter the graph as tasks, not scattered data: the
    # scheduler can recompute them when the worker holding them dies (scattered data would be
    # lost, and every drug waiting on it cancelled).
    cells = client.submit(_hold, adata, pure=False)
    stages = client.submit(_hold, entries, pure=False)
    client.replicate([cells, stages])  # one copy per worker, fetched once
    # At most one drug per worker thread is handed to the scheduler at a time: it does not
    # know how long a fit takes and would queue every drug on the worker that holds the data,
    # leaving the others idle. Each finished drug frees a slot for the next. (A worker of
    # several threads still fits one drug at a time: fit_drug holds the process.)
    pending = list(drugs)
    running = as_completed()
    names: dict = {}

    def submit_more() -> None:
        slots = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        while pending and running.count() < max(1, slots):
            drug = pending.pop(0)
            future = client.submit(task, cells, drug, config, stages, gene_ids, pure=False,
                                   key=f"scdeal-screen-{_slug(drug)}-{time.time_ns()}")
            names[future.key] = drug
            running.add(future)

    submit_more()
    results: dict[str, dict] = {}
    with tqdm(total=len(drugs), desc="drugs", unit="drug", disable=not progress) as bar:
        for future in running:
            drug = names[future.key]
            try:
                row = future.result()
            except Exception as err:  # noqa: BLE001 - a failed drug is a row, not a crash
                row = {"drug": drug, "status": "failed",
                       "reason": f"{type(err).__name__}: {err}".strip()[:500]}
                log.warning("scdeal screen: %s failed (%s)", drug, row["reason"])
            future.release()
            if parts is not None:
                parts.save(row)
            results[drug] = row
            bar.update(1)
            submit_more()
    return results
