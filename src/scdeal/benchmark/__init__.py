"""Honest benchmarks: scDEAL variants and bulk-only baselines on cases with true labels.

Every method has one fixed configuration for all cases; target labels are used only to score.
Names are loaded on first use, so the command line can read the method registry without
importing torch.

Examples
--------
>>> from scdeal.benchmark import parse_methods
>>> [m.name for m in parse_methods("scdeal,logreg")]
['scdeal', 'logreg']

Not run here (minutes of training on the real cases; tests/test_benchmark.py runs a small one):

>>> from scdeal.benchmark import read_cases, run_benchmark
>>> cases = read_cases("benchmarks/cases.toml", data_dir="../shared/data")   # doctest: +SKIP
>>> table = run_benchmark(cases, parse_methods("scdeal,logreg"), seeds=range(3))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BenchmarkCase": "cases",
    "read_cases": "cases",
    "DEFAULT_METHODS": "methods",
    "METHODS": "methods",
    "Baseline": "methods",
    "ScDealVariant": "methods",
    "ShotsBaseline": "methods",
    "parse_methods": "methods",
    "RunInfo": "report",
    "write_outputs": "report",
    "write_results": "report",
    "RESULT_COLUMNS": "runner",
    "base_config": "runner",
    "load_case": "runner",
    "run_benchmark": "runner",
    "score": "runner",
}
__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "RESULT_COLUMNS",
    "Baseline",
    "BenchmarkCase",
    "RunInfo",
    "ScDealVariant",
    "ShotsBaseline",
    "base_config",
    "load_case",
    "parse_methods",
    "read_cases",
    "run_benchmark",
    "score",
    "write_outputs",
    "write_results",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .cases import BenchmarkCase, read_cases
    from .methods import (
        DEFAULT_METHODS,
        METHODS,
        Baseline,
        ScDealVariant,
        ShotsBaseline,
        parse_methods,
    )
    from .report import RunInfo, write_outputs, write_results
    from .runner import RESULT_COLUMNS, base_config, load_case, run_benchmark, score


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
