"""Do the training-budget defaults change anything on the shared cases? (not a test)

Runs ``scdeal run`` (default configuration, empty cache) on the three shared real cases with
this checkout and with the source of a baseline commit (before the budget), each in a fresh
process, and compares every cell's P(sensitive) and the AUROC. The cases are smaller than
every cap (at most 120 cells, 1,393 genes), so the predictions should be identical.
Results: benchmarks/budget_identity.json.

With ``--droplet TABLE`` (the table of droplet.py) it also runs that table (genes by cells, no
labels: only the probabilities are compared); ``--out`` names the results file. The check that
the shared cells' stage, trained beside the members, changed nothing (a7544f9 is the last
version that trained it first): benchmarks/overlap_identity.json. The check that the
transfer's 256-cell epochs, the cells held densely and the multiplied mask change nothing
on the shared cases (521e750 is the version before them): benchmarks/transfer_identity.json.

Usage (from the repository root):
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_identity.py --data-dir ../shared/data --baseline 94c7f22
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_identity.py --data-dir ../shared/data --baseline a7544f9 \\
        --droplet /tmp/scdeal_droplet/droplet_counts.txt.gz --out overlap_identity.json
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_identity.py --data-dir ../shared/data --baseline 521e750 \\
        --droplet /tmp/scdeal_droplet/droplet_counts.txt.gz --out transfer_identity.json
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
    parser.add_argument("--droplet", type=Path, help="the droplet table of droplet.py")
    parser.add_argument("--out", default="budget_identity.json", help="file in benchmarks/")
    args = parser.parse_args()
    import anndata as ad

    shutil.rmtree(args.work, ignore_errors=True)
    base_src = args.work / "baseline"
    base_src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.baseline, "src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive, check=True)
    results = {"baseline": args.baseline, "cases": {}}
    cases = {case: (drug, args.data_dir / "scad" / f"Target_expr_resp_z.{case}_tp4k.tsv",
                    ["--gene-ids", "entrez", "--label-key", "response"])
             for case, drug in CASES.items()}
    if args.droplet:
        cases["droplet"] = ("Erlotinib", args.droplet, ["--orientation", "genes-by-cells"])
    for case, (drug, target, options) in cases.items():
        runs = {}
        for name, pythonpath in (("baseline", str(base_src / "src")), ("this", None)):
            env = {**os.environ, "SCDEAL_CACHE_DIR": str(args.work / f"cache_{name}")}
            if pythonpath:
                env["PYTHONPATH"] = pythonpath
            out = args.work / f"{case}_{name}"
            subprocess.run([sys.executable, "-m", "scdeal", "run", "--drug", drug, "--target",
                            str(target), *options, "--out", str(out), "--quiet"], env=env,
                           check=True, capture_output=True)
            metrics = out / "metrics.json"
            runs[name] = (ad.read_h5ad(out / "predictions.h5ad").obs["sens_preds"].to_numpy(),
                          json.loads(metrics.read_text())["auroc"] if metrics.exists() else None)
        this, base = runs["this"][0], runs["baseline"][0]
        # Barcodes that fail QC (droplet table) have no prediction in either run.
        same_missing = bool(np.array_equal(np.isnan(this), np.isnan(base)))
        diff = float(np.nanmax(np.abs(this - base))) if same_missing else float("nan")
        results["cases"][case] = {"max_abs_difference": diff,
                                  "auroc_baseline": runs["baseline"][1],
                                  "auroc_this": runs["this"][1]}
        print(case, json.dumps(results["cases"][case]), flush=True)
    (HERE / args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
