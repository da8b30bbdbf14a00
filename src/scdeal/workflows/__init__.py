"""Workflows: the layer above ``scdeal.tl`` and ``scdeal.pl`` that runs analyses and draws
their figures together on a run folder (and below ``scdeal.cli``).

- :func:`explain_run` (``scdeal explain``): attributions, critical genes, gene scores,
  enrichment, trajectory and their figures;
- :func:`screen` (``scdeal screen``): many drugs on the same cells, ranked per cell group,
  on Dask;
- :func:`build_report` (``scdeal report``, module :mod:`scdeal.report`, which belongs to this
  layer): one self-contained HTML page of a run.

Loaded on first use, like the rest of the public API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"ExplainConfig": "scdeal.workflows.explain", "explain_run": "scdeal.workflows.explain",
            "build_report": "scdeal.report", "screen": "scdeal.workflows.drug_screen"}
__all__ = ["ExplainConfig", "build_report", "explain_run", "screen"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from ..report import build_report
    from .drug_screen import screen
    from .explain import ExplainConfig, explain_run


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
