"""The model of a joint drug screen: the drugs in blocks of similar GDSC response.

One joint fit of every drug is fast but reproduces each drug's own fit worse the more the
drugs differ (benchmarks/README.md, sections 15 and 17). :class:`ScreenModel` groups the drugs
by their bulk response (:func:`~scdeal.model.drug_blocks.drug_blocks`) into at most
``joint_blocks`` blocks and fits one :class:`~scdeal.model.JointScDEAL` per block of several
drugs and, for a drug alone in its block, the per-drug :class:`~scdeal.ScDEAL` that
``scdeal run`` trains (same configuration and seed, so the same numbers). Every block reuses
the one drug-independent pre-training (the model cache), so a block costs about one
drug's fit: ``joint_blocks`` bounds the time of a screen of any number of drugs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import __version__
from .._io import atomic_dir, jsonable
from ..errors import ScdealError
from ._model import ScDEAL
from ._multidrug import MultiDrugPredictions
from .drug_blocks import drug_blocks, response_table
from .joint import JointScDEAL

RELIABILITY_COLUMNS = ["reliable", "reason", "member_agreement", "member_consensus",
                       "bulk_test_auroc"]


def block_class(drugs: list[str]) -> type[ScDEAL] | type[JointScDEAL]:
    """The model class of a block: :class:`JointScDEAL` for several drugs, the per-drug
    :class:`~scdeal.ScDEAL` for one."""
    return ScDEAL if len(drugs) == 1 else JointScDEAL


def block_model(config, drugs: list[str], cache) -> ScDEAL | JointScDEAL:
    """The unfitted model of one block (:func:`block_class`)."""
    return block_class(drugs)(config, cache=cache)


def fit_block(model: ScDEAL | JointScDEAL, adata: AnnData, drugs: list[str], **fit_args):
    """Fit ``model`` (from :func:`block_model`) on the block's drugs; returns it."""
    if isinstance(model, JointScDEAL):
        return model.fit(adata, list(drugs), **fit_args)
    return model.fit(adata, drugs[0], **fit_args)


def load_block(path: str | Path, drugs: list[str], *, device: str | None = None):
    """A block's model saved in ``path`` (the class of :func:`block_class`). Unlike
    ``ScDEAL.load`` it logs no warning for an unreliable fit: a block's verdict is a row of
    the reliability table."""
    from ._persistence import load_model

    return load_model(block_class(drugs), path, device=device)


def block_drugs(model: ScDEAL | JointScDEAL) -> list[str]:
    """The drugs a fitted block model predicts (GDSC spelling)."""
    return list(model.drugs) if isinstance(model, JointScDEAL) else [model.drug]


def block_members(model: ScDEAL | JointScDEAL, X) -> np.ndarray:
    """Each member's P(sensitive) of the standardised cells ``X``: members x cells x drugs."""
    post, _, _ = model._predict_members(X, pretransfer=False)
    return post if post.ndim == 3 else post[:, :, None]


def block_reliability(model: ScDEAL | JointScDEAL) -> dict[str, dict]:
    """Per drug of a fitted block: the columns of :attr:`ScreenModel.reliability_table`."""
    if isinstance(model, JointScDEAL):
        table = model.reliability_table().set_index("drug")
        return {drug: table.loc[drug].to_dict() for drug in model.drugs}
    rel = dict(model.reliability or {})
    rel["bulk_test_auroc"] = model.training.get("bulk_test_metrics", {}).get("auroc")
    return {model.drug: {k: rel.get(k) for k in RELIABILITY_COLUMNS}}


