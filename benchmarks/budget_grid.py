"""The grid that chose the training-budget defaults (not a test): ``max_genes`` x
``max_cells_per_epoch`` x seed on the simulated droplet cells of [droplet.py](droplet.py).

Each fit runs in a fresh process with an explicit configuration (everything else default)
and is scored by AUROC on the simulated cells that pass QC against their lines' GDSC labels
(those lines are also GDSC training lines: the AUROCs compare settings with each other only).
The committed rows (budget_grid/results.jsonl) were run at commit 4b45eef (the first four
rows on the working tree just before it: the same training, the target then held densely),
before the defaults were set, while other work shared the 2 cores (times only indicative); a
bulk extractor read from the cache shows as ``bulk_extractor: 0.0``.

``--transfer-cells-per-epoch`` adds ``max_cells_per_transfer_epoch`` to the grid (rows in
budget_grid/transfer_epochs.jsonl: 1,024, the transfer's epochs before that field existed,
against 256, on the Erlotinib table of droplet.py and on a second table simulated the same
way from 24 lines labelled for Lapatinib, ``--simulate Lapatinib``).

Usage (from the repository root, after droplet.py has written its table):
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_grid.py --table /tmp/scdeal_droplet/droplet_counts.txt.gz \\
        --genes all 3000 2000 --cells-per-epoch 100000 1024 512 --seeds 0 1 2
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_grid.py --table /tmp/scdeal_droplet/droplet_counts.txt.gz \\
        --genes 3000 --cells-per-epoch 1024 --transfer-cells-per-epoch 1024 256 \\
        --out benchmarks/budget_grid/transfer_epochs.jsonl
    SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta \\
        python benchmarks/budget_grid.py --simulate Lapatinib --work /tmp/scdeal_grid_lapatinib \\
        --genes 3000 --cells-per-epoch 1024 --transfer-cells-per-epoch 1024 256 \\
        --out benchmarks/budget_grid/transfer_epochs.jsonl --append
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
genes, cap, seed, drug = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
transfer = None if sys.argv[6] == "same" else int(sys.argv[6])
genes = None if genes == "all" else int(genes)
a = ad.read_h5ad(sys.argv[1])
t = time.perf_counter()
m = ScDEAL(max_genes=genes, max_cells_per_epoch=cap, seed=seed,
           max_cells_per_transfer_epoch=cap if transfer is None else transfer)
m.fit(a, drug, gene_ids="symbol")
fit_s = time.perf_counter() - t
p = m.predict_proba(a)
truth = a.obs["truth"].reindex(p.index)
ok = truth.notna()
extra = {} if transfer is None else {"drug": drug, "transfer_cap": transfer}
print(json.dumps({"genes": genes, "cap": cap, **extra, "seed": seed, "fit_s": round(fit_s, 1),
                  "auroc": round(roc_auc_score(truth[ok], p[ok]), 4),
                  "n_genes": len(m.target_genes), "reliable": m.reliability.get("reliable"),
                  "timings": {k: round(v, 1) for k, v in m.training["timings_s"].items()},
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path,
                        help="a table written by droplet.py (or give --simulate)")
    parser.add_argument("--simulate", metavar="DRUG",
                        help="write a table as droplet.py does, from lines labelled for DRUG, "
                             "into --work, and fit that drug")
    parser.add_argument("--labels", type=Path, default=None,
                        help="labels.csv beside the table (default)")
    parser.add_argument("--genes", nargs="+", default=["all", "3000", "2000"])
    parser.add_argument("--cells-per-epoch", nargs="+", type=int, default=[100000, 1024, 512])
    parser.add_argument("--transfer-cells-per-epoch", nargs="+", default=["same"],
                        help="max_cells_per_transfer_epoch values ('same': as the cell epochs)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/scdeal_budget_grid"))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "budget_grid" / "results.jsonl")
    parser.add_argument("--append", action="store_true", help="add the rows to --out")
    args = parser.parse_args()
    import pandas as pd

    from scdeal.data.singlecell import read_target

    if (args.table is None) == (args.simulate is None):
        parser.error("give --table or --simulate")
    args.work.mkdir(parents=True, exist_ok=True)
    drug = args.simulate or "Erlotinib"
    if args.simulate:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from droplet import simulate

        args.table = args.work / "droplet_counts.txt.gz"
        simulate(args.table, drug=args.simulate)
    cells = args.work / "droplet.h5ad"
    adata = read_target(args.table, orientation="genes_by_cells")
    labels = pd.read_csv(args.labels or args.table.with_name("labels.csv"))
    adata.obs["truth"] = labels.set_index("barcode")["sensitive"].reindex(
        adata.obs_names).astype(float)
    adata.write_h5ad(cells)
    rows = []
    for genes in args.genes:
        for cap in args.cells_per_epoch:
            for transfer in args.transfer_cells_per_epoch:
                for seed in args.seeds:
                    out = subprocess.run([sys.executable, "-c", FIT, str(cells), genes,
                                          str(cap), str(seed), drug, transfer],
                                         capture_output=True, text=True, check=True)
                    rows.append(out.stdout.strip().splitlines()[-1])
                    print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    before = args.out.read_text() if args.append and args.out.exists() else ""
    args.out.write_text(before + "\n".join(rows) + "\n")
    print(json.dumps({"rows": len(rows)}))


if __name__ == "__main__":
    main()
