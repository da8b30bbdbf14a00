"""Sphinx configuration of the scdeal documentation site.

Build (README, Development): ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
The tutorials (MyST-NB text notebooks in ``tutorials/``) are executed on every build; any cell
that raises fails the build. GDSC comes from ``SCDEAL_DATA_DIR`` or scdeal's cache, or is
downloaded from PyPI by scdeal's own loader, as for a user.
"""

from __future__ import annotations

from importlib.metadata import version as _version

project = "scdeal"
author = "scdeal developers"
copyright = "scdeal developers, MIT licence"
release = _version("scdeal")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]

exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# --- API reference -------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
# Docstrings use ``ScDEAL`` style short references; unresolved ones stay plain text.
default_role = "literal"

# --- notebooks ------------------------------------------------------------------------------
nb_execution_mode = "force"           # every build runs the tutorials afresh
nb_execution_raise_on_error = True    # a failing cell fails the build
nb_execution_timeout = 600            # seconds per cell
nb_execution_show_tb = True           # the traceback in the build log when a cell fails
nb_execution_in_temp = True        # run folders written by the tutorials stay out of docs/
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# --- HTML -----------------------------------------------------------------------------------
html_theme = "furo"
html_title = "scdeal"
html_theme_options = {
    "source_repository": "",
    "navigation_with_keys": True,
}
html_show_sourcelink = False

# --- constants and borrowed members in the API reference -----------------------------------
# Module-level constants have no docstring of their own (autodoc would show their type's, e.g.
# dict's); these are theirs. A constant listed in the API reference and missing here fails the
# build (a warning, and warnings are errors).
CONSTANTS = {
    "scdeal.datasets.DATASETS": "The registry of the paper's six single-cell datasets: key -> "
                                ":class:`~scdeal.datasets.PaperDataset`.",
    "scdeal.datasets.PROVENANCE_KEY": "The ``uns`` key under which :func:`~scdeal.datasets."
                                      "load_dataset` records where a dataset came from.",
    "scdeal.model.PRESETS": "Name -> configuration fields of every named configuration "
                            "(``default`` and the paper's per-dataset presets); the same as "
                            ":func:`~scdeal.model.presets`.",
    "scdeal.model.METRIC_NAMES": "The names of the metrics :func:`~scdeal.model."
                                 "classification_metrics` returns.",
    "scdeal.benchmark.METHODS": "The method registry: name -> :class:`~scdeal.benchmark."
                                "ScDealVariant` or :class:`~scdeal.benchmark.Baseline` "
                                "(``scdeal benchmark --methods``).",
    "scdeal.benchmark.DEFAULT_METHODS": "The methods of ``--methods all``: every method "
                                        "except those that learn from labelled cells (they "
                                        "join with ``--shots``).",
    "scdeal.benchmark.RESULT_COLUMNS": "The columns of a benchmark's ``results.csv``, in "
                                       "order.",
    "scdeal.nn.SENSITIVE": "Index of the sensitive class in the response logits and "
                           "probabilities.",
    "scdeal.nn.RESISTANT": "Index of the resistant class in the response logits and "
                           "probabilities.",
    "scdeal.nn.Activation": "The activation functions an extractor or predictor can use.",
    "scdeal.nn.ExtractorKind": "The kinds of feature extractor: autoencoder, denoising or "
                               "variational.",
    "scdeal.nn.NoiseKind": "The corruptions of a denoising autoencoder's input.",
}
# Large values stay off the page (their keys are listed by the functions that read them).
autosummary_context = {"hide_value": ["scdeal.datasets.DATASETS", "scdeal.model.PRESETS",
                                      "scdeal.benchmark.METHODS"]}


def _constant_docstring(app, what, name, obj, options, lines):
    if what not in ("data", "attribute") or not name.startswith("scdeal."):
        return
    own = type(obj).__doc__
    inherited = own.strip().splitlines() if isinstance(own, str) else []
    if lines and [line.strip() for line in lines if line.strip()] != [
            line.strip() for line in inherited if line.strip()]:
        return  # a docstring of its own
    if name in CONSTANTS:
        lines[:] = [CONSTANTS[name], ""]
    elif what == "data":
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "constant %s has no description: add it to CONSTANTS in docs/conf.py", name)


def _skip_borrowed(app, what, name, obj, skip, options):
    """Members a scdeal class borrows from another library (``probability =
    staticmethod(torch.sigmoid)``) are that library's API, not scdeal's."""
    module = getattr(obj, "__module__", None) or ""
    if callable(obj) and not isinstance(obj, type) and not module.startswith("scdeal"):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _constant_docstring)
    app.connect("autodoc-skip-member", _skip_borrowed)
