"""The public API the README promises, loaded lazily so that ``scdeal --help`` stays fast."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_import_scdeal_loads_no_heavy_library():
    out = _run("import sys, scdeal; from scdeal.cli import build_parser; build_parser(); "
               "print(sorted({m.split('.')[0] for m in sys.modules} "
               "& {'torch', 'scanpy', 'anndata', 'sklearn', 'matplotlib'}))")
    assert out == "[]"


def test_public_names_resolve_to_the_real_objects():
    import scdeal
    from scdeal.model import ScDEAL, ScDealConfig
    from scdeal.tl import critical_genes

    assert scdeal.ScDEAL is ScDEAL and scdeal.ScDealConfig is ScDealConfig
    assert scdeal.tl.critical_genes is critical_genes
    assert callable(scdeal.pl.save_figure) and callable(scdeal.data.load_gdsc)
    assert {"ScDEAL", "tl", "pl", "data"} <= set(dir(scdeal))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        scdeal.nothing  # noqa: B018
