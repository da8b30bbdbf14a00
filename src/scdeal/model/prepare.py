"""Turning bulk data and a target AnnData into model-ready matrices (public: the bulk-only
baselines of :mod:`scdeal.benchmark` prepare their data with the same functions).

Bulk: binary labels for the drug (missing dropped), genes on HGNC symbols, a stratified
train/validation/test split, per-gene standardisation fitted on the training split only, and
resampling of the training split only. Target: preprocessing chosen from what ``X`` holds,
genes on HGNC symbols, per-gene standardisation over the target cells (no labels involved).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from sklearn.model_selection import train_test_split

from ..data.gdsc import BulkData
from ..data.genes import harmonize_symbols, harmonize_var_names
from ..errors import DrugError, ScdealError
from .config import ScDealConfig

log = logging.getLogger(__name__)


@dataclass
class Standardizer:
    """Per-gene centring and scaling; genes with no variance are only centred."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray | sp.spmatrix) -> Standardizer:
        if sp.issparse(X):  # one pass over the stored values; no dense copy
            X = sp.csr_matrix(X)
            n = X.shape[0]
            mean = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel() / n
            squares = np.bincount(X.indices, weights=np.square(X.data, dtype=np.float64),
                                  minlength=X.shape[1])
            std = np.sqrt(np.maximum(squares / n - mean**2, 0))
        else:
            mean = X.mean(axis=0, dtype=np.float64)
            std = X.std(axis=0, dtype=np.float64)
        std[std < 1e-8] = 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32))

    @classmethod
    def fit_chunks(cls, chunks) -> Standardizer:
        """Fit from an iterable of row blocks without holding them all (streaming)."""
        n, total, total_sq = 0, None, None
        for block in chunks:
            block = np.asarray(block, dtype=np.float64)
            total = block.sum(0) if total is None else total + block.sum(0)
            sq = (block**2).sum(0)
            total_sq = sq if total_sq is None else total_sq + sq
            n += block.shape[0]
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0))
        std[std < 1e-8] = 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def transform(self, X: np.ndarray, *, copy: bool = True) -> np.ndarray:
        """``(X - mean) / scale`` as float32; ``copy=False`` reuses a float32 ``X``'s memory."""
        out = np.array(X, dtype=np.float32, copy=True) if copy else np.asarray(X, np.float32)
        out -= self.mean
        out /= self.scale
        return out


def training_rows(n_cells: int, max_cells: int, seed: int,
                  keep: np.ndarray | None = None) -> np.ndarray | None:
    """The cells a fit trains on when there are more than ``max_cells``: a seeded random
    ``max_cells`` of them, in file order (``None``: all cells).

    Training visits at most ``max_cells_per_epoch`` cells per epoch for a bounded number of
    epochs, so a larger sample would mostly go unseen; it would only cost memory.

    ``keep`` (positions, e.g. the cells with a known label) are always in the sample; the rest
    of it is a seeded random draw from the other cells. Without ``keep`` (or an empty one) the
    sample is the same as before ``keep`` existed.

    Examples
    --------
    >>> training_rows(100, 1000, seed=0) is None
    True
    >>> rows = training_rows(100_000, 5_000, seed=0)
    >>> len(rows), bool((np.diff(rows) > 0).all())
    (5000, True)
    >>> rows = training_rows(100_000, 5_000, seed=0, keep=np.array([3, 99_999]))
    >>> len(rows), bool(np.isin([3, 99_999], rows).all())
    (5000, True)
    """
    if n_cells <= max_cells:
        return None
    rng = np.random.default_rng(seed)
    if keep is None or len(keep) == 0:
        return np.sort(rng.choice(n_cells, max_cells, replace=False))
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    if len(keep) > max_cells:
        raise ScdealError(f"{len(keep)} labelled cells are more than max_training_cells "
                          f"({max_cells}) cells a fit trains on; raise max_training_cells or "
                          "label fewer cells")
    others = np.setdiff1d(np.arange(n_cells), keep, assume_unique=True)
    drawn = rng.choice(others, max_cells - len(keep), replace=False)
    return np.sort(np.concatenate([keep, drawn]))


