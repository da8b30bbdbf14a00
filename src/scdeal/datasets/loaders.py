"""Readers of the paper datasets' GEO files (documented layouts, method notes section 2).

Each reader returns an AnnData of raw values (cells x genes) with ``obs['sensitive']`` (1/0),
``obs['sensitivity']`` ("Sensitive"/"Resistant") and the dataset's metadata. Metadata is joined
on cell ids; the original's row-position assignment is available only on request
(``by_position=True``) for files without ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.orientation import cells_on_columns
from ..errors import ScdealError
from . import rules
from .fetch import find_file
from .registry import PaperDataset

CellIdTest = Callable[[pd.Index], np.ndarray]


def locate(folder: Path, ds: PaperDataset, name: str) -> Path | None:
    geo_file = next(f for f in ds.files if f.name == name)
    path = find_file(folder, geo_file, ds.accession)
    if path is None and geo_file.required:
        variants = ", ".join(geo_file.candidates(ds.accession))
        raise ScdealError(f"{folder} has no {name} (looked for {variants}); place the GEO file "
                          "there or let scdeal download it")
    return path


def _sniff_sep(path: Path) -> str:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", errors="replace") as fh:
        first = fh.readline()
    return "\t" if first.count("\t") >= max(1, first.count(",")) else ","


def read_matrix(path: Path, is_cell_id: CellIdTest) -> pd.DataFrame:
    """Read a gene/cell table and return it cells x genes.

    The cell axis is the one whose labels pass ``is_cell_id`` (the dataset's known cell ids)
    more often; when that does not decide, the names do (:mod:`scdeal.data.orientation`, the
    policy of every table scdeal reads). The shape never decides (the original took genes to be
    the longer axis): a table whose names do not tell is refused.
    """
    try:
        frame = pd.read_csv(path, sep=_sniff_sep(path), index_col=0)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ScdealError(f"cannot read {path.name} as a table ({exc}); is it the GEO file?") \
            from exc
    frame.index = frame.index.astype(str).str.strip()
    frame.columns = frame.columns.astype(str).str.strip()
    in_columns = is_cell_id(frame.columns).mean() if frame.shape[1] else 0.0
    in_rows = is_cell_id(frame.index).mean() if frame.shape[0] else 0.0
    if in_columns == in_rows:
        on_columns = cells_on_columns(frame.index, frame.columns)
        if on_columns is None:
            raise ScdealError(f"{path.name}: cannot tell which axis holds the cells (neither "
                              "holds the dataset's cell ids and the names do not tell); is it "
                              "the GEO file?")
    else:
        on_columns = in_columns > in_rows
    if on_columns:
        frame = frame.T
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise ScdealError(f"{path.name} has duplicate cell id {dup!r}; cell ids must be unique")
    return frame


def to_anndata(cells_by_genes: pd.DataFrame, source: str) -> ad.AnnData:
    try:
        values = cells_by_genes.to_numpy(dtype=np.float32)
    except ValueError as exc:
        raise ScdealError(f"{source} has non-numeric expression values ({exc}); is the first "
                          "column the gene (or cell) names?") from exc
    # Single-cell tables are mostly zeros; keep them sparse when that saves memory.
    matrix = sp.csr_matrix(values) if np.count_nonzero(values) < 0.5 * values.size else values
    adata = ad.AnnData(X=matrix, obs=pd.DataFrame(index=cells_by_genes.index.copy()),
                       var=pd.DataFrame(index=cells_by_genes.columns.copy()))
    adata.obs_names.name = None
    adata.var_names.name = None
    return adata


def join_on_ids(cells: pd.Index, meta: pd.DataFrame, source: str, hint: str = "") -> pd.DataFrame:
    """Rows of ``meta`` (indexed by cell id) in the order of ``cells``; every cell must be there."""
    meta = meta.copy()
    meta.index = meta.index.astype(str).str.strip()
    if meta.index.has_duplicates:
        dup = meta.index[meta.index.duplicated()][0]
        raise ScdealError(f"{source} lists cell id {dup!r} twice; ids must be unique")
    found = cells.isin(meta.index)
    if not found.all():
        example = cells[~found][0]
        raise ScdealError(f"{source}: cell ids of {int(found.sum())} of {len(cells)} matrix "
                          f"cells found (e.g. {example!r} is missing); the metadata must "
                          f"describe every cell of the matrix{hint}")
    return meta.loc[cells]


def _categorical_obs(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.loc[:, ~frame.columns.astype(str).str.startswith("Unnamed")].copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = pd.Categorical(frame[column].astype("string").str.strip())
    return frame


def _set_labels(adata: ad.AnnData, labels: np.ndarray) -> None:
    adata.obs["sensitive"] = np.asarray(labels, dtype=np.int64)
    adata.obs["sensitivity"] = pd.Categorical(
        np.where(adata.obs["sensitive"] == 1, "Sensitive", "Resistant"),
        categories=["Resistant", "Sensitive"])


def _positional_label_column(table: pd.DataFrame, n_cells: int, source: str) -> pd.Series:
    if len(table) != n_cells:
        raise ScdealError(f"{source} has {len(table)} rows but the matrix has {n_cells} cells; "
                          "by-position labels need exactly one row per cell, in matrix order")
    # The original read the file with index_col=0 and took the next column as the label.
    return table.iloc[:, 1 if table.shape[1] > 1 else 0]


def _id_label_table(path: Path, source: str, position_hint: str) -> pd.DataFrame:
    table = pd.read_csv(path, sep=_sniff_sep(path), header=None, dtype=str)
    if table.shape[1] < 2:
        raise ScdealError(f"{source} has one column (labels without cell ids); {position_hint}")
    table[0] = table[0].str.strip()
    return table.set_index(0)


# ------------------------------------------------------------------------------------------
# One reader per series.


def read_gse117872(folder: Path, ds: PaperDataset) -> ad.AnnData:
    info_path = locate(folder, ds, "GSE117872_good_Data_cellinfo.txt")
    info = pd.read_csv(info_path, sep="\t", dtype=str)
    if "groups" not in info.columns:
        raise ScdealError(f"{info_path.name} has no 'groups' column (cell ids); columns are "
                          f"{list(info.columns)[:6]}")
    info = info.set_index("groups")
    for column in ("origin", "cluster"):
        if column not in info.columns:
            raise ScdealError(f"{info_path.name} has no {column!r} column; is it the GEO file?")
    known = set(info.index.astype(str).str.strip())
    matrix = read_matrix(locate(folder, ds, "GSE117872_good_Data_TPM.txt"),
                         lambda labels: labels.isin(known))
    info = join_on_ids(matrix.index, info, info_path.name)
    keep = (info["origin"].astype(str).str.strip() == ds.subset).to_numpy()
    if not keep.any():
        origins = ", ".join(sorted(info["origin"].dropna().astype(str).unique())[:8])
        raise ScdealError(f"no cell of {info_path.name} has origin {ds.subset!r} (found: "
                          f"{origins})")
    adata = to_anndata(matrix.loc[keep], ds.key)
    adata.obs = _categorical_obs(info.loc[keep])
    adata.obs.index = adata.obs_names
    _set_labels(adata, rules.gse117872_labels(adata.obs["cluster"]))
    adata.obs["holiday"] = rules.gse117872_holiday(adata.obs["cluster"])
    return adata


_FOUR_PART_ID = re.compile(r"^[^_]+_[^_]+_[^_]+_[^_]+$")
_PREFIX_BARCODE_ID = re.compile(r"^[^_]+_[ACGTN]+$")


def read_gse112274(folder: Path, ds: PaperDataset) -> ad.AnnData:
    matrix = read_matrix(locate(folder, ds, "GSE112274_cell_gene_FPKM.csv"),
                         lambda labels: np.asarray(labels.str.match(_FOUR_PART_ID)))
    adata = to_anndata(matrix, ds.key)
    parts = adata.obs_names.to_series().str.split("_", expand=True)
    for i in parts.columns:  # the original keeps the id's parts as name_section_1..4
        adata.obs[f"name_section_{i + 1}"] = pd.Categorical(parts[i].to_numpy())
    _set_labels(adata, rules.gse112274_labels(adata.obs_names))
    return adata


def read_gse140440(folder: Path, ds: PaperDataset, by_position: bool) -> ad.AnnData:
    ann_path = locate(folder, ds, "Annotation.txt")
    hint = ("pass by_position=True (--by-position) only if its rows are in the matrix's cell "
            "order, as the original assumed")
    table = (pd.read_csv(ann_path, sep="\t", header=None, dtype=str) if by_position
             else _id_label_table(ann_path, ann_path.name, hint))
    known = set() if by_position else set(table.index)
    matrix = read_matrix(locate(folder, ds, "GSE140440.csv"),
                         lambda labels: labels.isin(known) | labels.str.match(r"^GSM\d+$"))
    adata = to_anndata(matrix, ds.key)
    if by_position:
        label = _positional_label_column(table, adata.n_obs, ann_path.name).to_numpy()
    else:
        label = join_on_ids(adata.obs_names, table, ann_path.name, f"; or {hint}").iloc[:, 0]
        label = label.to_numpy()
    adata.obs["annotation"] = pd.Categorical(pd.Series(label, dtype="string").str.strip())
    _set_labels(adata, rules.gse140440_labels(label))
    return adata


def read_gse149383(folder: Path, ds: PaperDataset, by_position: bool) -> ad.AnnData:
    matrix = read_matrix(locate(folder, ds, "erl_total_data_2K.csv"),
                         lambda labels: np.asarray(labels.str.match(_PREFIX_BARCODE_ID)))
    adata = to_anndata(matrix, ds.key)
    labels = rules.gse149383_labels(adata.obs_names)
    _set_labels(adata, labels)
    adata.obs["sample"] = pd.Categorical(adata.obs_names.str.split("_").str[0])
    meta_path = locate(folder, ds, "erl_total_2K_meta.csv")
    if meta_path is None:
        return adata
    hint = ("pass by_position=True (--by-position) if its rows are in the matrix's cell order "
            "without ids, or remove the optional file")
    if by_position:
        label = _positional_label_column(pd.read_csv(meta_path, header=None, dtype=str),
                                         adata.n_obs, meta_path.name)
    else:
        table = _id_label_table(meta_path, meta_path.name, hint)
        label = join_on_ids(adata.obs_names, table, meta_path.name, f"; or {hint}").iloc[:, 0]
    meta_labels = rules.resistant_if_contains(label.to_numpy(), "res", "meta label")
    disagree = int((meta_labels != labels).sum())
    if disagree:
        raise ScdealError(f"{meta_path.name} labels disagree with the cell-id prefixes for "
                          f"{disagree} of {adata.n_obs} cells; its rows are not these cells")
    adata.obs["meta_label"] = pd.Categorical(label.astype("string").str.strip().to_numpy())
    return adata


def read_gse110894(folder: Path, ds: PaperDataset) -> ad.AnnData:
    info_path = locate(folder, ds, "GSE110894_CellInfo.xlsx")
    info = pd.read_excel(info_path, header=3, dtype=str).dropna(how="all").ffill()
    info.columns = [str(c).strip() for c in info.columns]
    for column in ("Plate#", "Well position", "Sample name"):
        if column not in info.columns:
            raise ScdealError(f"{info_path.name} has no {column!r} column in header row 4 "
                              f"(found {list(info.columns)[:6]}); is it the GEO file?")
    wells = info["Well position"].astype(str).str.split("=").str[0].str.strip()
    info.index = info["Plate#"].astype(str).str.strip() + "_" + wells
    known = set(info.index)
    matrix = read_matrix(locate(folder, ds, "GSE110894.csv"), lambda labels: labels.isin(known))
    adata = to_anndata(matrix, ds.key)
    adata.obs = _categorical_obs(join_on_ids(adata.obs_names, info, info_path.name))
    adata.obs.index = adata.obs_names
    _set_labels(adata, rules.gse110894_labels(adata.obs["Sample name"]))
    adata.obs["empty_well"] = rules.gse110894_empty(adata.obs["Sample name"])
    return adata
