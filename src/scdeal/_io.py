"""Output helpers: atomic writes and values made storable as JSON or in an ``.h5ad``'s ``uns``.

Atomic: write to a temporary path next to the target, then rename. A failure in the middle of
writing never leaves a truncated file or half-filled folder behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path in the target's folder; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; move it onto ``target`` on success.

    An existing ``target`` is replaced only after the new content is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} exists")
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def jsonable(value):
    """Plain JSON types (AnnData's uns and json.dumps both need them): numpy scalars and arrays
    as Python values, paths as strings, non-finite floats as ``None``.

    Examples
    --------
    >>> jsonable({"n": np.int64(3), "auc": float("nan"), "dims": (2, np.float32(0.5))})
    {'n': 3, 'auc': None, 'dims': [2, 0.5]}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def uns_safe(value):
    """A copy h5ad can store: keys with None dropped, None inside lists written as NaN, lists
    of lists or dicts (ragged) as a JSON string.

    Examples
    --------
    >>> uns_safe({"a": None, "b": [1.0, None], "c": [{"x": 1}]})
    {'b': [1.0, nan], 'c': '[{"x": 1}]'}
    """
    if isinstance(value, dict):
        return {k: uns_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if any(isinstance(v, dict | list) for v in value):  # h5ad stores no ragged lists
            return json.dumps(value)
        return [np.nan if v is None else v for v in value]
    return value


def summary_uns(info: dict, *, leave_out: tuple[str, ...] = ()) -> dict:
    """``uns['scdeal']`` of a prediction summary: :func:`uns_safe` of ``info`` (without the
    keys in ``leave_out``) with the whole summary as JSON in ``summary_json``.

    Examples
    --------
    >>> summary_uns({"drug": "X", "metrics": None})
    {'drug': 'X', 'summary_json': '{"drug": "X", "metrics": null}'}
    """
    uns = uns_safe({k: v for k, v in info.items() if k not in leave_out})
    uns["summary_json"] = json.dumps(info)
    return uns
