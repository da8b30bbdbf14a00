"""The grid that chose the training-budget defaults (not a test): ``max_genes`` x
``max_cells_per_epoch`` x seed on the simulated droplet cells of [droplet.py](droplet.py).

Each fit runs in a fresh process with an explicit configuration (everything else default)
and is scored by AUROC on the simulated cells that pass QC against their lines' GDSC labels
(those lines are also GDSC training lines: the AUROCs compare settings with each other only).
The committed rows (budget_grid/results.jsonl) were run at commit 4b45eef (the first four
rows on the working tree just before it: the same training, the target then held densely),
before the defaults were set, while other work shared the 2 cores (times only indicative); a
bulk extractor read from the cache shows as ``bulk_extractor: 0.0``.

Usage (from the repository root, after droplet.py has written its table):
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_grid.py --table /tmp/scdeal_droplet/droplet_counts.txt.gz \\
        --genes all 3000 2000 --cells-per-epoch 100000 1024 512 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

FIT = """
import json, resource, sys, time
import anndata as ad
from sklearn.metrics import roc_auc_score
from scdeal import ScDEAL
genes, cap, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
genes = None if genes == "all" else int(genes)
a = ad.read_h5ad(sys.argv[1])
t = time.perf_counter()
m = ScDEAL(max_genes=genes, max_cells_per_epoch=cap, seed=seed)
m.fit(a, "Erlotinib", gene_ids="symbol")
fit_s = time.perf_counter() - t
p = m.predict_proba(a)
truth = a.obs["truth"].reindex(p.index)
ok = truth.notna()
print(json.dumps({"genes": genes, "cap": cap, "seed": seed, "fit_s": round(fit_s, 1),
                  "auroc": round(roc_auc_score(truth[ok], p[ok]), 4),
                  "n_genes": len(m.target_genes), "reliable": m.reliability.get("reliable"),
                  "timings": {k: round(v, 1) for k, v in m.training["timings_s"].items()},
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--labels", type=Path, default=None,
                        help="labels.csv beside the table (default)")
    parser.add_argument("--genes", nargs="+", default=["all", "3000", "2000"])
    parser.add_argument("--cells-per-epoch", nargs="+", type=int, default=[100000, 1024, 512])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/scdeal_budget_grid"))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "budget_grid" / "results.jsonl")
    args = parser.parse_args()
    import pandas as pd

    from scdeal.data.singlecell import read_target

    args.work.mkdir(parents=True, exist_ok=True)
    cells = args.work / "droplet.h5ad"
    adata = read_target(args.table, orientation="genes_by_cells")
    labels = pd.read_csv(args.labels or args.table.with_name("labels.csv"))
    adata.obs["truth"] = labels.set_index("barcode")["sensitive"].reindex(
        adata.obs_names).astype(float)
    adata.write_h5ad(cells)
    rows = []
    for genes in args.genes:
        for cap in args.cells_per_epoch:
            for seed in args.seeds:
                out = subprocess.run([sys.executable, "-c", FIT, str(cells), genes, str(cap),
                                      str(seed)], capture_output=True, text=True, check=True)
                rows.append(out.stdout.strip().splitlines()[-1])
                print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(rows) + "\n")
    print(json.dumps({"rows": len(rows)}))


if __name__ == "__main__":
    main()