def cell_labels(obs: pd.DataFrame, labelled: str | pd.Series, label_map=None) -> pd.Series:
    """Known labels of some target cells, for :meth:`scdeal.ScDEAL.fit`'s ``labelled``: 1.0
    sensitive, 0.0 resistant, NaN unlabelled, indexed like ``obs``.

    ``labelled`` names a column of ``obs``, or is a Series indexed by obs names (names it lacks
    are unlabelled). Values are mapped by :func:`scdeal.data.labels.binary_labels` with
    ``label_map``. Refused, in one line each: an unknown column, names that are not cells of
    ``obs``, no labelled cell, and labelled cells of one class only.

    Examples
    --------
    >>> obs = pd.DataFrame({"known": ["sensitive", None, "resistant"]}, index=["a", "b", "c"])
    >>> cell_labels(obs, "known").tolist()
    [1.0, nan, 0.0]
    >>> cell_labels(obs, pd.Series({"c": 1, "a": 0})).tolist()
    [0.0, nan, 1.0]
    """
    from ..data.labels import binary_labels

    if isinstance(labelled, str):
        if labelled not in obs.columns:
            raise ScdealError(f"labelled={labelled!r} is not a column of obs (columns: "
                              f"{', '.join(map(str, obs.columns)) or 'none'}); name the column "
                              "holding the known labels")
        what = f"column {labelled!r}"
        labels = binary_labels(obs, labelled, label_map)
    elif isinstance(labelled, pd.Series):
        strangers = labelled.index.difference(obs.index)
        if len(strangers):
            raise ScdealError(f"labelled: {len(strangers)} of its names are not cells of the "
                              f"target (e.g. {strangers[0]!r}); index the Series by obs names")
        if not labelled.index.is_unique:
            raise ScdealError("labelled: the Series names a cell twice; give each cell once")
        what = "the labelled Series"
        frame = pd.DataFrame({"known": labelled.reindex(obs.index)}, index=obs.index)
        labels = binary_labels(frame, "known", label_map)
    else:
        raise ScdealError(f"labelled must be an obs column name or a pandas Series indexed by "
                          f"obs names, not {type(labelled).__name__}")
    n_sens, n_res = int((labels == 1).sum()), int((labels == 0).sum())
    if n_sens + n_res == 0:
        raise ScdealError(f"{what} labels no cell; pass labelled=None (no --labelled-key) to "
                          "fit without labelled cells")
    if min(n_sens, n_res) == 0:
        raise ScdealError(f"{what} has {n_sens} sensitive and {n_res} resistant cells: fitting "
                          "with labelled cells needs labelled cells of both classes; label at "
                          "least one cell of the other class, or fit without labels")
    return labels.rename(None)


#: Rows per block when cells are encoded or predicted block by block.
BLOCK_ROWS = 8192
#: Targets whose standardised values take at most this many bytes are held densely while a
#: model trains (:meth:`CellRows.held_densely`): 10,000 cells x 3,000 genes.
HELD_BYTES = 120_000_000


