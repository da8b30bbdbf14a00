"""A few labelled cells (not a test): AUROC against K, the number of labelled cells per class
(``scdeal benchmark --shots K`` for K in 0, 1, 3, 5, 10), on the three shared SCAD cases.

For each case, seed and K, K cells per class are drawn at random (seeded by the seed and the
case name; the draws are nested, the cells of K = 3 are among those of K = 5) and only their
labels are handed to the methods that learn from labelled cells; EVERY method is scored on the
remaining cells only, so the scored cells shrink as K grows (66 - 2K for Gefitinib). Methods:

- ``scdeal``: default configuration, ``fit(labelled=the 2K cells)`` (K = 0: the plain fit):
  the label-free transfer stacked with a classifier of the labelled cells as they choose;
- ``scdeal_label_free``: the same fit's transfer alone (never learns from the labels);
- ``scdeal_no_transfer``: the same fit scored before the transfer step (bulk-only: it never
  learns from the labelled cells, but it is scored on the same remaining cells);
- ``logreg_shots``: logistic regression on the 2K labelled cells alone (undefined at K = 0);
- ``bulk_plus_shots``: logistic regression on the bulk lines plus the 2K cells, each domain half
  the weight (K = 0: the bulk-only ``logreg``);
- ``logreg``: bulk only, never sees the cells' labels (a fixed reference on the same cells).

Writes benchmarks/shots/results.csv (one row per case, method, seed and K; the columns of
``scdeal benchmark``) and benchmarks/shots/summary.md.

Usage (from the repository root; about 12 minutes on 2 cores):
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/shots.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SHOTS = (0, 1, 3, 5, 10)
METHODS = "scdeal,scdeal_label_free,scdeal_no_transfer,logreg_shots,bulk_plus_shots,logreg"


def main() -> None:
    from scdeal.benchmark import parse_methods, read_cases, run_benchmark, write_results
    from scdeal.data import load_gdsc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding scad/")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shots", default=",".join(map(str, SHOTS)))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "shots"))
    args = parser.parse_args()
    logging.getLogger("scdeal").setLevel(logging.ERROR)
    shots = [int(k) for k in args.shots.split(",")]
    cases = read_cases(HERE / "cases.toml", data_dir=args.data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bulk = load_gdsc()
    started, tables = time.perf_counter(), []
    for k in shots:
        t0 = time.perf_counter()
        table = run_benchmark(cases, parse_methods(METHODS, shots=k), seeds=range(args.seeds),
                              bulk=bulk, jobs=args.jobs, shots=k)
        tables.append(table)
        write_results(pd.concat(tables, ignore_index=True), out / "results.csv")
        print(f"K={k}: {len(table)} rows in {(time.perf_counter() - t0) / 60:.1f} min; "
              + ", ".join(f"{m} {a:.3f}" for m, a in
                          table.groupby("method", sort=False)["auroc"].mean().items()),
              flush=True)
    results = pd.concat(tables, ignore_index=True)
    wall = time.perf_counter() - started
    command = ("python benchmarks/shots.py --data-dir " + args.data_dir
               + (f" --seeds {args.seeds}" if args.seeds != 3 else "")
               + (f" --shots {args.shots}" if args.shots != ",".join(map(str, SHOTS)) else ""))
    (out / "summary.md").write_text(summary(results, [c.name for c in cases], shots,
                                            args.seeds, command, wall))
    print(f"{len(results)} rows in {wall / 60:.1f} min -> {out / 'summary.md'}")


def auroc_table(results: pd.DataFrame, case_names: list[str], shots: list[int]) -> str:
    """Markdown: one row per case and method, one column per K, mean ± sd over seeds."""
    stats = results.groupby(["case", "method", "shots"])["auroc"].agg(["mean", "std", "count"])
    methods = list(dict.fromkeys(results["method"]))
    lines = ["| case | method | " + " | ".join(f"K={k}" for k in shots) + " |",
             "|---|---|" + "---|" * len(shots)]
    for case in [*case_names, "mean over cases"]:
        for method in methods:
            cells = []
            for k in shots:
                if case == "mean over cases":
                    means = [stats.loc[(c, method, k), "mean"] for c in case_names
                             if (c, method, k) in stats.index]
                    cells.append(f"**{sum(means) / len(means):.3f}**"
                                 if len(means) == len(case_names) else "—")
                elif (case, method, k) in stats.index:
                    row = stats.loc[(case, method, k)]
                    text = f"{row['mean']:.3f}"
                    if row["count"] > 1:
                        text += f" ± {row['std']:.3f}"
                    cells.append(text)
                else:
                    cells.append("—")
            lines.append(f"| {case} | `{method}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(results: pd.DataFrame, case_names: list[str], shots: list[int], seeds: int,
            command: str, wall_s: float) -> str:
    failed = results[results["error"].fillna("").astype(str) != ""]
    scored = results.groupby(["case", "shots"])["n_cells"].max().unstack()
    versions = ", ".join(f"{p} {version(p)}" for p in ("scdeal", "torch", "scikit-learn"))
    lines = [
        "# A few labelled cells: AUROC against K (labelled cells per class)",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; wall time "
        f"{wall_s / 60:.1f} min; {platform.machine()}, python {platform.python_version()}, "
        f"{versions}",
        f"- Seeds: 0-{seeds - 1} per case, method and K; scDEAL default configuration "
        "(5-model ensemble, replicate s with configuration seed 5s); rows: "
        f"{len(results)}, failed: {len(failed)}",
        "",
        "For each case, seed and K, K cells per class are drawn at random (seeded by the seed "
        "and the case name; nested across K) and only their labels are handed to `scdeal` "
        "(`labelled=`), `logreg_shots` and `bulk_plus_shots`. Every method, including those "
        "that do not use the labels (`scdeal_no_transfer`, `logreg`), is scored on the "
        "REMAINING cells only, so each column is scored on fewer cells than the one before "
        "it; compare methods within a column. `logreg_shots` is undefined at K = 0; "
        "`bulk_plus_shots` at K = 0 is `logreg`.",
        "",
        "## AUROC on the remaining cells (mean ± sd over seeds)",
        "",
        auroc_table(results, case_names, shots),
        "",
        "## Cells scored (the labelled cells of the case minus 2K)",
        "",
        "| case | " + " | ".join(f"K={k}" for k in shots) + " |",
        "|---|" + "---|" * len(shots),
    ]
    for case in case_names:
        lines.append(f"| {case} | " + " | ".join(
            str(int(scored.loc[case, k])) if k in scored.columns else "—" for k in shots) + " |")
    kept = (results[results["method"] == "scdeal"].groupby(["case", "shots"])["transfer_kept"]
            .mean().unstack())
    lines += ["", "## `scdeal`: share of ensemble members whose early stopping kept a transfer "
              "epoch", "",
              "The transfer's early stopping uses no labels (bulk validation CE + MMD + cluster "
              "term); a member that keeps the state before its first transfer epoch has learnt "
              "nothing from the labelled cells. Mean over seeds of the share of the 5 members.",
              "", "| case | " + " | ".join(f"K={k}" for k in shots) + " |",
              "|---|" + "---|" * len(shots)]
    for case in case_names:
        lines.append(f"| {case} | " + " | ".join(
            f"{kept.loc[case, k]:.2f}" if case in kept.index and k in kept.columns else "—"
            for k in shots) + " |")
    if len(failed):
        lines += ["", "## Failed rows", "", "| case | method | seed | K | error |",
                  "|---|---|---|---|---|"]
        for _, row in failed.iterrows():
            lines.append(f"| {row['case']} | `{row['method']}` | {row['seed']} | "
                         f"{row['shots']} | {row['error']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
