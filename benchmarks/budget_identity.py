"""Do the training-budget defaults change anything on the shared cases? (not a test)

Runs ``scdeal run`` (default configuration, empty cache) on the three shared real cases with
this checkout and with the source of a baseline commit (before the budget), each in a fresh
process, and compares every cell's P(sensitive) and the AUROC. The cases are smaller than
every cap (at most 120 cells, 1,393 genes), so the predictions should be identical.
Results: benchmarks/budget_identity.json.

Usage (from the repository root):
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_identity.py --data-dir ../shared/data --baseline 94c7f22
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CASES = {"Gefitinib": "Gefitinib", "Afatinib": "Afatinib", "PLX4720": "PLX4720"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--baseline", default="94c7f22")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scdeal_budget_identity"))
    args = parser.parse_args()
    import anndata as ad

    shutil.rmtree(args.work, ignore_errors=True)
    base_src = args.work / "baseline"
    base_src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.baseline, "src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive, check=True)
    results = {"baseline": args.baseline, "cases": {}}
    for case, drug in CASES.items():
        target = args.data_dir / "scad" / f"Target_expr_resp_z.{case}_tp4k.tsv"
        runs = {}
        for name, pythonpath in (("baseline", str(base_src / "src")), ("this", None)):
            env = {**os.environ, "SCDEAL_CACHE_DIR": str(args.work / f"cache_{name}")}
            if pythonpath:
                env["PYTHONPATH"] = pythonpath
            out = args.work / f"{case}_{name}"
            subprocess.run([sys.executable, "-m", "scdeal", "run", "--drug", drug, "--target",
                            str(target), "--gene-ids", "entrez", "--label-key", "response",
                            "--out", str(out), "--quiet"], env=env, check=True,
                           capture_output=True)
            runs[name] = (ad.read_h5ad(out / "predictions.h5ad").obs["sens_preds"].to_numpy(),
                          json.loads((out / "metrics.json").read_text())["auroc"])
        diff = float(np.max(np.abs(runs["this"][0] - runs["baseline"][0])))
        results["cases"][case] = {"max_abs_difference": diff,
                                  "auroc_baseline": runs["baseline"][1],
                                  "auroc_this": runs["this"][1]}
        print(case, json.dumps(results["cases"][case]), flush=True)
    (HERE / "budget_identity.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
