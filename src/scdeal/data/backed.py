"""Large ``.h5ad`` files a block of cells at a time (``scdeal run --backed``): read some rows,
read ``obs`` alone, write an annotated copy, without ever loading the whole matrix; and the
rule that reads a file this way without being asked (:func:`reads_backed`): when its matrix
would take more than :data:`BACKED_MEMORY_SHARE` of the machine's memory."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._system import total_memory
from ..errors import ScdealError

#: An ``.h5ad`` whose matrix would take more than this share of the memory is read a block of
#: cells at a time. A run that holds the matrix peaks at about 2.3 times its size (a
#: 300,000-cell file of 1.9 GB: 4.4 GB; benchmarks/README.md, "Atlas-sized targets"), one
#: read in blocks near 2.3 GB whatever the file's size; below this share holding it is the
#: simpler path and costs little.
BACKED_MEMORY_SHARE = 0.05


def matrix_bytes(path: str | Path) -> int | None:
    """Bytes the matrix ``X`` of the ``.h5ad`` at ``path`` takes once read (values and, when
    sparse, indices), from the file's metadata alone; ``None`` for other files or an ``X``
    the estimate does not know.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "cells.h5ad")
    >>> AnnData(sp.random(100, 50, density=0.1, format="csr", dtype=np.float32)).write_h5ad(path)
    >>> matrix_bytes(path)  # 500 values of 4 bytes, 500 column indices, 101 row offsets
    4404
    """
    import h5py

    path = Path(path)
    if path.suffix.lower() != ".h5ad" or not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            X = handle.get("X")
            if isinstance(X, h5py.Dataset):
                return int(X.size * X.dtype.itemsize)
            if isinstance(X, h5py.Group) and {"data", "indices", "indptr"} <= set(X):
                return int(sum(X[k].size * X[k].dtype.itemsize
                               for k in ("data", "indices", "indptr")))
    except OSError:  # not readable as HDF5: the reader says so
        return None
    return None


def reads_backed(path: str | Path, share: float = BACKED_MEMORY_SHARE) -> str | None:
    """Why the ``.h5ad`` at ``path`` should be read a block of cells at a time (one line), or
    ``None`` when it fits: its matrix takes more than ``share`` of :func:`total_memory`."""
    size = matrix_bytes(path)
    memory = total_memory()
    if size is None or size <= share * memory:
        return None
    return (f"the matrix of {Path(path).name} takes {size / 1e9:.1f} GB once read, more than "
            f"{share:.0%} of this machine's {memory / 1e9:.0f} GB: reading it a block of cells "
            "at a time")


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
