"""The joint strategy of a drug screen (``scdeal screen --strategy joint``): the drugs in
blocks of similar GDSC response (:class:`~scdeal.model.ScreenModel`), each block one fit, in
this process or as Dask tasks; each finished block saved in ``OUT/parts/blocks/`` (so an
interrupted screen resumes from it) and the whole model in ``OUT/model/``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
from anndata import AnnData

from ..errors import ScdealError
from ._screen_engine import PARTS, _worker_bulk, quiet_fit, reused_pretraining, run_tasks

log = logging.getLogger(__name__)

JOINT_MODEL = "model"
BLOCKS = "blocks"


def block_key(block: list[str]) -> str:
    """A block's name: its first drug, its size and a hash of its drugs.

    Examples
    --------
    >>> block_key(["PLX-4720", "Dabrafenib"])
    'PLX-4720+1-03c7d694'
    """
    digest = hashlib.sha256("\n".join(block).encode()).hexdigest()[:8]
    head = "".join(c if c.isalnum() or c in "._-" else "_" for c in block[0])[:40]
    return f"{head}+{len(block) - 1}-{digest}"


def load_screen_model(path: Path, fingerprint: str, drugs: list[str]):
    """The model saved by an earlier run of the same screen (same cells, settings and
    drugs), or None."""
    from ..model import ScreenModel

    if not (path / "config.json").is_file():
        return None
    try:
        model = ScreenModel.load(path)
    except (ScdealError, OSError, ValueError, KeyError) as err:
        log.warning("scdeal screen: the model in %s cannot be read (%s); training it again",
                    path, err)
        return None
    if (model.training.get("screen_fingerprint") != fingerprint
            or sorted(model.drugs) != sorted(drugs)):
        return None
    log.info("scdeal screen: the model of these drugs is already in %s", path)
    return model


class FinishedBlocks:
    """The fitted blocks of one screen in ``OUT/parts/blocks/<block>/`` (saved models,
    written atomically), each marked with the screen's fingerprint; ``out=None``: none kept."""

    def __init__(self, out: Path | None, fingerprint: str):
        self.folder = None if out is None else Path(out) / PARTS / BLOCKS
        self.fingerprint = fingerprint

    def load(self, block: list[str]):
        """The block's fitted model, when this screen saved it before; else None."""
        from ..model.screen_model import block_drugs, load_block

        path = None if self.folder is None else self.folder / block_key(block)
        if path is None or not (path / "config.json").is_file():
            return None
        try:
            model = load_block(path, block)
        except (ScdealError, OSError, ValueError, KeyError) as err:
            log.warning("scdeal screen: block %s cannot be read (%s); fitting it again",
                        path.name, err)
            return None
        if (model.training.get("screen_fingerprint") != self.fingerprint
                or block_drugs(model) != list(block)):
            return None
        return model

    def clear(self) -> None:
        """Remove the finished blocks (once the whole model is saved)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, row: dict) -> None:
        """Keep a finished block (a row of :func:`fit_blocks`: ``model``, ``block``)."""
        if self.folder is None or row.get("status") != "ok":
            return
        model = row["model"]
        model.training["screen_fingerprint"] = self.fingerprint
        model.save(self.folder / block_key(row["block"]), overwrite=True)


def fit_block_task(adata: AnnData, key: str, config, entries: dict, gene_ids: str, *,
                   blocks: dict[str, list[str]]) -> dict:
    """Block ``key``'s fit, as a Dask task runs it (module-level, so picklable). Holds the
    process (:data:`~scdeal.model.process_lock.PROCESS_LOCK`) as a per-drug fit does."""
    from ..model.cache import MemoryCache
    from ..model.process_lock import PROCESS_LOCK
    from ..model.screen_model import block_model, fit_block

    block = blocks[key]
    with PROCESS_LOCK:
        started = time.perf_counter()
        bulk = _worker_bulk()
        with quiet_fit():
            model = fit_block(block_model(config, block, MemoryCache(entries)), adata, block,
                              bulk=bulk, gene_ids=gene_ids)
    model.cache = False  # the pre-training's entries do not travel back
    return {"drug": key, "status": "ok", "block": block, "model": model,
            "seconds": time.perf_counter() - started, "process": os.getpid()}


def fit_blocks(adata: AnnData, blocks: list[list[str]], config, store, gene_ids: str, client,
               progress: bool, bulk, finished: FinishedBlocks,
               task=fit_block_task) -> dict[str, dict]:
    """Fit every block not in ``finished`` (in this process, one after another, or as Dask
    tasks on ``client``) and keep each as it ends. Per block key: a row with ``status``
    ``ok`` (``model``, ``block``, ``seconds``), or ``failed`` with the ``reason`` (the
    block's drugs are tried again when resumed): a fit that raised, or whose workers kept
    dying (Dask's ``allowed-failures``)."""
    from tqdm.auto import tqdm

    from ..model.process_lock import PROCESS_LOCK
    from ..model.screen_model import block_model, fit_block

    rows: dict[str, dict] = {}
    todo = {}
    for block in blocks:
        model = finished.load(block)
        if model is not None:
            rows[block_key(block)] = {"status": "ok", "block": block, "model": model,
                                      "seconds": model.training.get("timings_s", {}).get(
                                          "fit", np.nan)}
        else:
            todo[block_key(block)] = block
    if todo and client is not None:
        found = run_tasks(client, adata, list(todo), config.replace(member_threads=1,
                                                                    num_threads=1),
                          store.entries, gene_ids, finished, progress,
                          task=functools.partial(task, blocks=todo))
        rows.update({key: {**found[key], "block": todo[key]} for key in todo})
    else:
        for key, block in tqdm(todo.items(), desc="blocks", unit="block",
                               disable=not progress or not todo):
            started = time.perf_counter()
            try:
                with PROCESS_LOCK, quiet_fit():
                    model = fit_block(block_model(config, block, store), adata, block,
                                      bulk=bulk, gene_ids=gene_ids)
            except Exception as err:  # noqa: BLE001 - a failed block is rows, not a crash
                rows[key] = {"status": "failed", "block": block,
                             "reason": f"{type(err).__name__}: {err}".strip()[:500]}
                continue
            rows[key] = {"status": "ok", "block": block, "model": model,
                         "seconds": time.perf_counter() - started}
            finished.save(rows[key])
    for row in rows.values():
        if row["status"] != "ok":
            log.warning("scdeal screen: the fit of %s failed (%s)", ", ".join(row["block"]),
                        row["reason"])
    return rows


def drug_rows(block_row: dict, adata: AnnData) -> dict[str, dict]:
    """Per drug of a fitted block (a row of :func:`fit_blocks`): the row of ``drugs.csv`` and
    the cells' P(sensitive) and spread (as a per-drug task returns them); a failed block gives
    each of its drugs a ``failed`` row; ``seconds`` is the block's time shared out equally."""
    from ..model.screen_model import block_drugs, block_members, block_reliability

    block = block_row["block"]
    if block_row["status"] != "ok":
        reason = f"joint fit of {len(block)} drug(s): {block_row['reason']}"[:500]
        return {drug: {"drug": drug, "status": "failed", "reason": reason} for drug in block}
    model = block_row["model"]
    X, names = model.target_rows(adata)
    post = block_members(model, X)  # members x cells x drugs
    pos = adata.obs_names.get_indexer(names)
    reliability = block_reliability(model)
    reused = reused_pretraining(model.training.get("cache", {}))
    rows = {}
    for d, drug in enumerate(block_drugs(model)):
        p = np.full(adata.n_obs, np.nan, dtype=np.float32)
        sd = np.full(adata.n_obs, np.nan, dtype=np.float32)
        p[pos] = post[:, :, d].mean(axis=0)
        sd[pos] = post[:, :, d].std(axis=0)
        rel = reliability[drug]
        called = p[~np.isnan(p)]
        rows[drug] = {
            "drug": drug, "status": "ok", "reason": rel.get("reason", ""),
            "reliable": rel.get("reliable"), "member_agreement": rel.get("member_agreement"),
            "member_consensus": rel.get("member_consensus"),
            "bulk_test_auroc": rel.get("bulk_test_auroc"),
            "fraction_sensitive": float(np.mean(called >= 0.5)) if called.size else np.nan,
            "n_cells": int(called.size), "reused_pretraining": reused,
            "seconds": block_row["seconds"] / len(block), "p": p, "sd": sd}
    return rows
