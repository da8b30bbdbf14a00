"""Configuration of a scDEAL model: one typed dataclass, JSON round-trip, named presets."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._types import Activation, ExtractorKind, NoiseKind, Sampling
from ..data.preprocess import PreprocessConfig
from ..errors import ScdealError

GeneSpace = Literal["shared", "separate"]
TransferUpdate = Literal["all", "target_only"]


@dataclass
class ScDealConfig:
    """Everything that defines a scDEAL run (except the data and the drug).

    Architecture
        ``extractor`` AE/DAE/VAE with ``hidden_dims`` and ``latent_dim`` (used for the bulk
        extractor M_b and the single-cell extractor M_s), ``predictor_dims`` for the response
        predictor P (``joint_head_dims`` for the joint multi-drug model's: default none, a
        linear output per drug; None: ``predictor_dims``),
        ``dropout``, ``batch_norm``, ``activation``; DAE corruption ``noise`` /
        ``noise_rate``; VAE ``kl_weight``.
    Bulk labels
        GDSC ``release`` ("auto": GDSC2 if it screened the drug, else GDSC1), response
        ``metric`` and ``binarization`` method.
    Genes
        ``gene_space="shared"``: both extractors read the same harmonised genes and M_s starts
        from M_b's weights (``init_target_from_bulk``); ``"separate"`` (the paper): each
        extractor has its own genes and the domains meet only through MMD and P.
    Training
        stratified bulk ``split`` (train, validation, test) fractions; ``sampling`` of the bulk
        training split; Adam with ``lr`` and ``weight_decay``; ``batch_size``; maximum epochs per
        stage and early-stopping ``patience`` on the validation loss.
    Training budget
        An epoch visits at most ``max_cells_per_epoch`` rows (the next ones of a shuffled
        cycle over all of them; ``max_cells_per_transfer_epoch`` in the transfer, whose best
        state comes within a few dozen steps, so that it is validated every few steps) and
        the cells held out for early stopping are at most ``max_validation_cells``, so a
        stage's cost does not grow with the number of cells beyond them; the clusters of
        the cluster term are found on at most ``max_cluster_cells`` cells (the others join
        the nearest cluster centroid); a target of more than ``max_training_cells`` cells
        trains on a seeded random sample of that many (every cell is still predicted).
        ``max_genes``: in a shared gene space with more genes than this, the model keeps
        the most variable ones (on the cells; on the GDSC lines for scaled input); ``None``
        keeps all. How they were chosen: benchmarks/README.md, "Training budget".
    Ensemble
        ``n_models`` members trained separately (own bulk split, initialisation, batches;
        seeds ``seed``, ``seed + 1``, ...; they share M_b's label-free pre-training, seeded by
        ``seed``); predictions are their averaged probabilities. ``member_threads`` members
        train side by side (default 2, capped by the usable cores); each draws from its own
        random generators, so the numbers do not depend on it.
        Single runs of this method vary a lot with the seed; averaging removes most of that.
    Transfer (DaNN)
        loss = CE(P(M_b(x_b)), y_b) + ``mmd_weight`` * MMD^2(M_b(x_b), M_s(x_s))
        + ``cluster_weight`` * within-cluster variance of P(M_s(x_s)), the clusters being Leiden
        clusters (``cluster_resolution``) of the cells on M_s's pre-trained embedding; set
        ``cluster_weight=0`` for plain DaNN; + ``consistency_weight`` * KL(pre-transfer P ||
        P(M_s(x_s))), which keeps the cells' predictions near the bulk-supervised ones. ``mmd_kernel="multi"``
        uses ``mmd_n_kernels`` Gaussian kernels around the median heuristic; ``"single"`` one
        kernel of fixed ``mmd_bandwidth``. ``transfer_update="all"`` updates M_b, M_s and P (the
        paper); ``"target_only"`` updates M_s alone (the original code).
    Labelled cells (only when :meth:`scdeal.ScDEAL.fit` is given ``labelled``)
        the prediction combines the label-free transfer with a classifier of the labelled cells,
        as they choose (:mod:`scdeal.model.labelled`). With ``labelled_weight > 0`` (default 0)
        the transfer loss also gains ``labelled_weight`` * CE(P(M_s(x_l)), y_l) over a
        mini-batch of the labelled training cells (at most ``batch_size``, cycling through them)
        at every step; they stay ordinary cells for the MMD and cluster terms too. Early
        stopping does not use their labels. Without labelled cells this field changes nothing.

    Examples
    --------
    >>> from scdeal import ScDealConfig
    >>> config = ScDealConfig(n_models=3)
    >>> config.n_models, config.replace(seed=7).seed, config.to_dict()["extractor"]
    (3, 7, 'dae')
    >>> ScDealConfig(extractor="pca")
    Traceback (most recent call last):
    ...
    scdeal.errors.ScdealError: ...
    """

    # architecture
    extractor: ExtractorKind = "dae"
    hidden_dims: tuple[int, ...] = (256, 128)
    latent_dim: int = 64
    predictor_dims: tuple[int, ...] = (64, 32)
    # The joint multi-drug model's head (scdeal.model.JointScDEAL): hidden layers shared by
    # every drug before one output per drug (None: predictor_dims). Default: none, one linear
    # output per drug on the shared embedding, chosen on the development benchmark by a
    # criterion written before its results (benchmarks/README.md, section 11).
    joint_head_dims: tuple[int, ...] | None = ()
    # The joint model's transfer (benchmarks/README.md, sections 11, 14, 15, 16): "summed"
    # (the default: MMD + the cluster term, updating M_b, M_s and every output, the drugs'
    # terms averaged and the MMD weighted mmd_weight / D, i.e. counted once beside the D
    # drugs' terms; with one drug, the per-drug loss weights), "shared" (the same with the
    # MMD at mmd_weight), "cells" (M_s alone, by MMD alone), "clusters" (no MMD: not a DaNN
    # transfer) or "none" (no transfer). "summed" reproduced per-drug fits best on real cells
    # without reading their labels (section 15) and met the development criterion.
    joint_transfer: Literal["summed", "shared", "cells", "clusters", "none"] = "summed"
    # A joint screen's fits (scdeal.model.ScreenModel): the drugs are grouped by their GDSC
    # response (no cells, no labels of cells) into at most this many blocks, one JointScDEAL
    # per block of several drugs and, for a drug alone, the per-drug ScDEAL of `scdeal run`.
    # It bounds a screen's time: 8, because 16 took 3.9x one `scdeal run` for every GDSC2
    # drug, over the 3x fixed beforehand (benchmarks/README.md, section 17); with no more
    # drugs than blocks every drug is fitted alone.
    joint_blocks: int = 8
    dropout: float = 0.1
    batch_norm: bool = True
    activation: Activation = "relu"
    noise: NoiseKind = "mask"
    noise_rate: float = 0.2
    kl_weight: float = 1.0
    # bulk labels
    release: Literal["auto", "GDSC1", "GDSC2"] = "auto"
    metric: Literal["auc", "ln_ic50"] = "auc"
    binarization: Literal["waterfall", "median"] = "waterfall"
    min_per_class: int = 10
    # genes
    gene_space: GeneSpace = "shared"
    init_target_from_bulk: bool = True
    min_shared_genes: int = 200
    # Most variable 3,000 of the shared genes: on simulated droplet cells as accurate as all
    # 5,774 and about a third faster (benchmarks/README.md, "Training budget").
    max_genes: int | None = 3000
    # training
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    sampling: Sampling = "upsampling"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    pretrain_epochs: int = 100
    predictor_epochs: int = 100
    transfer_epochs: int = 50
    patience: int = 10
    target_val_fraction: float = 0.2
    # training budget (see the docstring)
    max_cells_per_epoch: int = 1024
    # Two steps of 128 cells: on two simulated droplet tables as accurate as 1,024 and the
    # transfer a third of the time (benchmarks/README.md, "Training budget").
    max_cells_per_transfer_epoch: int = 256
    max_validation_cells: int = 2048
    # Below scanpy's switch to approximate neighbours (8,192 cells): exact, and no ~20 s of
    # pynndescent compilation per process.
    max_cluster_cells: int = 8000
    max_training_cells: int = 50000
    # transfer
    transfer: bool = True
    mmd_weight: float = 1.0
    mmd_kernel: Literal["multi", "single"] = "multi"
    mmd_n_kernels: int = 5
    mmd_bandwidth: float | None = None
    transfer_update: TransferUpdate = "all"
    # On by default: on every benchmark case, at every resolution tried, it raised AUROC
    # (benchmarks/README.md, section 2); weight and resolution were not tuned.
    cluster_weight: float = 1.0
    cluster_resolution: float = 0.5
    # KL of the cells' transferred predictions from their pre-transfer ones (0: off); see
    # benchmarks/README.md, "Reliability", for what it was measured to do.
    consistency_weight: float = 0.0
    # cross-entropy of the labelled cells, when fit() is given some (see the docstring)
    labelled_weight: float = 0.0
    # target preprocessing
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    # ensemble: n_models separately seeded networks (seeds seed, seed+1, ...), averaged
    n_models: int = 5
    # run
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    # CPU threads torch uses while fitting and predicting. These networks are small: one thread
    # is about as fast as several, and several slow down badly when other processes compete
    # for the cores (measured: 8.8 min instead of 1.4 min for the demo on a busy 2-core machine).
    num_threads: int = 1
    # Ensemble members trained side by side, one thread each (they are independent; each
    # draws from its own random generators, so the numbers do not depend on this). Capped by
    # the usable cores; set 1 when other processes already use them (a benchmark's workers).
    # Above 1, the shared cell-extractor stage (for the clusters) is the threads' first task,
    # beside the first members (again the same numbers).
    member_threads: int = 2

    def __post_init__(self) -> None:
        self.hidden_dims = _widths("hidden_dims", self.hidden_dims, allow_empty=False)
        self.predictor_dims = _widths("predictor_dims", self.predictor_dims, allow_empty=True)
        if self.joint_head_dims is not None:
            self.joint_head_dims = _widths("joint_head_dims", self.joint_head_dims,
                                           allow_empty=True)
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig(**self.preprocess)
        if not isinstance(self.preprocess, PreprocessConfig):
            raise ScdealError(f"preprocess must be a PreprocessConfig or a dict of its fields, "
                              f"got {self.preprocess!r}")
        try:
            self.split = tuple(float(s) for s in self.split)
        except (TypeError, ValueError):
            self.split = (float("nan"),)
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise ScdealError(f"split must be three positive fractions summing to 1, got {self.split}")
        for name, allowed in _literal_fields().items():
            if getattr(self, name) not in allowed:
                raise ScdealError(f"{name} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, name)!r}")
        for name, (valid, allowed) in _RULES.items():
            value = getattr(self, name)
            if not valid(value):
                raise ScdealError(f"{name} must be {allowed}, got {value!r}")
        if self.mmd_kernel == "single" and not self.mmd_bandwidth:
            raise ScdealError("mmd_kernel='single' needs mmd_bandwidth (a positive number)")

    # ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ScDealConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ScdealError(f"unknown configuration keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> ScDealConfig:
        """Read a JSON or TOML file of configuration keys (a ``preset`` key starts from a preset)."""
        path = Path(path)
        if not path.is_file():
            raise ScdealError(f"configuration file not found: {path}")
        text = path.read_text()
        try:
            if path.suffix.lower() == ".toml":
                import tomllib

                values = tomllib.loads(text)
            else:
                values = json.loads(text)
        except ValueError as exc:
            raise ScdealError(f"{path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        base = values.pop("preset", None)
        if base is not None:
            return cls.from_dict({**preset(base).to_dict(), **values})
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> ScDealConfig:
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool | np.bool_) and bool(np.isfinite(value)))


def _widths(name: str, dims: Any, *, allow_empty: bool) -> tuple[int, ...]:
    dims = tuple(dims) if isinstance(dims, list | tuple) else (dims,)
    if not all(_is_int(d) and d >= 1 for d in dims) or (not dims and not allow_empty):
        raise ScdealError(f"{name} must be a {'' if allow_empty else 'non-empty '}list of whole "
                          f"numbers >= 1 (layer widths), got {dims!r}")
    return tuple(int(d) for d in dims)


def _at_least(low: float, *, whole: bool = False):
    test = _is_int if whole else _is_number
    return lambda v: test(v) and v >= low


def _between(low: float, high: float, *, low_open: bool = False):
    return lambda v: _is_number(v) and (low < v if low_open else low <= v) and v < high


# Field -> (test, allowed values in words); the Literal fields are checked from their types.
_WHOLE_POSITIVE = (_at_least(1, whole=True), "a whole number >= 1")
_NON_NEGATIVE = (_at_least(0), "a number >= 0")
_POSITIVE = (lambda v: _is_number(v) and v > 0, "a number > 0")
_BOOL = (lambda v: isinstance(v, bool | np.bool_), "True or False")
_RULES: dict[str, tuple[Any, str]] = {
    "latent_dim": _WHOLE_POSITIVE,
    "dropout": (_between(0, 1), "a number in [0, 1)"),
    "batch_norm": _BOOL,
    "noise_rate": (_between(0, 1), "a number in [0, 1)"),
    "kl_weight": _NON_NEGATIVE,
    "min_per_class": _WHOLE_POSITIVE,
    "init_target_from_bulk": _BOOL,
    "min_shared_genes": _WHOLE_POSITIVE,
    "max_genes": (lambda v: v is None or (_is_int(v) and v >= 2), "None or a whole number >= 2"),
    "max_cells_per_epoch": (_at_least(2, whole=True), "a whole number >= 2"),
    "max_cells_per_transfer_epoch": (_at_least(2, whole=True), "a whole number >= 2"),
    "max_validation_cells": (_at_least(2, whole=True), "a whole number >= 2"),
    "max_cluster_cells": (_at_least(20, whole=True), "a whole number >= 20"),
    "max_training_cells": (_at_least(6, whole=True), "a whole number >= 6"),
    "lr": _POSITIVE,
    "weight_decay": _NON_NEGATIVE,
    "batch_size": _WHOLE_POSITIVE,
    "pretrain_epochs": _WHOLE_POSITIVE,
    "predictor_epochs": _WHOLE_POSITIVE,
    "transfer_epochs": _WHOLE_POSITIVE,
    "patience": _WHOLE_POSITIVE,
    "target_val_fraction": (_between(0, 1, low_open=True), "a number in (0, 1)"),
    "transfer": _BOOL,
    "mmd_weight": _NON_NEGATIVE,
    "mmd_n_kernels": _WHOLE_POSITIVE,
    "mmd_bandwidth": (lambda v: v is None or _POSITIVE[0](v), "None or a number > 0"),
    "cluster_weight": _NON_NEGATIVE,
    "cluster_resolution": _POSITIVE,
    "consistency_weight": _NON_NEGATIVE,
    "labelled_weight": _NON_NEGATIVE,
    "n_models": _WHOLE_POSITIVE,
    "seed": (_at_least(0, whole=True), "a whole number >= 0"),
    "num_threads": _WHOLE_POSITIVE,
    "member_threads": _WHOLE_POSITIVE,
    "joint_blocks": _WHOLE_POSITIVE,
}


def _literal_fields() -> dict[str, tuple[Any, ...]]:
    """Field -> allowed values, for every field typed as a ``Literal``."""
    import typing

    hints = typing.get_type_hints(ScDealConfig)
    return {name: typing.get_args(hint) for name, hint in hints.items()
            if typing.get_origin(hint) is Literal}


def _paper_presets() -> dict[str, dict[str, Any]]:
    """The paper's README "suggested parameters" (method notes 10.1), one per dataset.

    They were chosen by grid search on the target labels of those very datasets, so they are
    offered for reproduction, not as honest defaults. They use the paper's separate gene
    spaces.
    """
    from ..datasets import DATASETS

    presets = {}
    for key, dataset in DATASETS.items():
        p = dataset.preset
        presets[f"paper_{key}"] = dict(
            extractor=p.extractor, latent_dim=p.bottleneck, hidden_dims=p.encoder_dims,
            predictor_dims=p.predictor_dims, dropout=p.dropout, sampling=p.sampling,
            gene_space="separate")
    return presets


@functools.cache
def presets() -> dict[str, dict[str, Any]]:
    """Name -> configuration fields of every named configuration (built on first use: the
    paper's come from :mod:`scdeal.datasets`, which importing this module does not load).

    Examples
    --------
    >>> from scdeal.model import presets
    >>> "default" in presets(), presets()["default"]
    (True, {})
    """
    return {"default": {}, **_paper_presets()}


def __getattr__(name: str) -> Any:
    if name == "PRESETS":  # the former module constant, same content
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def preset(name: str) -> ScDealConfig:
    """A named configuration: ``default`` or ``paper_<dataset>`` (e.g. ``paper_GSE112274``).

    Examples
    --------
    >>> preset("paper_GSE117872_HN120").latent_dim
    512
    """
    known = presets()
    if name not in known:
        raise ScdealError(f"unknown preset {name!r}; available: {', '.join(known)}")
    return ScDealConfig(**known[name])
