"""Getting a paper dataset's supplementary files: from a folder the user gives, or from GEO.

Downloads go through :func:`pooch.retrieve` into ``<cache>/geo/<ACCESSION>/`` (pooch writes a
temporary file and moves it into place only when the transfer completed). GEO publishes no
checksums, so nothing can be pinned before the first download; instead a gzip file is read
through to its end (its CRC and length catch a truncated or corrupt transfer) and decompressed
atomically before it is used, and the sha256 of every file is recorded in ``checksums.json``
and checked on every later use, so a file altered since is caught. A file that fails these
checks is deleted, never read.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import zlib
from pathlib import Path

from .._io import atomic_path, write_text_atomic
from ..errors import ScdealError
from .registry import GeoFile, PaperDataset, get_dataset

log = logging.getLogger(__name__)

CHECKSUM_FILE = "checksums.json"


def find_file(folder: Path, geo_file: GeoFile, accession: str) -> Path | None:
    """The first existing variant of ``geo_file`` in ``folder`` (plain, ``.gz``, prefixed)."""
    for name in geo_file.candidates(accession):
        path = folder / name
        if path.is_file():
            return path
    return None


def _missing_message(ds: PaperDataset, files: list[GeoFile], reason: str) -> str:
    wanted = ", ".join(f.name for f in files)
    optional = [f.name for f in ds.files if not f.required and f not in files]
    extra = f" (optional: {', '.join(optional)})" if optional else ""
    key_arg = ds.accession + (f" --subset {ds.subset}" if ds.subset else "")
    return (f"{reason}; put these files of {ds.accession} ({ds.geo_url}) in one folder: "
            f"{wanted}{extra} (plain or .gz) and run `scdeal data geo {key_arg} --from DIR "
            f"--out FILE.h5ad` (Python: fetch_dataset({ds.key!r}, from_dir=DIR))")


def _default_cache() -> Path:
    from ..data.sources import cache_dir

    return cache_dir()


def _sha256(path: Path) -> str:
    from ..data.sources import sha256_of

    return sha256_of(path)


def _read_checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUM_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ScdealError(f"{path} is not valid JSON ({exc}); delete it to record the "
                          "checksums again") from exc


def _download(ds: PaperDataset, geo_file: GeoFile, folder: Path) -> Path:
    """Try each GEO name variant of ``geo_file``; return the local (decompressed) path."""
    import pooch

    errors = []
    # GEO serves most series files gzip-compressed: try those names first.
    remotes = sorted(geo_file.candidates(ds.accession), key=lambda n: not n.endswith(".gz"))
    for remote in remotes:
        try:
            got = Path(pooch.retrieve(ds.suppl_url + remote, known_hash=None, fname=remote,
                                      path=folder, progressbar=False))
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next name
            errors.append(f"{remote}: {type(exc).__name__}")
            continue
        if got.name.endswith(".gz"):
            return gunzip_checked(got)
        return got
    raise OSError("; ".join(errors))


def gunzip_checked(path: Path) -> Path:
    """Decompress ``path`` (``x.gz``) to ``x`` beside it, atomically, and delete ``path``.

    The whole stream is read, so gzip's CRC-32 and length check every byte: a truncated or
    corrupt download raises (and is deleted) instead of being used.
    """
    target = path.with_name(path.name[:-3])
    try:
        with atomic_path(target) as tmp, gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, EOFError, zlib.error) as exc:
        path.unlink(missing_ok=True)
        raise OSError(f"{path.name} is truncated or corrupt ({type(exc).__name__}); it was "
                      "deleted, download it again") from exc
    path.unlink()
    return target


def fetch_dataset(key: str, *, from_dir: str | Path | None = None,
                  cache_dir: str | Path | None = None) -> Path:
    """Return a folder holding the supplementary files of paper dataset ``key``.

    Parameters
    ----------
    key
        Registry key, e.g. ``"GSE117872_HN120"`` (see :func:`list_datasets`).
    from_dir
        A folder where the user placed the files (names as in ``PaperDataset.files``, plain or
        gzip-compressed, with or without the ``GSExxxxx_`` prefix). Nothing is downloaded.
    cache_dir
        Where downloads go (default: the scdeal cache, ``SCDEAL_CACHE_DIR``); files land in
        ``<cache_dir>/geo/<ACCESSION>/`` with their sha256 in ``checksums.json``.

    Raises
    ------
    ScdealError
        When a file is missing from ``from_dir``, cannot be downloaded (the message lists the
        exact files to place in a folder for ``--from DIR``), or no longer matches its
        recorded checksum.

    Examples
    --------
    Not run here: it needs GEO's files (a download, or a folder of them).

    >>> from scdeal.datasets import fetch_dataset
    >>> folder = fetch_dataset("GSE112274", from_dir="downloads/GSE112274")  # doctest: +SKIP
    """
    ds = get_dataset(key)
    if from_dir is not None:
        folder = Path(from_dir).expanduser()
        if not folder.is_dir():
            raise ScdealError(_missing_message(ds, [f for f in ds.files if f.required],
                                               f"--from folder {folder} does not exist"))
        missing = [f for f in ds.files if f.required and find_file(folder, f, ds.accession)
                   is None]
        if missing:
            raise ScdealError(_missing_message(
                ds, missing, f"{folder} lacks {len(missing)} file(s) of {ds.key}"))
        return folder

    folder = Path(cache_dir).expanduser() if cache_dir else _default_cache()
    folder = folder / "geo" / ds.accession
    folder.mkdir(parents=True, exist_ok=True)
    recorded = _read_checksums(folder)
    failed: list[GeoFile] = []
    reasons: list[str] = []
    for geo_file in ds.files:
        local = find_file(folder, geo_file, ds.accession)
        if local is not None and local.name.endswith(".gz") and local.name not in recorded:
            try:  # never checked (left by an interrupted or older run): check it now
                local = gunzip_checked(local)
            except OSError as exc:
                log.warning("%s", exc)
                local = None
        if local is None:
            log.info("downloading %s from GEO into %s", geo_file.name, folder)
            try:
                local = _download(ds, geo_file, folder)
            except OSError as exc:
                if geo_file.required:
                    failed.append(geo_file)
                    reasons.append(str(exc))
                else:
                    log.warning("optional file %s not downloaded (%s)", geo_file.name, exc)
                continue
        digest = _sha256(local)
        expected = recorded.get(local.name)
        if expected is None:
            recorded[local.name] = digest
        elif expected != digest:
            raise ScdealError(
                f"{local} changed since it was downloaded (sha256 {digest[:12]}..., recorded "
                f"{expected[:12]}...); delete it to download it again")
    write_text_atomic(folder / CHECKSUM_FILE, json.dumps(recorded, indent=2, sort_keys=True))
    if failed:
        raise ScdealError(_missing_message(
            ds, failed, f"could not download {ds.accession} from GEO ({reasons[0]})"))
    return folder