class CellRows:
    """Target cells on the model's genes, standardised a block of rows at a time.

    Holds the preprocessed matrix as it is (sparse counts stay sparse) and hands out dense,
    standardised float32 rows on demand, so that no step needs the whole target densely:
    training draws mini-batches, prediction and clustering go through :meth:`blocks`.
    Indexing with a tensor of positions (what the training loops do) gives a tensor on
    ``device``; :meth:`subset` is a view on some of the rows.

    Examples
    --------
    >>> X = sp.csr_matrix(np.array([[0, 2], [4, 0], [2, 2]], dtype=np.float32))
    >>> rows = CellRows(X, Standardizer.fit(X))
    >>> rows.dense([0, 2]).astype(float).round(3).tolist()
    [[-1.225, 0.707], [0.0, 0.707]]
    >>> view = rows.subset([1, 2])
    >>> len(view), view[torch.tensor([0])].double().round(decimals=3).tolist()
    (2, [[1.225, -1.414]])
    """

    def __init__(self, X: np.ndarray | sp.spmatrix, scaler: Standardizer | None, *,
                 zero_columns: np.ndarray | None = None, positions: np.ndarray | None = None,
                 device=None, held: np.ndarray | None = None):
        self.X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else np.asarray(
            X, dtype=np.float32)
        self.scaler = scaler
        self.zero_columns = zero_columns  # genes the target lacks: 0 after standardising
        self.positions = positions  # rows of X this view covers (None: all)
        self.device = device
        self._held = held  # every row of X standardised (see held_densely), or None

    def __len__(self) -> int:
        return self.X.shape[0] if self.positions is None else len(self.positions)

    @property
    def n_genes(self) -> int:
        return self.X.shape[1]

    def subset(self, positions) -> CellRows:
        positions = np.asarray(positions, dtype=np.int64)
        if self.positions is not None:
            positions = self.positions[positions]
        return self._view(positions=positions)

    def to(self, device) -> CellRows:
        """The same rows, handed out as tensors on ``device``."""
        return self._view(device=device)

    def _view(self, **changes) -> CellRows:
        """This view with some of ``positions``, ``device``, ``held`` replaced (same ``X``)."""
        parts = {"positions": self.positions, "device": self.device, "held": self._held,
                 **changes}
        return CellRows(self.X, self.scaler, zero_columns=self.zero_columns, **parts)

    def held_densely(self, max_bytes: int | None = None) -> CellRows:
        """The same rows, all of ``X`` standardised once and held densely when that takes at
        most ``max_bytes`` (default :data:`HELD_BYTES`; otherwise ``self``): every
        mini-batch is then a slice, instead of a sparse slice densified and standardised
        again at every step of every stage. The values are the same either way
        (standardising is elementwise).

        Examples
        --------
        >>> X = sp.csr_matrix(np.array([[0, 2], [4, 0], [2, 2]], dtype=np.float32))
        >>> rows = CellRows(X, Standardizer.fit(X)).subset([2, 0])
        >>> bool((rows.held_densely().dense() == rows.dense()).all())
        True
        >>> rows.held_densely(max_bytes=8) is rows
        True
        """
        max_bytes = HELD_BYTES if max_bytes is None else max_bytes
        if self._held is not None or self.X.shape[0] * self.n_genes * 4 > max_bytes:
            return self
        return self._view(held=self._view(positions=None).dense())

    def dense(self, rows=None) -> np.ndarray:
        """Standardised float32 values of ``rows`` (positions in this view; None: all)."""
        if rows is None:
            rows = np.arange(len(self))
        rows = np.asarray(rows, dtype=np.int64)
        if self.positions is not None:
            rows = self.positions[rows]
        if self._held is not None:
            return self._held[rows]  # a copy (fancy indexing)
        block = self.X[rows]  # a copy (fancy indexing), ours to change in place
        block = block.toarray() if sp.issparse(block) else np.asarray(block, dtype=np.float32)
        if self.scaler is not None:
            block = self.scaler.transform(block, copy=False)
        if self.zero_columns is not None:
            block[:, self.zero_columns] = 0.0
        return block

    def __getitem__(self, rows) -> torch.Tensor:
        if isinstance(rows, torch.Tensor):
            rows = rows.cpu().numpy()
        return torch.as_tensor(self.dense(rows), device=self.device)

    def blocks(self, size: int):
        """Consecutive dense standardised blocks of at most ``size`` rows."""
        for start in range(0, len(self), size):
            yield self.dense(np.arange(start, min(start + size, len(self))))


@dataclass
class BulkSplit:
    """Labelled bulk lines of one drug, split and ready for training."""

    X: pd.DataFrame  # cell lines x genes (HGNC symbols), unscaled
    y: pd.Series  # 1 = sensitive, 0 = resistant
    train: np.ndarray  # positional indices
    val: np.ndarray
    test: np.ndarray
    release: str
    cutoff: float
    binarization: str


