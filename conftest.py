"""Settings for the doctests of ``src/scdeal`` (collected by ``--doctest-modules``).

Each doctest runs in a fresh temporary folder (examples may write files) with the same
isolated scdeal cache as the tests. Examples marked ``# doctest: +GDSC_DATA`` read the real
GDSC data in ``../shared`` (as the tests do) and are skipped, with that reason, where it is
absent; scdeal would otherwise download it.
"""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest

GDSC_DATA = doctest.register_optionflag("GDSC_DATA")
SHARED = Path(os.environ.get("SCDEAL_SHARED_DIR", Path(__file__).resolve().parent.parent / "shared"))


def _needs_gdsc(item) -> bool:
    examples = getattr(getattr(item, "dtest", None), "examples", [])
    return any(example.options.get(GDSC_DATA) for example in examples)


def pytest_collection_modifyitems(config, items):
    have_data = (SHARED / "data" / "pypi").is_dir()
    skip = pytest.mark.skip(reason=f"needs the GDSC data in {SHARED}/data (set SCDEAL_SHARED_DIR)")
    for item in items:
        if not isinstance(item, pytest.DoctestItem):
            continue
        if not have_data and _needs_gdsc(item):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _doctest_environment(request, tmp_path, tmp_path_factory, monkeypatch):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "scdeal-cache"))
    monkeypatch.setenv("SCDEAL_DATA_DIR", os.pathsep.join(
        [str(SHARED / "data" / "pypi"), str(SHARED / "data" / "gdsc_meta")]))
    yield
