"""How closely a joint screen reproduces per-drug fits, without any label (not a test).

A joint screen is meant to give, for every drug, what that drug's own ``scdeal run`` would
give, in a fraction of the time. This script measures exactly that, on real cells and WITHOUT
their labels (the label column is dropped as the file is read): for each dataset and each
drug of a fixed panel, the Spearman correlation over the cells between the joint model's
P(sensitive) for the drug and a per-drug :class:`scdeal.model.ScDEAL` fit's (both seed 0,
default configuration otherwise). A second per-drug fit (seed 5) gives the ceiling: how well
per-drug fits reproduce each other.

Datasets: the three SCAD targets in ``DATA/scad`` (cells only). Panel (fixed before any run):
the three case drugs and three drugs of other mechanisms labelled in GDSC2 (Cisplatin,
Docetaxel, Vorinostat). Variants: ``--variants`` values of ``joint_transfer``.

Writes ``OUT/rows.csv`` (dataset, drug, what, spearman) and ``OUT/summary.json`` (per variant:
mean over the dataset x drug pairs; paired difference with ``--baseline`` and its standard
error).

    SCDEAL_DATA_DIR=../shared/data/pypi python benchmarks/joint_fidelity.py \\
        --data-dir ../shared/data --out benchmarks/joint_fidelity
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
DATASETS = ("Gefitinib", "Afatinib", "PLX4720")
PANEL = ["Gefitinib", "Afatinib", "PLX-4720", "Cisplatin", "Docetaxel", "Vorinostat"]
REPLICATE_SEED = 5


def read_cells(data_dir: Path, case: str):
    from scdeal.data import read_target

    adata = read_target(data_dir / "scad" / f"Target_expr_resp_z.{case}_tp4k.tsv",
                        label_key="response")
    del adata.obs["response"]  # labels are never read here
    return adata


def per_drug(adata, bulk, drug: str, seed: int) -> pd.Series:
    from scdeal.model import ScDEAL

    model = ScDEAL(seed=seed).fit(adata, drug, bulk=bulk, gene_ids="entrez")
    return model.predict_proba(adata, gene_ids="entrez")


def joint(adata, bulk, variant: str) -> pd.DataFrame:
    from scdeal.model import JointScDEAL

    model = JointScDEAL(seed=0, joint_transfer=variant)
    model.fit(adata, PANEL, bulk=bulk, gene_ids="entrez")
    return model.predict_proba(adata, gene_ids="entrez")


def spearman(a: pd.Series, b: pd.Series) -> float:
    keep = a.notna() & b.notna()
    return float(spearmanr(a[keep], b[keep]).statistic)


def summarise(rows: pd.DataFrame, variants: list[str], baseline: str) -> dict:
    wide = rows.pivot_table(index=["dataset", "drug"], columns="what", values="spearman")
    out = {"pairs": len(wide), "mean": wide.mean().round(4).to_dict()}
    for v in variants:
        if v == baseline or baseline not in wide:
            continue
        diff = wide[v] - wide[baseline]
        out[f"{v}_minus_{baseline}"] = {
            "mean": round(float(diff.mean()), 4),
            "se": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 4),
            "better": int((diff > 0).sum()), "worse": int((diff < 0).sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=HERE / "joint_fidelity")
    parser.add_argument("--variants", default="shared,cells,summed,none")
    parser.add_argument("--baseline", default="shared", help="the variant the others are "
                        "paired with")
    args = parser.parse_args()
    logging.getLogger("scdeal").setLevel(logging.ERROR)
    from scdeal.data import load_gdsc

    variants = args.variants.split(",")
    bulk = load_gdsc()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, seconds = [], {}
    started = time.time()
    for case in DATASETS:
        adata = read_cells(args.data_dir, case)
        reference = {d: per_drug(adata, bulk, d, 0) for d in PANEL}
        t0 = time.perf_counter()
        for drug in PANEL:
            again = per_drug(adata, bulk, drug, REPLICATE_SEED)
            rows.append((case, drug, "per_drug_seed5", spearman(again, reference[drug])))
        seconds.setdefault("per_drug_6_drugs", []).append(time.perf_counter() - t0)
        for variant in variants:
            t0 = time.perf_counter()
            table = joint(adata, bulk, variant)
            seconds.setdefault(variant, []).append(time.perf_counter() - t0)
            for drug in PANEL:
                rows.append((case, drug, variant, spearman(table[drug], reference[drug])))
        print(case, "done", flush=True)
    table = pd.DataFrame(rows, columns=["dataset", "drug", "what", "spearman"])
    table.to_csv(args.out / "rows.csv", index=False, float_format="%.4f")
    summary = summarise(table, variants, args.baseline)
    summary.update({"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
                    "python": platform.python_version(), "cores": os.cpu_count(),
                    "fit_seconds_median": {k: round(float(np.median(v)), 1)
                                           for k, v in seconds.items()}})
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
