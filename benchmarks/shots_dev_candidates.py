# ruff: noqa: E702, E501 - exploratory script, kept as it was run
"""The combinations of labelled cells and transfer tried on the development benchmark
(benchmarks/README.md section 13, the candidates table; exploratory, not the package's code).
The first run builds a cache of the re-simulated cells (argument: its path).

    cd benchmarks && SCDEAL_DATA_DIR=../../shared/data/pypi python shots_dev_candidates.py
"""
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from shots_dev import HERE, SHOTS, cells_of, standardised  # same folder
from sklearn.metrics import roc_auc_score

from scdeal.benchmark.runner import draw_shots
from scdeal.data import load_gdsc
from scdeal.model.labelled import _regression, leave_one_out
from scdeal.model.prepare import bulk_expression_on_symbols

cache = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/shots_dev_cells.pkl")
if cache.exists():
    data = pickle.loads(cache.read_bytes())
else:
    bulk = load_gdsc(); symbols = list(bulk_expression_on_symbols(bulk)[0].columns)
    data = []
    for path in sorted((HERE / "dev_drugs_current" / "fits").glob("*.npz")):
        with np.load(path, allow_pickle=False) as npz:
            post, y = npz["post"], npz["y"]; meta = json.loads(str(npz["meta"]))
        X, names = standardised(cells_of(bulk, meta["drug"], meta["seed"], meta)[0], symbols)
        data.append((meta, post, y, X, list(names)))
    cache.write_bytes(pickle.dumps(data))

def logit(p):
    p = np.clip(p, 1e-4, 1 - 1e-4); return np.log(p / (1 - p))
def z(v, ref):
    return (v - ref.mean()) / (ref.std() + 1e-12)
def auc(y, p):
    return roc_auc_score(y, p) if 0 < y.sum() < len(y) else None

rows = []
for meta, post, y, X, names in data:
    truth = pd.Series(y.astype(float), index=names)
    A = post.mean(0)
    for k in SHOTS:
        shots = draw_shots(truth, k, meta["seed"], meta["drug"])
        pos = pd.Index(names).get_indexer(shots.index); lab = shots.to_numpy().astype(int)
        rest = np.setdiff1d(np.arange(len(y)), pos)
        reg = _regression(X[pos], lab, 0)
        Bd = reg.decision_function(X)
        zA, zB = z(logit(A), logit(A)), z(Bd, Bd)
        enough = k >= 2
        loo = leave_one_out(X[pos], lab) if enough else None
        zloo = z(logit(loo), logit(reg.predict_proba(X)[:, 1])) if enough else None
        aA = auc(lab, A[pos])
        cands = {}
        cands["label_free"] = A
        cands["logreg_shots"] = Bd
        cands["zavg"] = 0.5 * zA + 0.5 * zB
        # LOO selection among A, avg, B on z scale, no flip, ties -> avg
        if enough:
            sc = {w: auc(lab, w * zA[pos] + (1 - w) * zloo) for w in (0.5, 0.0, 1.0)}
            best = max(sc.values()); w = next(w for w in (0.5, 0.0, 1.0) if sc[w] >= best - 1e-12)
        else:
            w = 0.5
        cands["zsel"] = w * zA + (1 - w) * zB
        # prefer A unless LOO strictly better by a margin
        if enough:
            w2 = 1.0 if sc[1.0] >= max(sc[0.5], sc[0.0]) - 0.1 else (0.5 if sc[0.5] >= sc[0.0] else 0.0)
        else:
            w2 = 1.0
        cands["zsel_preferA"] = w2 * zA + (1 - w2) * zB
        # flip only on strong evidence (AUROC 0 on labelled, K>=3)
        flipA = -zA if (aA is not None and aA == 0.0 and k >= 3) else zA
        cands["zavg_flip0"] = 0.5 * flipA + 0.5 * zB
        # weight grows with K: w = 1/(1+K/5)
        wk = 1 / (1 + k / 5)
        cands["zK"] = wk * zA + (1 - wk) * zB
        for name, s in cands.items():
            rows.append({"k": k, "rule": name, "auroc": roc_auc_score(y[rest], s[rest])})
t = pd.DataFrame(rows).pivot_table(index="rule", columns="k", values="auroc", aggfunc="mean")
best = t.loc[["label_free", "logreg_shots"]].max()
print(t.round(3)); print("margin vs max:"); print((t - best).round(3))
