"""User-facing errors.

Every problem a user can fix (bad file, unknown drug, missing genes, ...) is raised as
:class:`ScdealError` with one line that says what is wrong and what to do. The command line
prints that line alone (no traceback unless ``--debug``).
"""


class ScdealError(Exception):
    """A problem with the user's input or environment, explained in one line.

    Examples
    --------
    >>> import scdeal
    >>> try:
    ...     scdeal.ScDEAL(cache=3)
    ... except scdeal.ScdealError as err:
    ...     print(err)
    cache must be True, False, a folder or a ModelCache, not 3
    """


class DrugError(ScdealError):
    """A drug that cannot be fitted, for a reason about the drug itself: an unknown name, no
    screen in the asked release, too few labelled cell lines. A drug screen reports such a
    drug as ``skipped``; any other error (the environment: GDSC cannot be loaded, no GPU) is
    ``failed`` and tried again when the screen is resumed."""


def preview(names, n: int = 5) -> str:
    """The first ``n`` names, quoted, for a one-line message (with the total when cut)."""
    names = [str(x) for x in names]
    more = f", ... ({len(names)} in all)" if len(names) > n else ""
    return ", ".join(repr(x) for x in names[:n]) + more


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def warn_deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (``FutureWarning``, shown to users by default) that ``old`` goes in scdeal 0.3.

    ``stacklevel`` 3 points at the caller of the function that calls this one.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_deprecated("f(model, adata)", "f(adata, model)")
    >>> print(caught[0].message)
    f(model, adata) is deprecated and will be removed in scdeal 0.3; use f(adata, model)
    """
    import warnings

    warnings.warn(f"{old} is deprecated and will be removed in scdeal 0.3; use {new}",
                  FutureWarning, stacklevel=stacklevel)


def positional_as_keywords(function: str, args: tuple, names: tuple[str, ...]) -> dict:
    """The arguments an older signature took by position, as ``{name: value}`` for the
    keyword-only ``names`` of the new one, with a deprecation warning.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     positional_as_keywords("enrichment_barplot", ("hallmark",), ("title", "n_terms"))
    {'title': 'hallmark'}
    """
    if len(args) > len(names):
        raise TypeError(f"{function}() takes at most {len(names) + 1} positional arguments "
                        f"({len(args) + 1} given)")
    used = names[:len(args)]
    warn_deprecated(f"passing {', '.join(used)} of {function}() by position",
                    f"{function}(..., {', '.join(f'{n}=...' for n in used)})", stacklevel=4)
    return dict(zip(used, args, strict=True))
