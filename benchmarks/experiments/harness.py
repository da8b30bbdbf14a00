"""Development experiments on the three SCAD cases (single models): AUROC after and before
transfer, bulk test AUROC, chosen transfer epoch. Target labels are used for scoring only.

Usage: OMP_NUM_THREADS=1 SCDEAL_DATA_DIR=... SCDEAL_SHARED_DATA=../shared/data python harness.py '{"dropout": 0.3}' ..."""
import json, os, sys, time, warnings
import torch; torch.set_num_threads(1)
warnings.filterwarnings("ignore")
import numpy as np
from scdeal.data import load_gdsc
from scdeal.data.singlecell import read_target
from scdeal.model import ScDEAL, ScDealConfig
import logging; logging.disable(logging.WARNING)

DATA = os.environ.get("SCDEAL_SHARED_DATA", "../shared/data")
CASES = {"Gefitinib": "Gefitinib", "Afatinib": "Afatinib", "PLX4720": "PLX-4720"}
bulk = load_gdsc()
targets = {c: read_target(f"{DATA}/scad/Target_expr_resp_z.{c}_tp4k.tsv", label_key="response") for c in CASES}

def run(overrides, seeds=(0, 1, 2), cases=CASES, tag=""):
    rows = []
    for case, drug in cases.items():
        for s in seeds:
            ad = targets[case].copy()
            t = time.time()
            m = ScDEAL(ScDealConfig(**{"n_models": 1, **overrides}, seed=s))
            m.fit(ad, drug, bulk=bulk, gene_ids="entrez")
            m.predict(ad, label_key="response")
            u = ad.uns["scdeal"]
            tr = [h for h in m.training["history"] if h["stage"] == "transfer"]
            rows.append(dict(case=case, seed=s, post=u["metrics"]["auroc"], pre=u["metrics_before_transfer"]["auroc"],
                             bulk=m.training["bulk_test_metrics"]["auroc"], best=tr[0]["best_epoch"] if tr else -1,
                             t=time.time() - t))
    import pandas as pd
    df = pd.DataFrame(rows)
    g = df.groupby("case")[["post", "pre", "bulk", "best", "t"]].mean().round(3)
    print(f"== {tag} {json.dumps(overrides)}")
    print(g.to_string())
    print("MEAN post %.3f pre %.3f bulk %.3f" % (g.post.mean(), g.pre.mean(), g.bulk.mean()), flush=True)
    return df

if __name__ == "__main__":
    for arg in sys.argv[1:]:
        run(json.loads(arg))
