"""True labels of cells: a label column and an optional mapping -> 1 (sensitive) / 0
(resistant).

Values are matched leniently (``1``, ``1.0`` and ``"1"`` are the same; strings ignore case and
surrounding spaces); anything not covered is an error unless explicitly allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ScdealError, preview

_DEFAULT_LABELS = {"0": 0, "1": 1, "resistant": 0, "sensitive": 1}


def _label_token(value: Any) -> str:
    """Comparable form of a label value: 1, 1.0, '1', ' 1 ' -> '1'; strings lower-cased."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | float | np.integer | np.floating):
        return str(int(value)) if float(value).is_integer() else str(float(value))
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def parse_label_map(text: str) -> dict[str, int]:
    """Parse ``"sensitive=1,resistant=0"`` (the CLI's ``--label-map``) into a mapping.

    Examples
    --------
    >>> parse_label_map("Sensitive=1, Holiday=1, Resistant=0")
    {'Sensitive': 1, 'Holiday': 1, 'Resistant': 0}
    """
    mapping: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        key, eq, value = item.rpartition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or value not in ("0", "1"):
            raise ScdealError(f"label map item {item!r} must look like VALUE=1 or VALUE=0 "
                              "(1 = sensitive, 0 = resistant), e.g. 'sensitive=1,resistant=0'")
        if mapping.get(key, int(value)) != int(value):
            raise ScdealError(f"label map gives {key!r} both 0 and 1; give it once")
        mapping[key] = int(value)
    if not mapping:
        raise ScdealError("the label map is empty; write it like 'sensitive=1,resistant=0'")
    return mapping


def attach_labels(adata: AnnData, label_key: str, mapping: Mapping[Any, int] | None = None, *,
                  key_added: str = "sensitive", allow_missing: bool = False) -> AnnData:
    """Turn ``obs[label_key]`` into 1 (sensitive) / 0 (resistant) in ``obs[key_added]``.

    Parameters
    ----------
    adata
        Cells with a label column; changed in place and returned.
    label_key
        The obs column with the true labels.
    mapping
        Label value -> 1/0. Values are matched leniently (``1``, ``1.0`` and ``"1"`` are the
        same; strings ignore case and surrounding spaces). ``None`` accepts 0/1 values and the
        strings "sensitive"/"resistant"; anything else is an error asking for a mapping.
    key_added
        Column written, pandas nullable ``Int8``.
    allow_missing
        Leave values the mapping does not cover unlabelled (NA) instead of raising. Missing
        values (NaN, empty) always stay NA; they are never given a class.

    Examples
    --------
    >>> from anndata import AnnData
    >>> cells = AnnData(obs=pd.DataFrame({"cluster": ["Sensitive", "Holiday", "Resistant"]},
    ...                                  index=["c1", "c2", "c3"]))
    >>> attach_labels(cells, "cluster", {"Sensitive": 1, "Holiday": 1, "Resistant": 0}).obs
          cluster  sensitive
    c1  Sensitive          1
    c2    Holiday          1
    c3  Resistant          0
    """
    adata.obs[key_added] = _labels(adata.obs, label_key, mapping, allow_missing)
    return adata


def binary_labels(obs: pd.DataFrame, label_key: str, mapping: Mapping[Any, int] | None = None,
                  *, allow_missing: bool = False) -> pd.Series:
    """The labels of :func:`attach_labels` as floats (1.0 sensitive, 0.0 resistant, NaN
    unlabelled), indexed like ``obs``, without touching ``obs``.

    Examples
    --------
    >>> obs = pd.DataFrame({"response": ["sensitive", "resistant", None]}, index=["a", "b", "c"])
    >>> binary_labels(obs, "response").tolist()
    [1.0, 0.0, nan]
    """
    return _labels(obs, label_key, mapping, allow_missing).astype("float")


def _labels(obs: pd.DataFrame, label_key: str, mapping: Mapping[Any, int] | None,
            allow_missing: bool) -> pd.Series:
    """Nullable ``Int8`` 1/0 labels of ``obs[label_key]`` (see :func:`attach_labels`)."""
    if label_key not in obs.columns:
        raise ScdealError(f"obs has no label column {label_key!r}; its columns are "
                          f"{preview(obs.columns)}")
    values = obs[label_key]
    raw = values.astype(object).to_numpy()
    missing = values.isna().to_numpy() | np.array([isinstance(v, str) and not v.strip()
                                                   for v in raw])
    if mapping is None:
        table, source = _DEFAULT_LABELS, None
    else:
        table = {}
        for key, label in mapping.items():
            if _label_token(label) not in ("0", "1"):
                raise ScdealError(f"label map sends {key!r} to {label!r}; use 1 (sensitive) "
                                  "or 0 (resistant)")
            table[_label_token(key)] = int(label)
        source = mapping
    tokens = [None if miss else _label_token(v) for v, miss in zip(raw, missing, strict=True)]
    labels = pd.array([table.get(t) if t is not None else None for t in tokens], dtype="Int8")
    unknown = pd.Series(raw[[t is not None and t not in table for t in tokens]])
    if len(unknown) and not allow_missing:
        counts = unknown.astype(str).value_counts()
        shown = ", ".join(f"{v!r} ({n} cells)" for v, n in counts.head(10).items())
        if source is None:
            raise ScdealError(f"labels in {label_key!r} are not 0/1 or sensitive/resistant: "
                              f"{shown}; pass a mapping (--label-map "
                              "sensitive=1,resistant=0 style)")
        raise ScdealError(f"labels in {label_key!r} not covered by the mapping: {shown}; add "
                          "them to the mapping or allow missing labels")
    return pd.Series(labels, index=obs.index, name=label_key)

