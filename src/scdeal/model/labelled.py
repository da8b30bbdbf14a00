"""Labelled cells used where they help most: the transfer's prediction combined with a
classifier trained on the labelled cells alone.

With a few labelled cells, a logistic regression on those cells alone often beats a transfer
that is given them too (benchmarks/README.md, section 10). So when :meth:`ScDEAL.fit` is given
labelled cells, the transfer stays label-free (unless ``labelled_weight > 0``) and each cell's
prediction combines two sources on the log-odds scale:

- **A**, the transfer's log-odds of sensitive;
- **B**, the decision function of a logistic regression (L2, C = 1, balanced classes) on the
  labelled cells' expression (the model's genes, standardised as the model standardises
  cells), rescaled to A's spread over the training cells;

``P = sigmoid(w * A + (1 - w) * B)`` with ``w = 1 / (1 + K / 5)``, K the labelled cells of the
smaller class: the more labels, the more the classifier counts (K = 3: w = 0.62; K = 10:
0.33); halved when the label-free reliability rule flags the transfer unreliable (its members
disagree, so its direction cannot be trusted). That rule was chosen on the development
benchmark (benchmarks/README.md, section 13) over choosing ``w`` per fit by leave-one-out,
which 2 to 20 labelled cells make too noisy.
When K >= 3 and the transfer ranks the labelled cells almost all the wrong way (AUROC <= 0.1
on them, against 0.5 by chance), A's direction is reversed. Each member's probability is
combined the same way, so the members' spread stays the transfer's (scaled).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> y = np.array([1, 1, 1, 0, 0, 0])
>>> X = rng.normal(size=(6, 20)) + y[:, None]
>>> stack, report = fit_stack(X, y, transfer=1 - 0.8 * y, reference=(X, 1 - 0.8 * y))
>>> report["flipped"], round(report["weight"], 3)      # the transfer points the wrong way
(True, 0.625)
>>> stack.combine(np.array([0.9, 0.1]), X[[0, 3]]).shape
(2,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

#: w = 1 / (1 + K / WEIGHT_SCALE); chosen on the development benchmark.
WEIGHT_SCALE = 5.0
#: A's direction is reversed when K >= FLIP_MIN_K and its AUROC on the labelled cells is at
#: most FLIP_MAX_AUROC.
FLIP_MIN_K = 3
FLIP_MAX_AUROC = 0.1


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class LabelledStack:
    """The combination chosen by :func:`fit_stack`: the classifier's coefficients (on
    standardised cells), its scale, the transfer's weight and whether its direction is
    reversed."""

    coef: np.ndarray
    intercept: float
    scale: float
    weight: float
    flipped: bool

    def classifier(self, X: np.ndarray) -> np.ndarray:
        """B: the classifier's decision function of standardised cells, rescaled."""
        return self.scale * (np.asarray(X, np.float64) @ self.coef + self.intercept)

    def combine(self, transfer: np.ndarray, X: np.ndarray) -> np.ndarray:
        """P(sensitive) from the transfer's P(sensitive) ``transfer`` (cells, or members x
        cells) and the cells' standardised expression ``X``."""
        a = _logit(transfer)
        if self.flipped:
            a = -a
        s = self.weight * a + (1.0 - self.weight) * self.classifier(X)
        return (1.0 / (1.0 + np.exp(-s))).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": np.array([self.intercept]),
                "scale": np.array([self.scale]), "weight": np.array([self.weight]),
                "flipped": np.array([float(self.flipped)])}

    @classmethod
    def from_arrays(cls, arrays) -> LabelledStack:
        return cls(np.asarray(arrays["coef"], np.float64), float(arrays["intercept"][0]),
                   float(arrays["scale"][0]), float(arrays["weight"][0]),
                   bool(arrays["flipped"][0]))


def _regression(X: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000,
                              random_state=seed).fit(X, y)


def _auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def leave_one_out(X: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """The classifier's P(sensitive) of each labelled cell from a regression fitted on the
    others (a cell's score never depends on its own label)."""
    out = np.empty(len(y))
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        out[i] = _regression(X[rest], y[rest], seed).predict_proba(X[i:i + 1])[0, 1]
    return out


def fit_stack(X: np.ndarray, y: np.ndarray, transfer: np.ndarray, *,
              reference: tuple[np.ndarray, np.ndarray], seed: int = 0,
              transfer_reliable: bool | None = True) -> tuple[LabelledStack, dict]:
    """The combination for these labelled cells (see the module docstring).

    Parameters
    ----------
    X, y
        The labelled cells' standardised expression on the model's genes, and their labels
        (1 sensitive / 0 resistant; both classes present).
    transfer
        The label-free transfer's P(sensitive) of those cells (the members' mean).
    reference
        Standardised expression and transfer P(sensitive) of the training cells (or a sample
        of them): the classifier is rescaled to the transfer's spread over them.
    transfer_reliable
        The label-free verdict on the transfer (:mod:`scdeal.model.reliability`); ``False``
        halves its weight.
    """
    y = np.asarray(y, dtype=int)
    X = np.asarray(X, dtype=np.float64)
    k = int(min(y.sum(), (y == 0).sum()))
    weight = 1.0 / (1.0 + k / WEIGHT_SCALE)
    if transfer_reliable is False:
        weight /= 2
    auroc_a = _auroc(y, np.asarray(transfer, np.float64))
    flipped = bool(k >= FLIP_MIN_K and auroc_a is not None and auroc_a <= FLIP_MAX_AUROC)
    full = _regression(X, y, seed)
    ref_X, ref_p = reference
    b_ref = np.asarray(ref_X, np.float64) @ full.coef_.ravel() + full.intercept_[0]
    sd_b = float(b_ref.std())
    scale = float(_logit(ref_p).std() / sd_b) if sd_b > 1e-12 else 1.0
    report = {"n": int(len(y)), "per_class": k, "weight": weight, "flipped": flipped,
              "transfer_reliable": transfer_reliable,
              "transfer_auroc_on_labelled": auroc_a,
              "classifier_auroc_leave_one_out": (_auroc(y, leave_one_out(X, y, seed))
                                                 if k >= 2 else None),
              "rule": f"P = sigmoid(w * transfer log-odds + (1 - w) * classifier), w = 1 / "
                      f"(1 + K / {WEIGHT_SCALE:g}), K = {k} labelled cells in the smaller "
                      "class, halved when the transfer is not reliable; its direction "
                      f"reversed when K >= {FLIP_MIN_K} and its AUROC on the labelled cells "
                      f"<= {FLIP_MAX_AUROC}"}
    return LabelledStack(full.coef_.ravel().astype(np.float64), float(full.intercept_[0]),
                         scale, weight, flipped), report


def stack_line(report: dict) -> str:
    """One line comparing the two sources on the labelled cells (``scdeal run`` prints it).

    Examples
    --------
    >>> stack_line({"n": 6, "flipped": False, "transfer_auroc_on_labelled": 0.889,
    ...             "classifier_auroc_leave_one_out": None, "weight": 0.45})
    'on the 6 labelled cells, transfer AUROC 0.889, classifier of those cells - (leave-one-out); combined with transfer weight 0.45'
    """
    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    flipped = " (direction reversed)" if report["flipped"] else ""
    return (f"on the {report['n']} labelled cells, transfer AUROC "
            f"{fmt(report['transfer_auroc_on_labelled'])}{flipped}, classifier of those cells "
            f"{fmt(report['classifier_auroc_leave_one_out'])} (leave-one-out); combined with "
            f"transfer weight {report['weight']:.2f}")
