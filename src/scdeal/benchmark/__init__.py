"""Honest benchmarks: scDEAL variants and bulk-only baselines on cases with true labels.

Every method has one fixed configuration for all cases; target labels are used only to score.

Examples
--------
>>> from scdeal.benchmark import parse_methods, read_cases, run_benchmark
>>> cases = read_cases("benchmarks/cases.toml", data_dir="/data")          # doctest: +SKIP
>>> table = run_benchmark(cases, parse_methods("scdeal,logreg"), seeds=range(3))  # doctest: +SKIP
"""

from .cases import BenchmarkCase, read_cases
from .methods import DEFAULT_METHODS, METHODS, Baseline, ScDealVariant, parse_methods
from .report import RunInfo, write_outputs, write_results
from .runner import RESULT_COLUMNS, load_case, run_benchmark, score

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "RESULT_COLUMNS",
    "Baseline",
    "BenchmarkCase",
    "RunInfo",
    "ScDealVariant",
    "load_case",
    "parse_methods",
    "read_cases",
    "run_benchmark",
    "score",
    "write_outputs",
    "write_results",
]
