"""Figure plumbing shared by every plot: scanpy's ``ax=`` / ``show=`` / ``save=`` conventions,
atomic saving, and one-line errors for missing AnnData keys.

Figures that are not going to be shown are built as :class:`matplotlib.figure.Figure`
objects directly, so no GUI backend is touched (safe on servers) and nothing stays open in
pyplot's global state; only a figure that is shown goes through pyplot.
"""

from __future__ import annotations

import sys
from os import PathLike
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._io import atomic_path
from ..errors import ScdealError

FORMATS = ("png", "pdf")
CATEGORY_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
SENSITIVE_COLOR = "#d62728"
RESISTANT_COLOR = "#1f77b4"
# matplotlib's built-in backends that only write files: a figure "shown" there goes nowhere.
FILE_ONLY_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
SAVE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "tif", "tiff", "eps", "ps")


def new_figure(width: float, height: float) -> Figure:
    """A Figure not registered with pyplot (constrained layout).

    Examples
    --------
    >>> new_figure(3, 2).get_size_inches().tolist()
    [3.0, 2.0]
    """
    return Figure(figsize=(width, height), layout="constrained")


def resolve_show(show: bool | None) -> bool:
    """``show=None`` as scanpy reads it: ``scanpy.settings.autoshow`` (True unless a user or a
    test suite turned it off), and never on a backend that only writes files (Agg, pdf, ...),
    where nothing could appear and the figure would only linger in pyplot.

    Examples
    --------
    >>> resolve_show(False), resolve_show(None)   # the doctests run on Agg
    (False, False)
    """
    if show is not None:
        return bool(show)
    scanpy = sys.modules.get("scanpy")  # only when the user imported it: scanpy loads slowly
    if scanpy is not None and not getattr(getattr(scanpy, "settings", None), "autoshow", True):
        return False
    import matplotlib

    return matplotlib.get_backend().lower() not in FILE_ONLY_BACKENDS


def start_figure(width: float, height: float, show: bool) -> Figure:
    """A new figure: through pyplot when it is to be shown, else a plain :func:`new_figure`."""
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=(width, height), layout="constrained")
    return new_figure(width, height)


def start_axes(ax: Axes | None, width: float, height: float, show: bool) -> Axes:
    """``ax`` itself, or the single Axes of a new figure of that size."""
    return ax if ax is not None else start_figure(width, height, show).add_subplot()


def finish(fig: Figure, returned, *, show: bool, save: str | PathLike | None):
    """Save (``save``: a file path), show, and return like scanpy: ``None`` when shown, else
    ``returned`` (the Axes of a single-panel plot, the Figure of a multi-panel one)."""
    if save is not None and save is not False:
        write_figure(fig, save)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
        return None
    return returned


def write_figure(fig: Figure | Axes, path: str | PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically; the format is the file's extension.

    Unlike scanpy, whose ``save`` is a suffix appended to a default name in
    ``settings.figdir``, scdeal's ``save=`` is the full path of the file.

    Examples
    --------
    >>> fig = new_figure(3, 2)
    >>> write_figure(fig, "line.svg").name
    'line.svg'
    """
    if isinstance(path, bool):
        raise ScdealError(f"save= takes a file path such as 'figures/umap.png', not {path}")
    target = Path(path)
    fmt = target.suffix.lstrip(".").lower()
    if fmt not in SAVE_FORMATS:
        raise ScdealError(f"save={str(path)!r} needs a file extension among "
                          f"{', '.join(SAVE_FORMATS)} (it decides the format)")
    figure = fig.figure if isinstance(fig, Axes) else fig
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format=fmt, dpi=dpi)
    return target


def save_figure(fig: Figure | Axes, folder: str | Path, name: str, formats=FORMATS,
                dpi: int = 150) -> list[Path]:
    """Write ``fig`` (or the figure of an Axes) as ``folder/name.<format>`` for each format;
    return the paths.

    Examples
    --------
    >>> fig = new_figure(3, 2)
    >>> _ = fig.add_subplot().plot([0, 1], [0, 1])
    >>> [p.name for p in save_figure(fig, "figures", "line")]
    ['line.png', 'line.pdf']
    """
    return [write_figure(fig, Path(folder) / f"{name}.{fmt}", dpi=dpi) for fmt in formats]


# What to run to make the keys scdeal's plots read, for the error a missing key raises.
MAKERS = {
    "sens_preds": "model.predict(adata)", "sens_label": "model.predict(adata)",
    "rest_preds": "model.predict(adata)", "sens_preds_pret": "model.predict(adata)",
    "X_scdeal": "model.predict(adata)", "scdeal": "model.predict(adata)",
    "X_umap": "scdeal.tl.cell_graph (its result has it) or scanpy.tl.umap(adata)",
    "dpt_pseudotime": "scdeal.tl.trajectory(graph, groupby, root=...)",
    "gene_scores": "scdeal.tl.gene_scores(adata)",
    "critical_genes": "scdeal.tl.critical_genes(attr)",
    "scdeal_trajectory": "scdeal.tl.trajectory(graph, groupby)",
    "scdeal_stability": "scdeal.tl.stability_test(adata, drug, label_key)",
    "ig_sensitive": "scdeal.tl.integrated_gradients(adata, model)",
}


def _advice(key: str, default: str) -> str:
    for name, maker in MAKERS.items():
        if key == name or key.endswith(name):  # also key_prefix'ed prediction keys
            return f"run {maker} first"
    return default


def require(adata, slot: str, key: str, default: str = "check the key's name") -> None:
    """Raise a one-line :class:`ScdealError` naming ``adata.<slot>[key]`` and what makes it
    when the key is absent."""
    if key not in getattr(adata, slot):
        raise ScdealError(f"adata.{slot} has no {key!r}; {_advice(key, default)}")
