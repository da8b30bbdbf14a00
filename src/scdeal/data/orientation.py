"""Which axis of an expression table holds the cells: told by the names, never by the shape.

One policy for every table scdeal reads: the orientation comes from the caller (a user's file)
or from known cell ids (the paper's GEO files); names that look like genes on the cell axis and
like cells on the gene axis make it an error, never a silent transpose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ScdealError, preview

Orientation = Literal["cells_by_genes", "genes_by_cells"]
_HINT_TRANSPOSED = 'pass orientation="genes_by_cells" (--orientation genes-by-cells on the CLI)'

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9]*([-._@][A-Za-z0-9]+)*$")
_BARCODE = re.compile(r"[ACGT]{10,}")


def name_kind(names: Sequence[str]) -> Literal["genes", "cells", "unknown"]:
    """Whether names look like gene ids, like cell ids, or neither.

    Genes: mostly all-digit (Entrez) or Ensembl ids, or symbol-shaped names with many distinct
    stems once digits are removed (TP53, EGFR, MT-CO1, ...). Cells: mostly DNA barcodes, or
    names built from a few templates with a running number (c4653, HN120P_A01, cell_17),
    or plain row numbers. Fewer than 20 symbol-shaped names are "unknown".
    """
    sample = [str(n) for n in list(names)[:2000]]
    if not sample:
        return "unknown"
    n = len(sample)
    frac = lambda pattern: sum(bool(pattern.search(s)) for s in sample) / n  # noqa: E731
    if frac(_BARCODE) >= 0.5:
        return "cells"
    if all(s.isdigit() for s in sample):
        numbers = np.sort(np.array(sample, dtype=np.int64))
        # 0..n-1 or 1..n are row numbers, not Entrez ids
        return "cells" if n > 1 and (np.diff(numbers) == 1).all() else "genes"
    if sum(s.isdigit() for s in sample) / n >= 0.9 or frac(_ENSEMBL) >= 0.9:
        return "genes"
    stems = {re.sub(r"\d+", "#", s) for s in sample}
    if len(stems) <= max(2, 0.05 * n):
        return "cells"
    # symbol shapes say little about a handful of names (ctrl, drugA, ...)
    if n >= 20 and frac(_SYMBOL) >= 0.9 and len(stems) >= 0.3 * n:
        return "genes"
    return "unknown"


def refuse_transposed(path: Path, cells: Sequence[str], genes: Sequence[str],
                       orientation: Orientation) -> None:
    """Raise when the names say the given orientation is the wrong way round.

    Refused when the would-be cell names look like genes and the would-be gene names like
    cells, or (cells by genes) when there are 5 times more rows than columns, the rows look
    like genes and the columns do not.
    """
    cell_kind, gene_kind = name_kind(cells), name_kind(genes)
    wrong = cell_kind == "genes" and gene_kind == "cells"
    if orientation == "cells_by_genes":
        wrong = wrong or (cell_kind == "genes" and gene_kind != "genes"
                          and len(cells) >= 5 * len(genes))
        if wrong:
            raise ScdealError(f"{path} looks transposed: its {len(cells)} rows are named like "
                              f"genes ({preview(cells)}) and its columns like cells; "
                              f"{_HINT_TRANSPOSED}")
    elif wrong:
        raise ScdealError(f"{path} looks like a cells-by-genes table: its rows are named like "
                          f"cells ({preview(genes)}) and its columns like genes; pass "
                          'orientation="cells_by_genes" (--orientation cells-by-genes)')


def cells_on_columns(rows: Sequence[str], columns: Sequence[str]) -> bool | None:
    """Whether a table's columns (True) or rows (False) hold the cells, told by the names
    alone (:func:`name_kind`); ``None`` when the names do not tell.

    Examples
    --------
    >>> genes = ["TP53", "EGFR", "MYC", "KRAS", "GAPDH", "ACTB", "CD44", "ALB", "SOX2", "MKI67",
    ...          "VIM", "PTEN", "RB1", "CDK4", "CCND1", "BRAF", "NRAS", "ERBB2", "MET", "AXL"]
    >>> cells_on_columns(genes, [f"cell_{i}" for i in range(9)])
    True
    """
    row_kind, column_kind = name_kind(rows), name_kind(columns)
    if row_kind == "genes" and column_kind != "genes":
        return True
    if column_kind == "genes" and row_kind != "genes":
        return False
    return None
