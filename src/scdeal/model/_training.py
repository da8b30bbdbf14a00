"""Training loops of the four scDEAL stages.

1. pre-train a feature extractor on reconstruction (bulk M_b, single-cell M_s);
2. train the bulk predictor P on M_b's embedding (M_b fine-tuned with it);
3. DaNN transfer: CE(P(M_b(x_b)), y_b) + alpha * MMD^2(M_b(x_b), M_s(x_s)) [+ cluster term].

Every stage keeps the weights of its best validation epoch and stops early after ``patience``
epochs without improvement. Model selection never sees target labels: the transfer's validation
loss is the bulk validation CE plus the MMD between bulk validation lines and held-out target
cells. Target labels enter training only when the user gives some (``fit(labelled=...)``):
then the transfer's training loss has a cross-entropy term on those cells.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..nn import (
    DrugResponseNet,
    FeatureExtractor,
    anchor_loss,
    classification_loss,
    cluster_consistency_loss,
    masked_response_loss,
    mmd2_unbiased,
    sensitive_probability,
)
from ..nn.optim import FusedAdam
from .config import ScDealConfig

log = logging.getLogger(__name__)

# The MMD on validation data is computed on at most this many cells of each domain: the
# kernel matrix is quadratic in the sample size.
MAX_MMD_VALIDATION = 1024
# The labelled cells' mini-batches are drawn from a generator seeded seed + this, apart from
# the cell and bulk batches (which are then the same as in a fit without labelled cells).
LABELLED_SEED_OFFSET = 104729


@dataclass(frozen=True)
class Head:
    """What the training loops need to know of the response head: the loss of its logits
    against the bulk targets (indexed by rows like a tensor), and P(sensitive) from logits."""

    loss: Callable[[Tensor, Any], Tensor]
    probability: Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class MaskedTargets:
    """The joint model's bulk targets: labels and weights, lines x drugs (weight 0 where a
    line is not labelled for a drug; see :func:`scdeal.nn.masked_response_loss`)."""

    y: Tensor
    weight: Tensor

    def __getitem__(self, rows) -> MaskedTargets:
        return MaskedTargets(self.y[rows], self.weight[rows])

    def __len__(self) -> int:
        return len(self.y)


# One drug: two logits per row, integer labels. The joint model: one logit per drug.
BINARY_HEAD = Head(classification_loss, sensitive_probability)
JOINT_HEAD = Head(lambda logits, t: masked_response_loss(logits, t.y, t.weight), torch.sigmoid)


@dataclass
class StageHistory:
    """Loss curves and the chosen epoch of one training stage."""

    stage: str
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1  # 0 = the state before the first epoch (transfer only)
    best_val_loss: float = math.inf
    extra: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"stage": self.stage, "epochs_run": len(self.train_loss),
                "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "train_loss": self.train_loss, "val_loss": self.val_loss, **self.extra}


def _snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    # What copy.deepcopy(state_dict()) gives, without its Python overhead (measured: ~10% of
    # a warm fit went to deep copies).
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class _BestKeeper:
    """Remembers the module states with the lowest validation loss; tells when to stop."""

    def __init__(self, modules: list[torch.nn.Module], patience: int, history: StageHistory):
        self.modules, self.patience, self.history = modules, patience, history
        self.best_states = [_snapshot(m) for m in modules]
        self.since_best = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Record ``val_loss``; return True when training should stop."""
        if val_loss < self.history.best_val_loss - 1e-6:
            self.history.best_val_loss, self.history.best_epoch = val_loss, epoch
            self.best_states = [_snapshot(m) for m in self.modules]
            self.since_best = 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience

    def restore(self) -> None:
        for module, state in zip(self.modules, self.best_states, strict=True):
            module.load_state_dict(state)
            module.eval()


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """Shuffled mini-batches covering all ``n`` rows; a last batch of one row joins the previous
    one (BatchNorm cannot train on a single row)."""
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2] = torch.cat([batches[-2], batches.pop()])
    return batches


def _cycle_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    while True:
        yield from batch_indices(n, batch_size, generator)


