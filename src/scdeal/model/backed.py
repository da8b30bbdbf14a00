"""Large ``.h5ad`` files a block of cells at a time (``scdeal run --backed``): read some rows,
read ``obs`` alone, write an annotated copy, without ever loading the whole matrix."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ScdealError


def read_rows(path: str | Path, rows: np.ndarray | None, *, block: int = 50_000) -> AnnData:
    """The cells at positions ``rows`` (sorted; ``None``: all) of the ``.h5ad`` at ``path``,
    read ``block`` cells at a time: the whole matrix is never in memory at once."""
    backed = open_backed(path)
    try:
        n = backed.n_obs
        rows = np.arange(n) if rows is None else np.asarray(rows)
        parts = []
        for start in range(0, n, block):
            stop = min(start + block, n)
            inside = rows[(rows >= start) & (rows < stop)] - start
            if len(inside):
                X = backed.X[start:stop]
                parts.append(X[inside])
        X = sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)
        return AnnData(X, obs=backed.obs.iloc[rows].copy(), var=backed.var.copy())
    finally:
        backed.file.close()


def file_obs(path: str | Path) -> pd.DataFrame:
    """``obs`` of the ``.h5ad`` at ``path`` (reads no matrix)."""
    backed = open_backed(path)
    try:
        return backed.obs.copy()
    finally:
        backed.file.close()


def annotate_copy(source: str | Path, dest: str | Path, *, obs: pd.DataFrame,
                  obsm: dict[str, np.ndarray], uns: dict) -> None:
    """Copy the ``.h5ad`` ``source`` to ``dest`` with ``obs`` replaced and ``obsm``/``uns``
    keys added, without reading its matrix (the annotated file of a backed run)."""
    import shutil

    import h5py
    from anndata.io import write_elem

    shutil.copyfile(source, dest)
    with h5py.File(dest, "a") as handle:
        del handle["obs"]
        write_elem(handle, "obs", obs)
        for group, values in (("obsm", obsm), ("uns", uns)):
            if group not in handle:
                write_elem(handle, group, {})
            for key, value in values.items():
                if key in handle[group]:
                    del handle[group][key]
                write_elem(handle[group], key, value)


def open_backed(path: str | Path) -> AnnData:
    """The ``.h5ad`` at ``path`` opened backed (read-only); one error line otherwise."""
    path = Path(path)
    if path.suffix.lower() != ".h5ad" or not path.is_file():
        raise ScdealError(f"{path} is not an .h5ad file; reading in blocks (--backed) needs "
                          ".h5ad (convert other formats with anndata first)")
    try:
        return anndata.read_h5ad(path, backed="r")
    except OSError as exc:
        raise ScdealError(f"{path} is not a readable .h5ad file ({exc})") from exc
