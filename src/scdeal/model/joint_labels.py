"""The bulk labels of the joint multi-drug model: lines x drugs, split by line.

Each drug's lines are labelled by its own waterfall (as in a single-drug fit,
:func:`scdeal.model.prepare.drug_labels`); a line without a label for a drug is masked out of
that drug's loss. Each member splits the labelled LINES (not line-drug pairs) into train,
validation and test with its own seed: a line in a member's test split has none of its labels
trained on, for any drug, so a drug's held-out AUROC is not lifted by the labels of related
drugs on the same lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import DrugError, ScdealError
from ._training import MaskedTargets
from .config import ScDealConfig
from .prepare import Standardizer, drug_labels


@dataclass
class JointLabels:
    """The labelled, expressed lines of several drugs (not split yet).

    ``X``: lines x genes (unscaled), every line labelled for at least one drug; ``y``: lines x
    drugs, 1 sensitive / 0 resistant / NaN unlabelled; ``releases`` and ``cutoffs`` per drug.
    """

    X: pd.DataFrame
    y: pd.DataFrame
    releases: dict[str, str]
    cutoffs: dict[str, float]

    @property
    def drugs(self) -> list[str]:
        return list(self.y.columns)


def joint_labels(bulk, drugs: list[str], config: ScDealConfig,
                 expression: pd.DataFrame) -> JointLabels:
    """Every drug's waterfall labels on the expressed lines, as one matrix.

    Raises :class:`~scdeal.errors.DrugError` naming the drugs that cannot be trained (too
    few labelled lines); a drug named twice counts once.
    """
    columns, releases, cutoffs, refused = {}, {}, {}, []
    for name in drugs:
        try:
            labelled = drug_labels(bulk, name, config, expression)
        except DrugError as err:
            refused.append(str(err))
            continue
        drug = bulk.resolve_drug(name)
        columns[drug] = labelled.y
        releases[drug], cutoffs[drug] = labelled.release, labelled.cutoff
    if refused:
        raise DrugError(f"{len(refused)} of the {len(drugs)} drugs cannot be trained: "
                        + "; ".join(refused[:3]) + (" ..." if len(refused) > 3 else ""))
    if not columns:
        raise ScdealError("the joint model needs at least one drug")
    y = pd.DataFrame(columns).astype(np.float32)
    y = y.loc[[line for line in expression.index if line in y.index]]
    return JointLabels(expression.loc[y.index], y, releases, cutoffs)


def line_split(n: int, fractions: tuple[float, float, float],
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of the train, validation and test lines (sorted), a seeded permutation cut
    by ``fractions``.

    Examples
    --------
    >>> train, val, test = line_split(10, (0.6, 0.2, 0.2), seed=0)
    >>> len(train), len(val), len(test), sorted([*train, *val, *test]) == list(range(10))
    (6, 2, 2, True)
    """
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(fractions[2] * n))
    n_val = int(round(fractions[1] * n))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return np.sort(train), np.sort(val), np.sort(test)


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per entry of ``y`` (lines x drugs, NaN unlabelled): 0 where unlabelled, else
    ``n_d / (2 n_{d,c})`` over the labelled lines of drug ``d`` (each class of each drug
    weighs the same).

    Examples
    --------
    >>> balanced_weights(np.array([[1.0], [0.0], [0.0], [np.nan]])).ravel().tolist()
    [1.5, 0.75, 0.75, 0.0]
    """
    labelled = ~np.isnan(y)
    sensitive = (y == 1) & labelled
    n = labelled.sum(0).astype(np.float64)
    n_sens = sensitive.sum(0)
    n_res = n - n_sens
    with np.errstate(divide="ignore", invalid="ignore"):
        w_sens = np.where(n_sens > 0, n / (2 * n_sens), 0.0)
        w_res = np.where(n_res > 0, n / (2 * n_res), 0.0)
    return np.where(sensitive, w_sens, np.where(labelled, w_res, 0.0)).astype(np.float32)


@dataclass
class JointSplit:
    """One member's bulk tensors: standardised lines and masked targets per split."""

    X: dict[str, torch.Tensor]
    targets: dict[str, MaskedTargets]
    y_test: np.ndarray  # lines x drugs, NaN unlabelled
    positions: dict[str, np.ndarray]


def joint_split(labels: JointLabels, scaler: Standardizer, config: ScDealConfig, seed: int,
                device) -> JointSplit:
    """The member of ``seed``'s split of the lines (:func:`line_split`), standardised, with
    class-balanced weights computed within each split."""
    X = scaler.transform(labels.X.to_numpy(np.float32))
    y = labels.y.to_numpy(np.float32)
    train, val, test = line_split(len(X), config.split, seed)
    tensors, targets = {}, {}
    for name, rows in (("train", train), ("val", val), ("test", test)):
        tensors[name] = torch.as_tensor(X[rows], device=device)
        targets[name] = MaskedTargets(torch.as_tensor(np.nan_to_num(y[rows]), device=device),
                                      torch.as_tensor(balanced_weights(y[rows]), device=device))
    return JointSplit(tensors, targets, y[test],
                      {"train": train, "val": val, "test": test})


def per_drug_auroc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AUROC of each drug's column over its labelled rows (NaN with one class only).

    Examples
    --------
    >>> y = np.array([[1, 0], [0, np.nan], [1, 1]], dtype=float)
    >>> per_drug_auroc(y, np.array([[0.9, 0.1], [0.2, 0.5], [0.8, 0.7]])).tolist()
    [1.0, 1.0]
    """
    from sklearn.metrics import roc_auc_score

    scores = np.full(y.shape[1], np.nan)
    for d in range(y.shape[1]):
        labelled = ~np.isnan(y[:, d])
        values = y[labelled, d]
        if labelled.any() and 0 < values.sum() < len(values):
            scores[d] = roc_auc_score(values, p[labelled, d])
    return scores
