"""Benchmark outputs: ``results.csv``, ``summary.md`` and ``summary.png``, written atomically."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_path, write_text_atomic
from .._system import usable_cores
from .cases import BenchmarkCase
from .methods import Method, ScDealVariant, ShotsBaseline

METRIC_TITLES = {
    "auroc": "AUROC",
    "ap": "Average precision",
    "f1": "F1 (sensitive = positive, threshold 0.5)",
    "mcc": "Matthews correlation (threshold 0.5)",
    "balanced_accuracy": "Balanced accuracy (threshold 0.5)",
    "f1_weighted": "Weighted F1 (threshold 0.5)",
}
_PACKAGES = ("scdeal", "torch", "scikit-learn", "numpy", "pandas", "anndata", "scanpy")


@dataclass
class RunInfo:
    """What the summary header states about the run.

    Examples
    --------
    >>> info = RunInfo(command="scdeal benchmark --seeds 3", seeds=range(3), jobs=2)
    >>> list(info.seeds), info.shots, info.started.tzinfo is not None
    ([0, 1, 2], 0, True)
    """

    command: str
    seeds: Sequence[int]
    config_overrides: dict = field(default_factory=dict)
    ablation_seeds: int | None = None
    jobs: int = 1
    shots: int = 0
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    wall_s: float | None = None


def write_results(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the per-row table as CSV, atomically.

    Examples
    --------
    >>> table = pd.DataFrame({"case": ["A"], "method": ["logreg"], "seed": [0], "auroc": [0.75]})
    >>> write_results(table, "results.csv")
    >>> pd.read_csv("results.csv").to_dict("records")
    [{'case': 'A', 'method': 'logreg', 'seed': 0, 'auroc': 0.75}]
    """
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def write_outputs(table: pd.DataFrame, out: str | os.PathLike, *, cases: Sequence[BenchmarkCase],
                  methods: Sequence[Method], info: RunInfo) -> dict[str, Path]:
    """Write ``results.csv``, ``summary.md`` and ``summary.png`` into ``out``.

    Examples
    --------
    Not run here: it needs a results table (tests/test_benchmark.py writes one).

    >>> paths = write_outputs(table, "bench", cases=cases, methods=methods,
    ...                       info=RunInfo("scdeal benchmark ...", seeds=range(5)))  # doctest: +SKIP
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.csv", "summary": out / "summary.md",
             "figure": out / "summary.png"}
    write_results(table, paths["results"])
    write_text_atomic(paths["summary"], summary_markdown(table, cases=cases, methods=methods,
                                                         info=info))
    with atomic_path(paths["figure"]) as tmp:
        summary_figure(table, cases=cases, path=tmp)
    return paths


# ------------------------------------------------------------------------------------------
# tables


def mean_sd_table(table: pd.DataFrame, metric: str, case_names: Sequence[str]) -> pd.DataFrame:
    """Methods x cases: mean, sd (over seeds, ddof=1) and n of ``metric``; plus the mean over
    cases of the per-case means (column ``mean``, NaN unless every case has a value)."""
    grouped = table.groupby(["method", "case"], sort=False)[metric]
    stats = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    means = stats.pivot(index="method", columns="case", values="mean").reindex(
        columns=list(case_names))
    means["mean"] = means.mean(axis=1, skipna=False)
    return means


def scored_cells(table: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Case -> (cells scored, sensitive among them), from the rows that succeeded."""
    ok = table.dropna(subset=["n_cells", "prevalence"])
    out = {}
    for case, rows in ok.groupby("case", sort=False):
        row = rows.loc[rows["n_cells"].idxmax()]
        out[str(case)] = (int(row["n_cells"]), int(round(row["prevalence"] * row["n_cells"])))
    return out


def _cell(mean: float, sd: float, n: int, n_expected: int) -> str:
    if not np.isfinite(mean):
        return "failed"
    text = f"{mean:.3f}"
    if n > 1 and np.isfinite(sd):
        text += f" ± {sd:.3f}"
    if n < n_expected:
        text += f" (n={n})"
    return text


