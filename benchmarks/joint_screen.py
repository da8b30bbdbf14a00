"""Joint against per-drug screens (issue "every drug in the time of one run"). Not a test.

One script run, each command in a fresh process, whole-process wall time, every run from an
empty model cache (numba's cache of UMAP's kernels filled once before, as after the first run
of an installation):

1. ``scdeal run --drug PLX4720`` on the PLX4720 cells (the unit of time);
2. ``scdeal screen --strategy joint --drugs all`` (every GDSC2 drug with enough labelled lines);
3. ``scdeal screen --strategy per-drug`` of a fixed subset of those drugs (every 12th, by
   name), 2 local workers; its time is scaled to all of them (said so in the table);
4. on each of the three shared cases: a joint screen of the three case drugs, and the case's
   own ``scdeal run`` (AUROC of the case's own drug against the cells' labels);
5. where the 12 MAPK-pathway inhibitors rank among all GDSC2 drugs in the joint screen of 2;
6. the Gefitinib and Afatinib cases' drugs inside an all-GDSC2 joint screen on their own cells
   (section 17; PLX4720's is the screen of 2).

``--one-core`` runs only 1. and 2., pinned to one core.

The cells' labels only score. Writes ``benchmarks/joint_screen/results.json``, the screens'
``drugs.csv`` files and ``mapk.md``.

    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/joint_screen.py --data-dir ../shared/data --work /tmp/scdeal_joint
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
from screen import MAPK  # same folder: the 12 MAPK-pathway inhibitors of GDSC2
from speed import timed_run as timed  # same folder: whole-process wall time of `python -m scdeal`

HERE = Path(__file__).resolve().parent
CASES = {"Gefitinib": "Gefitinib", "Afatinib": "Afatinib", "PLX4720": "PLX-4720"}


def target(data_dir: Path, case: str) -> str:
    return str(data_dir / "scad" / f"Target_expr_resp_z.{case}_tp4k.tsv")


def auroc_of(out: Path, drug: str) -> float:
    table = pd.read_csv(out / "drugs.csv")
    return float(table.loc[table.drug == drug, "auroc"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scdeal_joint"))
    parser.add_argument("--out", type=Path, default=HERE / "joint_screen")
    parser.add_argument("--subset-every", type=int, default=12)
    parser.add_argument("--one-core", action="store_true",
                        help="only 1. and 2., this process and its children pinned to one core "
                             "(writes results_one_core.json)")
    args = parser.parse_args()
    if args.one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # inherited by the commands
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    env = {**os.environ, "SCDEAL_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(work / "numba")}
    gdsc2 = work / "gdsc2.json"
    gdsc2.write_text(json.dumps({"release": "GDSC2"}))

    def common(case: str) -> list[str]:
        return ["--target", target(args.data_dir, case), "--label-key", "response",
                "--gene-ids", "entrez", "--seed", "0", "--quiet"]

    def cold() -> None:
        shutil.rmtree(cache / "models", ignore_errors=True)

    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": {
        "cores": os.cpu_count(), "python": platform.python_version(),
        "load_before": os.getloadavg()}}
    timed(["run", "--drug", "PLX4720", *common("PLX4720"), "--out", str(work / "warmup")], env)

    cold()
    results["run_plx_s"] = timed(["run", "--drug", "PLX4720", *common("PLX4720"), "--out",
                                  str(work / "run_PLX4720")], env)
    cold()
    joint_all = work / "joint_all"
    results["joint_all_s"] = timed(["screen", "--strategy", "joint", "--drugs", "all",
                                    *common("PLX4720"), "--config", str(gdsc2), "--out",
                                    str(joint_all)], env)
    table = pd.read_csv(joint_all / "drugs.csv")
    suffix = "_one_core" if args.one_core else ""
    table.to_csv(args.out / f"drugs_joint_all_gdsc2{suffix}.csv", index=False)
    drugs = sorted(table[table.status == "ok"].drug)
    results["joint_all_drugs"] = len(drugs)
    results["ratio_joint_all_to_run"] = results["joint_all_s"] / results["run_plx_s"]
    print(f"joint, {len(drugs)} drugs: {results['joint_all_s']:.1f} s "
          f"({results['ratio_joint_all_to_run']:.2f}x one run)", flush=True)
    if args.one_core:
        results["cores_used"] = len(os.sched_getaffinity(0))
        (args.out / "results_one_core.json").write_text(json.dumps(results, indent=2))
        return

    subset = drugs[::args.subset_every]
    cold()
    per_drug = work / "per_drug_subset"
    results["per_drug_subset"] = subset
    results["per_drug_subset_s"] = timed(
        ["screen", "--strategy", "per-drug", "--drugs", ",".join(subset), *common("PLX4720"),
         "--config", str(gdsc2), "--workers", "2", "--out", str(per_drug)], env)
    results["per_drug_all_scaled_s"] = results["per_drug_subset_s"] * len(drugs) / len(subset)
    pd.read_csv(per_drug / "drugs.csv").to_csv(args.out / "drugs_per_drug_subset.csv",
                                               index=False)
    print(f"per-drug, {len(subset)} drugs: {results['per_drug_subset_s']:.1f} s", flush=True)

    cases = {}
    for case, drug in CASES.items():
        cold()
        out = work / f"joint_cases_{case}"
        seconds = timed(["screen", "--strategy", "joint", "--drugs", ",".join(CASES.values()),
                         *common(case), "--out", str(out)], env)
        cold()
        run = work / f"run_{case}"
        run_seconds = timed(["run", "--drug", drug, *common(case), "--out", str(run)], env)
        metrics = json.loads((run / "metrics.json").read_text())
        run_auroc = metrics.get("auroc", metrics.get("metrics", {}).get("auroc"))
        cases[case] = {"joint_auroc": auroc_of(out, drug), "per_drug_auroc": run_auroc,
                       "joint_reliable": bool(pd.read_csv(out / "drugs.csv").set_index(
                           "drug").loc[drug, "reliable"]),
                       "joint_s": seconds, "run_s": run_seconds}
        print(f"{case}: joint {cases[case]['joint_auroc']:.3f}, per-drug {run_auroc:.3f}",
              flush=True)
    results["cases"] = cases
    results["cases_plx_in_joint_all"] = auroc_of(joint_all, "PLX-4720")
    # Each other case's drug inside the all-GDSC2 joint screen on its own cells (its block
    # shares with other drugs there; section 17's criterion 3b).
    in_all = {"PLX4720": results["cases_plx_in_joint_all"]}
    for case, drug in CASES.items():
        if case == "PLX4720":
            continue
        cold()
        out = work / f"joint_all_{case}"
        timed(["screen", "--strategy", "joint", "--drugs", "all", *common(case), "--config",
               str(gdsc2), "--out", str(out)], env)
        in_all[case] = auroc_of(out, drug)
        print(f"{case} in the all-GDSC2 joint screen: {in_all[case]:.3f}", flush=True)
    results["cases_in_joint_all"] = in_all
    model = json.loads((joint_all / "model" / "config.json").read_text())
    results["blocks"] = model.get("blocks")
    results["mapk"] = mapk_ranks(table, args.out)
    results["load_after"] = os.getloadavg()
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def mapk_ranks(table: pd.DataFrame, out: Path) -> dict:
    """Ranks of the MAPK-pathway inhibitors by AUROC against the PLX4720 labels."""
    ok = table[table.status == "ok"].copy()
    ok["rank"] = ok.auroc.rank(ascending=False, method="min").astype(int)
    mapk = ok[ok.drug.isin(MAPK)].sort_values("rank")
    cutoff = 0.15 * len(ok)
    lines = [f"| drug | target | AUROC vs PLX4720 labels | rank of {len(ok)} | reliable |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.drug} | {MAPK[r.drug]} | {r.auroc:.3f} | {r.rank} | {r.reliable} |"
              for r in mapk.itertuples()]
    (out / "mapk.md").write_text("\n".join(lines) + "\n")
    return {"n_drugs": len(ok), "n_mapk": len(mapk), "worst_rank": int(mapk["rank"].max()),
            "top_15_percent_cutoff": cutoff,
            "all_in_top_15_percent": bool((mapk["rank"] <= cutoff).all()),
            "ranks": dict(zip(mapk.drug, mapk["rank"].astype(int).tolist(), strict=True))}


if __name__ == "__main__":
    main()
