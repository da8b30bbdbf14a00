"""The methods a benchmark compares: scDEAL variants and bulk-only baselines.

Every method has ONE fixed configuration, used unchanged for every case and chosen without
looking at any target labels. Adding a method is one line in :data:`_REGISTRY`.

scDEAL variants
    :class:`ScDealVariant`: configuration changes relative to the default
    :class:`scdeal.model.ScDealConfig`, and which prediction is scored: ``"post"``
    (``obs['sens_preds']``, after the DaNN transfer) or ``"pre"`` (``obs['sens_preds_pret']``,
    the bulk-trained predictor applied through the target extractor before transfer).
    Variants with the same configuration share ONE fit (e.g. ``scdeal`` and
    ``scdeal_no_transfer``), so the pair differs only by the transfer step.

Baselines
    :class:`Baseline`: a scikit-learn classifier trained on bulk GDSC cell lines only (every
    line with a waterfall label for the drug, the same labels scDEAL uses), applied to the
    cells on the genes both share (HGNC symbols), each domain standardised per gene on its own.
    scikit-learn defaults unless stated; classes balanced (weights, or oversampling where
    weights are impractical).

Methods that learn from a few labelled cells (``scdeal benchmark --shots K``)
    :class:`ShotsBaseline`: trained on the K cells per class drawn for the row (alone, or
    with the bulk lines), the same cells scDEAL then gets as ``labelled``. Every method is
    scored on the other cells only (:mod:`scdeal.benchmark.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ..errors import ScdealError


@dataclass(frozen=True)
class ScDealVariant:
    """A scDEAL configuration to benchmark.

    Attributes
    ----------
    name
        Method name (a row of the summary).
    description
        One line for the summary's method table.
    overrides
        :class:`~scdeal.model.ScDealConfig` fields that differ from the default.
    output
        ``"post"`` scores the transferred model, ``"pre"`` the model before transfer,
        ``"label_free"`` the transferred model without what labelled cells add (the same as
        ``"post"`` without ``--shots``).
    ablation
        A variant for the ablation study: run with the benchmark's ``ablation_seeds`` (fewer
        seeds, to keep a full run short) rather than all seeds.

    Examples
    --------
    >>> from scdeal.benchmark import METHODS
    >>> variant = METHODS["scdeal_no_cluster"]
    >>> dict(variant.overrides), variant.output, variant.ablation
    ({'n_models': 1, 'cluster_weight': 0.0}, 'post', True)
    >>> METHODS["scdeal"].fit_key == METHODS["scdeal_no_transfer"].fit_key  # one fit, two scores
    True
    """

    name: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    output: Literal["post", "pre", "label_free"] = "post"
    ablation: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def __reduce__(self):  # a mappingproxy does not pickle; worker processes need to
        return (type(self), (self.name, self.description, dict(self.overrides), self.output,
                             self.ablation))

    @property
    def fit_key(self) -> tuple:
        """Variants with equal keys are computed from one fit."""
        return tuple(sorted((k, repr(v)) for k, v in self.overrides.items()))


@dataclass(frozen=True)
class Baseline:
    """A bulk-only classifier.

    Attributes
    ----------
    name, description
        As for :class:`ScDealVariant`.
    make
        ``seed -> unfitted estimator`` with ``fit(X, y[, sample_weight])`` and
        ``predict_proba``.
    balance
        How the classes are balanced: ``"estimator"`` (the estimator does it, e.g.
        ``class_weight="balanced"``), ``"sample_weight"`` (``compute_sample_weight("balanced",
        y)`` is passed to ``fit``) or ``"oversample"`` (the minority class is randomly
        oversampled with imbalanced-learn, with the row's seed).
    openmp_threads
        Cap on OpenMP threads while fitting (``None``: the library's default). Histogram
        gradient boosting runs thousands of tiny parallel regions; on a busy 2-core machine
        two spinning OpenMP threads made it 5 times slower than one (64 s against 14 s).

    Examples
    --------
    >>> from scdeal.benchmark import METHODS
    >>> forest = METHODS["random_forest"]
    >>> forest.description
    'random forest, 500 trees, balanced class weights'
    >>> type(forest.make(0)).__name__, forest.balance
    ('RandomForestClassifier', 'estimator')
    """

    name: str
    description: str
    make: Callable[[int], Any]
    balance: Literal["estimator", "sample_weight", "oversample"] = "estimator"
    openmp_threads: int | None = None


@dataclass(frozen=True)
class ShotsBaseline:
    """A classifier that learns from the labelled cells of ``--shots K``.

    Attributes
    ----------
    name, description
        As for :class:`ScDealVariant`.
    make
        ``seed -> unfitted estimator`` with ``fit(X, y[, sample_weight])`` and
        ``predict_proba``.
    with_bulk
        ``False``: trained on the 2K labelled cells alone (undefined with K = 0: the row is
        skipped). ``True``: trained on the bulk lines plus the 2K cells, each domain
        standardised on its own; the bulk lines and the cells each carry half of the total
        sample weight, classes balanced within each (with K = 0 this is the bulk-only
        ``logreg``).

    Examples
    --------
    >>> from scdeal.benchmark import METHODS, parse_methods
    >>> METHODS["logreg_shots"].with_bulk, METHODS["bulk_plus_shots"].with_bulk
    (False, True)
    >>> [m.name for m in parse_methods("logreg_shots", shots=3)]
    ['logreg_shots']
    """

    name: str
    description: str
    make: Callable[[int], Any]
    with_bulk: bool = False


Method = ScDealVariant | Baseline | ShotsBaseline


def _logreg(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(class_weight="balanced", max_iter=5000, random_state=seed)


def _logreg_weighted(seed: int):
    from sklearn.linear_model import LogisticRegression

    # Balanced by the sample weights passed to fit (see ShotsBaseline.with_bulk).
    return LogisticRegression(max_iter=5000, random_state=seed)


def _random_forest(seed: int):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=500, class_weight="balanced", n_jobs=-1,
                                  random_state=seed)


def _hist_gb(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Balanced by oversampling, not class_weight: with weights, scikit-learn 1.9 bins every
    # feature with weighted percentiles, ~300 times slower (about 4 minutes for 2,900 genes).
    return HistGradientBoostingClassifier(random_state=seed)


def _mlp(seed: int):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(early_stopping=True, max_iter=500, random_state=seed)


_REGISTRY: tuple[Method, ...] = (
    ScDealVariant("scdeal", "scDEAL, default configuration (DAE, shared genes, DaNN transfer "
                  "with cluster consistency, ensemble of 5)"),
    ScDealVariant("scdeal_no_transfer", "the same fit as scdeal, scored before the DaNN step",
                  output="pre"),
    ScDealVariant("scdeal_label_free", "the same fit as scdeal without the labelled cells' "
                  "classifier (with --shots; the transfer never sees their labels)",
                  output="label_free"),
    # Ablations change one component of a SINGLE model (n_models=1); compare them with
    # scdeal_single, not with the 5-model ensemble.
    ScDealVariant("scdeal_single", "scDEAL default configuration, one model (no ensemble)",
                  {"n_models": 1}, ablation=True),
    ScDealVariant("scdeal_separate", "single model, separate gene spaces (the paper's design)",
                  {"n_models": 1, "gene_space": "separate"}, ablation=True),
    ScDealVariant("scdeal_no_cluster", "single model, plain DaNN transfer (no "
                  "cluster-consistency term)", {"n_models": 1, "cluster_weight": 0.0},
                  ablation=True),
    ScDealVariant("scdeal_ae", "single model, plain autoencoders",
                  {"n_models": 1, "extractor": "ae"}, ablation=True),
    ScDealVariant("scdeal_vae", "single model, variational autoencoders",
                  {"n_models": 1, "extractor": "vae"}, ablation=True),
    ScDealVariant("scdeal_target_only", "single model, transfer updates only the cell "
                  "extractor (the original code)",
                  {"n_models": 1, "transfer_update": "target_only"}, ablation=True),
    Baseline("logreg", "logistic regression, L2 with C=1, balanced class weights", _logreg),
    Baseline("random_forest", "random forest, 500 trees, balanced class weights",
             _random_forest),
    Baseline("hist_gb", "histogram gradient boosting, sklearn defaults (100 iterations), "
             "minority class oversampled to balance", _hist_gb, balance="oversample",
             openmp_threads=1),
    Baseline("mlp", "MLP (one hidden layer of 100, adam), early stopping on 10% of bulk, "
             "balanced sample weights", _mlp, balance="sample_weight"),
    ShotsBaseline("logreg_shots", "logistic regression (L2, C=1) on the K labelled cells per "
                  "class alone, target standardised over all its cells; needs --shots K >= 1",
                  _logreg),
    ShotsBaseline("bulk_plus_shots", "logistic regression (L2, C=1) on the bulk lines plus the "
                  "K labelled cells per class; bulk and cells half the weight each, classes "
                  "balanced within each; = logreg with K = 0", _logreg_weighted,
                  with_bulk=True),
)
METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in _REGISTRY})
#: "all": every method except those that learn from labelled cells (they join with --shots).
def _needs_shots(method) -> bool:
    return isinstance(method, ShotsBaseline) or getattr(method, "output", "") == "label_free"


DEFAULT_METHODS: tuple[str, ...] = tuple(n for n, m in METHODS.items() if not _needs_shots(m))
SHOTS_METHODS: tuple[str, ...] = tuple(n for n, m in METHODS.items() if _needs_shots(m))


def parse_methods(text: str | None, *, shots: int = 0) -> list[Method]:
    """Methods named in a comma-separated list (``None``, ``""`` or ``"all"``: every method;
    the ones that learn from labelled cells only when ``shots`` > 0).

    Examples
    --------
    >>> [m.name for m in parse_methods("scdeal, logreg")]
    ['scdeal', 'logreg']
    >>> [m.name for m in parse_methods("all", shots=3)][-3:]
    ['scdeal_label_free', 'logreg_shots', 'bulk_plus_shots']
    """
    if text is None or not text.strip() or text.strip().lower() == "all":
        names = DEFAULT_METHODS + (SHOTS_METHODS if shots > 0 else ())
        return [METHODS[name] for name in names]
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ScdealError(f"unknown method(s) {', '.join(unknown)}; available: "
                          f"{', '.join(METHODS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ScdealError(f"method(s) listed twice: {', '.join(repeated)}; list each once")
    return [METHODS[n] for n in names]