def _metric_markdown(table: pd.DataFrame, metric: str, case_names: Sequence[str],
                     order: Sequence[str]) -> str:
    stats = table.groupby(["method", "case"], sort=False)[metric].agg(
        mean="mean", sd="std", n="count")
    seeds_run = table.groupby("method")["seed"].nunique()
    means = mean_sd_table(table, metric, case_names)
    header = ["method", *case_names, "mean over cases"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in order:
        cells = [f"`{method}`"]
        for case in case_names:
            if (method, case) in stats.index:
                s = stats.loc[(method, case)]
                cells.append(_cell(s["mean"], s["sd"], int(s["n"]), int(seeds_run[method])))
            else:
                cells.append("")
        overall = means.loc[method, "mean"] if method in means.index else np.nan
        cells.append(f"**{overall:.3f}**" if np.isfinite(overall) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _machine() -> str:
    cores = os.cpu_count() or 0
    usable = usable_cores()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory_text = f"{memory:.1f} GiB memory"
    except (ValueError, OSError, AttributeError):
        memory_text = "memory unknown"
    try:
        import torch

        threads = f", torch threads {torch.get_num_threads()}"
    except ImportError:  # pragma: no cover - torch is a dependency
        threads = ""
    return (f"{platform.system()} {platform.machine()}, {usable} usable CPU cores "
            f"({cores} present), {memory_text}{threads}")


def _versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for name in _PACKAGES:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts)


def summary_markdown(table: pd.DataFrame, *, cases: Sequence[BenchmarkCase],
                     methods: Sequence[Method], info: RunInfo) -> str:
    """The summary page: header, cases, methods, one table per metric, cost, failures."""
    case_names = [c.name for c in cases]
    n_cells = scored_cells(table)
    n_failed = int((table["error"].fillna("").astype(str) != "").sum())
    n_seeds = len(list(info.seeds))
    auroc = mean_sd_table(table, "auroc", case_names)
    # Best first by mean AUROC over cases; methods without a mean go last, in request order.
    requested = [m.name for m in methods]
    requested += [m for m in table["method"].unique() if m not in requested]
    order = sorted(requested, key=lambda m: (-auroc["mean"].get(m, np.nan)
                                             if np.isfinite(auroc["mean"].get(m, np.nan))
                                             else np.inf, requested.index(m)))
    seeds = list(info.seeds)
    seed_text = (f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1))
                 else ", ".join(map(str, seeds)))
    lines = [
        "# scDEAL benchmark",
        "",
        f"- Command: `{info.command}`",
        f"- Date: {info.started.strftime('%Y-%m-%d %H:%M UTC')}"
        + (f"; total wall time {info.wall_s / 60:.1f} min" if info.wall_s else ""),
        f"- Machine: {_machine()}; {info.jobs} worker process(es)",
        f"- Versions: {_versions()}, on {sys.platform}",
        f"- Seeds: {seed_text} ({n_seeds} per case and method"
        + (f"; ablation variants: the first {info.ablation_seeds}"
           if info.ablation_seeds is not None and info.ablation_seeds < n_seeds else "")
        + "). scDEAL replicate s trains its ensemble with configuration seed s x n_models, "
        "so replicates share no member seed.",
        f"- Configuration overrides (every scDEAL variant): "
        f"{info.config_overrides or 'none (defaults)'}",
        f"- Rows: {len(table)} in `results.csv` (one per case, method and seed; columns: "
        f"{', '.join(table.columns)}); failed: {n_failed}",
        "",
        (f"**A few labelled cells (`--shots {info.shots}`)**: for each case and seed, "
         f"{info.shots} cells per class are drawn at random (seeded by the seed and the case "
         "name); only their labels are handed to the methods that learn from labelled cells "
         "(`scdeal` as `labelled`, `logreg_shots`, `bulk_plus_shots`), and EVERY method is "
         "scored on the remaining cells only (the labelled-cell counts below are those).\n\n"
         if info.shots else "")
        + "Every method has one fixed configuration for every case. The target labels are used "
        "only to score predictions: methods receive the expression alone. Metrics are computed "
        "on all labelled target cells from the predicted probability of 'sensitive' (AUROC, "
        "AP) or from probability >= 0.5 (F1 with sensitive as the positive class, MCC, "
        "balanced accuracy, weighted F1). A cell shows the mean ± sd over seeds (n=k where "
        "rows failed); "
        "**mean over cases** is the mean of the per-case means. Methods are sorted by mean "
        "AUROC over cases.",
        "",
        "## Cases",
        "",
        "| case | drug (GDSC) | target | labelled cells | sensitive (prevalence) |",
        "|---|---|---|---|---|",
    ]
    drugs = table.groupby("case")["drug"].first().to_dict() if len(table) else {}
    for case in cases:
        n, n_sens = n_cells.get(case.name, (0, 0))
        prevalence = f"{n_sens} ({n_sens / n:.2f})" if n else ""
        lines.append(f"| {case.name} | {drugs.get(case.name, case.drug)} | `{case.target.name}` "
                     f"| {n} | {prevalence} |")
    seeds_run = table.groupby("method")["seed"].nunique()
    lines += ["", "## Methods", "", "| method | what it is | configuration | seeds |",
              "|---|---|---|---|"]
    for method in methods:
        if isinstance(method, ScDealVariant):
            changes = dict(method.overrides)
            config = ", ".join(f"{k}={v!r}" for k, v in changes.items()) or "default"
            config += "; scored before transfer" if method.output == "pre" else ""
        elif isinstance(method, ShotsBaseline):
            config = ("bulk + labelled cells" if method.with_bulk else "labelled cells only")
            config += "; shared genes; each domain standardised"
        else:
            config = "bulk only; shared genes; each domain standardised"
        lines.append(f"| `{method.name}` | {method.description} | {config} | "
                     f"{int(seeds_run.get(method.name, 0))} |")
    for metric, title in METRIC_TITLES.items():
        lines += ["", f"## {title}", ""]
        if metric == "ap":
            prevalences = ", ".join(f"{c} {n_sens / n:.3f}" for c, (n, n_sens) in n_cells.items()
                                    if n)
            lines += [f"A random score has AP equal to the prevalence: {prevalences}.", ""]
        lines.append(_metric_markdown(table, metric, case_names, order))
    lines += reliability_markdown(table, case_names, order)
    lines += ["", "## Cost per row", "",
              "Wall time of fit + prediction and peak memory (resident set size above the "
              "level at the row's start, sampled every 5 ms), mean over seeds. Rows of one "
              "shared scDEAL fit report that fit's time and memory. The first rows of a run "
              "also pay one-off costs (gene tables read, modules imported), and a scDEAL row "
              "skips the drug-independent pre-training when an earlier row with the same "
              "seed, settings and cells stored it in the cache.", "",
              _cost_markdown(table, case_names, order)]
    failed = table[table["error"].fillna("").astype(str) != ""]
    if len(failed):
        lines += ["", "## Failed rows", "", "| case | method | seed | error |", "|---|---|---|---|"]
        for _, row in failed.iterrows():
            lines.append(f"| {row['case']} | `{row['method']}` | {row['seed']} | "
                         f"{str(row['error']).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def reliability_markdown(table: pd.DataFrame, case_names: Sequence[str],
                         order: Sequence[str]) -> list[str]:
    """Per method: share of rows flagged reliable, and the AUROC of reliable vs other rows.

    Only rows with a verdict count (baselines and one-member fits have none).
    """
    if "reliable" not in table.columns:
        return []
    judged = table[table["reliable"].notna() & table["auroc"].notna()]
    if judged.empty:
        return []
    lines = ["", "## Reliability (label-free verdict vs AUROC)", "",
             "Each scDEAL fit of several members judges itself without labels "
             "(`scdeal.model.reliability`: members' agreement and bulk test AUROC). The table "
             "shows, per method, how many rows were flagged reliable and the AUROC of the rows "
             "flagged reliable and not (mean, min-max). One-member fits and baselines have no "
             "verdict and are not counted.", "",
             "| method | rows judged | flagged reliable | AUROC reliable | AUROC not reliable "
             "| reliable rows with AUROC < 0.6 | member consensus (mean) |",
             "|---|---|---|---|---|---|---|"]

    def spread(values: pd.Series) -> str:
        if values.empty:
            return "-"
        return f"{values.mean():.3f} ({values.min():.3f}-{values.max():.3f})"

    for method in order:
        rows = judged[judged["method"] == method]
        if rows.empty:
            continue
        flag = rows["reliable"].astype(bool)
        lines.append(
            f"| `{method}` | {len(rows)} | {int(flag.sum())} ({flag.mean():.0%}) | "
            f"{spread(rows.loc[flag, 'auroc'])} | {spread(rows.loc[~flag, 'auroc'])} | "
            f"{int((rows.loc[flag, 'auroc'] < 0.6).sum())} | "
            f"{rows['member_consensus'].mean():.3f} |")
    return lines


