"""User-facing errors.

Every problem a user can fix (bad file, unknown drug, missing genes, ...) is raised as
:class:`ScdealError` with one line that says what is wrong and what to do. The command line
prints that line alone (no traceback unless ``--debug``).
"""


class ScdealError(Exception):
    """A problem with the user's input or environment, explained in one line."""


def preview(names, n: int = 5) -> str:
    """The first ``n`` names, quoted, for a one-line message (with the total when cut)."""
    names = [str(x) for x in names]
    more = f", ... ({len(names)} in all)" if len(names) > n else ""
    return ", ".join(repr(x) for x in names[:n]) + more


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
