"""``scdeal benchmark``: scDEAL variants and bulk-only baselines on cases with true labels."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

DEFAULT_ABLATION_SEEDS = 2
MAX_DEFAULT_JOBS = 4


def _default_jobs() -> int:
    from .._system import usable_cores

    return max(1, min(MAX_DEFAULT_JOBS, usable_cores()))


def register(sub: argparse._SubParsersAction) -> None:
    from ..benchmark import METHODS  # light: no torch or data import

    parser = sub.add_parser(
        "benchmark", help="compare scDEAL variants and bulk-only baselines on labelled cases",
        description="Run every method on every case of a case file with several seeds and score "
                    "the predictions on the cells' true labels (used for nothing else). Writes "
                    "DIR/results.csv (one row per case, method and seed, with wall time and peak "
                    "memory), DIR/summary.md (mean and sd per method and case, mean over cases) "
                    "and DIR/summary.png (AUROC, methods x cases).")
    parser.add_argument("--cases", required=True,
                        help="TOML case file with [[case]] tables (see benchmarks/cases.toml)")
    parser.add_argument("--methods", default="all",
                        help="comma-separated method names (default: all): "
                             + ", ".join(METHODS))
    parser.add_argument("--seeds", type=int, default=5,
                        help="number of seeds, 0..N-1, per case and method (default: 5)")
    parser.add_argument("--ablation-seeds", type=int, default=DEFAULT_ABLATION_SEEDS,
                        metavar="M",
                        help="seeds for the single-model ablation variants ("
                             + ", ".join(n for n, m in METHODS.items()
                                         if getattr(m, "ablation", False))
                             + "): the first M of --seeds (default: "
                             f"{DEFAULT_ABLATION_SEEDS}, to keep a full run under 30 minutes "
                             "on 2 cores)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="worker processes running fits side by side (default: the usable "
                             f"CPU cores, at most {MAX_DEFAULT_JOBS}; scores can differ in the third "
                             "decimal with the order of fits in a process)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--data-dir",
                        help="folder that relative target paths in the case file are relative "
                             "to (default: the first SCDEAL_DATA_DIR folder holding each file)")
    parser.add_argument("--shots", type=int, default=0, metavar="K",
                        help="K labelled cells per class drawn at random per case and seed "
                             "(seeded by both) and handed to the methods that learn from "
                             "labelled cells (scdeal, logreg_shots, bulk_plus_shots; 'all' "
                             "then includes the last two); every method is scored on the "
                             "remaining cells only. Default 0: no labelled cells")
    parser.add_argument("--config-overrides", metavar="JSON",
                        help="scDEAL configuration changes applied to every variant, e.g. "
                             "'{\"pretrain_epochs\": 5}' for a quick run")
    parser.set_defaults(func=_benchmark)


def _parse_overrides(text: str | None) -> dict:
    from ..errors import ScdealError

    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise ScdealError(f"--config-overrides is not valid JSON ({exc}); write it like "
                          "'{\"pretrain_epochs\": 5}'") from exc
    if not isinstance(values, dict):
        raise ScdealError("--config-overrides must be a JSON object of configuration keys, "
                          "like '{\"pretrain_epochs\": 5}'")
    return values


def _command(args: argparse.Namespace) -> str:
    parts = ["scdeal", "benchmark", "--cases", args.cases, "--methods", args.methods,
             "--seeds", str(args.seeds), "--ablation-seeds", str(args.ablation_seeds),
             "--jobs", str(args.jobs), "--out", args.out]
    if args.shots:
        parts += ["--shots", str(args.shots)]
    if args.data_dir:
        parts += ["--data-dir", args.data_dir]
    if args.config_overrides:
        parts += ["--config-overrides", args.config_overrides]
    return shlex.join(parts)


def _progress_line(row: dict, number: int, total: int) -> str:
    width = len(str(total))
    text = f"[{number:>{width}}/{total}] {row['case']:<12} {row['method']:<20} seed {row['seed']}"
    if row.get("shots"):
        text += f" K {row['shots']}"
    if row["error"]:
        return f"{text}  FAILED: {row['error']}"
    shared = " (shared fit)" if row["shared_fit"] else ""
    return (f"{text}  AUROC {row['auroc']:.3f}  AP {row['ap']:.3f}  F1 {row['f1']:.3f}  "
            f"MCC {row['mcc']:+.3f}  {row['wall_s']:6.1f} s  {row['peak_mem_mb']:+6.0f} MB"
            f"{shared}")


def _benchmark(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..benchmark import (
        RESULT_COLUMNS,
        RunInfo,
        ShotsBaseline,
        base_config,
        parse_methods,
        read_cases,
        run_benchmark,
        write_outputs,
        write_results,
    )
    from ..errors import ScdealError

    if args.seeds < 1:
        raise ScdealError(f"--seeds must be at least 1, got {args.seeds}")
    if args.ablation_seeds < 1:
        raise ScdealError(f"--ablation-seeds must be at least 1, got {args.ablation_seeds}")
    if args.jobs is None:
        args.jobs = _default_jobs()
    if args.jobs < 1:
        raise ScdealError(f"--jobs must be at least 1, got {args.jobs}")
    if args.shots < 0:
        raise ScdealError(f"--shots must be 0 or more, got {args.shots}")
    overrides = _parse_overrides(args.config_overrides)
    base_config(overrides)  # reject unknown keys before reading anything
    methods = parse_methods(args.methods, shots=args.shots)
    if args.shots == 0:
        needy = [m.name for m in methods
                 if isinstance(m, ShotsBaseline) and not m.with_bulk]
        if needy:
            print(f"scdeal benchmark: skipping {', '.join(needy)}: it learns from labelled "
                  "cells only; give --shots K >= 1", file=sys.stderr)
            methods = [m for m in methods if m.name not in needy]
    cases = read_cases(args.cases, data_dir=args.data_dir)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ScdealError(f"--out {out} is a file; give a folder")
    info = RunInfo(command=_command(args), seeds=list(range(args.seeds)),
                   config_overrides=overrides, ablation_seeds=args.ablation_seeds,
                   jobs=args.jobs, shots=args.shots)
    rows: list[dict] = []

    def on_row(row: dict, number: int, total: int) -> None:
        rows.append(row)
        # Keep the finished rows on disk: a long run stopped halfway keeps what it measured.
        write_results(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)), out / "results.csv")
        if not args.quiet:
            print(_progress_line(row, number, total), flush=True)

    started = time.perf_counter()
    package_logger = logging.getLogger("scdeal")
    level = package_logger.level
    package_logger.setLevel(logging.WARNING)  # one progress line per row, not per stage
    try:
        table = run_benchmark(cases, methods, seeds=info.seeds,
                              ablation_seeds=args.ablation_seeds, config_overrides=overrides,
                              jobs=args.jobs, on_row=on_row, shots=args.shots)
    finally:
        package_logger.setLevel(level)
    info.wall_s = time.perf_counter() - started
    paths = write_outputs(table, out, cases=cases, methods=methods, info=info)
    n_failed = int((table["error"].fillna("").astype(str) != "").sum())
    print(f"scdeal benchmark: {len(table)} rows ({len(cases)} cases, {len(methods)} methods, "
          f"{args.seeds} seeds) in {info.wall_s / 60:.1f} min -> {paths['summary']}")
    if n_failed:
        print(f"scdeal benchmark: {n_failed} rows failed; see the 'error' column of "
              f"{paths['results']}", file=sys.stderr)
        return 1
    return 0