class ScreenModel(MultiDrugPredictions):
    """Many drugs on one dataset, fitted in at most ``joint_blocks`` blocks of similar drugs.

    What ``scdeal screen --strategy joint`` trains and saves in ``OUT/model/``; ``scdeal
    predict --model OUT/model`` predicts every drug with it. Same configuration and cache as
    :class:`~scdeal.ScDEAL`. :meth:`predict` writes cells x drugs P(sensitive) into ``obsm``
    as :meth:`JointScDEAL.predict` does; :meth:`reliability_table` gives each drug's verdict
    from its block's fit.

    Examples
    --------
    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> from scdeal.model import ScreenModel
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> model = ScreenModel(n_models=2, pretrain_epochs=2, predictor_epochs=2,
    ...                     transfer_epochs=2, joint_blocks=2)
    >>> model.fit(adata, ["Gefitinib", "Erlotinib", "PLX4720"], bulk=bulk.without_lines(held),
    ...           gene_ids="symbol")
    ScreenModel(drugs=3, blocks=[['Gefitinib', 'Erlotinib'], ['PLX-4720']])
    >>> model.predict(adata)
    >>> adata.obsm["scdeal_screen"].shape
    (60, 3)
    """

    KIND = "screen"
    UNS_LEAVE_OUT = ("blocks", "training")

    def __init__(self, config=None, *, cache=True, **overrides: Any):
        self.config = ScDEAL(config, cache=False, **overrides).config  # validated
        self.cache = cache
        self.blocks: list[list[str]] = []
        self.models: list[ScDEAL | JointScDEAL] = []
        self.training: dict[str, Any] = {}

    def __repr__(self) -> str:
        if not self.is_fitted:
            return "ScreenModel(not fitted)"
        shown = self.blocks if len(self.blocks) <= 4 else f"{len(self.blocks)} blocks"
        return f"ScreenModel(drugs={len(self.drugs)}, blocks={shown})"

    @property
    def is_fitted(self) -> bool:
        return bool(self.models) and len(self.models) == len(self.blocks)

    @property
    def drugs(self) -> list[str]:
        return [drug for block in self.blocks for drug in block]

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ScdealError("the screen model is not trained: call fit() or "
                              "ScreenModel.load(dir) first")

    # ---------------------------------------------------------------------------------------
    # fitting

    def plan(self, drugs: list[str], bulk) -> list[list[str]]:
        """The blocks of ``drugs`` (resolved to GDSC's spelling, each once) this
        configuration fits (:func:`~scdeal.model.drug_blocks.drug_blocks`)."""
        if isinstance(drugs, str) or not len(drugs):
            raise ScdealError("give the screen model a list of drug names (at least one)")
        names = list(dict.fromkeys(bulk.resolve_drug(d) for d in drugs))
        return drug_blocks(response_table(bulk, names, self.config.release),
                           self.config.joint_blocks)

    def fit(self, adata: AnnData, drugs: list[str], *, bulk=None, gene_ids: str = "auto",
            progress: bool = False) -> ScreenModel:
        """Fit every block of ``drugs`` (:meth:`plan`) on GDSC and the cells of ``adata``, one
        after another; ``bulk``, ``gene_ids``, ``progress`` as for :meth:`ScDEAL.fit`."""
        from ._ensemble import cache_store
        from .cache import MemoryCache

        started = time.perf_counter()
        if bulk is None:
            from ..data.gdsc import load_gdsc

            bulk = load_gdsc()
        blocks = self.plan(drugs, bulk)
        # The blocks share the one pre-training in memory (read from or stored in the cache).
        cache = MemoryCache(backing=cache_store(self.cache))
        models = [fit_block(block_model(self.config, block, cache), adata, block, bulk=bulk,
                            gene_ids=gene_ids, progress=progress) for block in blocks]
        return self.assemble(blocks, models,
                             {"timings_s": {"fit": time.perf_counter() - started}})

    def assemble(self, blocks: list[list[str]], models: list,
                 training: dict[str, Any] | None = None) -> ScreenModel:
        """Take fitted block models, one per block in order (e.g. fitted as Dask tasks);
        ``training``: more entries of :attr:`training` (``timings_s``, ...)."""
        if len(blocks) != len(models) or any(
                block_drugs(m) != list(b) for b, m in zip(blocks, models, strict=False)):
            raise ScdealError("each block needs its fitted model, in the order of the blocks")
        self.blocks, self.models = [list(b) for b in blocks], list(models)
        self.training = {**(training or {}), "strategy": "joint", "drugs": self.drugs,
                         "blocks": self.blocks, "joint_blocks": self.config.joint_blocks}
        return self

    # ---------------------------------------------------------------------------------------
    # prediction

    def reliability_table(self) -> pd.DataFrame:
        """Per drug: ``reliable``, ``reason``, ``member_agreement``, ``member_consensus``,
        ``bulk_test_auroc`` (from its block's fit; see :mod:`scdeal.model.reliability`)."""
        self._check_fitted()
        rows = {}
        for model in self.models:
            rows.update(block_reliability(model))
        return pd.DataFrame([{"drug": d, **rows[d]} for d in self.drugs],
                            columns=["drug", *RELIABILITY_COLUMNS])

    def predict_members(self, adata: AnnData, *, gene_ids: str | None = None,
                        layer: str | None = None) -> tuple[np.ndarray, pd.Index]:
        """Each member's P(sensitive) of every drug, members x cells x drugs (drugs in the
        order of :attr:`drugs`), for the cells that pass preprocessing (their obs names)."""
        from .process_lock import PROCESS_LOCK

        self._check_fitted()
        parts, rows = [], {}
        with PROCESS_LOCK:
            for model in self.models:
                # The blocks share the pre-training, so their cells' rows are the same: once.
                genes = tuple(model.target_genes)
                if genes not in rows:
                    rows[genes] = model.target_rows(adata, gene_ids=gene_ids, layer=layer)
                X, names = rows[genes]
                parts.append((block_members(model, X), names))
        names = parts[0][1]
        aligned = [p if n.equals(names) else _realign(p, n, names) for p, n in parts]
        return np.concatenate(aligned, axis=2), names

    def summary(self) -> dict[str, Any]:
        """Configuration, drugs, blocks and training summary (JSON-serialisable)."""
        return jsonable({"strategy": "joint", "drugs": self.drugs, "drug": None,
                         "blocks": self.blocks, "n_blocks": len(self.blocks),
                         "config": self.config.to_dict(), "training": self.training,
                         "scdeal_version": __version__})

    # ---------------------------------------------------------------------------------------
    # persistence

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model to a folder, atomically: ``config.json`` (kind ``screen``, the
        configuration and the blocks), ``training.json`` and ``blocks/NNN/``, each block's
        saved model."""
        self._check_fitted()
        path = Path(path)
        if path.exists() and not overwrite:
            raise ScdealError(f"{path} exists; choose another folder or pass overwrite=True")
        meta = {"format": "scdeal-model", "format_version": 1, "scdeal_version": __version__,
                "kind": self.KIND, "drug": None, "drugs": self.drugs, "blocks": self.blocks,
                "config": self.config.to_dict()}
        with atomic_dir(path) as tmp:
            for i, model in enumerate(self.models):
                model.save(tmp / "blocks" / f"{i:03d}")
            (tmp / "config.json").write_text(json.dumps(jsonable(meta), indent=2))
            (tmp / "training.json").write_text(json.dumps(jsonable(self.training), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> ScreenModel:
        """Load a model written by :meth:`save`."""
        from ._persistence import model_kind
        from .config import ScDealConfig

        path = Path(path)
        kind = model_kind(path)
        if kind != cls.KIND:
            raise ScdealError(f"{path} holds a {kind} model, not a screen model; load it with "
                              "scdeal.model.load_model, which picks the class")
        meta = json.loads((path / "config.json").read_text())
        config = ScDealConfig.from_dict(meta["config"])
        model = cls(config if device is None else config.replace(device=device), cache=False)
        blocks = [list(b) for b in meta["blocks"]]
        models = []
        for i, block in enumerate(blocks):
            folder = path / "blocks" / f"{i:03d}"
            if not (folder / "config.json").is_file():
                raise ScdealError(f"{path} is damaged: block {i} ({', '.join(block)}) has no "
                                  f"saved model in {folder}; train the screen again")
            models.append(load_block(folder, block, device=device))
        training = {}
        if (path / "training.json").is_file():
            training = json.loads((path / "training.json").read_text())
        return model.assemble(blocks, models, training)


def _realign(post: np.ndarray, names: pd.Index, to: pd.Index) -> np.ndarray:
    out = np.full((post.shape[0], len(to), post.shape[2]), np.nan, dtype=post.dtype)
    where = names.get_indexer(to)
    found = where >= 0
    out[:, found] = post[:, where[found]]
    return out
