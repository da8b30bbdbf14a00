"""Training: the four scDEAL stages.

Drug-independent, once per fit and cached (:func:`fit_shared`, :mod:`scdeal.model.cache`):
the bulk extractor M_b (reconstruction, on every GDSC line, no labels) and, when the cluster
term needs them, the Leiden clusters of the cells on a cell extractor pre-trained from M_b.
Per ensemble member, on its own bulk split (:func:`fit_member`): the predictor P on a copy of
M_b (GDSC labels of the drug), the member's own cell extractor M_s pre-trained from that
fine-tuned M_b (in a shared gene space; otherwise a copy of the shared one), and the DaNN
transfer. The loops themselves are in :mod:`scdeal.model._training`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from ..data.neighbors import neighbors
from ..nn import (
    DrugResponseNet,
    ExtractorConfig,
    FeatureExtractor,
    JointDrugNet,
    PredictorConfig,
    ResponsePredictor,
    config_for,
    use_generator,
)
from . import _training as train
from . import prepare as prep
from ._progress import _Progress
from .cache_keys import stage_key
from .config import ScDealConfig
from .joint_labels import JointLabels, joint_split, per_drug_auroc
from .metrics import classification_metrics


@dataclass
class Member:
    """One separately seeded scDEAL network set (an ensemble has several)."""

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


def encode_rows(extractor: FeatureExtractor, X: prep.CellRows,
                block: int = prep.BLOCK_ROWS) -> np.ndarray:
    """The embedding of every row of ``X``, a block at a time."""
    extractor.eval()
    device = next(extractor.parameters()).device
    with torch.no_grad():
        return np.concatenate([extractor.encode(torch.as_tensor(b, device=device)).cpu().numpy()
                               for b in X.blocks(block)])


def leiden_clusters(extractor: FeatureExtractor, X: prep.CellRows, seed: int,
                    resolution: float, max_cells: int) -> torch.Tensor:
    """Leiden clusters of the target cells on M_s's pre-trained embedding.

    Beyond ``max_cells`` cells, the neighbour graph and Leiden run on a seeded random
    ``max_cells`` of them and every other cell joins the cluster whose centroid (in the
    embedding) is nearest: the cost stays bounded, and clusters smaller than about
    ``n / max_cells`` cells may be missed.
    """
    import scanpy as sc

    emb = encode_rows(extractor, X)
    sample = train.subsample(len(emb), max_cells, seed)
    ad = AnnData(np.zeros((len(sample), 1), dtype=np.float32))
    ad.obsm["X_emb"] = emb[sample]
    neighbors(ad, use_rep="X_emb", n_neighbors=min(15, len(sample) - 1), random_state=seed)
    sc.tl.leiden(ad, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                 directed=False)
    labels = ad.obs["leiden"].astype(int).to_numpy()
    if len(sample) < len(emb):
        centroids = np.stack([emb[sample][labels == c].mean(0) for c in range(labels.max() + 1)])
        labels = np.concatenate([_nearest(b, centroids) for b in np.array_split(
            emb, max(1, len(emb) // prep.BLOCK_ROWS))])
    return torch.as_tensor(labels)


def probabilities(net: DrugResponseNet, X: prep.CellRows,
                  block: int = prep.BLOCK_ROWS) -> np.ndarray:
    """P(sensitive) of every row of ``X``, a block at a time."""
    device = next(net.parameters()).device
    return np.concatenate([net.predict_proba(torch.as_tensor(b, device=device)).cpu().numpy()
                           for b in X.blocks(block)])


def _nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    distance = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    return distance.argmin(1)


class SharedStages:
    """The drug-independent stages, trained once per fit (or read from the cache) and
    copied into every ensemble member.

    M_b is ready when :func:`fit_shared` returns. The cells' stage (the shared M_s and the
    clusters) runs when :meth:`start` is called: now, or as the first task of the pool the
    members then train in. The members need its result only for their transfer (or, in
    separate gene spaces, for their M_s), so it trains while they train their predictors and
    their own M_s. Its only random draws come from torch's global generator, which it seeds
    itself and which nothing else touches meanwhile (the members draw from their own
    generators, and their predictors are initialised before it starts:
    :func:`seeded_predictor`), so the result is the same either way.
    """

    def __init__(self, bulk_extractor: FeatureExtractor, bulk_scaler: prep.Standardizer,
                 target_from_bulk: bool, history: list, timings: dict[str, float],
                 cache: dict[str, str], cells_stage=None):
        self.bulk_extractor, self.bulk_scaler = bulk_extractor, bulk_scaler
        self.target_from_bulk = target_from_bulk
        self.history, self.timings, self.cache = history, timings, cache
        self._cells_stage = cells_stage  # () -> (M_s, clusters); None: nothing needs them
        self._future = None  # the stage submitted to a pool
        self._result: tuple | None = None  # the stage run here

    def start(self, pool=None) -> None:
        """Run the cells' stage: now, or submitted to ``pool`` (a
        ``concurrent.futures.Executor``) before any member, so that no member can wait for
        it while it waits for a worker."""
        if self._cells_stage is None or self._future is not None or self._result is not None:
            return
        if pool is not None:
            self._future = pool.submit(self._cells_stage)
        else:
            self._result = self._cells_stage()

    def cells(self) -> tuple[FeatureExtractor | None, torch.Tensor | None]:
        """The shared M_s and the clusters (None where nothing needs them), waiting for the
        stage when it is still running (its errors are raised here) and running it now when
        it was not started."""
        if self._cells_stage is None:
            return None, None
        self.start()
        return self._future.result() if self._future is not None else self._result


def _cached_stage(store, stage: str, key: str, build, status: dict[str, str]):
    """``build()`` -> (tensors, meta), or the stored result for ``key``."""
    if store is None:
        status[stage] = "off"
        return build()
    found = store.get(stage, key)
    if found is not None:
        status[stage] = "hit"
        return found
    status[stage] = "miss"
    tensors, meta = build()
    store.put(stage, key, tensors, {**meta, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return tensors, meta


def fit_shared(model, bulk_expr: pd.DataFrame, Xs: prep.CellRows, device: torch.device,
               bar: _Progress, store=None) -> SharedStages:
    """Pre-train M_b on every bulk line (no drug labels enter it), and prepare the cells'
    stage: M_s pre-trained on the cells (started from M_b) and their clusters, run by
    :meth:`SharedStages.start`. Each stage is read from ``store`` when it holds it.

    M_b sees the expression, never the response, of all GDSC lines, including those that
    later form the drug's test split; the bulk standardisation is likewise over all lines.
    P's training, early stopping and test metrics use the drug's own split only.
    """
    from .cache import fingerprint

    cfg = model.config
    seed = cfg.seed
    timings: dict[str, float] = {}
    status: dict[str, str] = {}
    history: list = []

    # 1. Bulk extractor M_b.
    Xb = bulk_expr.to_numpy(np.float32)
    bulk_key = stage_key("bulk_extractor", cfg, data=fingerprint(
        Xb, list(bulk_expr.index), list(bulk_expr.columns)))

    def train_bulk():
        scaler = prep.Standardizer.fit(Xb)
        extractor, hist = _pretrain(cfg, scaler.transform(Xb), cfg.split[1], device, bar,
                                    "bulk_extractor")
        tensors = {f"extractor.{k}": v for k, v in extractor.state_dict().items()}
        tensors["scaler.mean"] = torch.as_tensor(scaler.mean)
        tensors["scaler.scale"] = torch.as_tensor(scaler.scale)
        return tensors, {"history": hist.to_dict()}

    t0 = time.perf_counter()
    tensors, meta = _cached_stage(store, "bulk_extractor", bulk_key, train_bulk, status)
    bulk_extractor = _load_extractor(cfg, Xb.shape[1], tensors, device)
    bulk_scaler = prep.Standardizer(tensors["scaler.mean"].numpy(),
                                    tensors["scaler.scale"].numpy())
    history.append(meta["history"])
    timings["bulk_extractor"] = time.perf_counter() - t0

    # 2. Single-cell extractor M_s (from M_b's pre-trained weights in a shared gene space),
    #    and the Leiden clusters of its embedding that the transfer's cluster term uses.
    from_bulk = cfg.gene_space == "shared" and cfg.init_target_from_bulk
    want_clusters = cfg.transfer and cfg.cluster_weight > 0
    target_key = stage_key(
        "target_extractor", cfg, data=fingerprint(Xs.X, list(model.target_genes)),
        bulk=bulk_key if from_bulk else None,
        clusters=cfg.cluster_resolution if want_clusters else None)

    def train_target():
        t_start = time.perf_counter()
        extractor, hist = _pretrain(cfg, Xs, cfg.target_val_fraction, device, bar,
                                    "target_extractor",
                                    init=bulk_extractor.state_dict() if from_bulk else None)
        tensors = {f"extractor.{k}": v for k, v in extractor.state_dict().items()}
        seconds = {"target_extractor": time.perf_counter() - t_start}
        if want_clusters:
            t_start = time.perf_counter()
            tensors["clusters"] = leiden_clusters(extractor, Xs, seed,
                                                  cfg.cluster_resolution, cfg.max_cluster_cells)
            seconds["clusters"] = time.perf_counter() - t_start
        return tensors, {"history": hist.to_dict(), "seconds": seconds}

    if from_bulk and not want_clusters:
        # Each member pre-trains its own M_s from its fine-tuned M_b; without the cluster
        # term nothing needs a shared one.
        status["target_extractor"] = "unused"
        return SharedStages(bulk_extractor, bulk_scaler, from_bulk, history, timings, status)

    def cells_stage():
        t0 = time.perf_counter()
        tensors, meta = _cached_stage(store, "target_extractor", target_key, train_target,
                                      status)
        target_extractor = _load_extractor(cfg, Xs.n_genes, tensors, device)
        clusters = tensors["clusters"].to(device) if want_clusters else None
        history.append(meta["history"])
        elapsed = time.perf_counter() - t0
        if status["target_extractor"] == "hit":
            timings["target_extractor"] = elapsed
        else:  # clustering timed apart: it does not scale like an epoch
            timings["target_extractor"] = elapsed - meta["seconds"].get("clusters", 0.0)
            if want_clusters:
                timings["clusters"] = meta["seconds"]["clusters"]
        return target_extractor, clusters

    return SharedStages(bulk_extractor, bulk_scaler, from_bulk, history, timings, status,
                        cells_stage)


def _pretrain(cfg: ScDealConfig, X: np.ndarray | prep.CellRows, val_fraction: float,
              device: torch.device, bar: _Progress, stage: str, init: dict | None = None):
    """A freshly initialised (or ``init``-started) extractor pre-trained on the rows of ``X``,
    a seeded ``val_fraction`` of them held out for early stopping. Cells (``CellRows``) train
    within the budget (``max_cells_per_epoch``, ``max_validation_cells``); GDSC's lines are
    few and are a dense array."""
    cells = isinstance(X, prep.CellRows)
    seed = cfg.seed
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = held_out_size(len(X), val_fraction, cfg.max_validation_cells if cells else len(X))
    train_rows, val_rows = np.sort(order[n_val:]), np.sort(order[:n_val])
    if cells:
        X_train = X.subset(train_rows).to(device)
        X_val = torch.as_tensor(X.dense(val_rows), device=device)
    else:
        X_train, X_val = (torch.as_tensor(X[rows], device=device)
                          for rows in (train_rows, val_rows))
    torch.manual_seed(seed)
    extractor = build_extractor(cfg, X.n_genes if cells else X.shape[1]).to(device)
    if init is not None:
        extractor.load_state_dict(init)
    started = time.perf_counter()
    hist = train.pretrain_extractor(
        extractor, X_train, X_val, cfg, torch.Generator().manual_seed(seed), stage=stage,
        progress=bar, max_rows=cfg.max_cells_per_epoch if cells else None)
    bar.stage_done("shared", hist, cfg.pretrain_epochs, time.perf_counter() - started)
    return extractor, hist


def held_out_size(n: int, fraction: float, at_most: int) -> int:
    """Rows held out for early stopping: ``fraction`` of ``n``, at least 2, at most
    ``at_most`` (validating on more costs time every epoch and adds little)."""
    return max(2, min(int(round(fraction * n)), at_most))


def _load_extractor(cfg: ScDealConfig, n_genes: int, tensors: dict,
                    device: torch.device) -> FeatureExtractor:
    extractor = build_extractor(cfg, n_genes)
    state = {k[len("extractor."):]: v for k, v in tensors.items() if k.startswith("extractor.")}
    extractor.load_state_dict(state, strict=True)
    return extractor.to(device).eval()


def cell_split(n: int, fraction: float, at_most: int, seed: int,
               labelled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the cells a member trains on and of those it holds out for early
    stopping (both sorted): a seeded ``fraction`` of them held out (:func:`held_out_size`).

    Cells of known label (``labelled``, positions) are never held out: they are drawn from the
    same seeded order with the labelled cells skipped, so without labelled cells the split is
    what it always was.

    Examples
    --------
    >>> train, val = cell_split(10, 0.2, 100, seed=0)
    >>> len(train), len(val), sorted([*train, *val]) == list(range(10))
    (8, 2, True)
    >>> train, val = cell_split(10, 0.2, 100, seed=0, labelled=np.array(val))
    >>> len(val), bool(np.isin([*cell_split(10, 0.2, 100, seed=0)[1]], train).all())
    (2, True)
    """
    from ..errors import ScdealError

    order = np.random.default_rng(seed).permutation(n)
    n_val = held_out_size(n, fraction, at_most)
    if labelled is not None and len(labelled):
        known = np.zeros(n, dtype=bool)
        known[labelled] = True
        candidates = order[~known[order]]
        if len(candidates) < 2:
            raise ScdealError(f"{int(known.sum())} of the {n} cells are labelled; at least 2 "
                              "must stay unlabelled (they are held out for early stopping)")
        n_val = min(n_val, len(candidates))
        val = np.sort(candidates[:n_val])
        return np.setdiff1d(np.arange(n), val), val
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def seeded_predictor(config: ScDealConfig, seed: int, device: torch.device) -> ResponsePredictor:
    """P for the member of ``seed``, initialised from torch's global generator seeded with it.

    The one use of the global generator by a member: call it for every member before any
    training thread starts (the shared cells' stage draws from the global generator).
    """
    torch.manual_seed(seed)
    return build_predictor(config.replace(seed=seed)).to(device)


