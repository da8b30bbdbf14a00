"""Running a benchmark: every case x method x seed, scored on the target's true labels.

The labels are split off the target as soon as it is read: methods receive an AnnData with the
expression only (no ``obs`` columns), so no method can see them. They are used once, to score
the probabilities a method returns (:func:`scdeal.model.classification_metrics`: AUROC and AP
from the probability, F1/MCC/balanced accuracy at 0.5) on every cell that has a label and a
prediction.

With ``shots=K`` (``scdeal benchmark --shots K``), K cells per class are drawn at random for
each case and seed (:func:`draw_shots`, seeded by the seed and the case name) and only THEIR
labels are handed to the methods that learn from labelled cells (``scdeal`` as ``labelled``,
the :class:`~scdeal.benchmark.methods.ShotsBaseline` methods); every method, those that do not
use them too, is then scored on the remaining cells only (:func:`scored_labels` checks that no
scored cell's label was handed out). ``shots=0`` is the protocol without labelled cells.

Each row records its wall time and peak memory (:class:`PeakMemory`). scDEAL variants that
share a configuration (``scdeal`` and ``scdeal_no_transfer``) come from one fit: both rows carry
that fit's time and memory, and ``shared_fit`` names the rows that share it.
"""

from __future__ import annotations

import logging
import time
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..data.gdsc import BulkData
from ..errors import ScdealError
from ..model import METRIC_NAMES, ScDEAL, ScDealConfig, classification_metrics
from ._memory import PeakMemory
from .baselines import domain_matrices, fit_predict_baseline, fit_predict_shots
from .cases import BenchmarkCase
from .methods import Baseline, Method, ScDealVariant, ShotsBaseline

log = logging.getLogger(__name__)

RESULT_COLUMNS: tuple[str, ...] = (
    "case", "method", "seed", "shots", "auroc", "ap", "prevalence", "f1", "f1_weighted", "mcc",
    "balanced_accuracy", "n_cells", "reliable", "member_consensus", "member_agreement",
    "direction_agreement", "bulk_test_auroc", "transfer_kept", "wall_s", "peak_mem_mb",
    "peak_rss_mb", "shared_fit", "model_seed", "drug", "error", "warnings")
# The label-free diagnostics each scDEAL row carries (scdeal.model.reliability), and
# transfer_kept: the share of members whose early stopping kept a transfer epoch (the others
# kept the state before the transfer, and so learnt nothing from labelled cells); baselines
# have none (NaN).
RELIABILITY_COLUMNS: tuple[str, ...] = ("reliable", "member_consensus", "member_agreement",
                                        "direction_agreement", "bulk_test_auroc",
                                        "transfer_kept")


@dataclass
class PreparedCase:
    """A case read from disk: expression without labels, and the labels kept apart."""

    case: BenchmarkCase
    features: AnnData  # cells x genes; obs holds no columns
    labels: pd.Series  # 1.0 sensitive, 0.0 resistant, NaN unlabelled; indexed by obs name
    drug: str = ""  # the GDSC spelling, once resolved


def load_case(case: BenchmarkCase) -> PreparedCase:
    """Read a case's target and split its labels off.

    Examples
    --------
    >>> from pathlib import Path
    >>> from scdeal.benchmark import BenchmarkCase
    >>> _ = Path("cells.csv").write_text("cell,TP53,EGFR,response\\nc1,0,3,1\\nc2,1,0,0\\n")
    >>> prepared = load_case(BenchmarkCase("tiny", "Gefitinib", Path("cells.csv"), "response"))
    >>> list(prepared.features.obs.columns), prepared.labels.tolist()
    ([], [1.0, 0.0])
    """
    from ..data.labels import binary_labels
    from ..data.singlecell import read_target

    adata = read_target(case.target, label_key=case.label_key)
    if case.label_key not in adata.obs.columns:
        raise ScdealError(f"case {case.name!r}: {case.target} has no label column "
                          f"{case.label_key!r}; fix label_key in the case file")
    labels = binary_labels(adata.obs, case.label_key, case.label_map).rename("label")
    counts = labels.value_counts()
    if counts.get(1.0, 0) == 0 or counts.get(0.0, 0) == 0:
        raise ScdealError(f"case {case.name!r}: {case.label_key!r} has {int(counts.get(1.0, 0))} "
                          f"sensitive and {int(counts.get(0.0, 0))} resistant cells; scoring "
                          "needs both")
    features = AnnData(X=adata.X, obs=pd.DataFrame(index=adata.obs_names.copy()),
                       var=pd.DataFrame(index=adata.var_names.copy()))
    return PreparedCase(case=case, features=features, labels=labels)


