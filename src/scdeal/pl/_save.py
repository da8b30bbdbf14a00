"""Saving figures: PNG and PDF, written atomically, without pyplot.

Figures are built as :class:`matplotlib.figure.Figure` objects directly, so no GUI backend
is touched (safe on servers) and nothing stays open in pyplot's global state.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from .._io import atomic_path

FORMATS = ("png", "pdf")
CATEGORY_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
SENSITIVE_COLOR = "#d62728"
RESISTANT_COLOR = "#1f77b4"


def new_figure(width: float, height: float) -> Figure:
    """A Figure not registered with pyplot (constrained layout)."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, folder: str | Path, name: str, formats=FORMATS,
                dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``folder/name.<format>`` for each format; return the paths.

    Examples
    --------
    >>> fig = new_figure(3, 2)
    >>> _ = fig.add_subplot().plot([0, 1], [0, 1])
    >>> import tempfile
    >>> [p.name for p in save_figure(fig, tempfile.mkdtemp(), "line")]
    ['line.png', 'line.pdf']
    """
    folder = Path(folder)
    paths = []
    for fmt in formats:
        target = folder / f"{name}.{fmt}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
        paths.append(target)
    return paths