class EpochRows:
    """The mini-batches of each epoch, at most ``max_rows`` rows per epoch.

    With ``n <= max_rows`` an epoch is every row, shuffled (:func:`batch_indices`, the same
    random draws). Beyond, an epoch is the next ``max_rows`` rows of a shuffled pass over all
    rows, continued by a fresh pass when one runs out: every row is visited once before any is
    visited again, and an epoch costs the same whatever the number of rows (the training
    budget: ``ScDealConfig.max_cells_per_epoch``).
    """

    def __init__(self, n: int, batch_size: int, max_rows: int, generator: torch.Generator):
        self.n, self.batch_size, self.max_rows, self.generator = n, batch_size, max_rows, generator
        self._pending = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:  # rows per epoch
        return min(self.n, self.max_rows)

    def next_epoch(self) -> list[Tensor]:
        if self.n <= self.max_rows:
            return batch_indices(self.n, self.batch_size, self.generator)
        while len(self._pending) < self.max_rows:
            self._pending = torch.cat([self._pending,
                                       torch.randperm(self.n, generator=self.generator)])
        rows, self._pending = self._pending[:self.max_rows], self._pending[self.max_rows:]
        batches = list(rows.split(self.batch_size))
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches[-2] = torch.cat([batches[-2], batches.pop()])
        return batches


def _optimizer(params, config: ScDealConfig) -> torch.optim.Optimizer:
    # The fused kernel: about 25% less time per step than the default on the CPU
    # (benchmarks/README.md, "Fast runs"); same algorithm, rounding may differ. FusedAdam is
    # torch's fused Adam without the 1.7 s import of torch's compiler.
    return FusedAdam(params, lr=config.lr, weight_decay=config.weight_decay)


def _run_epochs(
    *,
    stage: str,
    modules: list[torch.nn.Module],
    epochs: int,
    patience: int,
    train_epoch: Callable[[], float],
    validate: Callable[[], float],
    progress: Callable[[str, int, int], None] | None,
    threads: int,
    validate_initial: bool = False,
) -> StageHistory:
    # Set again for every stage: scanpy/numba code run between stages (preprocessing, the
    # neighbour search) resets the OpenMP thread count torch shares (measured: 1 -> 2), and
    # the small networks then train on all cores with spinning threads.
    torch.set_num_threads(max(1, int(threads)))
    history = StageHistory(stage)
    keeper = _BestKeeper(modules, patience, history)
    if validate_initial:
        for m in modules:
            m.eval()
        with torch.no_grad():
            keeper.update(0, validate())
        history.val_loss.append(history.best_val_loss)
        history.train_loss.append(float("nan"))
    for epoch in range(1, epochs + 1):
        for m in modules:
            m.train()
        train_loss = train_epoch()
        for m in modules:
            m.eval()
        with torch.no_grad():
            val_loss = validate()
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        if progress:
            progress(stage, epoch, epochs)
        if not math.isfinite(train_loss):
            log.warning("%s: training loss is not finite at epoch %d; stopping", stage, epoch)
            break
        if keeper.update(epoch, val_loss):
            break
    keeper.restore()
    log.debug("%s: best epoch %d (val loss %.4f) of %d", stage, history.best_epoch,
              history.best_val_loss, len(history.train_loss))
    return history


# ------------------------------------------------------------------------------------------