def fit_member(model, labelled: prep.BulkSplit | JointLabels, Xs: prep.CellRows, seed: int,
               shared: SharedStages, device: torch.device, bar: _Progress,
               predictor: ResponsePredictor,
               known: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Member, dict]:
    """Train one ensemble member of ``model`` (its configuration, drug and genes) from the
    shared pre-trained extractors: its own bulk split, predictor (``predictor``, from
    :func:`seeded_predictor`), batches and transfer. ``labelled``: one drug's lines
    (:func:`scdeal.model.prepare.drug_labels`), or several drugs' for the joint model
    (:func:`scdeal.model.joint_labels.joint_labels`; ``predictor`` then a
    :class:`~scdeal.nn.MultiDrugPredictor`).

    ``known``: positions in ``Xs`` of cells with a known label, and the labels (1/0). They
    are kept in the member's training cells and their cross-entropy joins the transfer loss
    (:func:`scdeal.model._training.train_transfer`)."""
    cfg = model.member_config(seed)
    generator = torch.Generator().manual_seed(seed)
    # Members train side by side in threads, with the shared cells' stage: everything random
    # below draws from this member's own generators (batches, dropout, corruption); P was
    # initialised before any of them started (seeded_predictor).
    noise = torch.Generator().manual_seed(seed + 7919)
    timings: dict[str, float] = {}
    bulk = _bulk_training(labelled, shared.bulk_scaler, cfg, seed, device)
    s_train, s_val = cell_split(len(Xs), cfg.target_val_fraction, cfg.max_validation_cells,
                                seed, None if known is None else known[0])
    ts_train = Xs.subset(s_train).to(device)
    ts_val = torch.as_tensor(Xs.dense(s_val), device=device)
    bulk_extractor = copy.deepcopy(shared.bulk_extractor)
    head = bulk.head

    # Predictor P on M_b (this member's copy of M_b is fine-tuned with it).
    t0 = time.perf_counter()
    bulk_net = bulk.network(bulk_extractor, predictor)
    with use_generator([bulk_net], noise):
        hist_p = train.train_predictor(bulk_net, bulk.X_train, bulk.y_train, bulk.X_val,
                                       bulk.y_val, cfg, generator, progress=bar, head=head)
    bulk_test = bulk.test_metrics(bulk_net.predict_proba(bulk.X_test).cpu().numpy())
    timings["bulk_predictor"] = time.perf_counter() - t0
    who = f"member {seed - model.config.seed + 1}/{model.config.n_models}"
    bar.stage_done(who, hist_p, cfg.predictor_epochs, timings["bulk_predictor"])

    # The cell extractor M_s. In a shared gene space it starts from this member's M_b, now
    # fine-tuned with P, so that P reads M_s's embedding as it reads M_b's (measured:
    # starting every member from the label-free M_b made the members disagree more and the
    # pre-transfer predictions worse; benchmarks/README.md, "Fast runs"). Otherwise it is the
    # shared, drug-independent M_s.
    t0 = time.perf_counter()
    hist_s = None
    if shared.target_from_bulk:
        target_extractor = copy.deepcopy(bulk_extractor)
        with use_generator([target_extractor], noise):
            hist_s = train.pretrain_extractor(target_extractor, ts_train, ts_val, cfg,
                                              generator, stage="target_extractor",
                                              progress=bar, max_rows=cfg.max_cells_per_epoch)
    else:
        target_extractor = copy.deepcopy(shared.cells()[0])
    timings["target_extractor"] = time.perf_counter() - t0
    bar.stage_done(who, hist_s, cfg.pretrain_epochs, timings["target_extractor"])
    pretransfer_net = bulk.network(copy.deepcopy(target_extractor),
                                   copy.deepcopy(predictor)).eval()

    # DaNN transfer.
    hist_t = None
    clusters = shared.cells()[1]  # waits for the shared stage when it is still running
    t0 = time.perf_counter()
    if cfg.transfer:
        anchor = (torch.as_tensor(probabilities(pretransfer_net, Xs), device=device)
                  if cfg.consistency_weight > 0 else None)
        with use_generator([bulk_net, target_extractor], noise):
            hist_t = train.train_transfer(
                bulk_net, target_extractor, bulk.X_train, bulk.y_train, bulk.X_val,
                bulk.y_val, ts_train, ts_val, cfg, generator, head=head,
                clusters_train=None if clusters is None else clusters[s_train],
                clusters_val=None if clusters is None else clusters[s_val],
                anchor_train=None if anchor is None else anchor[s_train],
                anchor_val=None if anchor is None else anchor[s_val],
                labelled_train=None if known is None else (
                    torch.as_tensor(np.searchsorted(s_train, known[0]), device=device),
                    torch.as_tensor(known[1], dtype=torch.long, device=device)),
                progress=bar)
    target_net = bulk.network(target_extractor, bulk_net.predictor).eval()
    bulk_net.eval()
    timings["transfer"] = time.perf_counter() - t0
    bar.stage_done(who, hist_t, cfg.transfer_epochs, timings["transfer"])

    report = {
        **bulk.report,
        "bulk_test_metrics": bulk_test,
        "history": [h.to_dict() for h in (hist_p, hist_s, hist_t) if h is not None],
        "n_clusters": None if clusters is None else int(clusters.max()) + 1,
        "timings_s": timings,
    }
    return Member(bulk_net, target_net, pretransfer_net, shared.bulk_scaler), report


