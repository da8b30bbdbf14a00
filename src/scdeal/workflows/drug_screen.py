"""Drug screen: many drugs on one dataset, ranked per cell group, on Dask.

How a screen runs (:func:`screen`, ``scdeal screen``):

1. The drug names are resolved against GDSC once; an unknown name, or a drug with too few
   labelled lines, becomes a row of ``drugs.csv`` with ``status`` and ``reason``, not an error.
2. The drug-independent pre-training (bulk extractor, cell extractor, Leiden clusters; see
   :mod:`scdeal.model.cache`) runs once, in this process, read from or stored in the cache.
3. Each drug's fit runs as a Dask task (``dask.distributed``): on a ``LocalCluster`` of worker
   processes (one per usable core, one thread each) or on an existing cluster
   (``scheduler="tcp://HOST:8786"``). The pre-trained stages travel with the tasks (a
   :class:`~scdeal.model.cache.MemoryCache`), so workers need no shared disk. Each task fits
   with ``member_threads=1`` and ``num_threads=1``: the same seed gives the same numbers on
   any worker. A worker process runs one fit at a time, whatever its number of threads
   (:mod:`scdeal.model.process_lock`), so its other tasks cannot change a drug's numbers.
   Target labels never leave this process; they only score the predictions.
4. As each drug finishes, its result is written atomically to ``OUT/parts/``; a screen started
   again with the same cells, settings and ``OUT`` reuses the finished drugs (``ok``, and
   ``skipped`` for a reason about the drug: unknown, too few labelled lines) and tries the
   ``failed`` ones again (any other error, e.g. GDSC could not be loaded on a worker). A
   worker that dies has its drug retried by Dask (``distributed.scheduler.allowed-failures``)
   and then reported ``failed``; the other drugs are kept.

With ``strategy="joint"`` (``--strategy joint``), steps 3 and 4 are a
:class:`~scdeal.model.ScreenModel` instead: the drugs grouped by their GDSC response into at
most ``joint_blocks`` blocks, one :class:`~scdeal.model.JointScDEAL` per block of several
drugs and the per-drug :class:`~scdeal.ScDEAL` for a drug alone (with no more drugs than
blocks, every drug alone: the numbers of ``scdeal run``). The blocks are fitted one after
another in this process (each block's members in its threads), or as Dask tasks on a given
``scheduler``; each finished block is kept in ``OUT/parts/blocks/`` (an interrupted screen
resumes from them), and the whole model in ``OUT/model/``, read back when the same screen is
run again; the outputs are the same. A block whose fit fails makes its drugs ``failed``
(tried again when resumed); the other blocks are kept.

Outputs (``OUT``): ``screen.h5ad`` (the cells with ``obsm['scdeal_screen']``, cells x drugs
P(sensitive), ``obsm['scdeal_screen_sd']``, the members' spread, the groups in ``obs`` and the
drug table in ``uns['scdeal_screen']``), ``drugs.csv``, ``groups.csv`` and ``heatmap.png``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from .._io import atomic_path, jsonable
from ..errors import DrugError, ScdealError
from ._screen_engine import (
    CONNECT_TIMEOUT_S,
    ScreenParts,
    dask_client,
    run_tasks,
    screen_fingerprint,
    warm_worker,
)
from ._screen_joint import (
    JOINT_MODEL,
    FinishedBlocks,
    drug_rows,
    fit_blocks,
    load_screen_model,
)

log = logging.getLogger(__name__)

SCREEN_KEY = "scdeal_screen"
CLUSTER_KEY = "scdeal_cluster"
DRUG_COLUMNS = ["drug", "status", "reason", "reliable", "member_agreement", "member_consensus",
                "bulk_test_auroc", "fraction_sensitive", "auroc", "ap", "n_cells",
                "reused_pretraining", "seconds"]
STRATEGIES = ("per-drug", "joint")
# Chosen by the criteria of benchmarks/README.md section 17, written before its runs.
DEFAULT_STRATEGY = "joint"
GROUP_COLUMNS = ["group", "drug", "n_cells", "mean_p", "fraction_sensitive", "reliable"]


@dataclass
class ScreenResult:
    """What :func:`screen` returns (and writes, when given ``out``).

    ``drugs``: one row per requested drug (columns :data:`DRUG_COLUMNS`); ``groups``: one row
    per cell group x screened drug (:data:`GROUP_COLUMNS`); ``groupby``: the obs column of the
    groups; ``out``: the output folder or ``None``.
    """

    drugs: pd.DataFrame
    groups: pd.DataFrame
    groupby: str
    out: Path | None = None


# ----------------------------------------------------------------------------- drug list


def parse_drug_list(text: str) -> list[str] | str:
    """``--drugs`` as given: comma-separated names, ``@file`` (one name per line, ``#``
    comments) or ``all``.

    Examples
    --------
    >>> parse_drug_list("Gefitinib, Erlotinib ,,Afatinib")
    ['Gefitinib', 'Erlotinib', 'Afatinib']
    >>> parse_drug_list("all")
    'all'
    """
    text = text.strip()
    if text.lower() == "all":
        return "all"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        if not path.is_file():
            raise ScdealError(f"drug list file {path} does not exist; give @FILE with one drug "
                              "name per line")
        lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        names = [line for line in lines if line]
    else:
        names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ScdealError(f"the drug list {text!r} names no drug; give names separated by "
                          "commas, @FILE or 'all'")
    return names


def resolve_drugs(bulk, drugs, config) -> list[dict]:
    """One ``drugs.csv`` row per requested drug, in the order asked: ``status`` ``todo`` (to
    fit, GDSC spelling), ``unknown`` or ``skipped`` (with the ``reason``).

    ``drugs`` is a list of names, a ``--drugs`` string or ``"all"`` (every GDSC drug of the
    configuration's release with at least ``min_per_class`` labelled, expressed lines of each
    class; the others are left out, not listed). A drug named twice is fitted once.
    """
    from ..model.prepare import drug_labels

    if isinstance(drugs, str):
        drugs = parse_drug_list(drugs)
    if drugs == "all":
        release = None if config.release == "auto" else config.release
        names, explicit = bulk.drugs(release), False
    else:
        names, explicit = list(drugs), True
        if not names:
            raise ScdealError("the drug list is empty; name at least one drug")
    plan: list[dict] = []
    seen: set[str] = set()
    for name in names:
        try:
            drug = bulk.resolve_drug(name)
        except ScdealError as err:
            plan.append({"drug": name, "status": "unknown", "reason": str(err)})
            continue
        if drug in seen:
            continue
        seen.add(drug)
        try:
            drug_labels(bulk, drug, config, bulk.expression)
        except DrugError as err:
            if explicit:
                plan.append({"drug": drug, "status": "skipped", "reason": str(err)})
            continue
        plan.append({"drug": drug, "status": "todo"})
    if not any(row["status"] == "todo" for row in plan):
        raise ScdealError("none of the drugs can be screened: " + "; ".join(
            f"{r['drug']}: {r['reason']}" for r in plan[:3]) + (" ..." if len(plan) > 3 else ""))
    return plan


# ----------------------------------------------------------------------------- the screen


def screen(
    adata: AnnData, drugs, *, config=None, out: str | Path | None = None,
    groupby: str | None = None, label_key: str | None = None, label_map: dict | None = None,
    gene_ids: str = "auto", scheduler: str | None = None, n_workers: int | None = None,
    cache: bool | str | Path = True, progress: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT_S, strategy: str = DEFAULT_STRATEGY,
) -> ScreenResult:
    """Predict many drugs on the same cells and rank them per cell group.

    Writes ``obsm['scdeal_screen']`` (DataFrame, cells x screened drugs, P(sensitive); NaN for
    cells removed by preprocessing), ``obsm['scdeal_screen_sd']`` (the members' standard
    deviation), ``obs['scdeal_cluster']`` (when ``groupby`` is not given: the Leiden clusters
    of the pre-trained cell embedding) and ``uns['scdeal_screen']`` (the drug table and
    settings) into ``adata``; with ``out``, also the files of :mod:`scdeal.workflows.drug_screen`.

    Parameters
    ----------
    adata
        The cells (as for :meth:`scdeal.ScDEAL.fit`).
    drugs
        Drug names, a ``--drugs`` string (``"A,B"``, ``"@file"``) or ``"all"``.
    config
        A :class:`~scdeal.model.ScDealConfig`, dict or preset name (default: the defaults).
    out
        Output folder; finished drugs found there are reused (same cells and settings only).
    groupby
        obs column of the cell groups (default: the Leiden clusters of the pre-training).
    label_key, label_map
        True labels, used only to score each drug's predictions (``auroc``, ``ap``).
    scheduler
        Address of a running Dask scheduler; default: a ``LocalCluster`` of ``n_workers``
        processes (default: one per usable core; a joint screen starts one only when
        ``n_workers`` is given). ``connect_timeout`` (seconds) bounds the
        wait for the scheduler.
    cache
        As for :class:`scdeal.ScDEAL`: where the drug-independent pre-training is kept.
    strategy
        ``"per-drug"``: one :class:`~scdeal.ScDEAL` per drug (the paper's method), the drugs
        spread over Dask workers. ``"joint"``: a :class:`~scdeal.model.ScreenModel`, the
        drugs in at most ``joint_blocks`` blocks of similar GDSC response, one fit per block
        (:class:`~scdeal.model.JointScDEAL`, or :class:`~scdeal.ScDEAL` for a drug alone),
        saved in ``out/model/`` (reused when the screen is run again); the blocks train in
        this process (each block's members in ``member_threads`` threads), or as Dask tasks
        on ``scheduler`` or on a local cluster of ``n_workers`` when one is given.

    Examples
    --------
    Two drugs on cells simulated from held-out GDSC lines, tiny settings (the default joint
    strategy: two drugs, each fitted alone, here in this process):

    >>> import scdeal, tempfile
    >>> from scdeal.data.simulate import demo_target
    >>> from scdeal.workflows.drug_screen import screen
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, _ = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> tiny = dict(n_models=2, pretrain_epochs=2, predictor_epochs=2, transfer_epochs=2)
    >>> result = screen(adata, ["Gefitinib", "Erlotinib", "NoSuchDrug"], config=tiny,
    ...                 gene_ids="symbol", cache=tempfile.mkdtemp())
    >>> result.drugs[["drug", "status"]].to_dict("list")
    {'drug': ['Gefitinib', 'Erlotinib', 'NoSuchDrug'], 'status': ['ok', 'ok', 'unknown']}
    >>> adata.obsm["scdeal_screen"].shape
    (60, 2)
    """
    from ..data.gdsc import load_gdsc
    from ..model import ScDEAL
    from ..model.cache import MemoryCache, ModelCache

    started = time.perf_counter()
    if strategy not in STRATEGIES:
        raise ScdealError(f"unknown screen strategy {strategy!r}; use one of "
                          f"{', '.join(STRATEGIES)}")
    config = ScDEAL(config).config  # a config, dict of fields or preset name, validated
    if label_key is not None:  # checked before any training
        from ..data.labels import binary_labels

        labels = binary_labels(adata.obs, label_key, label_map).to_numpy()
    if groupby is not None and groupby not in adata.obs:
        raise ScdealError(f"--groupby {groupby!r} is not a column of the cells' obs; choose one "
                          f"of {list(adata.obs.columns)[:10]} or leave it out for clusters")
    if groupby is None and not (config.transfer and config.cluster_weight > 0):
        raise ScdealError("this configuration has no cluster term to take cell groups from; "
                          "give --groupby COLUMN")
    bulk = load_gdsc()
    plan = resolve_drugs(bulk, drugs, config)
    todo = [row["drug"] for row in plan if row["status"] == "todo"]

    parts = None
    fingerprint = screen_fingerprint(adata, config, gene_ids, strategy)
    if out is not None:
        manifest = {"config": config.to_dict(), "gene_ids": gene_ids, "n_cells": adata.n_obs,
                    "strategy": strategy}
        parts = ScreenParts(Path(out), fingerprint, manifest)
    results = parts.load() if parts is not None and strategy == "per-drug" else {}
    if strategy == "joint" and out is not None:
        saved = load_screen_model(Path(out) / JOINT_MODEL, fingerprint, todo)
        if saved is not None:
            seconds = saved.training.get("timings_s", {}).get("blocks", {})
            for block, model in zip(saved.blocks, saved.models, strict=True):
                results.update(drug_rows({"status": "ok", "block": block, "model": model,
                                          "seconds": seconds.get(", ".join(block), np.nan)},
                                         adata))
    todo_now = [d for d in todo if d not in results]
    if len(todo_now) < len(todo):
        log.info("scdeal screen: %d of %d drugs already finished in %s",
                 len(todo) - len(todo_now), len(todo), out)

    # The drug-independent pre-training runs once, here (while a local cluster's workers
    # start); its stages travel with every task.
    store = MemoryCache(backing=None if cache is False else
                        ModelCache(None if cache is True else cache))
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        # A scheduler is reached first (an address that does not answer fails at once); a
        # local cluster starts while the pre-training runs in a thread.
        client = (stack.enter_context(dask_client(scheduler, n_workers, connect_timeout))
                  if todo_now and scheduler else None)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        t0 = time.perf_counter()
        pretraining = pool.submit(ScDEAL(config, cache=store).pretrain, adata, bulk=bulk,
                                  gene_ids=gene_ids, progress=progress)
        # A joint screen fits its blocks here unless given workers (n_workers or scheduler).
        if todo_now and client is None and (strategy == "per-drug" or n_workers is not None):
            client = stack.enter_context(dask_client(None, n_workers, connect_timeout))
        warming = [] if client is None else [  # each worker imports and loads GDSC meanwhile
            client.submit(warm_worker, pure=False, workers=[address], allow_other_workers=False,
                          key=f"scdeal-warm-{i}-{time.time_ns()}")
            for i, address in enumerate(client.scheduler_info()["workers"])]
        pretrained = pretraining.result()
        timings["pretraining"] = time.perf_counter() - t0
        if strategy == "joint" and todo_now:
            t0 = time.perf_counter()
            results.update(_joint(adata, todo_now, config, store, gene_ids, client, progress,
                                  bulk, None if out is None else Path(out), fingerprint))
            timings["joint_fit"] = time.perf_counter() - t0
        elif client is not None:
            t0 = time.perf_counter()
            task_config = config.replace(member_threads=1, num_threads=1)
            results.update(run_tasks(client, adata, todo_now, task_config, store.entries,
                                      gene_ids, parts, progress))
            timings["drugs"] = time.perf_counter() - t0
        del warming
    if groupby is None:
        groupby = CLUSTER_KEY
        adata.obs[CLUSTER_KEY] = pd.Categorical(
            pretrained["clusters"].reindex(adata.obs_names),
            categories=sorted(pretrained["clusters"].unique(), key=_natural))

    ok = [d for d in todo if results[d]["status"] == "ok"]
    table = pd.DataFrame([{k: v for k, v in results[row["drug"]].items() if k not in ("p", "sd")}
                          if row["status"] == "todo" else row for row in plan])
    if label_key is not None:
        from ..model.metrics import classification_metrics

        for drug in ok:
            p = results[drug]["p"]
            mask = ~np.isnan(p)
            metrics = classification_metrics(labels[mask], p[mask])
            table.loc[table.drug == drug, ["auroc", "ap"]] = metrics["auroc"], metrics["ap"]
    table = table.reindex(columns=DRUG_COLUMNS)

    index = adata.obs_names
    adata.obsm[SCREEN_KEY] = pd.DataFrame({d: results[d]["p"] for d in ok}, index=index)
    adata.obsm[f"{SCREEN_KEY}_sd"] = pd.DataFrame({d: results[d]["sd"] for d in ok}, index=index)
    groups = group_table(adata.obsm[SCREEN_KEY], adata.obs[groupby], table)
    adata.uns[SCREEN_KEY] = {"groupby": groupby, "label_key": label_key or "",
                             "strategy": strategy,
                             "drugs_json": table.to_json(orient="records"),
                             "config_json": json.dumps(jsonable(config.to_dict()))}
    if out is not None:
        _write_outputs(Path(out), adata, table, groups, groupby)
    timings["total"] = time.perf_counter() - started
    log.info("scdeal screen: %d drugs screened, %d not; seconds: %s", len(ok),
             len(table) - len(ok), ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return ScreenResult(table, groups, groupby, Path(out) if out is not None else None)


def _joint(adata: AnnData, drugs: list[str], config, store, gene_ids: str, client,
           progress: bool, bulk, out: Path | None, fingerprint: str) -> dict[str, dict]:
    """The joint strategy: the drugs' blocks fitted (finished ones reused), each drug's row,
    and, when every block was fitted, the :class:`~scdeal.model.ScreenModel` saved in
    ``out/model/``."""
    from ..model import ScreenModel

    model = ScreenModel(config, cache=store)
    blocks = model.plan(drugs, bulk)
    log.info("scdeal screen: %d drugs in %d joint fits", len(drugs), len(blocks))
    finished = FinishedBlocks(out, fingerprint)
    fitted = fit_blocks(adata, blocks, config, store, gene_ids, client, progress, bulk,
                        finished)
    rows: dict[str, dict] = {}
    for row in fitted.values():
        rows.update(drug_rows(row, adata))
    if out is not None and all(row["status"] == "ok" for row in fitted.values()):
        by_block = {", ".join(row["block"]): row for row in fitted.values()}
        model.assemble(blocks, [by_block[", ".join(b)]["model"] for b in blocks],
                       {"screen_fingerprint": fingerprint,
                        "timings_s": {"blocks": {k: r["seconds"] for k, r in by_block.items()}}})
        model.save(out / JOINT_MODEL, overwrite=True)
        finished.clear()  # the whole model holds them now (a block's saved model: ~50 MB)
    return rows


def _natural(name: str):
    return (0, int(name), "") if str(name).isdigit() else (1, 0, str(name))


def group_table(predictions: pd.DataFrame, groups: pd.Series, drugs: pd.DataFrame) -> pd.DataFrame:
    """Per cell group x drug: cells, mean P(sensitive), fraction called sensitive (P >= 0.5).

    Examples
    --------
    >>> p = pd.DataFrame({"A": [0.9, 0.7, 0.2]})
    >>> t = group_table(p, pd.Series(["x", "x", "y"]), pd.DataFrame({"drug": ["A"],
    ...                 "reliable": [True]}))
    >>> t[["group", "n_cells", "fraction_sensitive"]].to_dict("list")
    {'group': ['x', 'y'], 'n_cells': [2, 1], 'fraction_sensitive': [1.0, 0.0]}
    """
    reliable = drugs.set_index("drug")["reliable"] if "reliable" in drugs else pd.Series()
    groups = pd.Series(groups)
    keys = (list(groups.cat.categories) if isinstance(groups.dtype, pd.CategoricalDtype)
            else list(pd.unique(groups.dropna())))
    groups = pd.Series(np.asarray(groups, dtype=object), index=predictions.index)
    rows = []
    for drug in predictions.columns:
        p = predictions[drug]
        for group in keys:
            values = p[(groups == group).to_numpy()].dropna().to_numpy()
            if not values.size:
                continue
            rows.append({"group": str(group), "drug": drug, "n_cells": int(values.size),
                         "mean_p": float(values.mean()),
                         "fraction_sensitive": float(np.mean(values >= 0.5)),
                         "reliable": reliable.get(drug)})
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def _write_outputs(out: Path, adata: AnnData, drugs: pd.DataFrame, groups: pd.DataFrame,
                   groupby: str) -> None:
    from ..pl import save_figure
    from ..pl.screen import screen_heatmap

    with atomic_path(out / "drugs.csv") as tmp:
        drugs.to_csv(tmp, index=False)
    with atomic_path(out / "groups.csv") as tmp:
        groups.to_csv(tmp, index=False)
    with atomic_path(out / "screen.h5ad") as tmp:
        adata.write_h5ad(tmp)
    if len(groups):
        ax = screen_heatmap(groups, drugs, title=f"scdeal screen: mean P(sensitive) per {groupby}",
                            show=False)
        save_figure(ax, out, "heatmap", formats=("png",))