def pretrain_extractor(
    extractor: FeatureExtractor, X_train: Tensor, X_val: Tensor, config: ScDealConfig,
    generator: torch.Generator, *, stage: str, progress=None, max_rows: int | None = None,
) -> StageHistory:
    """Reconstruction pre-training (AE: MSE; DAE: MSE of the clean input; VAE: MSE + KL);
    epochs of at most ``max_rows`` rows (None: all; cells: ``config.max_cells_per_epoch``)."""
    optimizer = _optimizer(extractor.parameters(), config)
    epochs = EpochRows(len(X_train), config.batch_size, max_rows or len(X_train), generator)

    def train_epoch() -> float:
        total = 0.0
        for idx in epochs.next_epoch():
            x = X_train[idx]
            loss = extractor.loss(x, extractor(x), kl_weight=config.kl_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        return total / len(epochs)

    def validate() -> float:
        return float(extractor.loss(X_val, extractor(X_val), kl_weight=config.kl_weight))

    return _run_epochs(stage=stage, modules=[extractor], epochs=config.pretrain_epochs,
                       patience=config.patience, train_epoch=train_epoch, validate=validate,
                       progress=progress, threads=config.num_threads)


def train_predictor(
    net: DrugResponseNet, X_train: Tensor, y_train: Tensor, X_val: Tensor, y_val: Tensor,
    config: ScDealConfig, generator: torch.Generator, *, progress=None,
    head: Head = BINARY_HEAD,
) -> StageHistory:
    """Bulk predictor P on M_b's embedding, M_b fine-tuned together with P (cross-entropy;
    ``head``: the joint model's masked loss)."""
    optimizer = _optimizer(net.parameters(), config)

    def train_epoch() -> float:
        total = 0.0
        for idx in batch_indices(len(X_train), config.batch_size, generator):
            loss = head.loss(net(X_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        return total / len(X_train)

    def validate() -> float:
        return float(head.loss(net(X_val), y_val))

    return _run_epochs(stage="bulk_predictor", modules=[net], epochs=config.predictor_epochs,
                       patience=config.patience, train_epoch=train_epoch, validate=validate,
                       progress=progress, threads=config.num_threads)


def subsample(n: int, k: int, seed: int) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


def train_transfer(
    bulk_net: DrugResponseNet, target_extractor: FeatureExtractor,
    Xb_train: Tensor, yb_train: Tensor, Xb_val: Tensor, yb_val: Tensor,
    Xs_train: Tensor, Xs_val: Tensor, config: ScDealConfig, generator: torch.Generator, *,
    clusters_train: Tensor | None = None, clusters_val: Tensor | None = None,
    anchor_train: Tensor | None = None, anchor_val: Tensor | None = None,
    labelled_train: tuple[Tensor, Tensor] | None = None, progress=None,
    head: Head = BINARY_HEAD,
) -> StageHistory:
    """DaNN transfer (paper Eq. 5), optionally with the cluster-consistency term.

    Each epoch visits every training cell once (at most ``max_cells_per_transfer_epoch`` of
    them: see :class:`EpochRows`) in batches of ``batch_size``; each cell batch is
    paired with the next batch of a shuffled, endlessly cycled pass over the bulk training
    lines. With ``consistency_weight > 0`` and anchors (the pre-transfer P(sensitive) of the
    cells), ``consistency_weight * KL(anchor || P(M_s(x_s)))`` is added, keeping the cells'
    predictions near the bulk-supervised ones. ``transfer_update="all"`` optimises M_b, M_s and P together (the paper);
    ``"target_only"`` optimises M_s alone (the original code), with M_b and P frozen in eval
    mode so that their BatchNorm statistics do not drift either.

    ``labelled_train`` (positions in ``Xs_train``, their labels 1/0): cells of known response.
    Each step then also encodes the next mini-batch of them (at most ``batch_size``, from a
    shuffled cycle over all of them, drawn from a generator of their own so the other draws
    are unchanged) together with the cell batch, and adds ``labelled_weight`` * CE(P(M_s(x_l)),
    y_l) to the loss; the MMD and cluster terms see the cell batch only, as without labels.
    The validation loss, and so the epoch kept, never uses these labels.

    ``head``: the loss and probability of the response head (:data:`JOINT_HEAD` for the
    joint model: the cluster and anchor terms then average over its drugs).
    """
    predictor, bulk_extractor = bulk_net.predictor, bulk_net.extractor
    update_all = config.transfer_update == "all"
    trained: list[torch.nn.Module] = [target_extractor]
    params = list(target_extractor.parameters())
    if update_all:
        trained += [bulk_extractor, predictor]
        params += list(bulk_extractor.parameters()) + list(predictor.parameters())
    else:
        for p in [*bulk_extractor.parameters(), *predictor.parameters()]:
            p.requires_grad_(False)
    optimizer = _optimizer(params, config)
    alpha, beta = config.mmd_weight, config.cluster_weight
    gamma = config.consistency_weight if anchor_train is not None else 0.0
    bandwidths = (torch.tensor([config.mmd_bandwidth]) if config.mmd_kernel == "single" else None)

    def mmd(a: Tensor, b: Tensor) -> Tensor:
        return mmd2_unbiased(a, b, bandwidths=bandwidths, n_kernels=config.mmd_n_kernels)

    bulk_batches = _cycle_batches(len(Xb_train), config.batch_size, generator)
    val_b = torch.as_tensor(subsample(len(Xb_val), MAX_MMD_VALIDATION, config.seed))
    val_s = torch.as_tensor(subsample(len(Xs_val), MAX_MMD_VALIDATION, config.seed + 1))
    parts: dict[str, list[float]] = {"val_ce": [], "val_mmd": [], "val_cluster": [],
                                     "val_consistency": []}

    def set_modes() -> None:
        if not update_all:  # frozen parts stay in eval mode
            bulk_extractor.eval()
            predictor.eval()

    cell_epochs = EpochRows(len(Xs_train), config.batch_size,
                            config.max_cells_per_transfer_epoch, generator)
    if labelled_train is not None:
        labelled_rows, labelled_y = labelled_train
        labelled_batches = _cycle_batches(
            len(labelled_rows), config.batch_size,
            torch.Generator().manual_seed(config.seed + LABELLED_SEED_OFFSET))
        parts["train_labelled_ce"] = []

    def train_epoch() -> float:
        set_modes()
        total, n_seen = 0.0, 0
        labelled_total = 0.0
        for idx in cell_epochs.next_epoch():
            xb_idx = next(bulk_batches)
            xs = Xs_train[idx]
            emb_b = bulk_extractor.encode(Xb_train[xb_idx])
            if labelled_train is None:
                emb_s = target_extractor.encode(xs)
            else:  # one pass: the labelled cells share the batch's BatchNorm statistics
                lab = next(labelled_batches)
                emb_all = target_extractor.encode(torch.cat([xs, Xs_train[labelled_rows[lab]]]))
                emb_s, emb_l = emb_all[:len(idx)], emb_all[len(idx):]
            loss = head.loss(predictor(emb_b), yb_train[xb_idx])
            loss = loss + alpha * mmd(emb_b, emb_s)
            if labelled_train is not None:
                ce_l = classification_loss(predictor(emb_l), labelled_y[lab])
                loss = loss + config.labelled_weight * ce_l
                labelled_total += ce_l.item() * len(idx)
            if (beta > 0 and clusters_train is not None) or gamma > 0:
                prob_s = head.probability(predictor(emb_s))
            if beta > 0 and clusters_train is not None:
                loss = loss + beta * cluster_consistency_loss(prob_s, clusters_train[idx])
            if gamma > 0:
                loss = loss + gamma * anchor_loss(prob_s, anchor_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            n_seen += len(idx)
        if labelled_train is not None:
            parts["train_labelled_ce"].append(labelled_total / n_seen)
        return total / n_seen

    def validate() -> float:
        emb_b = bulk_extractor.encode(Xb_val)
        emb_s = target_extractor.encode(Xs_val)
        ce = float(head.loss(predictor(emb_b), yb_val))
        dist = float(mmd(emb_b[val_b], emb_s[val_s]))
        prob_s = head.probability(predictor(emb_s))
        cl = 0.0
        if beta > 0 and clusters_val is not None:
            cl = float(cluster_consistency_loss(prob_s, clusters_val))
        co = float(anchor_loss(prob_s, anchor_val)) if gamma > 0 else 0.0
        parts["val_ce"].append(ce)
        parts["val_mmd"].append(dist)
        parts["val_cluster"].append(cl)
        parts["val_consistency"].append(co)
        return ce + alpha * dist + beta * cl + gamma * co

    try:
        history = _run_epochs(stage="transfer", modules=trained, epochs=config.transfer_epochs,
                              patience=config.patience, train_epoch=train_epoch,
                              validate=validate, progress=progress,
                              threads=config.num_threads, validate_initial=True)
    finally:
        for p in [*bulk_extractor.parameters(), *predictor.parameters()]:
            p.requires_grad_(True)
    history.extra = parts
    return history
