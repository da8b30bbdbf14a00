"""Preprocessing of single-cell targets, chosen from what ``X`` holds.

The paper filters cells with fewer than 200 expressed genes and genes expressed in fewer than
3 cells, normalises each cell to 10,000 and log-transforms. The original code instead scaled to
the median library size and applied a hidden 5% mitochondrial cut to most datasets (method
notes section 3). Here every step is an explicit :class:`PreprocessConfig` field, steps that do
not fit the input (e.g. log-transforming z-scores) are skipped, and what was done is recorded
in ``uns['scdeal_preprocess']``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ScdealError
from .values import ValueKind, detect_value_kind

log = logging.getLogger(__name__)

InputKind = Literal["auto", "counts", "normalized", "log_normalized", "scaled"]
UNS_KEY = "scdeal_preprocess"


@dataclass
class PreprocessConfig:
    """What :func:`preprocess_target` may do; which steps apply depends on the input kind.

    Attributes
    ----------
    input_kind
        What ``X`` holds; ``auto`` detects it (:func:`scdeal.data.values.detect_value_kind`).
    min_genes
        Drop cells with fewer genes of value > 0 (paper: 200). Not for scaled input.
    min_cells
        Drop genes with value > 0 in fewer cells (paper: 3). Not for scaled input.
    max_pct_mito
        Drop cells whose mitochondrial share of the total is >= this percentage; ``None``: no
        filter (the original code used 5 for four of six datasets). Counts and normalised
        input only.
    target_sum
        Total per cell after ``normalize_total`` (paper: 10,000); ``None`` uses scanpy's
        default, the median total of all cells (what the original code did).
    renormalize
        Also apply ``normalize_total`` to normalised (TPM/FPKM) input, as the paper did for
        every dataset; ``False`` keeps those values and only log-transforms them.
    log1p
        Natural-log transform counts and normalised input after normalisation.
    n_top_genes
        Keep this many highly variable genes (scanpy, Seurat flavour, on log data); ``None``
        keeps all genes. Not for scaled input.
    mito_prefix
        Case-insensitive prefix of mitochondrial gene names.

    Examples
    --------
    >>> original = PreprocessConfig(max_pct_mito=5.0, target_sum=None)  # the original's choices
    >>> original.max_pct_mito, original.target_sum, original.min_genes
    (5.0, None, 200)
    """

    input_kind: InputKind = "auto"
    min_genes: int = 200
    min_cells: int = 3
    max_pct_mito: float | None = None
    target_sum: float | None = 1e4
    renormalize: bool = True
    log1p: bool = True
    n_top_genes: int | None = None
    mito_prefix: str = "MT-"

    def __post_init__(self) -> None:
        if self.input_kind not in get_args(InputKind):
            raise ScdealError(f"input_kind must be one of {', '.join(get_args(InputKind))}, "
                              f"got {self.input_kind!r}")
        for name in ("min_genes", "min_cells"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ScdealError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.max_pct_mito is not None and not 0 < self.max_pct_mito <= 100:
            raise ScdealError(f"max_pct_mito must lie in (0, 100] or be None, got "
                              f"{self.max_pct_mito!r}")
        if self.target_sum is not None and not self.target_sum > 0:
            raise ScdealError(f"target_sum must be positive or None, got {self.target_sum!r}")
        if self.n_top_genes is not None and (isinstance(self.n_top_genes, bool)
                                             or int(self.n_top_genes) != self.n_top_genes
                                             or self.n_top_genes < 1):
            raise ScdealError(f"n_top_genes must be a whole number >= 1 or None, got "
                              f"{self.n_top_genes!r}")
        if not self.mito_prefix:
            raise ScdealError("mito_prefix must not be empty (e.g. 'MT-')")


def preprocess_target(adata: AnnData, config: PreprocessConfig | None = None, *,
                      copy: bool = True, genes: list[str] | None = None) -> AnnData:
    """Filter, normalise and log-transform a target as its kind of values requires.

    ============== =========================================================================
    kind           steps (each only when its config field asks for it)
    ============== =========================================================================
    counts         filter cells (min_genes), filter genes (min_cells), mito filter,
                   normalize_total (target_sum), log1p, highly variable genes
    normalized     same; normalize_total only with ``renormalize`` (default, as the paper)
    log_normalized filter cells, filter genes, highly variable genes
    scaled         nothing: "expressed" is undefined for z-scores, and they are final
    ============== =========================================================================

    Parameters
    ----------
    adata
        Cells x genes.
    config
        The steps' settings; default :class:`PreprocessConfig()`.
    copy
        Work on a copy (the input is left untouched); ``False`` changes ``adata`` in place.
    genes
        Keep these genes (those present) instead of filtering by ``min_cells``: the genes a
        fit kept, so that new cells are normalised over the same genes, whatever other cells
        come with them. The genes kept are recorded in ``uns['scdeal_preprocess']['genes']``
        whenever a gene filter ran.

    Returns
    -------
    AnnData
        The processed object, with ``uns['scdeal_preprocess']``: ``config``, ``input_kind``,
        ``kind_source`` (detected / declared), ``steps`` (applied, in order), ``skipped``
        (asked for but not applicable, with the reason) and ``shapes`` (cells and genes before
        and after each filter). Nothing else is added (no ``raw``, no layers).

    Examples
    --------
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> adata = AnnData(rng.poisson(2.0, size=(50, 300)).astype(np.float32),
    ...                 var=pd.DataFrame(index=[f"G{i}" for i in range(300)]))
    >>> out = preprocess_target(adata, PreprocessConfig(n_top_genes=100))
    >>> out.shape, out.uns["scdeal_preprocess"]["input_kind"]
    ((50, 100), 'counts')
    >>> out.uns["scdeal_preprocess"]["steps"]  # doctest: +NORMALIZE_WHITESPACE
    ['filter_cells(min_genes=200)', 'filter_genes(min_cells=3)',
     'normalize_total(target_sum=10000.0)', 'log1p',
     "highly_variable_genes(flavor='seurat', n_top_genes=100)"]
    """
    config = config or PreprocessConfig()
    _check_finite(adata.X)
    adata = adata.copy() if copy else adata
    if config.input_kind == "auto":
        kind: ValueKind = detect_value_kind(adata.X)
        kind_source = "detected"
    else:
        kind, kind_source = config.input_kind, "declared"
        if kind in ("counts", "normalized") and _has_negative(adata.X):
            raise ScdealError(f"input_kind={kind!r} but X has negative values (z-scores?); "
                              "declare input_kind='scaled' or use 'auto'")
    record = {"config": asdict(config), "input_kind": kind, "kind_source": kind_source,
              "steps": [], "skipped": [], "shapes": {},
              "n_cells_input": int(adata.n_obs), "n_genes_input": int(adata.n_vars)}
    log.info("target values: %s (%s)", kind, kind_source)

    if kind == "scaled":
        for field, wanted in (("min_genes", config.min_genes), ("min_cells", config.min_cells),
                              ("max_pct_mito", config.max_pct_mito),
                              ("n_top_genes", config.n_top_genes)):
            if wanted:
                record["skipped"].append(f"{field}: input is scaled (z-scores), 'expressed' "
                                         "and variability are undefined")
    else:
        import scanpy as sc  # here only: scaled input needs none of it (2 s of imports)

        if config.min_genes > 0:
            keep, _ = sc.pp.filter_cells(adata, min_genes=config.min_genes, inplace=False)
            _subset(adata, keep, "obs", f"filter_cells(min_genes={config.min_genes})",
                    "min_genes", record)
        if genes is not None:
            _subset(adata, adata.var_names.isin(genes), "var",
                    f"filter_genes(the fit's {len(genes)})", "the genes (is this the data "
                    "the model was fitted on, or its kind?)", record)
            record["genes"] = list(adata.var_names)
        elif config.min_cells > 0:
            keep, _ = sc.pp.filter_genes(adata, min_cells=config.min_cells, inplace=False)
            _subset(adata, keep, "var", f"filter_genes(min_cells={config.min_cells})",
                    "min_cells", record)
            record["genes"] = list(adata.var_names)
        if config.max_pct_mito is not None:
            if kind == "log_normalized":
                record["skipped"].append("max_pct_mito: shares of a total are undefined on "
                                         "log values")
            else:
                _mito_filter(adata, config, record)
        if kind in ("counts", "normalized"):
            if kind == "counts" or config.renormalize:
                if config.target_sum is None:  # kept, so that new cells are scaled alike
                    record["median_total"] = _nonzero_median_total(adata.X)
                sc.pp.normalize_total(adata, target_sum=config.target_sum)
                record["steps"].append(f"normalize_total(target_sum={config.target_sum})")
            if config.log1p:
                sc.pp.log1p(adata)
                record["steps"].append("log1p")
        if config.n_top_genes is not None:
            _highly_variable(adata, config, kind, record)

    if sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    else:
        adata.X = np.asarray(adata.X, dtype=np.float32)
    record["n_cells_output"], record["n_genes_output"] = int(adata.n_obs), int(adata.n_vars)
    adata.uns[UNS_KEY] = record
    return adata


def prediction_config(config: PreprocessConfig, record: dict) -> PreprocessConfig:
    """The preprocessing of cells to predict with a model fitted on data preprocessed by
    ``config`` (``record``: that data's ``uns['scdeal_preprocess']``): every step that depends
    on which other cells are present is fixed from the fit, so that a cell's values, and its
    prediction, do not depend on the cells predicted with it.

    The value kind is the one found at fit time; no gene filter (``min_cells``) and no
    highly-variable-gene selection (the model's genes are fixed); ``normalize_total`` to
    ``target_sum``, or, where that was None, to the median total of the fit's cells. The
    per-cell QC (``min_genes``, mitochondrial share) stays.

    Examples
    --------
    >>> fitted = {"input_kind": "counts", "median_total": 2150.0}
    >>> c = prediction_config(PreprocessConfig(target_sum=None, n_top_genes=2000), fitted)
    >>> c.input_kind, c.min_cells, c.n_top_genes, c.target_sum
    ('counts', 0, None, 2150.0)
    """
    from dataclasses import replace

    target_sum = config.target_sum
    if target_sum is None:
        target_sum = record.get("median_total")  # None in models saved before it was kept
    return replace(config, input_kind=record.get("input_kind", config.input_kind), min_cells=0,
                   n_top_genes=None, target_sum=target_sum)


def _nonzero_median_total(X) -> float:
    # What scanpy's normalize_total(target_sum=None) scales to: the median of the non-zero
    # per-cell totals.
    totals = np.asarray(X.sum(axis=1)).ravel()
    return float(np.median(totals[totals > 0])) if (totals > 0).any() else 1.0


def _check_finite(X) -> None:
    # One NaN would spread to its whole cell through normalize_total.
    values = X.data if sp.issparse(X) else np.asarray(X)
    n_bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if n_bad:
        raise ScdealError(f"the target holds {n_bad} NaN or infinite expression values; fill "
                          "them (e.g. missing -> 0) or drop the affected genes/cells first")


def _has_negative(X) -> bool:
    values = X.data if sp.issparse(X) else np.asarray(X)
    return bool(values.size) and bool(np.nanmin(values) < 0)


def _subset(adata: AnnData, keep: np.ndarray, axis: str, step: str, parameter: str,
            record: dict) -> None:
    """Apply a filter mask in place, refusing to remove everything; record the shapes."""
    keep = np.asarray(keep, dtype=bool)
    before = (int(adata.n_obs), int(adata.n_vars))
    what = "cell" if axis == "obs" else "gene"
    if not keep.any():
        raise ScdealError(f"{step} removed every {what} ({len(keep)} before); lower "
                          f"{parameter} (is X really {record['input_kind']}? declare "
                          "input_kind otherwise)")
    if not keep.all():
        # The private AnnData method is what scanpy's own in-place filters use.
        (adata._inplace_subset_obs if axis == "obs" else adata._inplace_subset_var)(keep)
    record["steps"].append(step)
    record["shapes"][step.split("(")[0]] = {
        "n_cells_before": before[0], "n_genes_before": before[1],
        "n_cells_after": int(adata.n_obs), "n_genes_after": int(adata.n_vars)}


def _mito_filter(adata: AnnData, config: PreprocessConfig, record: dict) -> None:
    import scanpy as sc

    is_mito = adata.var_names.str.upper().str.startswith(config.mito_prefix.upper())
    n_mito = int(is_mito.sum())
    if n_mito == 0:
        log.warning("no gene name starts with %r, so max_pct_mito=%s filters nothing (gene "
                    "ids instead of symbols?)", config.mito_prefix, config.max_pct_mito)
        record["skipped"].append(f"max_pct_mito: no gene name starts with "
                                 f"{config.mito_prefix!r}")
        return
    flag = "_scdeal_mito"
    adata.var[flag] = is_mito
    try:
        obs_metrics, _ = sc.pp.calculate_qc_metrics(adata, qc_vars=[flag], percent_top=None,
                                                    log1p=False, inplace=False)
    finally:
        del adata.var[flag]
    pct = obs_metrics[f"pct_counts_{flag}"].to_numpy()
    keep = np.nan_to_num(pct, nan=0.0) < config.max_pct_mito  # strict, as the original
    step = (f"mito_filter(max_pct_mito={config.max_pct_mito}, prefix={config.mito_prefix!r}, "
            f"n_mito_genes={n_mito})")
    _subset(adata, keep, "obs", step, "max_pct_mito (raise it)", record)


def _highly_variable(adata: AnnData, config: PreprocessConfig, kind: str, record: dict) -> None:
    import scanpy as sc

    if config.n_top_genes >= adata.n_vars:
        record["skipped"].append(f"n_top_genes: {config.n_top_genes} >= {adata.n_vars} genes")
        return
    if kind in ("counts", "normalized") and not config.log1p:
        log.warning("highly variable genes (Seurat flavour) expect log data, but log1p=False")
    table = sc.pp.highly_variable_genes(adata, n_top_genes=int(config.n_top_genes),
                                        flavor="seurat", inplace=False)
    step = f"highly_variable_genes(flavor='seurat', n_top_genes={config.n_top_genes})"
    _subset(adata, table["highly_variable"].to_numpy(), "var", step, "n_top_genes", record)
