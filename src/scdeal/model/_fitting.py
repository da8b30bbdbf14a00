"""Training one ensemble member: the four scDEAL stages in order, on its own bulk split.

1. bulk extractor M_b (reconstruction), 2. predictor P on M_b (GDSC labels of the drug),
3. single-cell extractor M_s (reconstruction, started from M_b's weights in a shared gene
space), 4. DaNN transfer (with the cluster-consistency term over Leiden clusters of the cells).
The loops themselves are in :mod:`scdeal.model._training`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from ..data.gdsc import BulkData
from ..data.neighbors import neighbors
from ..nn import (
    DrugResponseNet,
    ExtractorConfig,
    FeatureExtractor,
    PredictorConfig,
    ResponsePredictor,
    config_for,
)
from . import _training as train
from . import prepare as prep
from ._progress import _Progress
from .config import ScDealConfig
from .metrics import classification_metrics


@dataclass
class Member:
    """One independently seeded scDEAL network set (an ensemble has several)."""

    bulk_net: DrugResponseNet
    target_net: DrugResponseNet
    pretransfer_net: DrugResponseNet
    bulk_scaler: prep.Standardizer


def build_predictor(config: ScDealConfig) -> ResponsePredictor:
    return ResponsePredictor.from_config(config_for(
        PredictorConfig, config, hidden_dims=config.predictor_dims))


def build_extractor(config: ScDealConfig, n_genes: int) -> FeatureExtractor:
    return FeatureExtractor.from_config(config_for(
        ExtractorConfig, config, n_genes=n_genes, kind=config.extractor))


def leiden_clusters(extractor: FeatureExtractor, X: torch.Tensor, seed: int,
                    resolution: float) -> torch.Tensor:
    """Leiden clusters of the target cells on M_s's pre-trained embedding."""
    import scanpy as sc

    extractor.eval()
    with torch.no_grad():
        emb = extractor.encode(X).cpu().numpy()
    ad = AnnData(np.zeros((len(emb), 1), dtype=np.float32))
    ad.obsm["X_emb"] = emb
    neighbors(ad, use_rep="X_emb", n_neighbors=min(15, len(emb) - 1), random_state=seed)
    sc.tl.leiden(ad, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                 directed=False)
    return torch.as_tensor(ad.obs["leiden"].astype(int).to_numpy(), device=X.device)


def fit_member(model, bulk: BulkData, bulk_expr: pd.DataFrame, Xs: np.ndarray, seed: int,
               device: torch.device, bar: _Progress) -> tuple[Member, dict]:
    """Train one ensemble member of ``model`` (its configuration, drug and genes): its own
    bulk split, initialisation and batches."""
    cfg = model.config.replace(seed=seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    generator = torch.Generator().manual_seed(seed)
    timings: dict[str, float] = {}
    split = prep.bulk_split(bulk, model.drug, cfg, bulk_expr)

    # Bulk matrices: scaler fitted on the training split only; resampling of train only.
    Xb = split.X.to_numpy(np.float32)
    yb = split.y.to_numpy()
    bulk_scaler = prep.Standardizer.fit(Xb[split.train])
    Xb = bulk_scaler.transform(Xb)
    Xb_train_rs, yb_train_rs = prep.resample(Xb[split.train], yb[split.train], cfg.sampling,
                                             seed)
    order = np.random.default_rng(seed).permutation(len(Xs))
    n_val = max(2, int(round(cfg.target_val_fraction * len(Xs))))
    s_val, s_train = np.sort(order[:n_val]), np.sort(order[n_val:])

    def tensor(a):
        return torch.as_tensor(a, device=device)

    tb = {k: tensor(v) for k, v in {
        "train": Xb[split.train], "val": Xb[split.val], "test": Xb[split.test],
        "train_rs": Xb_train_rs}.items()}
    yt = {k: torch.as_tensor(v, dtype=torch.long, device=device) for k, v in {
        "train_rs": yb_train_rs, "val": yb[split.val], "test": yb[split.test]}.items()}
    ts_train, ts_val, ts_all = tensor(Xs[s_train]), tensor(Xs[s_val]), tensor(Xs)

    # 1. Bulk extractor M_b.
    t0 = time.perf_counter()
    bulk_extractor = build_extractor(cfg, len(model.bulk_genes)).to(device)
    hist_b = train.pretrain_extractor(bulk_extractor, tb["train"], tb["val"], cfg, generator,
                                      stage="bulk_extractor", progress=bar)
    timings["bulk_extractor"] = time.perf_counter() - t0

    # 2. Predictor P on M_b (M_b fine-tuned with it).
    t0 = time.perf_counter()
    predictor = build_predictor(cfg).to(device)
    bulk_net = DrugResponseNet(bulk_extractor, predictor)
    hist_p = train.train_predictor(bulk_net, tb["train_rs"], yt["train_rs"], tb["val"],
                                   yt["val"], cfg, generator, progress=bar)
    bulk_test = classification_metrics(
        yb[split.test], bulk_net.predict_proba(tb["test"]).cpu().numpy())
    timings["bulk_predictor"] = time.perf_counter() - t0

    # 3. Single-cell extractor M_s.
    t0 = time.perf_counter()
    target_extractor = build_extractor(cfg, len(model.target_genes)).to(device)
    if cfg.gene_space == "shared" and cfg.init_target_from_bulk:
        target_extractor.load_state_dict(bulk_extractor.state_dict())
    hist_s = train.pretrain_extractor(target_extractor, ts_train, ts_val, cfg, generator,
                                      stage="target_extractor", progress=bar)
    pretransfer_net = DrugResponseNet(copy.deepcopy(target_extractor),
                                      copy.deepcopy(predictor)).eval()
    timings["target_extractor"] = time.perf_counter() - t0

    # 4. DaNN transfer (clustering timed apart: it does not scale like an epoch).
    hist_t = None
    clusters = None
    if cfg.transfer and cfg.cluster_weight > 0:
        t0 = time.perf_counter()
        clusters = leiden_clusters(target_extractor, ts_all, seed, cfg.cluster_resolution)
        timings["clusters"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if cfg.transfer:
        anchor = (pretransfer_net.predict_proba(ts_all) if cfg.consistency_weight > 0
                  else None)
        hist_t = train.train_transfer(
            bulk_net, target_extractor, tb["train_rs"], yt["train_rs"], tb["val"],
            yt["val"], ts_train, ts_val, cfg, generator,
            clusters_train=None if clusters is None else clusters[s_train],
            clusters_val=None if clusters is None else clusters[s_val],
            anchor_train=None if anchor is None else anchor[s_train],
            anchor_val=None if anchor is None else anchor[s_val], progress=bar)
    target_net = DrugResponseNet(target_extractor, bulk_net.predictor).eval()
    bulk_net.eval()
    timings["transfer"] = time.perf_counter() - t0

    report = {
        "release": split.release,
        "binarization": {"method": cfg.binarization, "branch": split.binarization,
                         "cutoff": split.cutoff, "metric": cfg.metric},
        "bulk_lines": {"sensitive": int(split.y.sum()),
                       "resistant": int((split.y == 0).sum()),
                       "train": len(split.train), "val": len(split.val),
                       "test": len(split.test)},
        "bulk_test_metrics": bulk_test,
        "history": [h.to_dict() for h in (hist_b, hist_p, hist_s, hist_t) if h is not None],
        "n_clusters": None if clusters is None else int(clusters.max()) + 1,
        "timings_s": timings,
    }
    return Member(bulk_net, target_net, pretransfer_net, bulk_scaler), report
