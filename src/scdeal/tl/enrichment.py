"""Over-representation of gene lists in gene-set collections and regulator target sets.

The paper ran clusterProfiler (GO, KEGG; BH-adjusted) and LISA2 (transcriptional regulators)
on the critical genes, both needing online databases. Offline, the user points to files:

- gene-set collections as GMT files (:func:`read_gmt`; plain or gzip; column 1 the set's id or
  name, column 2 its description or URL, then genes);
- a TF -> target table (:func:`read_regulons`): a CSV/TSV with a header holding ``source`` and
  ``target`` columns (CollecTRI as exported by decoupler: source, target, weight, PMID) or a
  header-less TSV whose first two columns are TF and target (TRRUST: TF, target, mode, PMIDs).

The test is gseapy's offline ``enrich`` (the one-sided hypergeometric test
``hypergeom.sf(x - 1, N, m, k)`` with N background genes, m of them in the set, k in the query,
x in both; Benjamini-Hochberg over the sets that share at least one gene with the query, as
clusterProfiler does). Sets are first restricted to the background and filtered by that size.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import ScdealError

log = logging.getLogger(__name__)

RegulatorMode = Literal["all", "activation", "repression"]
COLUMNS = ["collection", "term", "description", "overlap", "set_size", "query_size",
           "background_size", "expected", "fold_enrichment", "odds_ratio", "pvalue",
           "pvalue_adj", "genes"]


@dataclass
class GeneSets:
    """A named collection of gene sets: term -> genes, plus a description per term.

    Examples
    --------
    >>> sets = GeneSets("demo", {"A": ["G1", "G2"], "B": ["G3"]})
    >>> len(sets), sets.sets["A"]
    (2, ['G1', 'G2'])
    """

    name: str
    sets: dict[str, list[str]]
    descriptions: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sets)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("rt", encoding="utf-8", errors="replace")


def _collection_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".gmt", ".csv", ".tsv", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def read_gmt(path: str | Path, name: str | None = None) -> GeneSets:
    """Read a GMT file (``.gmt`` or ``.gmt.gz``).

    Each line: term, description, gene, gene, ... separated by tabs. Terms that appear twice
    are merged. Empty gene fields are ignored.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.gmt"
    >>> _ = path.write_text("HALLMARK_APOPTOSIS\\turl\\tCASP3\\tBAX\\tBCL2\\n"
    ...                     "HALLMARK_MYC_TARGETS_V1\\turl\\tMYC\\tNPM1\\n")
    >>> hallmark = read_gmt(path)
    >>> len(hallmark), hallmark.sets["HALLMARK_APOPTOSIS"][:3]
    (2, ['CASP3', 'BAX', 'BCL2'])
    """
    path = Path(path)
    if not path.is_file():
        raise ScdealError(f"gene-set file not found: {path}")
    sets: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip() or line.startswith("#"):
                    continue
                fields = line.split("\t")
                if len(fields) < 3:
                    raise ScdealError(f"{path} line {number} has {len(fields)} tab-separated "
                                      "field(s); a GMT line is term, description, genes...")
                term = fields[0].strip()
                genes = [g.strip() for g in fields[2:] if g.strip()]
                if term in sets:
                    sets[term] = list(dict.fromkeys(sets[term] + genes))
                else:
                    sets[term] = list(dict.fromkeys(genes))
                    descriptions[term] = fields[1].strip()
    except (OSError, UnicodeError, EOFError) as exc:
        raise ScdealError(f"cannot read {path} as a GMT file: {exc}") from exc
    if not sets:
        raise ScdealError(f"{path} holds no gene sets; expected GMT lines (term, description, "
                          "genes, tab-separated)")
    return GeneSets(name or _collection_name(path), sets, descriptions)


def read_regulons(path: str | Path, *, mode: RegulatorMode = "all",
                  name: str | None = None) -> GeneSets:
    """Read a TF -> target table into one target set per regulator.

    Parameters
    ----------
    path
        CollecTRI-style CSV/TSV with a header (``source``, ``target`` and optionally
        ``weight`` = +1/-1) or a TRRUST-style TSV without header (TF, target, mode, PMIDs).
    mode
        ``activation`` / ``repression`` keeps only edges of that sign (weight > 0 / < 0, or the
        TRRUST mode); ``all`` keeps every edge, including TRRUST's "Unknown".
    name
        Collection name (default: the file name).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "collectri.csv"
    >>> _ = path.write_text("source,target,weight\\nMYC,NPM1,1\\nMYC,CDKN1A,-1\\nMYC,NCL,1\\n")
    >>> read_regulons(path).sets["MYC"], read_regulons(path, mode="activation").sets["MYC"]
    (['NPM1', 'CDKN1A', 'NCL'], ['NPM1', 'NCL'])
    """
    path = Path(path)
    if not path.is_file():
        raise ScdealError(f"regulon file not found: {path}")
    if mode not in ("all", "activation", "repression"):
        raise ScdealError(f"mode must be all, activation or repression, got {mode!r}")
    with _open_text(path) as handle:
        first = handle.readline()
    sep = "\t" if "\t" in first else ","
    header = [h.strip().lower() for h in first.rstrip("\r\n").split(sep)]
    try:
        if "source" in header and "target" in header:
            table = pd.read_csv(path, sep=sep, dtype=str)
            table.columns = [c.strip().lower() for c in table.columns]
            sign = pd.to_numeric(table["weight"], errors="coerce") if "weight" in table else None
            tf, target = table["source"], table["target"]
        else:
            table = pd.read_csv(path, sep=sep, header=None, dtype=str)
            if table.shape[1] < 2:
                raise ScdealError(f"{path} has one column; a regulon table needs TF and target "
                                  "columns")
            tf, target = table[0], table[1]
            sign = None
            if table.shape[1] >= 3:
                kind = table[2].str.lower()
                sign = pd.Series(np.where(kind == "activation", 1.0, np.where(
                    kind == "repression", -1.0, np.nan)), index=table.index)
    except (pd.errors.ParserError, UnicodeError, KeyError) as exc:
        raise ScdealError(f"cannot read {path} as a TF -> target table: {exc}") from exc
    edges = pd.DataFrame({"tf": tf.str.strip(), "target": target.str.strip()})
    if mode != "all":
        if sign is None:
            raise ScdealError(f"{path} has no edge signs (weight or mode column); use mode='all'")
        edges = edges[(sign > 0) if mode == "activation" else (sign < 0)]
    edges = edges.dropna()
    edges = edges[(edges["tf"] != "") & (edges["target"] != "")]
    if edges.empty:
        raise ScdealError(f"{path} holds no TF -> target edges (mode {mode!r})")
    sets = {tf_: list(dict.fromkeys(group["target"])) for tf_, group in
            edges.groupby("tf", sort=True)}
    suffix = "" if mode == "all" else f"_{mode}"
    return GeneSets(name or _collection_name(path) + suffix, sets,
                    {tf_: f"targets of {tf_}" for tf_ in sets})


def over_representation(genes: Iterable[str], gene_sets: GeneSets, background: Iterable[str],
                        *, min_size: int = 10, max_size: int | None = 500) -> pd.DataFrame:
    """Hypergeometric over-representation of ``genes`` in each set (gseapy ``enrich``).

    Parameters
    ----------
    genes
        The query (e.g. critical genes). Genes outside ``background`` are dropped.
    gene_sets
        A :class:`GeneSets` collection (:func:`read_gmt`, :func:`read_regulons`).
    background
        The universe: every gene that could have been in the query (for critical genes, the
        model's input genes). Sets are restricted to it before testing.
    min_size, max_size
        Keep sets with this many background genes (clusterProfiler's defaults: 10 and 500).

    Returns
    -------
    DataFrame
        One row per set sharing at least one gene with the query, by increasing p: overlap,
        set size, query size, background size, expected overlap, fold enrichment, gseapy's
        (Haldane-corrected) odds ratio, p, BH-adjusted p and the overlapping genes.

    Examples
    --------
    >>> sets = GeneSets("demo", {"A": ["G1", "G2", "G3"], "B": ["G4", "G5"]})
    >>> res = over_representation(["G1", "G2"], sets, [f"G{i}" for i in range(1, 11)],
    ...                           min_size=1)
    >>> res.loc[0, "term"], int(res.loc[0, "overlap"])
    ('A', 2)
    """
    import gseapy

    # HGNC symbols are unique ignoring case; matching in upper case keeps gseapy from
    # upper-casing only some inputs (it does when the first sets look upper-case).
    background_map = {str(g).upper(): str(g) for g in background}
    universe = set(background_map)
    query = sorted({str(g).upper() for g in genes} & universe)
    restricted: dict[str, list[str]] = {}
    for term, members in gene_sets.sets.items():
        inside = sorted({str(g).upper() for g in members} & universe)
        if len(inside) >= min_size and (max_size is None or len(inside) <= max_size):
            restricted[term] = inside
    if not query or not restricted:
        return pd.DataFrame(columns=COLUMNS)
    result = gseapy.enrich(gene_list=query, gene_sets=restricted, background=sorted(universe),
                           outdir=None, no_plot=True, verbose=False)
    res = getattr(result, "res2d", None)
    if res is None or len(res) == 0:
        return pd.DataFrame(columns=COLUMNS)
    overlap = res["Overlap"].str.split("/", expand=True).astype(int)
    n, k = len(universe), len(query)
    out = pd.DataFrame({
        "collection": gene_sets.name,
        "term": res["Term"].astype(str).to_numpy(),
        "description": [gene_sets.descriptions.get(t, "") for t in res["Term"].astype(str)],
        "overlap": overlap[0].to_numpy(), "set_size": overlap[1].to_numpy(),
        "query_size": k, "background_size": n})
    out["expected"] = out["set_size"] * k / n
    out["fold_enrichment"] = out["overlap"] / out["expected"]
    out["odds_ratio"] = res["Odds Ratio"].to_numpy(dtype=float)
    out["pvalue"] = res["P-value"].to_numpy(dtype=float)
    out["pvalue_adj"] = res["Adjusted P-value"].to_numpy(dtype=float)
    out["genes"] = [";".join(sorted(background_map.get(g, g) for g in hits.split(";") if g))
                    for hits in res["Genes"].astype(str)]
    return out.sort_values(["pvalue", "term"], kind="stable").reset_index(drop=True)
