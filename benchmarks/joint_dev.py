"""Joint against per-drug on the development benchmark (not a test): the summary of three
runs of ``dev_drugs.py`` (the 30 simulated GDSC2 drugs of section 5), per the criteria written
in benchmarks/README.md section 11 before the results:

    python benchmarks/dev_drugs.py --out OUT/joint_linear --drugs 30 --seeds 2 --joint --set 'predictor_dims=[]'
    python benchmarks/dev_drugs.py --out OUT/joint_hidden --drugs 30 --seeds 1 --joint
    python benchmarks/dev_drugs.py --out OUT/per_drug --drugs 30 --seeds 2
    python benchmarks/joint_dev.py OUT

Design (a) hidden layers against (b) linear head: mean AUROC over the seed-0 fits of both.
The chosen design against per-drug: paired by drug and seed, mean difference and its standard
error. Writes benchmarks/joint_dev/{summary.md, results.json} and copies each run's rows.csv.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def paired(a: pd.DataFrame, b: pd.DataFrame, column: str = "auroc") -> dict:
    merged = a.merge(b, on=["drug", "seed"], suffixes=("_a", "_b"))
    diff = merged[f"{column}_a"] - merged[f"{column}_b"]
    return {"n": len(merged), "mean_a": float(merged[f"{column}_a"].mean()),
            "mean_b": float(merged[f"{column}_b"].mean()), "mean_difference": float(diff.mean()),
            "se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "a_better": int((diff > 0).sum()), "b_better": int((diff < 0).sum())}


def flags(rows: pd.DataFrame) -> dict:
    reliable = rows.reliable.astype(str) == "True"
    return {"coverage": float(reliable.mean()),
            "reliable_mean_auroc": float(rows.auroc[reliable].mean()) if reliable.any() else None,
            "reliable_below_0_6": int((rows.auroc[reliable] < 0.6).sum()),
            "below_0_6_flagged_reliable_of": int((rows.auroc < 0.6).sum())}


def main(argv: list[str]) -> int:
    src = Path(argv[0])
    out = HERE / "joint_dev"
    out.mkdir(exist_ok=True)
    runs = {}
    for name in ("joint_linear", "joint_hidden", "per_drug"):
        rows = pd.read_csv(src / name / "rows.csv")
        rows["drug"] = rows["drug"].astype(str)
        runs[name] = rows
        shutil.copy(src / name / "rows.csv", out / f"rows_{name}.csv")
    seed0 = {k: v[v.seed == 0] for k, v in runs.items()}
    design = paired(seed0["joint_hidden"], seed0["joint_linear"])
    chosen = "joint_hidden" if design["mean_a"] > design["mean_b"] else "joint_linear"
    versus = paired(runs[chosen], runs["per_drug"])
    results = {"design_seed0_hidden_vs_linear": design, "chosen": chosen,
               "chosen_vs_per_drug": versus,
               "criterion_1_met": versus["mean_difference"] >= -0.01,
               "flags": {k: flags(v) for k, v in runs.items()},
               "wall_s_median": {k: float(v.wall_s.median()) for k, v in runs.items()}}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    lines = [
        "| comparison | fits | mean AUROC | mean AUROC | paired difference (SE) | better / worse |",
        "|---|---|---|---|---|---|",
        f"| (a) hidden vs (b) linear head, seed 0 | {design['n']} | {design['mean_a']:.3f} | "
        f"{design['mean_b']:.3f} | {design['mean_difference']:+.3f} ({design['se']:.3f}) | "
        f"{design['a_better']} / {design['b_better']} |",
        f"| chosen ({chosen}) vs per-drug | {versus['n']} | {versus['mean_a']:.3f} | "
        f"{versus['mean_b']:.3f} | {versus['mean_difference']:+.3f} ({versus['se']:.3f}) | "
        f"{versus['a_better']} / {versus['b_better']} |",
        "",
        "| run | fits | reliable (coverage) | mean AUROC of reliable | reliable below 0.6 | "
        "median s per fit |", "|---|---|---|---|---|---|"]
    for name, rows in runs.items():
        f = results["flags"][name]
        rel = f["reliable_mean_auroc"]
        lines.append(f"| {name} | {len(rows)} | {f['coverage']:.0%} | "
                     f"{'' if rel is None else f'{rel:.3f}'} | {f['reliable_below_0_6']} | "
                     f"{results['wall_s_median'][name]:.0f} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps({k: results[k] for k in ("chosen", "criterion_1_met")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
