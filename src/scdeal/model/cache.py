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
and the other copy is dropped (both are identical). An entry whose checksum does not match is
removed and rebuilt, never used.

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
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Bumped whenever what an entry holds, or how it is trained, changes.
CACHE_FORMAT = 1
_TENSORS = "tensors.safetensors"
_META = "meta.json"


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``parts`` written as canonical JSON (sorted keys)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(*items: Any) -> str:
    """SHA-256 (hex) of arrays and name lists, for cache keys over data.

    Arrays count with their dtype and shape; anything else by its ``str`` (lists of names).
    """
    digest = hashlib.sha256()
    for item in items:
        if isinstance(item, np.ndarray):
            array = np.ascontiguousarray(item)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
        else:
            digest.update(json.dumps(item, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelCache:
    """Trained stages stored on disk by key (see the module docstring).

    Parameters
    ----------
    root
        The cache folder; entries go to ``root/models``. ``None``: the scdeal cache
        (``SCDEAL_CACHE_DIR``, else the platform's user cache).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        if root is None:
            from ..data.sources import cache_dir

            root = cache_dir()
        self.root = Path(root).expanduser() / "models"

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
            meta = json.loads((entry / _META).read_text())
            if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
                raise ValueError("format or key mismatch")
            if _sha256_file(entry / _TENSORS) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            tensors = load_file(entry / _TENSORS)
        except Exception as err:  # noqa: BLE001 - any unreadable entry is rebuilt
            log.warning("scdeal cache: entry %s/%s is unreadable (%s); rebuilding it", stage,
                        key[:12], err)
            self._remove(entry)
            return None
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
                      "sha256": _sha256_file(tmp / _TENSORS)}
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
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _remove(self, entry: Path) -> None:
        # Rename first so that a concurrent reader never sees a half-deleted entry.
        trash = entry.with_name(f".{entry.name}.{os.getpid()}.trash")
        try:
            os.rename(entry, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

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
        """Folder, number of entries, total bytes and entries per stage."""
        rows = self.entries()
        stages: dict[str, int] = {}
        for row in rows:
            stages[row["stage"]] = stages.get(row["stage"], 0) + 1
        return {"folder": str(self.root), "entries": len(rows),
                "bytes": sum(r["bytes"] for r in rows), "stages": stages}

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
