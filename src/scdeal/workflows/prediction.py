"""``scdeal predict`` as a function: apply a saved model to a target and write the annotated
cells."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anndata import AnnData

from .._io import atomic_path
from ..errors import ScdealError

#: Cells per chunk when a file too large for memory is predicted without ``chunk_size``.
DEFAULT_CHUNK = 20_000


@dataclass
class PredictResult:
    """What :func:`predict` did.

    Attributes
    ----------
    model
        The loaded model (:class:`~scdeal.ScDEAL`, :class:`~scdeal.JointScDEAL` or
        :class:`~scdeal.model.ScreenModel`).
    adata
        The cells with the predictions; streamed in chunks it holds no genes.
    out
        The file written, or ``None``.
    chunk_size
        Cells per chunk when the file was streamed, else ``None``.
    chunk_reason
        Why it was streamed without being asked (one line), else ``None``.
    check
        :meth:`scdeal.ScDEAL.check` on these cells (``None`` when streamed or joint).
    key_prefix
        The prefix of the keys written.

    Examples
    --------
    :func:`predict` returns one (its example uses it); its fields:

    >>> import dataclasses
    >>> [f.name for f in dataclasses.fields(PredictResult)][:3]
    ['model', 'adata', 'out']
    """

    model: Any
    adata: AnnData
    out: Path | None = None
    chunk_size: int | None = None
    chunk_reason: str | None = None
    check: dict | None = None
    key_prefix: str = ""

    @property
    def n_sensitive(self) -> int | None:
        """Cells predicted sensitive (a single-drug model)."""
        column = f"{self.key_prefix}sens_label"
        return int((self.adata.obs[column] == 1).sum()) if column in self.adata.obs else None


def load_run_model(path: str | Path, device: str | None = None):
    """The model of a model folder, or of a run folder (``DIR/model``)."""
    from ..model import load_model

    folder = Path(path)
    if (folder / "model" / "config.json").is_file():  # a run folder: use its model
        folder = folder / "model"
    return load_model(folder, device=device)


def predict(model, target: str | Path | AnnData, out: str | Path | None = None, *,
            chunk_size: int | None = None, key_prefix: str = "", gene_ids: str | None = None,
            label_key: str | None = None, label_map: dict | None = None,
            device: str | None = None, sep: str | None = None,
            orientation: str = "cells_by_genes") -> PredictResult:
    """Predict ``target`` with a saved model and write the annotated cells to ``out``
    (``.h5ad``, atomically) — what ``scdeal predict`` does.

    Parameters
    ----------
    model
        A fitted model, or the folder of one (``DIR/model``, or a run folder ``DIR``).
    target
        An AnnData, or a file :func:`scdeal.data.read_target` reads.
    chunk_size
        Read a ``.h5ad`` file this many cells at a time (data larger than memory); the
        result then holds the predictions without the expression matrix. ``None``: whole,
        unless its matrix would take more than 5% of this machine's memory
        (:func:`scdeal.data.backed.reads_backed`; then chunks of 20,000).
    key_prefix
        Prefix of the ``obs``/``obsm``/``uns`` keys written.
    gene_ids
        Identifier type of the target's genes (``None``: the model's).
    label_key, label_map
        True labels to score the predictions against (``uns[prefix+'scdeal']['metrics']``).

    Examples
    --------
    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> model = scdeal.ScDEAL(n_models=1, pretrain_epochs=2, predictor_epochs=2,
    ...                       transfer_epochs=2, cache=False)
    >>> _ = model.fit(adata, "Gefitinib", bulk=bulk.without_lines(held), gene_ids="symbol")
    >>> result = scdeal.workflows.predict(model, adata[:5].copy(), "five.h5ad")
    >>> result.adata.n_obs, result.out.name, result.check["n_cells"]
    (5, 'five.h5ad', 5)
    """
    if isinstance(model, str | Path):
        model = load_run_model(model, device=device)
    kind = getattr(model, "KIND", "single")
    many = kind in ("joint", "screen")  # every drug of a joint fit or of a screen
    reason = None
    if chunk_size is None and not many and not isinstance(target, AnnData):
        from ..data.backed import reads_backed

        reason = reads_backed(target)
        if reason is not None:
            chunk_size = DEFAULT_CHUNK
    if chunk_size:
        if many:
            raise ScdealError("--chunk-size: a joint or screen model predicts a target read whole; "
                              "split the file and predict each part")
        if isinstance(target, AnnData):
            raise ScdealError("chunk_size reads a file a chunk at a time; give the path of an "
                              ".h5ad file, not an AnnData")
        adata = model.predict_file(target, chunk_size=chunk_size, key_prefix=key_prefix,
                                   gene_ids=gene_ids)
        result = PredictResult(model, adata, chunk_size=chunk_size, chunk_reason=reason)
    else:
        if not isinstance(target, AnnData):
            from ..data.singlecell import read_target

            target = read_target(target, sep=sep, label_key=label_key, orientation=orientation)
        adata = target
        if many:
            model.predict(adata, key_added=f"{key_prefix}scdeal_screen", gene_ids=gene_ids)
            result = PredictResult(model, adata)
        else:
            model.predict(adata, label_key=label_key, label_map=label_map,
                          key_prefix=key_prefix, gene_ids=gene_ids)
            result = PredictResult(model, adata, check=model.check(adata, gene_ids=gene_ids))
    result.key_prefix = key_prefix
    if out is not None:
        result.out = Path(out)
        with atomic_path(out, suffix=".h5ad") as tmp:
            adata.write_h5ad(tmp)
    return result