def bulk_expression_on_symbols(bulk: BulkData) -> tuple[pd.DataFrame, dict]:
    """Bulk expression with columns renamed to approved HGNC symbols (duplicates averaged)."""
    mapping = harmonize_symbols(list(bulk.expression.columns))
    rename = mapping.mapping()
    expr = bulk.expression.loc[:, [g in rename for g in bulk.expression.columns]]
    expr = expr.T.groupby([rename[g] for g in expr.columns], sort=False).mean().T
    return expr.astype(np.float32), dict(mapping.summary)


def drug_labels(bulk: BulkData, drug: str, config: ScDealConfig,
                expression: pd.DataFrame) -> BulkSplit:
    """The labelled, expressed lines of ``drug`` (not split yet: see :func:`bulk_split`)."""
    binarized, release = bulk.labels_for(drug, release=config.release, metric=config.metric,
                                         method=config.binarization)
    labels = binarized.labels.dropna().astype(int)
    labels = labels[labels.index.isin(expression.index)]
    counts = labels.value_counts()
    n_sens, n_res = int(counts.get(1, 0)), int(counts.get(0, 0))
    if min(n_sens, n_res) < config.min_per_class:
        raise DrugError(
            f"{bulk.resolve_drug(drug)} has {n_sens} sensitive and {n_res} resistant labelled "
            f"cell lines with expression; at least {config.min_per_class} of each are needed "
            "(try --release GDSC1/GDSC2 or another binarisation)")
    empty = np.array([], dtype=int)
    return BulkSplit(X=expression.loc[labels.index], y=labels, train=empty, val=empty,
                     test=empty, release=release, cutoff=binarized.cutoff,
                     binarization=binarized.branch)


def bulk_split(labelled: BulkSplit, config: ScDealConfig) -> BulkSplit:
    """The stratified split (60/20/20 by default) of :func:`drug_labels`' lines, seeded by
    ``config.seed``."""
    train, val, test = stratified_split(labelled.y.to_numpy(), config.split, config.seed)
    return dataclasses.replace(labelled, train=train, val=val, test=test)


