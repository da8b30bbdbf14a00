"""The ensemble of a fit: the members trained in threads beside the shared stage, the
record of what they trained on, and the combination with labelled cells."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from .._system import usable_cores
from . import _fitting as fitting
from . import prepare as prep
from ._inference import predict_members
from ._training import subsample

log = logging.getLogger(__name__)

# Cells the label-free reliability diagnostics of a fit are computed on (a seeded sample
# beyond it).
RELIABILITY_MAX_CELLS = 20000
_CACHE_WORDS = {"hit": "read from the cache", "miss": "trained and cached",
                "off": "trained (cache off)", "unused": "not needed"}


def train_members(model, bulk_expr, bulk_lines, Xs: prep.CellRows, device, bar, *,
                  known=None):
    """The drug-independent shared stage and the ``n_models`` members of a fit, the members
    in ``member_threads`` threads (the shared cells' stage trains beside the first ones).
    Returns the shared stage, the members and their reports."""
    cfg = model.config
    shared = fitting.fit_shared(model, bulk_expr, Xs, device, bar, model._cache_store())
    predictors = [fitting.seeded_predictor(cfg, cfg.seed + index, device)
                  for index in range(cfg.n_models)]

    def member(index: int):
        return fitting.fit_member(model, bulk_lines, Xs, cfg.seed + index, shared, device,
                                  bar, predictors[index], known=known)

    threads = min(cfg.member_threads, cfg.n_models, usable_cores())
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        # The shared cells' stage is the pool's first task: it trains beside the first
        # members, which need it only at their transfer (the same numbers either way).
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scdeal") as pool:
            shared.start(pool)
            results = list(pool.map(member, range(cfg.n_models)))
    else:
        shared.start()
        results = [member(index) for index in range(cfg.n_models)]
    shared.cells()  # waits for the shared stage, and raises its errors
    log.info("pre-trained extractors (drug-independent): bulk %s, cells %s",
             *(_CACHE_WORDS[shared.cache[s]] for s in ("bulk_extractor", "target_extractor")))
    return shared, [m for m, _ in results], [r for _, r in results]


def training_record(model, bulk, target, n_cells: int, shared, reports: list[dict],
                    labelled_summary: dict | None, bulk_gene_summary: dict,
                    timings: dict) -> dict:
    """``model.training``: what the fit trained on and how (JSON-serialisable)."""
    cfg = model.config
    first = reports[0]
    bulk_test = {key: float(np.mean([r["bulk_test_metrics"][key] for r in reports]))
                 for key in first["bulk_test_metrics"]}
    return {
        "drug": model.drug,
        "release": first["release"],
        "bulk_source": bulk.source,
        "binarization": first["binarization"],
        "bulk_lines": first["bulk_lines"],
        "bulk_gene_mapping": bulk_gene_summary,
        "target_gene_mapping": target.uns.get("scdeal_gene_mapping", {}),
        "preprocess": target.uns.get("scdeal_preprocess", {}),
        "n_target_cells": int(n_cells),
        "training_sample": model.training_sample,
        "labelled_cells": labelled_summary,
        "n_bulk_genes": len(model.bulk_genes),
        "n_target_genes": len(model.target_genes),
        "gene_selection": model.gene_selection,
        "n_models": cfg.n_models,
        "bulk_test_metrics": bulk_test,
        "bulk_test_metrics_per_model": [r["bulk_test_metrics"] for r in reports],
        "history": [{**h, "model": "shared"} for h in shared.history]
        + [{**h, "model": i} for i, r in enumerate(reports) for h in r["history"]],
        "cache": shared.cache,
        "n_clusters": first["n_clusters"],
        "timings_s": timings,
    }


def stack_labelled(model, Xs: prep.CellRows, known, summary: dict) -> None:
    """Choose how the transfer and a classifier of the labelled cells combine
    (:mod:`scdeal.model.labelled`); record it in ``summary['stack']``."""
    from .labelled import fit_stack, stack_line

    rows = Xs.subset(known[0])
    post, _, _ = predict_members(model, rows, pretransfer=False, stacked=False)
    sample = Xs.subset(subsample(len(Xs), RELIABILITY_MAX_CELLS, model.config.seed))
    ref, _, _ = predict_members(model, sample, pretransfer=False, stacked=False)
    model.labelled_stack, report = fit_stack(
        rows.dense(), known[1], post.mean(axis=0),
        reference=(sample.dense(), ref.mean(axis=0)), seed=model.config.seed,
        transfer_reliable=(model.reliability or {}).get("reliable"))
    if model.config.labelled_weight > 0:
        report["note"] = ("labelled_weight > 0: the transfer trained on these labels too, "
                          "so its score on them is optimistic")
    summary["stack"] = report
    summary["used_for"] = (f"log-odds: transfer weight {report['weight']:.2f}"
                           + (" (direction reversed)" if report["flipped"] else "")
                           + f", classifier of the labelled cells "
                           f"{1 - report['weight']:.2f}")
    log.info("labelled cells (%d): %s", report["n"], stack_line(report))


def labelled_record(known: tuple[np.ndarray, np.ndarray], labelled) -> dict:
    """``training['labelled_cells']`` before training: how many, of which class, which
    column."""
    summary = {"n": len(known[0]), "sensitive": int(known[1].sum()),
               "resistant": int((known[1] == 0).sum()),
               "key": labelled if isinstance(labelled, str) else None,
               "used_in_model_selection": False}
    log.info("training with %d labelled cells (%d sensitive, %d resistant)", summary["n"],
             summary["sensitive"], summary["resistant"])
    return summary


def note_kept_transfer(summary: dict, reports: list[dict], labelled_weight: float) -> None:
    """Record in ``summary`` how many members kept a transfer epoch (and whether the labels
    were in the transfer); warn when labels in the transfer changed nothing."""
    # The transfer keeps its best epoch by a label-free loss; a member that kept the
    # state before its first epoch learnt nothing from the labelled cells.
    kept = sum(h["best_epoch"] > 0 for r in reports for h in r["history"]
               if h["stage"] == "transfer")
    summary["members_kept_transfer"] = int(kept)
    summary["in_transfer"] = labelled_weight > 0
    if kept == 0 and labelled_weight > 0:
        log.warning("scdeal: the transfer's early stopping (which does not use labels) "
                    "kept the state before the first transfer epoch in every member: "
                    "the labelled cells changed nothing; try more transfer_epochs or "
                    "patience, or a larger labelled_weight")


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch CPU threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cache_store(cache):
    """The :class:`~scdeal.model.cache.ModelCache` a model's ``cache`` setting names, or
    None."""
    from .cache import ModelCache

    if cache is False:
        return None
    if not isinstance(cache, bool | str | Path):  # a ModelCache or MemoryCache
        return cache
    return ModelCache(None if cache is True else cache)
