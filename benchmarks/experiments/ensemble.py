"""Ensemble check: K single models (seeds 0..K-1) per case vs the AUROC of their averaged
probabilities. Usage: python ensemble.py '{json overrides}' K"""
import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score
import harness
from scdeal.model import ScDEAL, ScDealConfig
over = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
K = int(sys.argv[2]) if len(sys.argv) > 2 else 5
res = {}
for case, drug in harness.CASES.items():
    ad = harness.targets[case]
    y = ad.obs["response"].astype(int).to_numpy()
    probs = []
    for s in range(K):
        m = ScDEAL(ScDealConfig(**{"n_models": 1, **over}, seed=s)).fit(ad.copy(), drug, bulk=harness.bulk, gene_ids="entrez")
        probs.append(m.predict_proba(ad).to_numpy())
    singles = [roc_auc_score(y, p) for p in probs]
    ens = roc_auc_score(y, np.mean(probs, 0))
    ens3 = [roc_auc_score(y, np.mean(probs[i:i+3], 0)) for i in range(K-2)]
    res[case] = (np.mean(singles), ens, np.mean(ens3))
    print(case, "singles", np.round(singles, 3), "mean %.3f ens%d %.3f ens3-mean %.3f" % (np.mean(singles), K, ens, np.mean(ens3)), flush=True)
print("MEAN singles %.3f ens %.3f ens3 %.3f" % tuple(np.mean([r[i] for r in res.values()]) for i in range(3)))
