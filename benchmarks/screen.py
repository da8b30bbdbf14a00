"""Drug-screen benchmark (not a test). Writes benchmarks/screen/results.json and the screens'
drugs.csv files, and prints the markdown table that benchmarks/README.md quotes.

Measured in one script run, each command in a fresh process, whole-process wall time
(interpreter start to exit), every run with an empty model cache (numba's cache of UMAP's
kernels is filled once before, as after the first run of an installation):

1. ``scdeal run`` of the case's own drug on the case's cells;
2. ``scdeal screen`` of 8 drugs on the same cells with 2 local workers, then with 1 worker;
3. (``--parts all``) ``scdeal screen`` of every GDSC2 drug with enough labelled lines, 2
   workers.

The 8 drugs on the PLX4720 cells (A375 melanoma, BRAF V600E, treated with the BRAF inhibitor
PLX4720): three BRAF inhibitors, two MEK inhibitors (the same MAPK pathway, downstream), and
three drugs of other mechanisms. The cells' labels only score each drug's predictions.

Usage (from the repository root):
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/screen.py --data-dir ../shared/data --work /tmp/scdeal_screen [--parts eight,all]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import pandas as pd
from speed import timed_run as timed  # same folder: whole-process wall time of `python -m scdeal`

HERE = Path(__file__).resolve().parent
CASE = "PLX4720"
DRUGS = ["PLX-4720", "Dabrafenib", "SB590885", "Trametinib", "Selumetinib", "Gefitinib",
         "Cisplatin", "Docetaxel"]
MECHANISM = {"PLX-4720": "BRAF inhibitor", "Dabrafenib": "BRAF inhibitor",
             "SB590885": "BRAF inhibitor", "Trametinib": "MEK inhibitor",
             "Selumetinib": "MEK inhibitor", "Gefitinib": "EGFR inhibitor",
             "Cisplatin": "DNA crosslinker", "Docetaxel": "microtubule stabiliser"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scdeal_screen"))
    parser.add_argument("--out", type=Path, default=HERE / "screen")
    parser.add_argument("--parts", default="eight",
                        help="comma-separated: eight (1 run + 8-drug screens), all (every GDSC2 "
                             "drug, then analyze), analyze (where the MAPK-pathway inhibitors "
                             "rank in the all-drug screen); other parts' numbers are kept")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cache = work / "cache"
    env = {**os.environ, "SCDEAL_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(work / "numba")}
    target = str(args.data_dir / "scad" / f"Target_expr_resp_z.{CASE}_tp4k.tsv")
    common = ["--target", target, "--label-key", "response", "--gene-ids", "entrez", "--seed",
              "0", "--quiet"]

    def cold() -> None:
        shutil.rmtree(cache / "models", ignore_errors=True)

    if parts & {"eight", "all"}:
        # Fill numba's kernel cache once (a compile that happens once per installation).
        timed(["run", "--drug", "PLX4720", *common, "--out", str(work / "warmup")], env)

    saved = args.out / "results.json"
    results: dict = json.loads(saved.read_text()) if saved.is_file() else {}
    results.update({"case": CASE, "drugs": DRUGS, "machine": {
        "cores": os.cpu_count(), "python": platform.python_version()}})
    if "eight" in parts:
        eight_drugs(args, work, env, common, cold, results)
    if "all" in parts:
        all_drugs(args, work, env, common, cold, results)
    if parts & {"all", "analyze"}:
        results["mapk_all_gdsc2"] = analyze_all(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if not k.endswith("task_s")}, indent=2))
    print()
    print("| measurement | wall time (s) | ratio to one run |")
    print("|---|---|---|")
    base = results["run_one_drug_s"]
    for key, label in (("run_one_drug_s", "scdeal run, 1 drug"),
                       ("screen8_workers2_s", "scdeal screen, 8 drugs, 2 workers"),
                       ("screen8_workers1_s", "scdeal screen, 8 drugs, 1 worker"),
                       ("screen_all_gdsc2_s", "scdeal screen, every GDSC2 drug, 2 workers")):
        if key in results:
            print(f"| {label} | {results[key]:.1f} | {results[key] / base:.2f} |")


def eight_drugs(args, work, env, common, cold, results) -> None:
    results["date_eight"] = time.strftime("%Y-%m-%d %H:%M")
    cold()
    results["run_one_drug_s"] = timed(["run", "--drug", "PLX4720", *common, "--out",
                                       str(work / "run")], env)
    for workers in (2, 1):
        cold()
        out = work / f"screen8_w{workers}"
        results[f"screen8_workers{workers}_s"] = timed(
            ["screen", "--drugs", ",".join(DRUGS), *common, "--workers", str(workers), "--out",
             str(out)], env)
        table = pd.read_csv(out / "drugs.csv")
        results[f"screen8_workers{workers}_task_s"] = table.seconds.dropna().tolist()
        print(f"screen of 8 drugs, {workers} worker(s): "
              f"{results[f'screen8_workers{workers}_s']:.1f} s", flush=True)
    results["ratio_screen8_to_run"] = results["screen8_workers2_s"] / results["run_one_drug_s"]
    args.out.mkdir(parents=True, exist_ok=True)
    eight = pd.read_csv(work / "screen8_w2" / "drugs.csv")
    eight.insert(1, "mechanism", eight.drug.map(MECHANISM))
    eight.to_csv(args.out / "drugs_8.csv", index=False)
    shutil.copy(work / "screen8_w2" / "groups.csv", args.out / "groups_8.csv")
    shutil.copy(work / "screen8_w2" / "heatmap.png", args.out / "heatmap_8.png")


def all_drugs(args, work, env, common, cold, results) -> None:
    results["date_all"] = time.strftime("%Y-%m-%d %H:%M")
    config = work / "gdsc2.json"
    config.write_text(json.dumps({"release": "GDSC2"}))
    cold()
    out = work / "screen_all"
    results["screen_all_gdsc2_s"] = timed(
        ["screen", "--drugs", "all", *common, "--config", str(config), "--workers", "2",
         "--out", str(out)], env)
    table = pd.read_csv(out / "drugs.csv")
    results["screen_all_gdsc2_drugs"] = int((table.status == "ok").sum())
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "drugs_all_gdsc2.csv", index=False)
    shutil.copy(out / "heatmap.png", args.out / "heatmap_all_gdsc2.png")


# GDSC2's inhibitors of the ERK MAPK pathway (BRAF, MEK1/2, ERK1/2), by GDSC name: the pathway
# PLX4720 (a BRAF inhibitor) acts on.
MAPK = {"PLX-4720": "BRAF", "Dabrafenib": "BRAF", "SB590885": "BRAF", "Trametinib": "MEK",
        "Selumetinib": "MEK", "PD0325901": "MEK", "Refametinib": "MEK", "SCH772984": "ERK",
        "Ulixertinib": "ERK", "VX-11e": "ERK", "ERK_2440": "ERK", "ERK_6604": "ERK"}


def analyze_all(out: Path) -> dict:
    """Where the MAPK-pathway inhibitors rank, by AUROC against the PLX4720 labels, among all
    screened drugs and among those flagged reliable (Mann-Whitney U against the others)."""
    from scipy.stats import mannwhitneyu

    table = pd.read_csv(out / "drugs_all_gdsc2.csv")
    table = table[table.status == "ok"].copy()
    table["mapk"] = table.drug.map(MAPK)
    table["reliable"] = table.reliable.astype(str) == "True"
    summary: dict = {"n_drugs": len(table), "n_reliable": int(table.reliable.sum())}
    lines = ["| drugs | n | MAPK inhibitors | their AUROC ranks (1 = most like PLX4720) | "
             "median AUROC, MAPK / others | Mann-Whitney p (one-sided) |", "|---|---|---|---|---|---|"]
    for name, sub in (("all screened", table), ("flagged reliable", table[table.reliable])):
        sub = sub.assign(rank=sub.auroc.rank(ascending=False, method="min").astype(int))
        mapk, rest = sub[sub.mapk.notna()], sub[sub.mapk.isna()]
        p = mannwhitneyu(mapk.auroc, rest.auroc, alternative="greater").pvalue
        ranks = ", ".join(f"{d} {r}" for d, r in sorted(zip(mapk.drug, mapk["rank"], strict=True),
                                                         key=lambda x: x[1]))
        lines.append(f"| {name} | {len(sub)} | {len(mapk)} | {ranks} | "
                     f"{mapk.auroc.median():.3f} / {rest.auroc.median():.3f} | {p:.1e} |")
        summary[name] = {"n": len(sub), "n_mapk": len(mapk), "p": p,
                         "median_mapk": mapk.auroc.median(), "median_other": rest.auroc.median()}
    top = table[table.reliable].nlargest(15, "auroc")
    lines += ["", "The 15 reliable fits that rank the cells most like PLX4720:", "",
              "| drug | MAPK target | AUROC vs PLX4720 labels | member consensus |", "|---|---|---|---|"]
    lines += [f"| {r.drug} | {r.mapk if isinstance(r.mapk, str) else ''} | {r.auroc:.3f} | "
              f"{r.member_consensus:.3f} |" for r in top.itertuples()]
    (out / "mapk_all_gdsc2.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main()
