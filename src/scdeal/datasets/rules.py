"""Label rules of the paper's datasets (method notes sections 2.2 and 8.3), as pure functions.

Every rule returns an integer array: 1 = sensitive, 0 = resistant. String tests are
case-sensitive substring tests, exactly as in the original code.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..errors import ScdealError


def _strings(values: Iterable, what: str) -> pd.Series:
    series = pd.Series(list(values), dtype=object)
    missing = series.isna()
    if missing.any():
        raise ScdealError(f"{int(missing.sum())} cell(s) have no {what}; every cell needs one "
                          "to be labelled")
    return series.astype(str)


def resistant_if_contains(values: Iterable, token: str, what: str) -> np.ndarray:
    """1 where ``token`` does not occur in the value, 0 where it does.

    Examples
    --------
    >>> resistant_if_contains(["Sensitive", "Holiday", "Resistant"], "Resistant", "cluster")
    array([1, 1, 0])
    """
    strings = _strings(values, what)
    return (~strings.str.contains(token, regex=False)).astype(int).to_numpy()


def gse117872_labels(cluster: Iterable) -> np.ndarray:
    """GSE117872: resistant if ``cluster`` contains "Resistant" (Holiday cells are sensitive)."""
    return resistant_if_contains(cluster, "Resistant", "'cluster' value")


def gse117872_holiday(cluster: Iterable) -> np.ndarray:
    """GSE117872: True for drug-holiday cells (``cluster`` contains "Holiday")."""
    return _strings(cluster, "'cluster' value").str.contains("Holiday", regex=False).to_numpy()


def _id_parts(cell_ids: Iterable, dataset: str, min_parts: int) -> pd.DataFrame:
    ids = _strings(cell_ids, "cell id")
    parts = ids.str.split("_", expand=True)
    short = parts.notna().sum(axis=1) < min_parts
    if short.any():
        raise ScdealError(f"{int(short.sum())} {dataset} cell id(s) have fewer than {min_parts} "
                          f"'_'-separated parts (e.g. {ids[short].iloc[0]!r}); the label is "
                          "read from the cell id, so the matrix must keep the GEO cell names")
    return parts


def gse112274_labels(cell_ids: Iterable) -> np.ndarray:
    """GSE112274: sensitive if part 2 of the id (``PC9_parental_GEF_S12``) contains "parental".

    Examples
    --------
    >>> gse112274_labels(["PC9_parental_GEF_S12", "PC9_HIGH_AF_S41"])
    array([1, 0])
    """
    parts = _id_parts(cell_ids, "GSE112274", 2)
    return parts[1].str.contains("parental", regex=False).astype(int).to_numpy()


def gse149383_labels(cell_ids: Iterable) -> np.ndarray:
    """GSE149383: resistant if the id prefix (before the first "_") contains "res".

    The cell ids carry the sample label (``sens_GTTTGCTGTTTC``, ``resis_GCCACGGACGAG``), the
    same label the original read from the meta file's label column.

    Examples
    --------
    >>> gse149383_labels(["sens_GTTTGCTGTTTC", "resis_GCCACGGACGAG"])
    array([1, 0])
    """
    parts = _id_parts(cell_ids, "GSE149383", 2)
    return resistant_if_contains(parts[0], "res", "id prefix")


def gse140440_labels(annotation: Iterable) -> np.ndarray:
    """GSE140440: resistant if the Annotation.txt label contains "Res"."""
    return resistant_if_contains(annotation, "Res", "Annotation.txt label")


def gse110894_labels(sample_name: Iterable) -> np.ndarray:
    """GSE110894: resistant if 'Sample name' contains "RESISTANT" (withdrawal included)."""
    return resistant_if_contains(sample_name, "RESISTANT", "'Sample name'")


def gse110894_empty(sample_name: Iterable) -> np.ndarray:
    """GSE110894: True for wells without a cell ('Sample name' contains "EMPTY")."""
    return _strings(sample_name, "'Sample name'").str.contains("EMPTY", regex=False).to_numpy()
