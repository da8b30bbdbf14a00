"""The scDEAL paper's six single-cell datasets: registry, GEO acquisition, loaders, label rules.

Examples
--------
>>> from scdeal.datasets import list_datasets, get_dataset
>>> len(list_datasets())
6
>>> get_dataset("GSE110894").drug
'I-BET-762'
"""

from .fetch import fetch_dataset
from .load import PROVENANCE_KEY, load_dataset, write_dataset
from .registry import DATASETS, GeoFile, PaperDataset, PaperPreset, get_dataset, list_datasets

__all__ = [
    "DATASETS",
    "PROVENANCE_KEY",
    "GeoFile",
    "PaperDataset",
    "PaperPreset",
    "fetch_dataset",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "write_dataset",
]
