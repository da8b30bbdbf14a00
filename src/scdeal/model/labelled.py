"""Labelled cells used where they help most: the transfer's prediction stacked with a
classifier trained on the labelled cells alone.

With a few labelled cells, a logistic regression on those cells alone often beats a transfer
that is given them too (benchmarks/README.md, section 10). So when :meth:`ScDEAL.fit` is given
labelled cells, the transfer stays label-free (unless ``labelled_weight > 0``) and the labels
choose how to combine two sources, per cell:

- **A**, the transfer's P(sensitive); if it ranks the labelled cells the wrong way round
  (AUROC < 0.5 on them), ``1 - A`` (its direction is then set by the labels);
- **B**, a logistic regression (L2, C = 1, balanced classes) on the labelled cells' expression,
  on the model's genes, standardised as the model standardises cells.

The prediction is ``w * A + (1 - w) * B`` with ``w`` in {0, 0.5, 1} chosen by the AUROC over
the labelled cells, each scored without its own label: A never saw any label; B's score of a
labelled cell is that of a regression fitted on the other labelled cells (leave-one-out).
Ties go to 0.5, then to 0 (the classifier). With fewer than two labelled cells of a class,
leave-one-out cannot score B, and ``w`` is 0.5. Each member's probability is combined the same
way, so the members' spread is ``w`` times the transfer's.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> y = np.array([1, 1, 1, 0, 0, 0])
>>> X = rng.normal(size=(6, 20)) + y[:, None]
>>> stack, report = fit_stack(X, y, transfer=1 - 0.8 * y)  # the transfer points the wrong way
>>> report["flipped"], report["weight"] in (0.0, 0.5, 1.0)
(True, True)
>>> stack.combine(np.array([0.9, 0.1]), X[[0, 3]]).shape
(2,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

WEIGHTS = (0.5, 0.0, 1.0)  # candidates, in the order ties are broken


@dataclass
class LabelledStack:
    """The combination chosen by :func:`fit_stack`: logistic regression coefficients (on
    standardised cells), the transfer's weight and whether its direction is reversed."""

    coef: np.ndarray
    intercept: float
    weight: float
    flipped: bool

    def classifier(self, X: np.ndarray) -> np.ndarray:
        """B: the classifier's P(sensitive) of standardised cells."""
        return 1.0 / (1.0 + np.exp(-(np.asarray(X, np.float64) @ self.coef + self.intercept)))

    def combine(self, transfer: np.ndarray, X: np.ndarray) -> np.ndarray:
        """``w * A + (1 - w) * B`` of the transfer's P(sensitive) ``transfer`` (cells, or
        members x cells) and the cells' standardised expression ``X``."""
        a = 1.0 - transfer if self.flipped else transfer
        b = self.classifier(X)
        return (self.weight * a + (1.0 - self.weight) * b).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": np.array([self.intercept]),
                "weight": np.array([self.weight]), "flipped": np.array([float(self.flipped)])}

    @classmethod
    def from_arrays(cls, arrays) -> LabelledStack:
        return cls(np.asarray(arrays["coef"], np.float64), float(arrays["intercept"][0]),
                   float(arrays["weight"][0]), bool(arrays["flipped"][0]))


def _regression(X: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000,
                              random_state=seed).fit(X, y)


def _auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def leave_one_out(X: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """B's P(sensitive) of each labelled cell from a regression fitted on the others (so a
    cell's score never depends on its own label)."""
    out = np.empty(len(y))
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        out[i] = _regression(X[rest], y[rest], seed).predict_proba(X[i:i + 1])[0, 1]
    return out


def fit_stack(X: np.ndarray, y: np.ndarray, transfer: np.ndarray,
              seed: int = 0) -> tuple[LabelledStack, dict]:
    """Choose the combination on the labelled cells (see the module docstring).

    Parameters
    ----------
    X
        The labelled cells' standardised expression on the model's genes.
    y
        Their labels, 1 sensitive / 0 resistant (both classes present).
    transfer
        The label-free transfer's P(sensitive) of those cells (the members' mean).
    """
    y = np.asarray(y, dtype=int)
    transfer = np.asarray(transfer, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    auroc_a = _auroc(y, transfer)
    flipped = auroc_a is not None and auroc_a < 0.5
    a = 1.0 - transfer if flipped else transfer
    full = _regression(X, y, seed)
    enough = min(int(y.sum()), int((y == 0).sum())) >= 2
    report = {"n": int(len(y)), "transfer_auroc_on_labelled": auroc_a, "flipped": flipped,
              "classifier_auroc_leave_one_out": None, "scores": {},
              "chosen_by": "AUROC over the labelled cells, each scored without its own label "
                           "(the transfer saw no label; the classifier leave-one-out)"}
    weight = 0.5
    if enough:
        b = leave_one_out(X, y, seed)
        report["classifier_auroc_leave_one_out"] = _auroc(y, b)
        scores = {w: _auroc(y, w * a + (1 - w) * b) for w in WEIGHTS}
        report["scores"] = {str(w): s for w, s in scores.items()}
        best = max(scores.values())
        weight = next(w for w in WEIGHTS if scores[w] >= best - 1e-12)
    else:
        report["chosen_by"] = ("fewer than 2 labelled cells of a class: the classifier cannot "
                               "be scored without their labels, so the two are averaged")
    report["weight"] = weight
    stack = LabelledStack(full.coef_.ravel().astype(np.float64), float(full.intercept_[0]),
                          weight, flipped)
    return stack, report