@dataclass
class BulkTraining:
    """One member's bulk data, as the training loops take it, and how to read its results."""

    X_train: torch.Tensor
    y_train: object  # labels (one drug) or MaskedTargets (joint)
    X_val: torch.Tensor
    y_val: object
    X_test: torch.Tensor
    test_metrics: Callable[[np.ndarray], dict]  # P(sensitive) of the test lines -> metrics
    head: train.Head
    network: type
    report: dict


def _bulk_training(labelled, scaler: prep.Standardizer, cfg: ScDealConfig, seed: int,
                   device: torch.device) -> BulkTraining:
    """The member of ``seed``'s split of the labelled lines: for one drug, stratified with
    the training lines class-balanced by resampling; for the joint model, split by line with
    class weights per drug (:mod:`scdeal.model.joint_labels`)."""
    if isinstance(labelled, JointLabels):
        split = joint_split(labelled, scaler, cfg, seed, device)
        counts = {name: len(rows) for name, rows in split.positions.items()}

        def joint_metrics(p: np.ndarray) -> dict:
            return {"auroc": per_drug_auroc(split.y_test, p).tolist()}

        return BulkTraining(split.X["train"], split.targets["train"], split.X["val"],
                            split.targets["val"], split.X["test"], joint_metrics,
                            train.JOINT_HEAD, JointDrugNet, {"bulk_lines": counts})
    split = prep.bulk_split(labelled, cfg)
    # Bulk matrices (standardised over all lines, label-free); resampling of train only.
    Xb = scaler.transform(split.X.to_numpy(np.float32))
    yb = split.y.to_numpy()
    X_rs, y_rs = prep.resample(Xb[split.train], yb[split.train], cfg.sampling, seed)

    def labels(a):
        return torch.as_tensor(a, dtype=torch.long, device=device)

    report = {
        "release": split.release,
        "binarization": {"method": cfg.binarization, "branch": split.binarization,
                         "cutoff": split.cutoff, "metric": cfg.metric},
        "bulk_lines": {"sensitive": int(split.y.sum()), "resistant": int((split.y == 0).sum()),
                       "train": len(split.train), "val": len(split.val),
                       "test": len(split.test)}}
    return BulkTraining(
        torch.as_tensor(X_rs, device=device), labels(y_rs),
        torch.as_tensor(Xb[split.val], device=device), labels(yb[split.val]),
        torch.as_tensor(Xb[split.test], device=device),
        lambda p: classification_metrics(yb[split.test], p), train.BINARY_HEAD,
        DrugResponseNet, report)
