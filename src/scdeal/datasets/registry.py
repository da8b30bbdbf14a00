"""The six single-cell datasets of the scDEAL paper (Table 1): what they are and what to fetch.

Each :class:`PaperDataset` names its GEO series, the supplementary files the loader reads, the
rule that turns metadata into ``sensitive`` (1) / ``resistant`` (0), and the hyperparameters the
original README suggests for it (:class:`PaperPreset`, method notes section 10.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from .._types import Sampling
from ..errors import ScdealError

GeneIdType = Literal["symbol", "mouse_ensembl"]


@dataclass(frozen=True)
class PaperPreset:
    """Hyperparameters the original README suggests for one dataset.

    ``sampling`` is the bulk class balancing: ``"none"`` (README: "no"), ``"upsampling"``,
    ``"downsampling"`` or ``"smote"``. The README's learning rate is not kept: the original
    code ignores it.

    Examples
    --------
    >>> from scdeal.datasets import get_dataset
    >>> get_dataset("GSE112274").preset
    PaperPreset(bottleneck=256, encoder_dims=(512, 256), predictor_dims=(256, 128), extractor='dae', dropout=0.1, sampling='none')
    """

    bottleneck: int
    encoder_dims: tuple[int, ...]
    predictor_dims: tuple[int, ...]
    extractor: Literal["dae"] = "dae"
    dropout: float = 0.1
    sampling: Sampling = "none"


@dataclass(frozen=True)
class GeoFile:
    """One supplementary file a loader reads.

    ``name`` is the file name the original code used (method notes section 2). GEO usually
    serves series files gzip-compressed and prefixed with the accession, so the download and the
    ``from_dir`` lookup also accept ``<name>.gz``, ``<ACCESSION>_<name>`` and
    ``<ACCESSION>_<name>.gz``.

    Examples
    --------
    >>> from scdeal.datasets import get_dataset
    >>> matrix, metadata = get_dataset("GSE110894").files
    >>> matrix
    GeoFile(name='GSE110894.csv', role='matrix', required=True)
    >>> matrix.candidates("GSE110894")
    ('GSE110894.csv', 'GSE110894.csv.gz')
    """

    name: str
    role: Literal["matrix", "metadata"]
    required: bool = True

    def candidates(self, accession: str) -> tuple[str, ...]:
        """File names this file may have in a folder or on GEO, most likely first."""
        bases = [self.name] if self.name.startswith(accession) else [
            f"{accession}_{self.name}", self.name]
        if self.name.endswith(".xlsx"):  # binary: GEO does not compress it
            return tuple(bases)
        return tuple(variant for base in bases for variant in (base, f"{base}.gz"))


@dataclass(frozen=True)
class PaperDataset:
    """One single-cell dataset of the paper, with its label rule and suggested preset.

    Examples
    --------
    >>> from scdeal.datasets import get_dataset
    >>> ds = get_dataset("GSE117872_HN120")
    >>> ds.drug, ds.preset.bottleneck
    ('Cisplatin', 512)
    """

    key: str
    accession: str
    subset: str | None
    species: Literal["human", "mouse"]
    drug: str
    cancer: str
    files: tuple[GeoFile, ...]
    label_rule: str
    gene_id_type: GeneIdType
    values: str
    n_cells_paper: int
    preset: PaperPreset
    notes: str = ""
    reference: str = field(default="", compare=False)

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)

    @property
    def geo_url(self) -> str:
        """Landing page of the series on GEO."""
        return f"https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc={self.accession}"

    @property
    def suppl_url(self) -> str:
        """Folder of the series' supplementary files on GEO's FTP/HTTPS server."""
        stub = self.accession[:-3] + "nnn"
        return f"https://ftp.ncbi.nlm.nih.gov/geo/series/{stub}/{self.accession}/suppl/"


_GSE117872_FILES = (
    GeoFile("GSE117872_good_Data_TPM.txt", "matrix"),
    GeoFile("GSE117872_good_Data_cellinfo.txt", "metadata"),
)
_GSE117872_RULE = (
    "cellinfo (index 'groups') joined on cell id; keep origin == {subset}; resistant (0) if "
    "'cluster' contains 'Resistant', else sensitive (1): 'Sensitive' and 'Holiday' are 1; "
    "Holiday cells flagged in obs['holiday'] (the paper drops them at evaluation)"
)

DATASETS: dict[str, PaperDataset] = {
    ds.key: ds
    for ds in (
        PaperDataset(
            key="GSE117872_HN120", accession="GSE117872", subset="HN120", species="human",
            drug="Cisplatin", cancer="oral squamous cell carcinoma", files=_GSE117872_FILES,
            label_rule=_GSE117872_RULE.format(subset="HN120"), gene_id_type="symbol",
            values="TPM", n_cells_paper=548,
            preset=PaperPreset(512, (256, 128), (128, 64), dropout=0.3, sampling="smote"),
            notes="368 cells remain without Holiday cells", reference="Sharma et al. 2018",
        ),
        PaperDataset(
            key="GSE117872_HN137", accession="GSE117872", subset="HN137", species="human",
            drug="Cisplatin", cancer="oral squamous cell carcinoma", files=_GSE117872_FILES,
            label_rule=_GSE117872_RULE.format(subset="HN137"), gene_id_type="symbol",
            values="TPM", n_cells_paper=568,
            preset=PaperPreset(32, (512, 256), (256, 128), dropout=0.3, sampling="upsampling"),
            reference="Sharma et al. 2018",
        ),
        PaperDataset(
            key="GSE112274", accession="GSE112274", subset=None, species="human",
            drug="Gefitinib", cancer="lung cancer (PC9)",
            files=(GeoFile("GSE112274_cell_gene_FPKM.csv", "matrix"),),
            label_rule=("from the cell id 'A_B_C_D': sensitive (1) if part 2 contains "
                        "'parental', else resistant (0)"),
            gene_id_type="symbol", values="FPKM", n_cells_paper=507,
            preset=PaperPreset(256, (512, 256), (256, 128), dropout=0.1, sampling="none"),
            reference="Kong et al.",
        ),
        PaperDataset(
            key="GSE140440", accession="GSE140440", subset=None, species="human",
            drug="Docetaxel", cancer="prostate cancer (DU145, PC3)",
            files=(GeoFile("GSE140440.csv", "matrix"), GeoFile("Annotation.txt", "metadata")),
            label_rule=("Annotation.txt (tab-separated, no header: cell id, label) joined on "
                        "cell id; resistant (0) if the label contains 'Res', else sensitive (1)"),
            gene_id_type="symbol", values="as deposited", n_cells_paper=324,
            preset=PaperPreset(512, (256, 128), (256, 128), dropout=0.1, sampling="upsampling"),
            notes="the original assigned Annotation.txt rows by position; here by cell id "
                  "unless by_position=True",
            reference="Schnepp et al. 2020",
        ),
        PaperDataset(
            key="GSE149383", accession="GSE149383", subset=None, species="human",
            drug="Erlotinib", cancer="lung cancer (PC9)",
            files=(GeoFile("erl_total_data_2K.csv", "matrix"),
                   GeoFile("erl_total_2K_meta.csv", "metadata", required=False)),
            label_rule=("from the cell id '<prefix>_<barcode>': resistant (0) if the prefix "
                        "contains 'res' (e.g. 'resis_'), else sensitive (1, e.g. 'sens_'); the "
                        "optional meta file (no header: cell id, label) must agree"),
            gene_id_type="symbol", values="as deposited", n_cells_paper=1496,
            preset=PaperPreset(64, (512, 256), (256, 128), dropout=0.3, sampling="upsampling"),
            notes="paper Table 1 says 1,496 cells and 'Mus musculus'; the released labels have "
                  "2,730 PC9 (human) cells",
            reference="Aissa et al. 2021",
        ),
        PaperDataset(
            key="GSE110894", accession="GSE110894", subset=None, species="mouse",
            drug="I-BET-762", cancer="acute myeloid leukaemia (MLL-AF9)",
            files=(GeoFile("GSE110894.csv", "matrix"),
                   GeoFile("GSE110894_CellInfo.xlsx", "metadata")),
            label_rule=("CellInfo.xlsx (header row 4, forward-filled) joined on "
                        "'Plate#'_'<Well position before =>'; resistant (0) if 'Sample name' "
                        "contains 'RESISTANT' (withdrawal included), else sensitive (1); "
                        "'EMPTY' wells dropped unless kept"),
            gene_id_type="mouse_ensembl", values="as deposited", n_cells_paper=1419,
            preset=PaperPreset(512, (256, 128), (128, 64), dropout=0.1, sampling="upsampling"),
            notes="mouse Ensembl ids are mapped to human symbols (one-to-one orthologs)",
            reference="Bell et al. 2019",
        ),
    )
}


def list_datasets() -> pd.DataFrame:
    """One row per paper dataset (key, accession, subset, drug, species, cells, files, ...).

    Examples
    --------
    >>> from scdeal.datasets import list_datasets
    >>> list_datasets()["key"].tolist()[:2]
    ['GSE117872_HN120', 'GSE117872_HN137']
    """
    rows = []
    for ds in DATASETS.values():
        p = ds.preset
        rows.append({
            "key": ds.key,
            "accession": ds.accession,
            "subset": ds.subset or "",
            "drug": ds.drug,
            "species": ds.species,
            "cancer": ds.cancer,
            "n_cells_paper": ds.n_cells_paper,
            "gene_id_type": ds.gene_id_type,
            "values": ds.values,
            "files": " + ".join(f.name + ("" if f.required else " (optional)")
                                for f in ds.files),
            "preset": (f"L={p.bottleneck} enc={','.join(map(str, p.encoder_dims))} "
                       f"pred={','.join(map(str, p.predictor_dims))} {p.extractor.upper()} "
                       f"dropout={p.dropout} sampling={p.sampling}"),
            "label_rule": ds.label_rule,
        })
    return pd.DataFrame(rows)


def get_dataset(key: str, subset: str | None = None) -> PaperDataset:
    """The registry entry for ``key`` (e.g. ``"GSE117872_HN120"``, or ``"GSE117872"`` with
    ``subset="HN120"``); case-insensitive.

    Examples
    --------
    >>> from scdeal.datasets import get_dataset
    >>> get_dataset("gse117872", subset="hn137").key
    'GSE117872_HN137'
    """
    wanted = key.strip().upper()
    subset = subset.strip().upper() if subset else None
    direct = next((ds for ds in DATASETS.values() if ds.key.upper() == wanted), None)
    if direct is not None and subset in (None, (direct.subset or "").upper()):
        return direct
    if subset:
        wanted = f"{wanted}_{subset}"
    for ds in DATASETS.values():
        if ds.key.upper() == wanted:
            return ds
    same_series = [ds for ds in DATASETS.values() if ds.accession == wanted]
    if same_series:
        subsets = ", ".join(ds.subset or "" for ds in same_series)
        raise ScdealError(f"{wanted} has several subsets ({subsets}); pick one, e.g. "
                          f"--subset {same_series[0].subset} or key {same_series[0].key}")
    known = ", ".join(DATASETS)
    raise ScdealError(f"unknown paper dataset {wanted!r}; known: {known}")