def _cost_markdown(table: pd.DataFrame, case_names: Sequence[str], order: Sequence[str]) -> str:
    wall = table.groupby(["method", "case"])["wall_s"].mean()
    mem = table.groupby(["method", "case"])["peak_mem_mb"].mean()
    header = ["method", *(f"{c} s / MB" for c in case_names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in order:
        cells = [f"`{method}`"]
        for case in case_names:
            if (method, case) in wall.index:
                cells.append(f"{wall[(method, case)]:.1f} / {mem[(method, case)]:.0f}")
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# figure


def summary_figure(table: pd.DataFrame, *, cases: Sequence[BenchmarkCase],
                   path: str | os.PathLike) -> None:
    """Heatmap of mean AUROC, methods x cases (plus the mean over cases), annotated mean ± sd."""
    # The object-oriented API: no pyplot state, no change of the user's backend.
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    case_names = [c.name for c in cases]
    means = mean_sd_table(table, "auroc", case_names)
    means = means.sort_values("mean", ascending=False, na_position="last")
    sds = table.groupby(["method", "case"])["auroc"].std()
    values = means.to_numpy(dtype=float)
    fig = Figure(figsize=(1.6 * values.shape[1] + 2.5, 0.45 * values.shape[0] + 1.6))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", aspect="auto",
                      norm=TwoSlopeNorm(vmin=0.0, vcenter=0.5, vmax=1.0))
    for i, method in enumerate(means.index):
        for j, column in enumerate(means.columns):
            value = values[i, j]
            if not np.isfinite(value):
                text = "-"
            else:
                sd = sds.get((method, column), np.nan)
                text = f"{value:.2f}" + (f"\n±{sd:.2f}" if np.isfinite(sd) else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(value) and abs(value - 0.5) > 0.3 else "black")
    ax.set_xticks(range(values.shape[1]), [*case_names, "mean over cases"][: values.shape[1]],
                  rotation=30, ha="right")
    ax.set_yticks(range(values.shape[0]), list(means.index))
    ax.axvline(values.shape[1] - 1.5, color="black", linewidth=1)
    ax.set_title("AUROC on target cells (mean ± sd over seeds)")
    fig.colorbar(image, ax=ax, label="AUROC (0.5 = chance)")
    fig.tight_layout()
    fig.savefig(path, dpi=130, format="png")
