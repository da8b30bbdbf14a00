"""Waterfall and quantile binarisation, checked against independent computations and the
authors' own bulk labels."""

import numpy as np
import pandas as pd
import pytest

from scdeal.data.binarize import binarize_response, waterfall_cutoff
from scdeal.errors import ScdealError


def _farthest_point_by_cross_product(values):
    """Independent geometry: distance = |cross(b - a, p - a)| / |b - a|."""
    y = np.sort(values)[::-1]
    x = np.arange(1, len(y) + 1, dtype=float)
    a = np.array([x[0], y[0]])
    b = np.array([x[-1], y[-1]])
    ab = b - a
    dist = [abs(ab[0] * (yi - a[1]) - ab[1] * (xi - a[0])) / np.linalg.norm(ab)
            for xi, yi in zip(x, y, strict=True)]
    return y[int(np.argmax(dist))]


def test_linear_waterfall_uses_median():
    values = np.linspace(0.2, 0.9, 41)
    cutoff, branch, r = waterfall_cutoff(values)
    assert branch == "linear-median"
    assert abs(r) > 0.95
    assert cutoff == pytest.approx(np.median(values))


def test_curved_waterfall_uses_farthest_point_from_chord():
    rng = np.random.default_rng(0)
    # Most lines resistant (AUC near 0.95), a tail of sensitive lines: a strongly bent curve.
    values = np.concatenate([rng.normal(0.95, 0.02, 200), rng.uniform(0.2, 0.8, 25)])
    cutoff, branch, r = waterfall_cutoff(values)
    assert branch == "farthest-from-chord"
    assert abs(r) <= 0.95
    assert cutoff == pytest.approx(_farthest_point_by_cross_product(values))


def test_labels_low_auc_is_sensitive_and_missing_stays_missing():
    auc = pd.Series([0.1, 0.95, np.nan, 0.3, 0.9, 0.97, 0.2], index=list("abcdefg"))
    result = binarize_response(auc, "median")
    observed = auc.dropna()
    expected = (observed < observed.median()).astype(int)
    assert result.labels.loc[observed.index].astype(int).tolist() == expected.tolist()
    assert result.labels.isna().tolist() == auc.isna().tolist()
    assert result.counts == {"sensitive": int(expected.sum()),
                             "resistant": int((expected == 0).sum()), "missing": 1}


def test_quantile_cut_and_ties():
    values = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0])
    below = binarize_response(values, "quantile", quantile=0.4)
    cutoff = np.quantile(values, 0.4)
    assert below.cutoff == pytest.approx(cutoff)
    assert below.labels.tolist() == [int(v < cutoff) for v in values]
    ties = binarize_response(pd.Series([1.0, 2.0, 3.0]), "median", sensitive_if="below_or_equal")
    assert ties.labels.tolist() == [1, 1, 0]


def test_ln_ic50_input_works_like_auc():
    rng = np.random.default_rng(1)
    ln_ic50 = pd.Series(np.concatenate([rng.normal(3, 0.3, 100), rng.normal(-2, 1, 15)]))
    result = binarize_response(ln_ic50, "waterfall")
    assert result.labels.sum() < 40  # sensitive = the low tail, a minority
    assert ln_ic50[result.labels == 1].max() < ln_ic50[result.labels == 0].min()


def test_bad_input():
    with pytest.raises(ScdealError, match="at least 3"):
        waterfall_cutoff(np.array([0.5, 0.6]))
    with pytest.raises(ScdealError, match="unknown binarisation method"):
        binarize_response(pd.Series([0.1, 0.2, 0.3]), "kmeans")
    with pytest.raises(ScdealError, match="every value is missing"):
        binarize_response(pd.Series([np.nan, np.nan]), "median")
