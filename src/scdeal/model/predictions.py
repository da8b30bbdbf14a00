"""The ``obs`` columns of a prediction, computed in one place from the members' probabilities
(used by :meth:`ScDEAL.predict` and the chunked :meth:`ScDEAL.predict_file`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .reliability import uncertain_cells


def label_categorical(prob: np.ndarray) -> pd.Categorical:
    """Calls from probabilities: categorical 1 (sensitive, ``prob >= 0.5``) / 0; NaN stays NA."""
    labels = np.where(np.isnan(prob), np.nan, (prob >= 0.5).astype(float))
    return pd.Categorical(pd.Series(labels).astype("Int64"), categories=[0, 1])


def prediction_columns(post: np.ndarray, pre: np.ndarray | None = None) -> dict[str, Any]:
    """The ``obs`` columns of a prediction from the members' probabilities (members x cells;
    NaN for cells that were not predicted): see :meth:`ScDEAL.predict` for each key.

    Examples
    --------
    >>> cols = prediction_columns(np.array([[0.9, 0.4], [0.7, 0.7]]))
    >>> [round(float(v), 2) for v in cols["sens_preds"]], cols["sens_uncertain"].tolist()
    ([0.8, 0.55], [False, True])
    """
    post = np.asarray(post, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        mean = post.mean(axis=0)
        sd = post.std(axis=0) if len(post) > 1 else np.full(post.shape[1], np.nan, np.float32)
    columns: dict[str, Any] = {
        "sens_preds": mean,
        "rest_preds": 1.0 - mean,
        "sens_label": label_categorical(mean),
        "sens_preds_sd": sd.astype(np.float32),
        "sens_uncertain": uncertain_cells(mean, sd),
    }
    if pre is not None:
        pre_mean = np.asarray(pre, dtype=np.float32).mean(axis=0)
        columns["sens_preds_pret"] = pre_mean
        columns["sens_label_pret"] = label_categorical(pre_mean)
    return columns
