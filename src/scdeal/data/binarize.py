"""Turning continuous drug response (AUC or ln IC50) into sensitive / resistant labels.

GDSC's AUC is the area under the fitted viability curve and ln(IC50) the log half-inhibitory
concentration: for both, LOWER means MORE sensitive. Labels are 1 = sensitive, 0 = resistant;
missing responses stay missing (pandas ``Int8`` NA), never a third class or a default value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import ScdealError

Method = Literal["waterfall", "median", "quantile"]


@dataclass(frozen=True)
class Binarization:
    """Labels and how they were obtained.

    Attributes
    ----------
    labels
        1 = sensitive, 0 = resistant, NA = not screened (pandas ``Int8``), indexed like the
        responses.
    cutoff, method, branch
        The response cut at, the method asked for, and the branch of it that set the cutoff
        (``"linear-median"``, ``"farthest-from-chord"`` or ``"quantile"``).
    pearson_r
        Linearity of the sorted responses (the waterfall method only, else ``None``).

    Examples
    --------
    >>> auc = pd.Series([0.2, 0.9, None, 0.5, 0.95], index=list("abcde"))
    >>> result = binarize_response(auc, "median")
    >>> result.cutoff, result.branch, result.counts
    (0.7, 'quantile', {'sensitive': 2, 'resistant': 2, 'missing': 1})
    """

    labels: pd.Series  # Int8 with NA, same index as the input
    cutoff: float
    method: str
    branch: str  # "linear-median", "farthest-from-chord", "quantile"
    pearson_r: float | None  # linearity of the waterfall curve (waterfall only)

    @property
    def counts(self) -> dict[str, int]:
        lab = self.labels
        return {
            "sensitive": int((lab == 1).sum()),
            "resistant": int((lab == 0).sum()),
            "missing": int(lab.isna().sum()),
        }


def waterfall_cutoff(values: np.ndarray, *, linear_r: float = 0.95) -> tuple[float, str, float]:
    """Cutoff of the "waterfall" method (scDEAL paper, Methods; CCLE's calling procedure).

    Sort the responses in descending order and plot them against their rank. If the curve is
    close to a line (``|pearson r| > linear_r``) the cutoff is the median. Otherwise it is the
    response at the point farthest from the chord joining the first and last points, with
    distances taken in raw (rank, response) coordinates.

    Returns
    -------
    cutoff, branch, pearson_r
        ``branch`` is ``"linear-median"`` or ``"farthest-from-chord"``.

    Examples
    --------
    >>> import numpy as np
    >>> waterfall_cutoff(np.linspace(0, 1, 11))[:2]   # a straight line -> the median
    (0.5, 'linear-median')
    """
    y = np.sort(np.asarray(values, dtype=float))[::-1]
    n = y.size
    if n < 3:
        raise ScdealError(f"waterfall needs at least 3 responses, got {n}")
    x = np.arange(1, n + 1, dtype=float)
    r = float(np.corrcoef(x, y)[0, 1]) if np.ptp(y) > 0 else 1.0
    if abs(r) > linear_r:
        return float(np.median(y)), "linear-median", r
    y_first, y_last = y[0], y[-1]
    # Perpendicular distance of each (x_i, y_i) to the line through (1, y_first), (n, y_last).
    dist = np.abs((y_last - y_first) * x - (n - 1) * y + n * y_first - y_last)
    dist /= np.hypot(y_last - y_first, n - 1)
    return float(y[int(np.argmax(dist))]), "farthest-from-chord", r


def binarize_response(
    response: pd.Series,
    method: Method = "waterfall",
    *,
    quantile: float = 0.5,
    linear_r: float = 0.95,
    sensitive_if: Literal["below", "below_or_equal"] = "below",
) -> Binarization:
    """Binarise one drug's responses into 1 = sensitive, 0 = resistant.

    Parameters
    ----------
    response
        AUC or ln(IC50) per cell line (lower = more sensitive); NaN = not screened.
    method
        ``"waterfall"`` (paper default), ``"median"``, or ``"quantile"`` (cut at ``quantile``).
    sensitive_if
        Whether a response equal to the cutoff counts as sensitive (``"below_or_equal"``)
        or resistant (``"below"``, the paper's reading: sensitive = AUC < cutoff).

    Examples
    --------
    >>> import pandas as pd
    >>> auc = pd.Series([0.2, 0.9, None, 0.5, 0.95], index=list("abcde"))
    >>> binarize_response(auc, "median").labels.tolist()
    [1, 0, <NA>, 1, 0]
    """
    values = pd.to_numeric(response, errors="coerce").astype(float)
    observed = values.dropna()
    if method == "waterfall":
        cutoff, branch, r = waterfall_cutoff(observed.to_numpy(), linear_r=linear_r)
    elif method in ("median", "quantile"):
        if observed.empty:
            raise ScdealError("no responses to binarise: every value is missing")
        q = 0.5 if method == "median" else quantile
        if not 0 < q < 1:
            raise ScdealError(f"quantile must lie strictly between 0 and 1, got {q}")
        cutoff, branch, r = float(observed.quantile(q)), "quantile", None
    else:
        raise ScdealError(f"unknown binarisation method {method!r}; use waterfall, median or quantile")
    sensitive = observed < cutoff if sensitive_if == "below" else observed <= cutoff
    labels = pd.Series(pd.NA, index=values.index, dtype="Int8")
    labels.loc[observed.index] = sensitive.astype("int8").to_numpy()
    return Binarization(labels=labels, cutoff=cutoff, method=method, branch=branch, pearson_r=r)
