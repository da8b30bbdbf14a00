"""The joint strategy of a drug screen (``scdeal screen --strategy joint``): one
:class:`~scdeal.model.JointScDEAL` for every drug, its members trained in this process or as
Dask tasks, saved in ``OUT/model/`` and read back when the screen is run again.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import numpy as np
from anndata import AnnData

from ..errors import ScdealError
from ._screen_engine import _worker_bulk, reused_pretraining, run_tasks

log = logging.getLogger(__name__)

JOINT_MODEL = "model"


def load_joint(path: Path, fingerprint: str, drugs: list[str]):
    """The joint model saved by an earlier run of the same screen (same cells, settings and
    drugs), or None."""
    from ..model import JointScDEAL

    if not (path / "config.json").is_file():
        return None
    try:
        model = JointScDEAL.load(path)
    except (ScdealError, OSError, ValueError, KeyError) as err:
        log.warning("scdeal screen: the joint model in %s cannot be read (%s); training it "
                    "again", path, err)
        return None
    if (model.training.get("screen_fingerprint") != fingerprint
            or sorted(model.drugs) != sorted(drugs)):
        return None
    log.info("scdeal screen: the joint model of these drugs is already in %s", path)
    return model


def fit_joint_member(adata: AnnData, item: str, config, entries: dict, gene_ids: str, *,
                     drugs: list[str]) -> dict:
    """Member ``int(item)`` of the joint model, as a Dask task runs it (module-level, so
    picklable). Holds the process (:data:`~scdeal.model.process_lock.PROCESS_LOCK`) as a
    per-drug fit does."""
    from ..model import JointScDEAL
    from ..model.cache import MemoryCache
    from ..model.process_lock import PROCESS_LOCK

    with PROCESS_LOCK:
        started = time.perf_counter()
        bulk = _worker_bulk()
        scdeal_log = logging.getLogger("scdeal")  # process-wide; this task holds the process
        level = scdeal_log.level
        scdeal_log.setLevel(logging.ERROR)
        try:
            model = JointScDEAL(config, cache=MemoryCache(entries))
            setup = model.setup(adata, drugs, bulk=bulk, gene_ids=gene_ids)
            member, report = model.train_member(setup, int(item))
        finally:
            scdeal_log.setLevel(level)
    return {"drug": item, "status": "ok", "member": member, "report": report,
            "seconds": time.perf_counter() - started, "process": os.getpid()}


def fit_joint(adata: AnnData, drugs: list[str], config, store, gene_ids: str, client,
              progress: bool, bulk, task=fit_joint_member):
    """``(model, {})``, or ``(None, rows)``: every drug ``failed`` with the reason when the
    fit failed for a reason other than the drugs (they are tried again when resumed): a
    member's task that raised, or whose workers kept dying (Dask's ``allowed-failures``)."""
    from ..model import JointScDEAL

    model = JointScDEAL(config, cache=store)
    try:
        trained = None
        if client is not None:
            items = [str(i) for i in range(config.n_models)]
            rows = run_tasks(client, adata, items, config.replace(member_threads=1,
                                                                    num_threads=1),
                             store.entries, gene_ids, None, progress,
                             task=functools.partial(task, drugs=drugs))
            failed = [f"member {i}: {rows[i]['reason']}" for i in items
                      if rows[i]["status"] != "ok"]
            if failed:
                raise ScdealError("; ".join(failed))
            trained = [(rows[i]["member"], rows[i]["report"]) for i in items]
        model.fit(adata, drugs, bulk=bulk, gene_ids=gene_ids, progress=progress,
                  trained=trained)
    except Exception as err:  # noqa: BLE001 - a failed fit is rows, not a crash
        reason = f"joint model: {type(err).__name__}: {err}".strip()[:500]
        log.warning("scdeal screen: %s", reason)
        return None, {drug: {"drug": drug, "status": "failed", "reason": reason}
                      for drug in drugs}
    return model, {}


def joint_results(model, adata: AnnData, seconds: float) -> dict[str, dict]:
    """Per drug, the row of ``drugs.csv`` and the cells' P(sensitive) and spread (as a
    per-drug task returns them); ``seconds`` is the joint fit's time shared out equally."""
    post, names = model.predict_members(adata)  # members x cells x drugs
    pos = adata.obs_names.get_indexer(names)
    reused = reused_pretraining(model.training.get("cache", {}))
    rows = {}
    for d, drug in enumerate(model.drugs):
        p = np.full(adata.n_obs, np.nan, dtype=np.float32)
        sd = np.full(adata.n_obs, np.nan, dtype=np.float32)
        p[pos] = post[:, :, d].mean(axis=0)
        sd[pos] = post[:, :, d].std(axis=0)
        rel = (model.reliability or {}).get(drug, {})
        called = p[~np.isnan(p)]
        rows[drug] = {
            "drug": drug, "status": "ok", "reason": rel.get("reason", ""),
            "reliable": rel.get("reliable"), "member_agreement": rel.get("member_agreement"),
            "member_consensus": rel.get("member_consensus"),
            "bulk_test_auroc": rel.get("bulk_test_auroc"),
            "fraction_sensitive": float(np.mean(called >= 0.5)) if called.size else np.nan,
            "n_cells": int(called.size), "reused_pretraining": reused,
            "seconds": seconds / max(1, len(model.drugs)), "p": p, "sd": sd}
    return rows
