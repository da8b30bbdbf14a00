"""Which drugs a joint screen fits together: blocks of drugs with similar GDSC response.

A joint fit of many drugs (:class:`~scdeal.model.JointScDEAL`) shares one bulk extractor, one
cell extractor and one transfer between them; drugs whose bulk responses differ then pull the
shared parts apart (benchmarks/README.md, section 15). :func:`drug_blocks` groups the drugs of
a screen by their response across the GDSC cell lines (Ward clustering of each drug's
standardised AUC profile), into at most ``n_blocks`` blocks, so that each joint fit shares
between drugs that respond alike. Only GDSC enters: no cells and no labels of cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ScdealError


def response_table(bulk, drugs: list[str], release: str = "auto") -> pd.DataFrame:
    """Cell lines x drugs: each drug's AUC on the expressed lines (NaN where not screened),
    from the release its labels come from (``release``, as for the drug's fit)."""
    columns = {}
    for drug in drugs:
        values, _ = bulk.response_for(drug, release=release, metric="auc")
        columns[drug] = values
    return pd.DataFrame(columns)


def drug_blocks(responses: pd.DataFrame, n_blocks: int) -> list[list[str]]:
    """The drugs (columns of ``responses``) in at most ``n_blocks`` blocks of similar response.

    Each drug's profile over the lines is standardised (a line it was not screened on counts
    as its mean) and the profiles are clustered by Ward's method, which needs no seed. With no
    more drugs than blocks every drug is a block of its own. Blocks, and the drugs within
    them, keep the order of the columns (a block is placed by its first drug).

    Examples
    --------
    Two drugs that rise together and one that falls:

    >>> lines = [f"line{i}" for i in range(6)]
    >>> table = pd.DataFrame({"a": [1, 2, 3, 4, 5, 6], "b": [1, 2, 3, 5, 5, 7],
    ...                       "c": [6, 5, 4, 3, 2, 1]}, index=lines, dtype=float)
    >>> drug_blocks(table, 2)
    [['a', 'b'], ['c']]
    >>> drug_blocks(table, 3)
    [['a'], ['b'], ['c']]
    """
    if int(n_blocks) != n_blocks or n_blocks < 1:
        raise ScdealError(f"the number of drug blocks must be a whole number >= 1, "
                          f"got {n_blocks!r}")
    drugs = [str(d) for d in responses.columns]
    if len(set(drugs)) != len(drugs):
        raise ScdealError("a drug is named twice in the response table; name each once")
    if len(drugs) <= n_blocks:
        return [[drug] for drug in drugs]
    if n_blocks == 1:
        return [drugs]
    from sklearn.cluster import AgglomerativeClustering

    values = responses.to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = values - np.nanmean(values, axis=0)
        scale = np.nanstd(values, axis=0)
        z = centred / np.where(scale > 0, scale, 1.0)
    profiles = np.nan_to_num(z, nan=0.0).T  # drugs x lines
    labels = AgglomerativeClustering(n_clusters=int(n_blocks), linkage="ward").fit_predict(
        profiles)
    blocks: dict[int, list[str]] = {}
    for drug, label in zip(drugs, labels, strict=True):
        blocks.setdefault(int(label), []).append(drug)
    return list(blocks.values())
