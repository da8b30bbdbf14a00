"""Robust matching of cell-line and drug names across GDSC files and user input.

GDSC spells names inconsistently between files and releases (``PLX-4720`` / ``PLX4720`` /
``PLX.4720``, ``KM-H2`` / ``KMH2``). We match on a normal form: upper case, only letters and
digits.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..errors import ScdealError

_NON_ALNUM = re.compile(r"[^A-Z0-9]")


def normalize_name(name: object) -> str:
    """Upper-case ``name`` and drop everything but letters and digits.

    Examples
    --------
    >>> normalize_name("PLX-4720"), normalize_name("I.BET.762"), normalize_name("ko-h2")
    ('PLX4720', 'IBET762', 'KOH2')
    """
    return _NON_ALNUM.sub("", str(name).upper())


def normalize_names(names: pd.Series) -> pd.Series:
    """:func:`normalize_name` of every entry, computed once per distinct name (GDSC response
    tables repeat each line's name hundreds of times).

    Examples
    --------
    >>> normalize_names(pd.Series(["KM-H2", "km.h2", "PLX-4720"])).tolist()
    ['KMH2', 'KMH2', 'PLX4720']
    """
    codes, uniques = pd.factorize(names, use_na_sentinel=False)
    normal = np.array([normalize_name(u) for u in uniques], dtype=object)
    return pd.Series(normal[codes], index=names.index, name=names.name)


def resolve_name(query: str, candidates: Iterable[str], *, what: str = "drug") -> str:
    """Return the candidate that ``query`` names (exactly, or after normalisation).

    Raises :class:`ScdealError` listing close matches when nothing matches, or the competing
    spellings when the normal form is ambiguous.

    Examples
    --------
    >>> resolve_name("plx4720", ["PLX-4720", "Gefitinib"])
    'PLX-4720'
    >>> resolve_name("Gefitnib", ["PLX-4720", "Gefitinib"])
    Traceback (most recent call last):
    ...
    scdeal.errors.ScdealError: unknown drug 'Gefitnib'; close matches: Gefitinib
    """
    candidates = list(dict.fromkeys(candidates))
    if query in candidates:
        return query
    key = normalize_name(query)
    hits = [c for c in candidates if normalize_name(c) == key]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ScdealError(f"{what} {query!r} is ambiguous: it matches {', '.join(hits)}; "
                          "give one of these exact spellings")
    by_key = {normalize_name(c): c for c in candidates}
    close = difflib.get_close_matches(key, list(by_key), n=5, cutoff=0.6)
    # Also offer names that contain the query (e.g. 'BET' -> 'I-BET-762').
    contains = [k for k in by_key if key and key in k and k not in close][: 5 - len(close)]
    suggestions = [by_key[k] for k in close + contains]
    hint = f"; close matches: {', '.join(suggestions)}" if suggestions else ""
    raise ScdealError(f"unknown {what} {query!r}{hint}")
