"""A content-addressed cache of the drug-independent training stages.

The bulk extractor M_b is pre-trained without drug labels on every GDSC line, and the cell
extractor M_s and the cells' Leiden clusters depend only on the target and on M_b. Each is
stored once per key, a SHA-256 over everything that determines it (the data, the
configuration fields that enter that stage, the seed, the scdeal and torch versions), and
reused by later fits on any drug.

Entries live in ``<cache>/models/<stage>/<key>/`` (``<cache>`` is ``SCDEAL_CACHE_DIR`` or the
platform's user cache): ``tensors.safetensors`` and ``meta.json``, which records the tensors'
SHA-256. They are written into a temporary folder and renamed into place, so a reader never
sees half an entry and, when two processes fill the same entry at once, the first rename wins
and the other copy is dropped (both are identical). An entry whose content is damaged (its
checksum, format or key does not match) is removed and rebuilt, never used; one that cannot
be read for a passing reason (an I/O error) is left in place and the stage is trained anew.

The entries together are kept under a size limit (:data:`DEFAULT_MAX_BYTES`, 2 GB; the
``SCDEAL_CACHE_MAX_SIZE`` environment variable, e.g. ``500MB`` or ``0`` for none, or
``ModelCache(max_bytes=...)``): after each new entry, the least recently used ones are
removed until the rest fit. Reading an entry marks it used.

Examples
--------
>>> import tempfile, torch
>>> store = ModelCache(tempfile.mkdtemp())
>>> key = cache_key({"stage": "demo", "seed": 0})
>>> store.get("demo", key) is None
True
>>> store.put("demo", key, {"w": torch.ones(2)}, {"epochs": 3})
>>> tensors, meta = store.get("demo", key)
>>> tensors["w"].tolist(), meta["epochs"], store.info()["entries"]
([1.0, 1.0], 3, 1)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..data.sources import sha256_of

log = logging.getLogger(__name__)

#: Bumped whenever what an entry holds changes (how it is trained enters its key:
#: :mod:`scdeal.model.cache_keys`).
CACHE_FORMAT = 1
_TENSORS = "tensors.safetensors"
_META = "meta.json"
#: The size limit of the stored entries when neither ``SCDEAL_CACHE_MAX_SIZE`` nor
#: ``max_bytes`` says otherwise.
DEFAULT_MAX_BYTES = 2_000_000_000
MAX_SIZE_ENV = "SCDEAL_CACHE_MAX_SIZE"
_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9,
          "T": 1e12, "TB": 1e12}


def parse_size(text: str | int | float) -> int:
    """Bytes of a size written as ``2GB``, ``500 MB``, ``1.5G`` or ``1000000`` (``0``: no limit).

    Examples
    --------
    >>> parse_size("2GB"), parse_size("500 mb"), parse_size(0)
    (2000000000, 500000000, 0)
    """
    from ..errors import ScdealError

    if isinstance(text, int | float) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        found = re.fullmatch(r"([0-9]*\.?[0-9]+(?:E[+-]?[0-9]+)?)([KMGT]?B?)",
                             str(text).strip().upper().replace(" ", ""))
        value, unit = (float(found[1]), found[2]) if found else (float("nan"), "")
    if unit not in _UNITS or not np.isfinite(value) or value < 0:
        raise ScdealError(f"cache size {text!r} is not a size; write it as e.g. 2GB, 500MB or "
                          f"0 (no limit), in {MAX_SIZE_ENV} or --max-size")
    return int(value * _UNITS[unit])


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``parts`` written as canonical JSON (sorted keys)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(*items: Any) -> str:
    """SHA-256 (hex) of arrays, sparse matrices and name lists, for cache keys over data.

    Arrays count with their dtype and shape, a sparse matrix by the arrays that define it in
    CSR form and its shape; anything else by its JSON (lists of names).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> dense = np.eye(3, dtype=np.float32)
    >>> fingerprint(sp.csr_matrix(dense)) == fingerprint(sp.csc_matrix(dense))
    True
    >>> fingerprint(dense, ["a"]) == fingerprint(dense, ["b"])
    False
    """
    import scipy.sparse as sp

    digest = hashlib.sha256()
    expanded = []
    for item in items:
        if sp.issparse(item):
            csr = sp.csr_matrix(item)
            expanded += [csr.data, csr.indices, csr.indptr, np.asarray(csr.shape)]
        else:
            expanded.append(item)
    for item in expanded:
        if isinstance(item, np.ndarray):
            array = np.ascontiguousarray(item)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
        else:
            digest.update(json.dumps(item, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # a read-only cache: its order of use is not kept
        pass


class ModelCache:
    """Trained stages stored on disk by key (see the module docstring).

    Parameters
    ----------
    root
        The cache folder; entries go to ``root/models``. ``None``: the scdeal cache
        (``SCDEAL_CACHE_DIR``, else the platform's user cache).
    max_bytes
        Size limit of the entries (bytes, or a size such as ``"2GB"``; 0: none). ``None``:
        ``SCDEAL_CACHE_MAX_SIZE``, else :data:`DEFAULT_MAX_BYTES`.

    Examples
    --------
    >>> import tempfile
    >>> store = ModelCache(tempfile.mkdtemp(), max_bytes="2GB")
    >>> store.max_bytes, store.info()["entries"]
    (2000000000, 0)
    """

    def __init__(self, root: str | os.PathLike | None = None,
                 max_bytes: int | str | None = None):
        if root is None:
            from ..data.sources import cache_dir

            root = cache_dir()
        self.root = Path(root).expanduser() / "models"
        if max_bytes is None:
            max_bytes = os.environ.get(MAX_SIZE_ENV) or DEFAULT_MAX_BYTES
        self.max_bytes = parse_size(max_bytes)

    def __repr__(self) -> str:
        return f"ModelCache({str(self.root.parent)!r})"

    def _entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str) -> tuple[dict, dict] | None:
        """``(tensors, meta)`` of a verified entry, or ``None`` when it is absent or corrupt
        (a corrupt entry is removed so that the caller rebuilds it)."""
        from safetensors.torch import load_file

        entry = self._entry(stage, key)
        if not entry.is_dir():
            return None
        try:
            meta_text = (entry / _META).read_text()
            actual = sha256_of(entry / _TENSORS)
        except FileNotFoundError:  # removed meanwhile (evicted, cleared) or incomplete
            return None
        except OSError as err:  # a passing I/O problem: keep the entry, train this time
            log.warning("scdeal cache: could not read entry %s/%s (%s); training the stage "
                        "instead", stage, key[:12], err)
            return None
        try:
            meta = json.loads(meta_text)
            if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
                raise ValueError("format or key mismatch")
            if actual != meta["sha256"]:
                raise ValueError("checksum mismatch")
            tensors = load_file(entry / _TENSORS)
        except Exception as err:  # noqa: BLE001 - damaged content: never used, rebuilt
            log.warning("scdeal cache: entry %s/%s is unreadable (%s); rebuilding it", stage,
                        key[:12], err)
            self._remove(entry)
            return None
        _touch(entry / _META)  # used now (for the size limit's least-recently-used order)
        return tensors, meta

    def put(self, stage: str, key: str, tensors: dict, meta: dict[str, Any]) -> None:
        """Store an entry atomically; if another process stored the same key first, keep
        theirs. Failing to write (read-only or full disk) logs a warning and is not fatal."""
        from safetensors.torch import save_file

        entry = self._entry(stage, key)
        tmp = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=entry.parent))
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                      tmp / _TENSORS)
            record = {**meta, "format": CACHE_FORMAT, "key": key, "stage": stage,
                      "sha256": sha256_of(tmp / _TENSORS)}
            (tmp / _META).write_text(json.dumps(record, indent=1, default=str))
            try:
                os.rename(tmp, entry)  # atomic; fails when the entry exists (another writer)
                tmp = None
            except OSError:
                if not entry.is_dir():
                    raise
        except OSError as err:
            log.warning("scdeal cache: could not store %s/%s (%s); continuing without it",
                        stage, key[:12], err)
            return
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self.evict(keep=entry)

    def evict(self, keep: Path | None = None) -> int:
        """Remove the least recently used entries until the rest fit in ``max_bytes`` (never
        ``keep``, the entry just stored); return how many were removed."""
        if not self.max_bytes:
            return 0
        rows = self._entries_by_use()
        total = sum(size for _, size, _ in rows)
        removed = 0
        for entry, size, _ in rows:
            if total <= self.max_bytes:
                break
            if keep is not None and entry == keep:
                continue
            if self._remove(entry):
                total -= size
                removed += 1
        if removed:
            log.info("scdeal cache: removed %d least recently used entr%s to stay under %.0f MB",
                     removed, "y" if removed == 1 else "ies", self.max_bytes / 1e6)
        return removed

    def _entries_by_use(self) -> list[tuple[Path, int, float]]:
        """(folder, bytes, last use) of every entry, least recently used first."""
        rows = []
        if not self.root.is_dir():
            return rows
        for stage_dir in (p for p in self.root.iterdir() if p.is_dir()):
            for entry in (p for p in stage_dir.iterdir()
                          if p.is_dir() and not p.name.startswith(".")):
                try:
                    files = [f.stat() for f in entry.iterdir() if f.is_file()]
                    used = (entry / _META).stat().st_mtime
                except OSError:  # removed meanwhile
                    continue
                rows.append((entry, sum(f.st_size for f in files), used))
        return sorted(rows, key=lambda row: row[2])

    def _remove(self, entry: Path) -> bool:
        # Rename first so that a concurrent reader never sees a half-deleted entry.
        trash = entry.with_name(f".{entry.name}.{os.getpid()}.trash")
        try:
            os.rename(entry, trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def entries(self) -> list[dict[str, Any]]:
        """One dict per stored entry: stage, key, size in bytes, and what its meta records."""
        rows = []
        if not self.root.is_dir():
            return rows
        for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for entry in sorted(p for p in stage_dir.iterdir()
                                if p.is_dir() and not p.name.startswith(".")):
                size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
                try:
                    meta = json.loads((entry / _META).read_text())
                except (OSError, ValueError):
                    meta = {}
                rows.append({"stage": stage_dir.name, "key": entry.name, "bytes": size,
                             "created": meta.get("created"),
                             "scdeal_version": meta.get("scdeal_version")})
        return rows

    def info(self) -> dict[str, Any]:
        """Folder, number of entries, total bytes, the size limit (``max_bytes``, 0: none)
        and entries per stage."""
        rows = self.entries()
        stages: dict[str, int] = {}
        for row in rows:
            stages[row["stage"]] = stages.get(row["stage"], 0) + 1
        return {"folder": str(self.root), "entries": len(rows),
                "bytes": sum(r["bytes"] for r in rows), "max_bytes": self.max_bytes,
                "stages": stages}

    def clear(self) -> int:
        """Remove every entry; return how many there were."""
        n = len(self.entries())
        if self.root.is_dir():
            trash = self.root.with_name(f".models.{os.getpid()}.trash")
            os.rename(self.root, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return n


class MemoryCache:
    """A :class:`ModelCache` held in memory, optionally in front of one on disk.

    What a drug screen ships to its workers: the entries the screen's one drug-independent
    pre-training produced or read (:attr:`entries`), so that every drug's fit, on any machine,
    reuses them without a shared disk. ``get`` answers from memory, then from ``backing``
    (keeping what it found); ``put`` keeps the entry and stores it in ``backing`` too.

    Examples
    --------
    >>> import torch
    >>> front = MemoryCache()
    >>> front.put("demo", "k", {"w": torch.zeros(1)}, {"epochs": 1})
    >>> worker = MemoryCache(front.entries)
    >>> worker.get("demo", "k")[1]["epochs"], worker.get("demo", "other") is None
    (1, True)
    """

    def __init__(self, entries: dict | None = None, backing: ModelCache | None = None):
        self.entries: dict[tuple[str, str], tuple[dict, dict]] = dict(entries or {})
        self.backing = backing

    def __repr__(self) -> str:
        return f"MemoryCache({len(self.entries)} entries, backing={self.backing!r})"

    def get(self, stage: str, key: str) -> tuple[dict, dict] | None:
        """``(tensors, meta)`` for the key, from memory or the backing cache, or ``None``."""
        found = self.entries.get((stage, key))
        if found is None and self.backing is not None:
            found = self.backing.get(stage, key)
            if found is not None:
                self.entries[(stage, key)] = found
        return found

    def put(self, stage: str, key: str, tensors: dict, meta: dict[str, Any]) -> None:
        """Keep the entry (tensors on the CPU) and store it in the backing cache."""
        tensors = {k: v.detach().cpu() for k, v in tensors.items()}
        self.entries[(stage, key)] = (tensors, dict(meta))
        if self.backing is not None:
            self.backing.put(stage, key, tensors, meta)