def base_config(overrides: Mapping[str, Any] | None = None) -> ScDealConfig:
    """The default configuration with ``overrides`` (e.g. fewer epochs for a quick run).

    ``seed`` cannot be overridden: the benchmark sets it per row.

    Examples
    --------
    >>> config = base_config({"n_models": 2, "transfer_epochs": 5})
    >>> config.n_models, config.transfer_epochs, config.latent_dim
    (2, 5, 64)
    """
    overrides = dict(overrides or {})
    if "seed" in overrides:
        raise ScdealError("config overrides may not set seed; use --seeds")
    return ScDealConfig.from_dict({**ScDealConfig().to_dict(), **overrides})


def draw_shots(labels: pd.Series, k: int, seed: int, case_name: str) -> pd.Series:
    """The labels of ``k`` cells per class drawn at random, seeded by ``seed`` and
    ``case_name`` (1.0 sensitive first, then 0.0 resistant).

    Draws for several K with one seed are nested: the 3 cells of K = 3 are among the 5 of
    K = 5, so a K-curve compares more labels, not other cells.

    Examples
    --------
    >>> labels = pd.Series([1.0, 0.0] * 5, index=[f"c{i}" for i in range(10)])
    >>> three = draw_shots(labels, 3, seed=0, case_name="A")
    >>> three.value_counts().to_dict(), set(draw_shots(labels, 1, 0, "A").index) <= set(three.index)
    ({1.0: 3, 0.0: 3}, True)
    """
    k = int(k)
    if k < 0:
        raise ScdealError(f"--shots must be 0 or more, got {k}")
    if k == 0:
        return labels.iloc[:0]
    rng = np.random.default_rng([int(seed), zlib.crc32(str(case_name).encode())])
    picked: list = []
    for value, name in ((1.0, "sensitive"), (0.0, "resistant")):
        cells = labels.index[(labels == value).to_numpy()]
        if k >= len(cells):
            raise ScdealError(f"case {case_name!r}: --shots {k} draws {k} {name} cells but it "
                              f"has {len(cells)} {name} cells; K must be smaller than every "
                              "class so that some cells are left to score")
        picked.extend(cells[rng.permutation(len(cells))[:k]])
    return labels.loc[picked]


def scored_labels(labels: pd.Series, shots: pd.Series) -> pd.Series:
    """The labels a row is scored on: every labelled cell except those handed to methods.

    Examples
    --------
    >>> labels = pd.Series([1.0, 0.0, 1.0, 0.0], index=["a", "b", "c", "d"])
    >>> scored_labels(labels, labels.loc[["a", "b"]]).index.tolist()
    ['c', 'd']
    """
    scored = labels.drop(shots.index)
    if scored.index.isin(shots.index).any():  # the protocol's one promise, checked every row
        raise AssertionError("a cell whose label was handed to the methods would be scored")
    return scored


def score(prob: pd.Series, labels: pd.Series) -> dict[str, float]:
    """Metrics of ``prob`` against ``labels`` on the cells that have both.

    Examples
    --------
    >>> labels = pd.Series([1.0, 0.0, 1.0, 0.0], index=["a", "b", "c", "d"])
    >>> prob = pd.Series([0.9, 0.2, 0.4, 0.6, 0.5], index=["a", "b", "c", "d", "e"])
    >>> metrics = score(prob, labels)            # cell "e" has no label: not scored
    >>> metrics["auroc"], metrics["n_cells"]
    (0.75, 4)
    """
    prob = prob.reindex(labels.index).astype(float)
    keep = prob.notna().to_numpy() & labels.notna().to_numpy()
    return classification_metrics(labels.to_numpy()[keep], prob.to_numpy()[keep])


def model_seed(replicate: int, config: ScDealConfig) -> int:
    """The configuration seed of replicate ``replicate``: ``replicate * n_models``.

    An ensemble of ``n`` members trains them with seeds ``seed .. seed + n - 1``; spacing the
    replicates by ``n`` keeps members of different replicates from sharing a seed, so the
    replicates are independent and their sd is not understated.
    """
    return int(replicate) * max(1, int(config.n_models))