def stratified_split(y: np.ndarray, fractions: tuple[float, float, float], seed: int):
    """Positional train/validation/test indices, each stratified by ``y``."""
    idx = np.arange(len(y))
    f_train, f_val, f_test = fractions
    rest, test = train_test_split(idx, test_size=f_test, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=f_val / (f_train + f_val), stratify=y[rest],
                                  random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def resample(X: np.ndarray, y: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balance the classes of a training split with imbalanced-learn (never val/test)."""
    if method == "none":
        return X, y
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    samplers = {
        "upsampling": lambda: RandomOverSampler(random_state=seed),
        "downsampling": lambda: RandomUnderSampler(random_state=seed),
        "smote": lambda: SMOTE(random_state=seed, k_neighbors=min(5, int(np.bincount(y).min()) - 1)),
    }
    if method not in samplers:
        raise ScdealError(f"unknown sampling {method!r}; use none, upsampling, downsampling or smote")
    X_res, y_res = samplers[method]().fit_resample(X, y)
    return np.asarray(X_res, dtype=np.float32), np.asarray(y_res)


def dense_float32(X) -> np.ndarray:
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return X.astype(np.float32, copy=False)


def check_finite(X: np.ndarray | sp.spmatrix, what: str) -> None:
    bad = ~np.isfinite(X.data if sp.issparse(X) else X)
    if bad.any():
        raise ScdealError(f"{what} holds {int(bad.sum())} NaN or infinite values; remove or "
                          "impute them before running scdeal")


def target_on_symbols(adata: AnnData, gene_ids: str, input_kind: str = "auto") -> AnnData:
    """The target with var_names harmonised to HGNC symbols.

    Several ids of one symbol are summed when ``X`` holds counts (declared, or detected by
    :func:`~scdeal.data.values.detect_value_kind`; UMIs of one gene add up and stay integers,
    so the preprocessing still sees counts), averaged otherwise.

    Examples
    --------
    >>> counts = AnnData(np.array([[1, 2, 5]], dtype=np.float32))
    >>> counts.var_names = ["ENSG00000141510", "ENSG00000141510.17", "ENSG00000146648"]
    >>> target_on_symbols(counts, "ensembl").to_df().to_dict("records")
    [{'TP53': 3.0, 'EGFR': 5.0}]
    """
    from ..data.values import detect_value_kind

    kind = detect_value_kind(adata.X) if input_kind == "auto" else input_kind
    return harmonize_var_names(adata, id_type=gene_ids, copy=True,
                               aggregate="sum" if kind == "counts" else "mean")


def most_variable_genes(target: AnnData, genes: list[str], n: int,
                        bulk_expr: pd.DataFrame) -> tuple[list[str], str]:
    """The ``n`` of ``genes`` that vary most, in the order of ``genes``, and how they were chosen.

    On counts, normalised or log values (``target`` preprocessed): scanpy's highly variable
    genes (Seurat flavour, on the log values) over the target cells. On scaled input every
    gene of the cells has variance 1, so the variance over the GDSC lines (``bulk_expr``)
    ranks them instead. No labels are read.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bulk = pd.DataFrame(rng.normal(size=(30, 4)) * [1, 5, 2, 3], columns=list("ABCD"))
    >>> cells = AnnData(rng.normal(size=(20, 4)).astype(np.float32))
    >>> cells.var_names = list("ABCD")
    >>> cells.uns["scdeal_preprocess"] = {"input_kind": "scaled"}
    >>> most_variable_genes(cells, list("ABCD"), 2, bulk)
    (['B', 'D'], 'variance over the GDSC lines (the cells are scaled)')
    """
    kind = target.uns.get("scdeal_preprocess", {}).get("input_kind", "scaled")
    if kind == "scaled":
        variance = bulk_expr[genes].var(axis=0).to_numpy()
        keep = set(np.asarray(genes)[np.argsort(-variance, kind="stable")[:n]])
        how = "variance over the GDSC lines (the cells are scaled)"
    else:
        import scanpy as sc

        table = sc.pp.highly_variable_genes(target[:, genes], n_top_genes=int(n),
                                            flavor="seurat", inplace=False)
        keep = set(np.asarray(genes)[table["highly_variable"].to_numpy()])
        how = "highly variable genes on the cells (scanpy, Seurat flavour)"
    return [g for g in genes if g in keep], how


def align_genes(adata: AnnData, genes: list[str], *, min_fraction: float, what: str,
                keep_sparse: bool = False) -> np.ndarray | sp.csr_matrix:
    """Matrix of ``adata`` on ``genes`` in that order; absent genes are NaN columns (zero
    columns with ``keep_sparse`` when ``X`` is sparse: see :func:`absent_genes`).

    Raises when fewer than ``min_fraction`` of ``genes`` are present.
    """
    present = pd.Index(adata.var_names)
    hit = present.get_indexer(genes)
    found = int((hit >= 0).sum())
    if found == 0:
        raise ScdealError(f"{what} shares no genes with the model; check --gene-ids "
                          "(symbol, entrez, ensembl) and the species")
    if found < min_fraction * len(genes):
        raise ScdealError(f"{what} has only {found} of the model's {len(genes)} genes "
                          f"({found / len(genes):.0%}, need {min_fraction:.0%}); it does not fit "
                          "this model: train a new one on this target with `scdeal run`")
    cols = np.flatnonzero(hit >= 0)
    if sp.issparse(adata.X):
        # Column selection as a sparse product: much faster than fancy-indexing CSR columns.
        select = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (hit[cols], cols)),
                               shape=(adata.n_vars, len(genes)))
        X = sp.csr_matrix(adata.X, dtype=np.float32) @ select
        if keep_sparse:
            return X
        X = X.toarray()
    else:
        X = np.zeros((adata.n_obs, len(genes)), dtype=np.float32)
        X[:, cols] = np.asarray(adata.X, dtype=np.float32)[:, hit[cols]]
    X[:, np.setdiff1d(np.arange(len(genes)), cols)] = np.nan
    return X


def absent_genes(adata: AnnData, genes: list[str]) -> np.ndarray:
    """Mask of the ``genes`` that ``adata`` lacks."""
    return pd.Index(adata.var_names).get_indexer(genes) < 0
