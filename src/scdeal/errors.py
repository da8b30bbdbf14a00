"""User-facing errors.

Every problem a user can fix (bad file, unknown drug, missing genes, ...) is raised as
:class:`ScdealError` with one line that says what is wrong and what to do. The command line
prints that line alone (no traceback unless ``--debug``).
"""


class ScdealError(Exception):
    """A problem with the user's input or environment, explained in one line."""
