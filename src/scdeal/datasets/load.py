"""Load a paper dataset as a labelled AnnData, with the paper's evaluation choices as options."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np

from .._io import atomic_path
from ..errors import ScdealError
from . import loaders
from .fetch import fetch_dataset, find_file
from .registry import PaperDataset, get_dataset

log = logging.getLogger(__name__)

PROVENANCE_KEY = "scdeal_dataset"


def _read(ds: PaperDataset, folder: Path, by_position: bool) -> ad.AnnData:
    if ds.accession == "GSE117872":
        return loaders.read_gse117872(folder, ds)
    if ds.accession == "GSE112274":
        return loaders.read_gse112274(folder, ds)
    if ds.accession == "GSE140440":
        return loaders.read_gse140440(folder, ds, by_position)
    if ds.accession == "GSE149383":
        return loaders.read_gse149383(folder, ds, by_position)
    if ds.accession == "GSE110894":
        return loaders.read_gse110894(folder, ds)
    raise ScdealError(f"no loader for {ds.key}")  # pragma: no cover - registry and readers agree


def _map_mouse_genes(adata: ad.AnnData) -> tuple[ad.AnnData, dict]:
    """Mouse Ensembl ids -> human symbols (one-to-one orthologs); returns the mapping summary."""
    from ..data.genes import harmonize_var_names, map_genes

    mapped = harmonize_var_names(adata, id_type="mouse_ensembl", copy=True)
    summary = mapped.uns.get("scdeal_gene_mapping") or map_genes(
        list(adata.var_names), id_type="mouse_ensembl").summary
    clean = {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in summary.items()
             if isinstance(v, int | float | str | np.generic)}
    n_input = int(clean.get("n_input", adata.n_vars)) or 1
    n_mapped = int(clean.get("n_mapped", mapped.n_vars))
    clean["mapping_rate"] = n_mapped / n_input
    clean["n_genes_out"] = int(mapped.n_vars)
    log.info("GSE110894: %d of %d mouse genes mapped to human symbols (%.1f%%)",
             n_mapped, n_input, 100 * clean["mapping_rate"])
    return mapped, clean


def load_dataset(key: str, source_dir: str | Path | None = None, *, exclude_holiday: bool = False,
                 exclude_empty: bool = True, by_position: bool = False,
                 map_mouse_genes: bool = True) -> ad.AnnData:
    """Read one paper dataset into an AnnData with raw values and per-cell labels.

    Parameters
    ----------
    key
        Registry key (:func:`list_datasets`), e.g. ``"GSE117872_HN120"``.
    source_dir
        Folder holding the dataset's GEO files (see :func:`fetch_dataset`); ``None`` fetches
        them (download, cached).
    exclude_holiday
        GSE117872: drop drug-holiday cells. They are kept by default, labelled sensitive as in
        the original, and flagged in ``obs['holiday']``; the paper dropped them before
        computing its metrics (368 of 548 HN120 cells remain).
    exclude_empty
        GSE110894: drop wells whose 'Sample name' says EMPTY (default; the original meant to
        but did not). When kept they are labelled sensitive and flagged in
        ``obs['empty_well']``.
    by_position
        GSE140440 / GSE149383: assign the metadata file's rows to the matrix cells in order, as
        the original did, instead of joining on the cell id in its first column. Only for a
        file without ids; it must have one row per matrix cell.
    map_mouse_genes
        GSE110894: map mouse Ensembl ids to human symbols (one-to-one orthologs) so the genes
        can be matched with the human bulk data; the mapping summary goes to
        ``uns['scdeal_dataset']['gene_mapping']``.

    Returns
    -------
    AnnData
        Cells x genes, raw values in ``X``; ``obs['sensitive']`` (1 sensitive, 0 resistant),
        ``obs['sensitivity']`` and the dataset's metadata; provenance in
        ``uns['scdeal_dataset']``.

    Examples
    --------
    Not run here: it needs GEO's files (a download, or a folder of them).

    >>> from scdeal.datasets import load_dataset
    >>> adata = load_dataset("GSE117872_HN120", "downloads/GSE117872")  # doctest: +SKIP
    >>> adata.obs["sensitive"].value_counts()  # doctest: +SKIP
    """
    ds = get_dataset(key)
    folder = fetch_dataset(ds.key) if source_dir is None else Path(source_dir).expanduser()
    if not folder.is_dir():
        raise ScdealError(f"source folder {folder} does not exist; give the folder holding "
                          f"{', '.join(ds.file_names)}")
    adata = _read(ds, folder, by_position)
    n_read = adata.n_obs

    n_holiday = int(adata.obs["holiday"].sum()) if "holiday" in adata.obs else 0
    n_empty = int(adata.obs["empty_well"].sum()) if "empty_well" in adata.obs else 0
    drop = np.zeros(adata.n_obs, dtype=bool)
    if exclude_holiday and "holiday" in adata.obs:
        drop |= adata.obs["holiday"].to_numpy(dtype=bool)
    if exclude_empty and "empty_well" in adata.obs:
        drop |= adata.obs["empty_well"].to_numpy(dtype=bool)
    if drop.any():
        adata = adata[~drop].copy()

    n_duplicate_genes = int(adata.var_names.duplicated().sum())
    if n_duplicate_genes:
        adata.var_names_make_unique()
    gene_mapping: dict = {}
    gene_id_type: str = ds.gene_id_type
    if ds.gene_id_type == "mouse_ensembl" and map_mouse_genes:
        adata, gene_mapping = _map_mouse_genes(adata)
        gene_id_type = "symbol"

    files = {}
    for geo_file in ds.files:
        path = find_file(folder, geo_file, ds.accession)
        if path is not None:
            from ..data.sources import sha256_of

            files[path.name] = sha256_of(path)
    preset = ds.preset
    adata.uns[PROVENANCE_KEY] = {
        "key": ds.key,
        "accession": ds.accession,
        "subset": ds.subset or "",
        "drug": ds.drug,
        "species": ds.species,
        "source": ds.geo_url,
        "files_sha256": files,
        "values": ds.values,
        "label_key": "sensitive",
        "label_rule": ds.label_rule,
        "gene_id_type": gene_id_type,
        "source_gene_id_type": ds.gene_id_type,
        "n_cells_read": n_read,
        "n_cells": int(adata.n_obs),
        "n_cells_paper": ds.n_cells_paper,
        "n_sensitive": int((adata.obs["sensitive"] == 1).sum()),
        "n_resistant": int((adata.obs["sensitive"] == 0).sum()),
        "n_holiday": n_holiday,
        "n_empty_wells": n_empty,
        "n_dropped": int(drop.sum()),
        "n_duplicate_genes_renamed": n_duplicate_genes,
        "options": {"exclude_holiday": bool(exclude_holiday), "exclude_empty": bool(exclude_empty),
                    "by_position": bool(by_position), "map_mouse_genes": bool(map_mouse_genes)},
        "gene_mapping": gene_mapping,
        "preset": {"bottleneck": preset.bottleneck, "encoder_dims": list(preset.encoder_dims),
                   "predictor_dims": list(preset.predictor_dims),
                   "extractor": preset.extractor, "dropout": preset.dropout,
                   "sampling": preset.sampling},
        "scdeal_version": _version(),
    }
    return adata


def _version() -> str:
    from .. import __version__

    return str(__version__)


def write_dataset(adata: ad.AnnData, out: str | Path) -> Path:
    """Write ``adata`` to ``out`` (.h5ad) atomically: a failure leaves no partial file.

    Examples
    --------
    >>> cells = ad.AnnData(np.ones((3, 2), np.float32))
    >>> write_dataset(cells, "cells.h5ad").name
    'cells.h5ad'
    >>> ad.read_h5ad("cells.h5ad").shape
    (3, 2)
    """
    out = Path(out)
    if out.suffix != ".h5ad":
        raise ScdealError(f"--out {out} must end with .h5ad")
    with atomic_path(out) as tmp:
        adata.write_h5ad(tmp)
    return out
