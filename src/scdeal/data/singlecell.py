"""Single-cell targets: reading ``.h5ad``, 10x and text-table files into AnnData.

Labels are in :mod:`scdeal.data.labels`, what ``X`` holds in :mod:`scdeal.data.values`, which
axis holds the cells in :mod:`scdeal.data.orientation`.

Unlike the original scDEAL reader (method notes section 2.1), nothing is guessed silently:
the separator of a text table comes from its extension or ``sep``, the orientation is given by
the caller (a table that looks transposed is refused with a hint), and every problem a user can
fix is a one-line :class:`~scdeal.errors.ScdealError`.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ScdealError, first_line, preview
from .orientation import Orientation, refuse_transposed
from .textblocks import maybe_sparse, opener_for, read_numeric_blocks

log = logging.getLogger(__name__)

TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": None}
# Text tables are parsed this many rows at a time; when half or more of the first rows' values
# are zeros (droplet UMI counts), each block is stored sparse at once, so a large table never
# exists as one dense matrix.
TEXT_CHUNK_ROWS = 2000
SPARSE_ZEROS = 0.5


# ----------------------------------------------------------------------------------------
# reading


def read_target(
    path: str | Path,
    *,
    sep: str | None = None,
    orientation: Orientation = "cells_by_genes",
    label_key: str | None = None,
    obs_columns: Sequence[str] = (),
    index_col: int = 0,
) -> AnnData:
    """Read a single-cell expression file into an AnnData with cells as rows.

    Parameters
    ----------
    path
        ``.h5ad``; a 10x ``.h5``; a 10x folder (``matrix.mtx[.gz]``, ``features.tsv[.gz]`` or
        ``genes.tsv[.gz]``, ``barcodes.tsv[.gz]``, optionally with a common file-name prefix,
        or the path of its matrix file); or a delimited text table ``.csv``, ``.tsv``,
        ``.txt`` (each optionally ``.gz``).
    sep
        Column separator of a text table. Default: ``,`` for ``.csv``, tab for ``.tsv``; for
        ``.txt``, tab or comma as the header line shows (a header with both, or neither, needs
        ``sep``).
    orientation
        Which axis of a text table holds the cells. Never guessed: a ``cells_by_genes`` table
        whose row names look like genes and column names like cells is refused.
    label_key
        Column holding true labels: read into ``obs`` from a cells-by-genes text table;
        checked to exist in ``obs`` of an ``.h5ad`` file.
    obs_columns
        Other non-expression columns of a text table to keep in ``obs``.
    index_col
        Position of the column with the row names (cell ids, or gene ids for genes-by-cells).

    Returns
    -------
    AnnData
        ``X`` is float32 (dense ndarray or CSR), obs/var names are unique strings (duplicated
        gene names are made unique with ``-1``, ``-2`` suffixes and a warning).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cells.csv"
    >>> _ = path.write_text("cell,TP53,EGFR,response\\nc1,0,3,1\\nc2,1,0,0\\n")
    >>> adata = read_target(path, label_key="response")
    >>> adata.shape, list(adata.var_names), adata.obs["response"].tolist()
    ((2, 2), ['TP53', 'EGFR'], [1, 0])

    A genes-by-cells text file with a tab separator, e.g. GEO's GSE117872 (not run here):

    >>> adata = read_target("GSE117872_TPM.txt", orientation="genes_by_cells")  # doctest: +SKIP
    """
    path = Path(path)
    if orientation not in ("cells_by_genes", "genes_by_cells"):
        raise ScdealError(f"orientation must be 'cells_by_genes' or 'genes_by_cells', "
                          f"got {orientation!r}")
    if not path.exists():
        raise ScdealError(f"{path}: no such file or folder; check the path")
    if path.is_file() and re.search(r"matrix\.mtx(\.gz)?$", path.name):
        path = path.parent  # the matrix of a 10x folder stands for the folder
    obs_columns = list(obs_columns)
    if path.is_dir():
        _no_table_columns(path, label_key, obs_columns, "a 10x folder")
        adata = _read_10x_folder(path)
    else:
        if path.stat().st_size == 0:
            raise ScdealError(f"{path} is empty; give a file with expression values")
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as err:
            raise ScdealError(f"{path} cannot be read ({first_line(err)}); check its "
                              "permissions") from err
        name = path.name.lower()
        ext = Path(name[:-3] if name.endswith(".gz") else name).suffix
        if ext == ".h5ad":
            adata = _read_h5ad(path)
            _check_obs_columns(adata, path, label_key, obs_columns)
        elif ext == ".h5":
            adata, is_h5ad = _read_h5(path)
            if is_h5ad:
                _check_obs_columns(adata, path, label_key, obs_columns)
            else:
                _no_table_columns(path, label_key, obs_columns, "a 10x .h5 file")
        elif ext in TEXT_SEPARATORS:
            adata = _read_text(path, ext, sep, orientation, label_key, obs_columns, index_col)
        else:
            raise ScdealError(f"{path}: unknown file type {ext or '(none)'!r}; use .h5ad, 10x "
                              ".h5, a 10x folder, or a .csv/.tsv/.txt table (optionally .gz)")
    return _finish(adata, path)


def _no_table_columns(path: Path, label_key, obs_columns, what: str) -> None:
    if label_key is not None or obs_columns:
        raise ScdealError(f"{path} is {what}, which holds no per-cell annotations; drop "
                          "label_key/obs_columns or give an .h5ad file with the labels in obs")


def _check_obs_columns(adata: AnnData, path: Path, label_key, obs_columns) -> None:
    wanted = ([label_key] if label_key is not None else []) + list(obs_columns)
    missing = [c for c in wanted if c not in adata.obs.columns]
    if missing:
        raise ScdealError(f"{path}: obs has no column {', '.join(map(repr, missing))}; its "
                          f"columns are {preview(adata.obs.columns)}")


def _read_h5ad(path: Path) -> AnnData:
    if not h5py.is_hdf5(path):
        raise ScdealError(f"{path} is not an HDF5 file, so not a valid .h5ad; check the file "
                          "(an incomplete download?)")
    try:
        adata = anndata.read_h5ad(path)
    except Exception as err:  # anndata raises many types; the user needs one line
        raise ScdealError(f"could not read {path} as .h5ad ({type(err).__name__}: "
                          f"{first_line(err)}); check the file") from err
    if adata.X is None:
        raise ScdealError(f"{path} has no X matrix; store the expression values in X")
    return adata


def _read_h5(path: Path) -> tuple[AnnData, bool]:
    """A 10x .h5 matrix, or an .h5ad saved under a .h5 name (then True)."""
    if not h5py.is_hdf5(path):
        raise ScdealError(f"{path} is not an HDF5 file, so not a 10x .h5 matrix; check the "
                          "file (an incomplete download?)")
    with h5py.File(path, "r") as f:
        looks_h5ad = "X" in f and "obs" in f and "matrix" not in f
    if looks_h5ad:
        return _read_h5ad(path), True
    import scanpy as sc

    try:
        return sc.read_10x_h5(path), False
    except Exception as err:
        raise ScdealError(f"could not read {path} as a 10x .h5 matrix ({type(err).__name__}: "
                          f"{first_line(err)}); check the file") from err


def _read_10x_folder(path: Path) -> AnnData:
    matrices = sorted(p for p in path.iterdir() if re.search(r"matrix\.mtx(\.gz)?$", p.name))
    if len(matrices) != 1:
        found = "no" if not matrices else f"{len(matrices)}"
        raise ScdealError(f"{path} is a folder with {found} matrix.mtx[.gz] files; a 10x "
                          "folder holds one matrix.mtx[.gz] with features.tsv[.gz] (or "
                          "genes.tsv[.gz]) and barcodes.tsv[.gz]")
    matrix = matrices[0]
    prefix = matrix.name[: matrix.name.index("matrix.mtx")]

    def find(*stems: str) -> Path:
        for stem in stems:
            for suffix in (".tsv.gz", ".tsv"):
                if (path / f"{prefix}{stem}{suffix}").is_file():
                    return path / f"{prefix}{stem}{suffix}"
        raise ScdealError(f"{path}: 10x folder without {prefix}{stems[0]}.tsv[.gz]; it needs "
                          "matrix.mtx[.gz], features.tsv[.gz] (or genes.tsv[.gz]) and "
                          "barcodes.tsv[.gz]")

    features, barcodes = find("features", "genes"), find("barcodes")
    gz = matrix.name.endswith(".gz")
    # scanpy reads exactly two layouts: Cell Ranger v3 (all gzipped, features.tsv.gz) and v2
    # (nothing gzipped, genes.tsv); others (e.g. STARsolo, GEO downloads) are read directly.
    v3 = gz and features.name.endswith("features.tsv.gz") and barcodes.name.endswith(".gz")
    v2 = not gz and features.name.endswith("genes.tsv") and barcodes.name.endswith(".tsv")
    try:
        if v3 or v2:
            import scanpy as sc

            return sc.read_10x_mtx(path, prefix=prefix or None)
        return _read_mtx_directly(matrix, features, barcodes)
    except ScdealError:
        raise
    except Exception as err:
        raise ScdealError(f"could not read the 10x folder {path} ({type(err).__name__}: "
                          f"{first_line(err)}); check its files") from err


def _read_mtx_directly(matrix: Path, features: Path, barcodes: Path) -> AnnData:
    from scipy.io import mmread

    X = sp.csr_matrix(mmread(matrix).T, dtype=np.float32)
    genes = pd.read_csv(features, sep="\t", header=None, dtype=str)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str)
    if X.shape != (len(cells), len(genes)):
        raise ScdealError(f"{matrix} is {X.shape[1]} x {X.shape[0]} (genes x cells) but there "
                          f"are {len(genes)} features and {len(cells)} barcodes; the files do "
                          "not belong together")
    var = pd.DataFrame({"gene_ids": genes[0].to_numpy()})
    var.index = genes[1 if genes.shape[1] > 1 else 0].to_numpy()
    if genes.shape[1] > 2:
        var["feature_types"] = genes[2].to_numpy()
    adata = AnnData(X, obs=pd.DataFrame(index=cells[0].to_numpy()), var=var)
    if "feature_types" in var and (var["feature_types"] == "Gene Expression").any():
        adata = adata[:, (var["feature_types"] == "Gene Expression").to_numpy()].copy()
    return adata


def _read_text(path: Path, ext: str, sep: str | None, orientation: Orientation,
               label_key: str | None, obs_columns: list[str], index_col: int) -> AnnData:
    if sep is None:
        sep = TEXT_SEPARATORS[ext] or _separator_from_header(path)
    if orientation == "genes_by_cells" and (label_key is not None or obs_columns):
        raise ScdealError(f"{path}: label_key/obs_columns name columns, but in a genes-by-cells "
                          "table columns are cells; add labels to obs after reading instead")
    raw_header = _raw_header(path, sep)
    try:
        # Column names and the index only: no dtype (str per column costs seconds on a
        # table 8,600 columns wide).
        probe = pd.read_csv(path, sep=sep, nrows=5, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ScdealError(f"could not read {path} as a {sep!r}-separated table "
                          f"({first_line(err)}); check sep and the file") from err
    columns = list(probe.columns)
    if isinstance(probe.index, pd.RangeIndex):  # header names every column, the index too
        if not 0 <= index_col < len(columns):
            raise ScdealError(f"{path}: index_col={index_col} but the table has "
                              f"{len(columns)} columns")
        index_name = columns.pop(index_col)
        if len(raw_header) == len(columns) + 1:
            raw_header.pop(index_col)
    elif index_col == 0:  # header one field short (R's write.table): first field is the index
        index_name = None
    else:
        raise ScdealError(f"{path}: the header has one field fewer than the rows, so the row "
                          f"names are in the first column; index_col={index_col} cannot apply")
    if not columns:
        raise ScdealError(f"{path} has no columns besides the row names when split on "
                          f"{sep!r}; check the separator (sep=...)")
    raw_names = raw_header if len(raw_header) == len(columns) else columns
    annotation = ([label_key] if label_key is not None else []) + obs_columns
    missing = [c for c in annotation if c not in columns]
    if missing:
        raise ScdealError(f"{path} has no column {', '.join(map(repr, missing))}; its columns "
                          f"start {preview(columns)}")
    data_cols = [c for c in columns if c not in annotation]
    if not data_cols:
        raise ScdealError(f"{path} has no expression columns; every column is an annotation")
    dtype = defaultdict(lambda: str, dict.fromkeys(data_cols, np.float32))
    kwargs = {"sep": sep, "engine": "c", "dtype": dtype, "low_memory": False,
              "index_col": None if index_name is not None else 0, "chunksize": TEXT_CHUNK_ROWS}
    blocks, annotations = [], []
    try:
        if not annotation and index_col == 0:
            X, rows = read_numeric_blocks(path, sep, len(data_cols), chunk_rows=TEXT_CHUNK_ROWS,
                                          sparse_zeros=SPARSE_ZEROS)
            blocks = [X]
            table = pd.DataFrame(index=pd.Index(rows, dtype=str))
            annotations = [table]
        else:
            blocks, annotations = _read_blocks_with_pandas(path, kwargs, index_name,
                                                           data_cols, annotation)
    except ValueError as err:
        if "could not convert" not in str(err):
            raise ScdealError(f"could not read {path} ({first_line(err)}); check the "
                              "file") from err
        _raise_non_numeric(path, sep, data_cols, orientation)
    if not blocks:
        raise ScdealError(f"{path} holds no rows below its header; check the file")
    sparse = sp.issparse(blocks[0])
    X = sp.vstack(blocks, format="csr") if sparse else np.concatenate(blocks)
    del blocks
    table = pd.concat(annotations)
    raw_data_names = [n for n, c in zip(raw_names, columns, strict=True) if c not in annotation]
    rows = table.index.astype(str)
    if orientation == "cells_by_genes":
        refuse_transposed(path, rows, raw_data_names, orientation)
        _warn_label_like(path, X, raw_data_names)
        obs = pd.DataFrame(index=rows)
        for column in annotation:
            obs[column] = _maybe_numeric(table[column]).to_numpy()
        var = pd.DataFrame(index=pd.Index(raw_data_names, dtype=str))
    else:
        refuse_transposed(path, raw_data_names, rows, orientation)
        X = X.T.tocsr() if sp.issparse(X) else np.ascontiguousarray(X.T)
        obs = pd.DataFrame(index=pd.Index(raw_data_names, dtype=str))
        var = pd.DataFrame(index=rows)
    obs.index.name = var.index.name = None
    return AnnData(X, obs=obs, var=var)


def _read_blocks_with_pandas(path, kwargs, index_name, data_cols, annotation) -> tuple:
    """Value blocks and annotation frames (with the row names) of a table, pandas chunks."""
    blocks, annotations = [], []
    with pd.read_csv(path, **kwargs) as reader:
        for chunk in reader:
            if index_name is not None:
                chunk = chunk.set_index(index_name)
            blocks.append(maybe_sparse(chunk[data_cols].to_numpy(dtype=np.float32), blocks,
                                       SPARSE_ZEROS))
            annotations.append(chunk[annotation])  # with the chunk's row names
    return blocks, annotations


_LABEL_LIKE = {"response", "label", "labels", "sensitive", "sensitivity", "resistant", "class",
               "condition", "status", "group"}


def _warn_label_like(path: Path, X: np.ndarray, names: Sequence[str]) -> None:
    """A 0/1 column named like a label would silently become a gene; say so."""
    for j, name in enumerate(names):
        if name.strip().lower() not in _LABEL_LIKE:
            continue
        column = X[:, j].toarray().ravel() if sp.issparse(X) else X[:, j]
        if np.isin(column, (0, 1)).all():
            log.warning("%s: column %r holds only 0/1 and is read as a gene; pass "
                        "label_key=%r (--label-key) if it holds labels", path, name, name)


def _separator_from_header(path: Path) -> str:
    """Tab or comma, whichever the header line of a ``.txt`` table holds; both or neither is
    ambiguous and refused (give ``sep``)."""
    line = "\t".join(_raw_header(path, "\t"))  # the first line, whole
    tabs, commas = line.count("\t"), line.count(",")
    if tabs and not commas:
        return "\t"
    if commas and not tabs:
        return ","
    found = "both tabs and commas" if tabs else "neither tabs nor commas"
    raise ScdealError(f"{path}: the header line holds {found}, so the column separator of this "
                      ".txt table is unclear; pass sep='\\t' or sep=',' (--sep on the CLI)")


def _raw_header(path: Path, sep: str) -> list[str]:
    """First line split as written, so duplicated names are seen before pandas renames them."""
    opener = opener_for(path)
    try:
        with opener(path, "rb") as handle:
            head = handle.read(1 << 16)
            if not head.strip():
                raise ScdealError(f"{path} is empty; give a file with expression values")
            if b"\x00" in head:
                raise ScdealError(f"{path} looks binary, not a text table; check the file and "
                                  "its extension")
            handle.seek(0)
            line = handle.readline()
    except (OSError, EOFError) as err:
        hint = "a .gz name needs a gzip-compressed file" if opener is gzip.open else "check it"
        raise ScdealError(f"could not read {path} ({first_line(err)}); {hint}") from err
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if "\r" in text:
        raise ScdealError(f"{path}: its lines end with a lone carriage return (\\r, old Mac "
                          "style); convert the line ends to \\n first (e.g. tr '\\r' '\\n')")
    return next(csv.reader([text], delimiter=sep), [])


def _raise_non_numeric(path: Path, sep: str, data_cols: list[str], orientation) -> None:
    table = pd.read_csv(path, sep=sep, engine="c", usecols=data_cols, dtype=str)
    bad = [c for c in data_cols if pd.to_numeric(table[c], errors="coerce").isna().sum()
           > table[c].isna().sum()]
    if orientation == "genes_by_cells":
        hint = ("a genes-by-cells table holds the gene ids (index_col) and one numeric column "
                "per cell; remove other columns")
    else:
        hint = "pass them as obs_columns (or label_key) to keep them as cell annotations"
    raise ScdealError(f"{path}: column(s) {preview(bad)} are not numeric; {hint}")


def _maybe_numeric(values: pd.Series) -> pd.Series:
    converted = pd.to_numeric(values, errors="coerce")
    return converted if converted.isna().sum() == values.isna().sum() else values




def _finish(adata: AnnData, path: Path) -> AnnData:
    """Names as unique strings, X as finite float32; shared by every reader."""
    adata.obs_names = adata.obs_names.astype(str)
    adata.var_names = adata.var_names.astype(str)
    if adata.n_vars == 0:
        raise ScdealError(f"{path} holds no genes; check the file (and sep for a text table)")
    if adata.n_obs == 0:
        raise ScdealError(f"{path} holds no cells; check the file")
    duplicated = adata.obs_names[adata.obs_names.duplicated()]
    if len(duplicated):
        raise ScdealError(f"{path} has {len(duplicated)} duplicated cell ids (e.g. "
                          f"{preview(duplicated.unique())}); make cell ids unique")
    if adata.var_names.has_duplicates:
        n_dup = int(adata.var_names.duplicated().sum())
        log.warning("%s: %d duplicated gene names made unique with -1, -2 suffixes", path, n_dup)
        adata.var_names = anndata.utils.make_index_unique(adata.var_names)
    if sp.issparse(adata.X):
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
        values = adata.X.data
    else:
        adata.X = np.asarray(adata.X, dtype=np.float32)
        values = adata.X
    n_bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if n_bad:
        raise ScdealError(f"{path}: {n_bad} expression values are NaN or infinite; fill them "
                          "(e.g. missing -> 0) or drop the affected genes/cells first")
    return adata
