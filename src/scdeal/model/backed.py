"""Deprecated location of :mod:`scdeal.data.backed` (``.h5ad`` files a block of cells at a
time); importing a name from here still works, with a ``FutureWarning``, until scdeal 0.3."""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    from ..data import backed

    if name.startswith("_") or not hasattr(backed, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"scdeal.model.backed.{name} is deprecated and will be removed in scdeal 0.3; "
                  f"use scdeal.data.backed.{name}", FutureWarning, stacklevel=2)
    return getattr(backed, name)
