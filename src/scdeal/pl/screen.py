"""The drug screen's heatmap: cell groups x drugs, mean P(sensitive)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ScdealError
from ._save import finish, resolve_show, start_axes


def screen_heatmap(groups: pd.DataFrame, drugs: pd.DataFrame | None = None, *,
                   value: str = "mean_p", title: str | None = None, max_drugs: int = 50,
                   ax=None, show: bool | None = None, save=None):
    """Heatmap of a screen's ``groups.csv``: one row per cell group, one column per drug.

    A drug screen's result is a table of groups x drugs rather than per-cell data, so this
    plot takes the table (and the ``drugs.csv`` verdicts) first; like every scdeal plot it
    takes ``ax=``, ``show=`` and ``save=`` (a file path) and returns the Axes (``None`` when
    shown; scdeal 0.1 returned the Figure, now ``ax.figure``).

    Colour is ``value`` (mean P(sensitive) by default; red = sensitive, blue = resistant,
    white = 0.5). Drugs whose fit was not flagged reliable in ``drugs`` (a screen's
    ``drugs.csv``) are hatched and their names end in ``*``; columns are ordered by the
    drugs' overall mean. With more than ``max_drugs`` drugs, only the ``max_drugs`` whose
    value differs most between groups are drawn, reliable drugs first (the title says so).

    Examples
    --------
    >>> groups = pd.DataFrame({"group": ["0", "0", "1", "1"], "drug": ["A", "B", "A", "B"],
    ...                        "mean_p": [0.9, 0.2, 0.4, 0.3]})
    >>> drugs = pd.DataFrame({"drug": ["A", "B"], "reliable": [True, False]})
    >>> ax = screen_heatmap(groups, drugs, show=False)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['A', 'B *']
    """
    missing = {"group", "drug", value} - set(groups.columns)
    if missing:
        raise ScdealError(f"the groups table lacks column(s) {sorted(missing)}; pass a "
                          "screen's groups.csv")
    matrix = groups.pivot_table(index="group", columns="drug", values=value, aggfunc="mean")
    if matrix.empty:
        raise ScdealError("the groups table has no rows to draw")
    unreliable: set[str] = set()
    if drugs is not None and "reliable" in drugs.columns:
        # True, or "True" once read back from drugs.csv; False and no verdict (NaN) are marked.
        flags = drugs.set_index("drug")["reliable"].astype(str)
        unreliable = {d for d in matrix.columns if flags.get(d) != "True"}
    n_all, note = matrix.shape[1], ""
    if n_all > max_drugs:
        spread = matrix.max(axis=0) - matrix.min(axis=0)
        order = sorted(matrix.columns, key=lambda d: (d in unreliable, -spread[d]))
        matrix = matrix[order[:max_drugs]]
        note = f"\nthe {max_drugs} of {n_all} drugs that differ most between groups"
    matrix = matrix[matrix.mean(axis=0).sort_values(ascending=False).index]
    n_groups, n_drugs = matrix.shape
    show = resolve_show(show)
    ax = start_axes(ax, max(4.0, 1.2 + 0.38 * n_drugs), max(2.5, 1.3 + 0.32 * n_groups), show)
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu_r", vmin=0.0, vmax=1.0,
                      aspect="auto", interpolation="nearest")
    ax.grid(False)  # a heatmap: a style's grid (e.g. scanpy's set_figure_params) hides cells
    for j, drug in enumerate(matrix.columns):
        if drug in unreliable:
            ax.add_patch(_hatch(j, n_groups))
    ax.set_xticks(np.arange(n_drugs), [f"{d} *" if d in unreliable else str(d)
                                       for d in matrix.columns], rotation=60, ha="right",
                  fontsize=8)
    ax.set_yticks(np.arange(n_groups), [str(g) for g in matrix.index], fontsize=8)
    ax.set_xlabel("drug" + ("  (* not flagged reliable)" if unreliable else ""))
    ax.set_ylabel("cell group")
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label=value.replace("_", " "))
    ax.set_title((title or "scdeal screen: mean P(sensitive) per group") + note, fontsize=10)
    return finish(ax.figure, ax, show=show, save=save)


def _hatch(column: int, n_rows: int):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, -0.5), 1.0, n_rows, fill=False, hatch="///",
                     edgecolor="#555555", linewidth=0.0)

