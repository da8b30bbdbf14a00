"""Workflows: the layer above ``scdeal.tl`` and ``scdeal.pl`` that runs analyses and draws
their figures together on a run folder (and below ``scdeal.cli``).

- :func:`explain_run` (``scdeal explain``): attributions, critical genes, gene scores,
  enrichment, trajectory and their figures;
- :func:`screen` (``scdeal screen``): many drugs on the same cells, ranked per cell group,
  on Dask;
- :func:`run` (``scdeal run``): train on GDSC and a target, predict every cell, write a run
  folder; :func:`predict` (``scdeal predict``) applies a saved model to a file; :func:`demo`
  (``scdeal demo``); :func:`stability` (``scdeal stability``);
- :func:`build_report` (``scdeal report``): one self-contained HTML page of a run.

Loaded on first use, like the rest of the public API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"ExplainConfig": "scdeal.workflows.explain", "explain_run": "scdeal.workflows.explain",
            "build_report": "scdeal.workflows.report", "screen": "scdeal.workflows.drug_screen",
            "parse_drug_list": "scdeal.workflows.drug_screen",
            "RunResult": "scdeal.workflows.run_folder", "run": "scdeal.workflows.run_folder",
            "predict": "scdeal.workflows.prediction", "PredictResult": "scdeal.workflows.prediction",
            "demo": "scdeal.workflows.demo_run", "stability": "scdeal.workflows.stability_folder",
            "gdsc_labels": "scdeal.workflows.gdsc_export"}
__all__ = ["ExplainConfig", "PredictResult", "RunResult", "build_report", "demo", "explain_run",
           "gdsc_labels", "parse_drug_list", "predict", "run", "screen", "stability"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .demo_run import demo
    from .drug_screen import parse_drug_list, screen
    from .explain import ExplainConfig, explain_run
    from .gdsc_export import gdsc_labels
    from .prediction import PredictResult, predict
    from .report import build_report
    from .run_folder import RunResult, run
    from .stability_folder import stability


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
