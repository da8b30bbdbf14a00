"""Classification metrics with sensitive (1) as the positive class."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .._types import MetricName, choices
from ..data.labels import binary_labels
from ..errors import ScdealError

METRIC_NAMES = choices(MetricName)


def classification_metrics(y_true, prob_sensitive, threshold: float = 0.5) -> dict[str, float]:
    """AUROC and AP from the probability; F1 (positive = sensitive), weighted F1, MCC and
    balanced accuracy from ``prob >= threshold``; plus ``n_cells`` and ``prevalence`` (the
    fraction sensitive, i.e. the AP of a random score).

    Examples
    --------
    >>> classification_metrics([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4])["auroc"]
    1.0
    """
    y = np.asarray(y_true).astype(float)
    p = np.asarray(prob_sensitive, dtype=float)
    keep = ~np.isnan(y)
    y, p = y[keep].astype(int), p[keep]
    if y.size == 0 or np.unique(y).size < 2:
        raise ScdealError("metrics need labelled cells of both classes (sensitive and resistant)")
    pred = (p >= threshold).astype(int)
    return {
        "auroc": float(skm.roc_auc_score(y, p)),
        "ap": float(skm.average_precision_score(y, p)),
        "f1": float(skm.f1_score(y, pred, pos_label=1, zero_division=0)),
        "f1_weighted": float(skm.f1_score(y, pred, average="weighted", zero_division=0)),
        "mcc": float(skm.matthews_corrcoef(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "n_cells": int(y.size),
        "prevalence": float(y.mean()),
    }


def label_metrics(obs: pd.DataFrame, label_key: str, label_map: dict | None, p: np.ndarray,
                  p_pre: np.ndarray) -> dict[str, Any]:
    """``metrics`` (after transfer), ``metrics_before_transfer`` and ``label_key`` of the
    predictions ``p`` / ``p_pre`` (NaN: not predicted) against ``obs[label_key]``."""
    y = binary_labels(obs, label_key, label_map).to_numpy()
    keep = ~np.isnan(p)
    return {"metrics": classification_metrics(y[keep], p[keep]),
            "metrics_before_transfer": classification_metrics(y[keep], p_pre[keep]),
            "label_key": label_key}