def seeds_for(method: Method, seeds: Sequence[int], ablation_seeds: int | None) -> list[int]:
    """The seeds a method runs with: all, or the first ``ablation_seeds`` for ablations."""
    if ablation_seeds is not None and getattr(method, "ablation", False):
        return list(seeds)[:ablation_seeds]
    return list(seeds)


def run_benchmark(
    cases: Sequence[BenchmarkCase], methods: Sequence[Method], *, seeds: Sequence[int],
    ablation_seeds: int | None = None, bulk: BulkData | None = None,
    config_overrides: Mapping[str, Any] | None = None, jobs: int = 1,
    on_row: Callable[[dict[str, Any], int, int], None] | None = None, shots: int = 0,
) -> pd.DataFrame:
    """Run every method on every case with every seed; one result row each.

    Parameters
    ----------
    cases
        From :func:`scdeal.benchmark.read_cases`.
    methods
        From :func:`scdeal.benchmark.parse_methods`.
    seeds
        Replicates (``seed`` column); each method runs once per seed. A baseline gets the seed
        itself as ``random_state``; a scDEAL variant gets :func:`model_seed` (recorded in
        ``model_seed``).
    ablation_seeds
        Ablation variants (:attr:`ScDealVariant.ablation`) run with the first this many seeds
        only; ``None``: all seeds.
    bulk
        GDSC data (default: :func:`scdeal.data.load_gdsc`, loaded once for all rows).
    config_overrides
        Changes to the default :class:`~scdeal.model.ScDealConfig` applied to every scDEAL
        variant before the variant's own changes (and to the baselines' bulk labels and target
        preprocessing), e.g. ``{"pretrain_epochs": 5}`` for a quick run.
    jobs
        Worker processes. ``1`` runs every row in this process; more run the fits in that
        many fresh processes (each loads its own copy of the bulk data; torch trains on one
        thread by default, so one worker per core uses the machine without oversubscribing
        it). Every row is seeded on its own, but the results are not bit-identical across
        ``jobs``: the same fit can differ in the third decimal of AUROC depending on which fits
        ran before it in the same process (measured: PLX4720 seed 0, 0.9909 run first in a
        process, 0.9919 run after two other cases; cause not pinned down, presumably
        floating-point state of the CPU math kernels). Each row's wall time and peak memory
        are measured inside the process that ran it.
    on_row
        Called with each finished row, its number and the total (for progress lines), in
        the order rows finish.
    shots
        K labelled cells per class drawn per case and seed (:func:`draw_shots`) and handed
        to the methods that learn from them; every row is then scored on the other cells
        (column ``shots``). A K not smaller than every class of a case is refused. With 0,
        the methods that need labelled cells (``logreg_shots``) are skipped with a warning.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESULT_COLUMNS`, ordered by case, method, seed as requested. A row whose
        method failed has NaN metrics and the error in ``error``.

    Examples
    --------
    Not run here (minutes of training; tests/test_benchmark.py runs a small benchmark):

    >>> table = run_benchmark(read_cases("cases.toml"), parse_methods("scdeal,logreg"),
    ...                       seeds=range(2))                               # doctest: +SKIP
    """
    seeds = [int(s) for s in seeds]
    shots = int(shots)
    if shots < 0:
        raise ScdealError(f"--shots must be 0 or more, got {shots}")
    if shots == 0:
        skipped = [m.name for m in methods if isinstance(m, ShotsBaseline) and not m.with_bulk]
        if skipped:
            log.warning("skipped %s: learns from labelled cells only, so needs --shots K >= 1",
                        ", ".join(skipped))
            methods = [m for m in methods if m.name not in skipped]
    if not seeds:
        raise ScdealError("no seeds given; use --seeds N with N >= 1")
    if not cases or not methods:
        raise ScdealError("nothing to run: no cases or no methods")
    config = base_config(config_overrides)
    if bulk is None:
        from ..data.gdsc import load_gdsc

        bulk = load_gdsc()
    # Read every target and check every drug before the first (long) row runs.
    prepared = [load_case(case) for case in cases]
    for item in prepared:
        item.drug = bulk.resolve_drug(item.case.drug)
        bulk.labels_for(item.drug, release=config.release, metric=config.metric,
                        method=config.binarization)
    drawn = {(item.case.name, seed): draw_shots(item.labels, shots, seed, item.case.name)
             for item in prepared for seed in seeds}  # refuses a K too large before any fit

    # Units of work: one scDEAL fit per distinct configuration, one fit per baseline.
    units: list[list[Method]] = []
    groups: dict[tuple, list[Method]] = {}
    for method in methods:
        if isinstance(method, ScDealVariant):
            if method.fit_key not in groups:
                groups[method.fit_key] = []
                units.append(groups[method.fit_key])
            groups[method.fit_key].append(method)
        else:
            units.append([method])

    if ablation_seeds is not None and ablation_seeds < 1:
        raise ScdealError(f"ablation seeds must be at least 1, got {ablation_seeds}")
    if int(jobs) < 1:
        raise ScdealError(f"jobs must be at least 1, got {jobs}")
    tasks = []
    for item in prepared:
        for seed in seeds:
            for unit in units:
                members = [m for m in unit if seed in seeds_for(m, seeds, ablation_seeds)]
                if members:
                    tasks.append((members, item, seed, drawn[(item.case.name, seed)]))
    total = sum(len(task[0]) for task in tasks)
    rows: list[dict[str, Any]] = []

    def collect(unit_rows: list[dict[str, Any]]) -> None:
        for row in unit_rows:
            rows.append(row)
            if on_row is not None:
                on_row(row, len(rows), total)

    if int(jobs) == 1:
        for members, item, seed, shot_labels in tasks:
            collect(_run_unit(members, item, seed, bulk, config, shot_labels))
    else:
        _run_in_workers(tasks, int(jobs), bulk, config, collect)
    return order_results(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)), cases, methods, seeds)


_WORKER_BULK: BulkData | None = None


def _init_worker(bulk: BulkData) -> None:
    global _WORKER_BULK
    _WORKER_BULK = bulk
    logging.getLogger("scdeal").setLevel(logging.WARNING)
    _exit_with_parent()


def _exit_with_parent(poll_s: float = 2.0) -> None:
    """End this worker when the benchmark process is gone (e.g. killed by a signal that gave
    it no chance to stop its workers), rather than finishing a long fit for nobody."""
    import os
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_unit_in_worker(unit: list[Method], item: PreparedCase, seed: int,
                        config: ScDealConfig, shot_labels: pd.Series) -> list[dict[str, Any]]:
    return _run_unit(unit, item, seed, _WORKER_BULK, config, shot_labels)


def _run_in_workers(tasks, jobs: int, bulk: BulkData, config: ScDealConfig, collect) -> None:
    """Run the units in ``jobs`` fresh ("spawn") processes; rows are collected as they finish."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # The workers share the cores already: one thread per fit (same numbers either way).
    config = config.replace(member_threads=1)
    # "spawn": a forked child would inherit the parent's OpenMP/torch thread state.
    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(
        "spawn"), initializer=_init_worker, initargs=(bulk,))
    try:
        futures = {executor.submit(_run_unit_in_worker, members, item, seed, config, labels):
                   (members, item, seed, labels) for members, item, seed, labels in tasks}
        for future in as_completed(futures):
            try:
                unit_rows = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. a worker killed for memory
                members, item, seed, labels = futures[future]
                unit_rows = _failed_rows(members, item, seed, f"{type(exc).__name__}: {exc}",
                                         shots=len(labels) // 2)
            collect(unit_rows)
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()


def _failed_rows(unit: list[Method], item: PreparedCase, seed: int, error: str, *,
                 shots: int = 0) -> list[dict[str, Any]]:
    return [{**{name: np.nan for name in RESULT_COLUMNS}, "case": item.case.name,
             "method": m.name, "seed": seed, "shots": shots, "drug": item.drug, "shared_fit": "",
             "warnings": "", "error": error.splitlines()[0][:300]} for m in unit]


def order_results(table: pd.DataFrame, cases: Sequence[BenchmarkCase],
                  methods: Sequence[Method], seeds: Sequence[int]) -> pd.DataFrame:
    """Rows sorted by case, method (in the requested order) and seed."""
    case_rank = {c.name: i for i, c in enumerate(cases)}
    method_rank = {m.name: i for i, m in enumerate(methods)}
    key = pd.DataFrame({"c": table["case"].map(case_rank), "m": table["method"].map(method_rank),
                        "s": table["seed"]})
    return table.loc[key.sort_values(["c", "m", "s"]).index].reset_index(drop=True)


def _run_unit(unit: list[Method], item: PreparedCase, seed: int, bulk: BulkData,
              config: ScDealConfig, shot_labels: pd.Series | None = None) -> list[dict[str, Any]]:
    """Fit once, score each method of the unit on the cells not in ``shot_labels``; one row
    per method."""
    error = ""
    outputs: dict[str, pd.Series] = {}
    reliability: dict[str, Any] = {}
    if shot_labels is None:
        shot_labels = item.labels.iloc[:0]
    truth = scored_labels(item.labels, shot_labels)
    if isinstance(unit[0], Baseline | ShotsBaseline):
        fit_seed = seed
    else:
        fit_seed = model_seed(seed, config.replace(**unit[0].overrides))
    with warnings.catch_warnings(record=True) as caught, PeakMemory() as memory:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            if isinstance(unit[0], Baseline):
                outputs[unit[0].name] = _baseline_predictions(unit[0], item, seed, bulk, config)
            elif isinstance(unit[0], ShotsBaseline):
                outputs[unit[0].name] = fit_predict_shots(
                    unit[0], domain_matrices(bulk, item.drug, item.features,
                                             gene_ids=item.case.gene_ids, config=config),
                    shot_labels, seed)
            else:
                predictions, reliability = _scdeal_predictions(unit, item, fit_seed, bulk, config,
                                                               shot_labels)
                outputs.update(predictions)
        except Exception as exc:  # noqa: BLE001 - one failed row must not end the benchmark
            log.debug("row failed", exc_info=True)
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        wall_s = time.perf_counter() - start
    messages = sorted({str(w.message).splitlines()[0][:120] for w in caught})
    rows = []
    for method in unit:
        row: dict[str, Any] = {name: np.nan for name in METRIC_NAMES}
        for name in RELIABILITY_COLUMNS:
            value = reliability.get(name)
            row[name] = np.nan if value is None else value
        if method.name in outputs:
            try:
                row.update(score(outputs[method.name], truth))
            except ScdealError as exc:  # e.g. every cell removed by preprocessing
                row["error"] = str(exc)
        row.update(
            case=item.case.name, method=method.name, seed=seed, shots=len(shot_labels) // 2,
            drug=item.drug,
            wall_s=wall_s, peak_mem_mb=memory.increase_mb, peak_rss_mb=memory.peak_mb,
            shared_fit=",".join(m.name for m in unit) if len(unit) > 1 else "",
            model_seed=fit_seed,
            warnings="; ".join(messages)[:500])
        row["error"] = row.get("error") or error
        rows.append(row)
    return rows


def _scdeal_predictions(unit: list[Method], item: PreparedCase, seed: int, bulk: BulkData,
                        config: ScDealConfig, shot_labels: pd.Series | None = None,
                        ) -> tuple[dict[str, pd.Series], dict[str, Any]]:
    variant = unit[0]
    changes = dict(variant.overrides)
    labelled = shot_labels if shot_labels is not None and len(shot_labels) else None
    if all(m.output == "pre" for m in unit):
        # Only the pre-transfer model is scored: skip the transfer. The pre-transfer network
        # is snapshotted before the transfer step, so the scores are the same either way;
        # it never learns from labelled cells.
        changes["transfer"] = False
        labelled = None
    model = ScDEAL(config.replace(**changes, seed=seed))
    features = item.features.copy()
    model.fit(features, item.drug, bulk=bulk, gene_ids=item.case.gene_ids, labelled=labelled)
    out = model.predict(features, copy=True)
    if any(m.output == "label_free" for m in unit):
        X, names = model.target_rows(features)
        free, _, _ = model._predict_members(X, pretransfer=False, stacked=False)
        out.obs["label_free"] = pd.Series(free.mean(axis=0), index=names).reindex(
            out.obs_names)
    column = {"post": "sens_preds", "pre": "sens_preds_pret", "label_free": "label_free"}
    # Share of members whose (label-free) early stopping kept a transfer epoch rather than
    # the state before the transfer: only those learnt anything from labelled cells.
    transfer = [h for h in model.training["history"] if h["stage"] == "transfer"]
    kept = float(np.mean([h["best_epoch"] > 0 for h in transfer])) if transfer else None
    return ({m.name: out.obs[column[m.output]].astype(float) for m in unit},
            {**(model.reliability or {}), "transfer_kept": kept})


def _baseline_predictions(baseline: Baseline, item: PreparedCase, seed: int, bulk: BulkData,
                          config: ScDealConfig) -> pd.Series:
    matrices = domain_matrices(bulk, item.drug, item.features, gene_ids=item.case.gene_ids,
                               config=config)
    return fit_predict_baseline(baseline, matrices, seed)
