"""Cache keys of the drug-independent stages, built so that they cannot go stale.

A stored stage may be reused only when everything that shaped it is the same. Its key
(:func:`stage_key`) therefore holds:

- every :class:`~scdeal.model.config.ScDealConfig` field except those :data:`FIELD_ROLES`
  explicitly excludes from that stage, each with the reason (a field missing from the table
  enters every key, and ``tests/test_cache.py`` fails until it is classified);
- the scdeal version (from version control, see ``pyproject.toml``) and a SHA-256 of the
  source of the packages that train (:func:`code_fingerprint`): any change to the code,
  released or not, makes new keys;
- the versions of the libraries whose results the stage depends on
  (:data:`STAGE_LIBRARIES`: torch and numpy for every stage; scanpy, anndata, igraph,
  leidenalg, scikit-learn, scipy and pynndescent for the cells' stage, whose neighbour
  graph and Leiden clusters they compute);
- the data (fingerprints of the matrices and names) and the seed.

Examples
--------
>>> from scdeal.model.config import ScDealConfig
>>> a = stage_key("bulk_extractor", ScDealConfig())
>>> a == stage_key("bulk_extractor", ScDealConfig(transfer_epochs=5))  # the drug's training
True
>>> a == stage_key("bulk_extractor", ScDealConfig(latent_dim=32))
False
>>> a == stage_key("bulk_extractor", ScDealConfig(member_threads=1))  # same numbers
True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

Role = Literal["bulk", "cells", "drug", "run"]

#: Every configuration field, by the first drug-independent stage it enters.
#: ``bulk``: the bulk extractor M_b's key, and so the cells' stage too (it starts from M_b).
#: ``cells``: the cells' stage (M_s pre-trained on the cells, and their Leiden clusters).
#: ``drug``: excluded from both keys, with the reason: it shapes only what is trained after
#: them for one drug (the predictor P, the transfer, the ensemble).
#: ``run``: excluded from both keys: it does not change any number.
FIELD_ROLES: dict[str, tuple[Role, str]] = {
    # the extractors' architecture and pre-training
    "extractor": ("bulk", "architecture of M_b and M_s"),
    "hidden_dims": ("bulk", "architecture"),
    "latent_dim": ("bulk", "architecture"),
    "dropout": ("bulk", "architecture"),
    "batch_norm": ("bulk", "architecture"),
    "activation": ("bulk", "architecture"),
    "noise": ("bulk", "DAE corruption in pre-training"),
    "noise_rate": ("bulk", "DAE corruption in pre-training"),
    "kl_weight": ("bulk", "VAE loss in pre-training"),
    "split": ("bulk", "its validation fraction holds out M_b's early-stopping lines"),
    "lr": ("bulk", "optimiser"),
    "weight_decay": ("bulk", "optimiser"),
    "batch_size": ("bulk", "mini-batches"),
    "pretrain_epochs": ("bulk", "pre-training length"),
    "patience": ("bulk", "early stopping"),
    "seed": ("bulk", "initialisation, batches, corruption"),
    "device": ("bulk", "CPU and GPU round differently"),
    "gene_space": ("bulk", "which genes M_b reads"),
    "min_shared_genes": ("bulk", "gene matching (refuses, or not, a gene space)"),
    "max_genes": ("bulk", "the genes both extractors read"),
    # the cells
    "preprocess": ("cells", "the cells M_s trains on"),
    "max_training_cells": ("cells", "the training sample of the cells"),
    "init_target_from_bulk": ("cells", "M_s starts from M_b's weights, or not"),
    "target_val_fraction": ("cells", "cells held out for M_s's early stopping"),
    "max_cells_per_epoch": ("cells", "M_s's epochs"),
    "max_validation_cells": ("cells", "M_s's early stopping"),
    "max_cluster_cells": ("cells", "the clusters"),
    "cluster_resolution": ("cells", "the clusters"),
    # what one drug's training uses, after the shared stages
    "predictor_dims": ("drug", "the predictor P, trained per drug"),
    "joint_head_dims": ("drug", "the joint model's head, trained after the shared stages"),
    "joint_transfer": ("drug", "the joint model's transfer: what each member trains with "
                               "(\"cells\" sets transfer_update and cluster_weight, which "
                               "enter the keys themselves)"),
    "joint_blocks": ("drug", "which drugs a joint screen fits together"),
    "release": ("drug", "the drug's bulk labels; the pre-training uses no labels"),
    "metric": ("drug", "the drug's bulk labels"),
    "binarization": ("drug", "the drug's bulk labels"),
    "min_per_class": ("drug", "the drug's bulk labels"),
    "sampling": ("drug", "resampling of the drug's labelled training lines"),
    "predictor_epochs": ("drug", "P's training"),
    "transfer_epochs": ("drug", "the transfer"),
    "max_cells_per_transfer_epoch": ("drug", "the transfer"),
    "transfer": ("drug", "the transfer; whether the clusters are needed is a part of the "
                         "cells' key of its own"),
    "mmd_weight": ("drug", "the transfer loss"),
    "mmd_kernel": ("drug", "the transfer loss"),
    "mmd_n_kernels": ("drug", "the transfer loss"),
    "mmd_bandwidth": ("drug", "the transfer loss"),
    "transfer_update": ("drug", "the transfer"),
    "cluster_weight": ("drug", "the transfer loss; whether it is above 0 (clusters needed) "
                               "is a part of the cells' key of its own"),
    "consistency_weight": ("drug", "the transfer loss"),
    "labelled_weight": ("drug", "the transfer loss with labelled cells"),
    "n_models": ("drug", "the ensemble; the shared stages are seeded by seed alone"),
    # how the work is spread over cores
    "num_threads": ("run", "torch's CPU threads; left out so that a screen's one-thread "
                           "tasks reuse the stages its main process trained"),
    "member_threads": ("run", "members trained side by side: the same numbers (tested)"),
}

_STAGE_ROLES: dict[str, tuple[Role, ...]] = {
    "bulk_extractor": ("bulk",),
    "target_extractor": ("bulk", "cells"),
}

#: Libraries whose versions enter a stage's key (an upgrade may change its result).
STAGE_LIBRARIES: dict[str, tuple[str, ...]] = {
    "bulk_extractor": ("torch", "numpy"),
    "target_extractor": ("torch", "numpy", "scanpy", "anndata", "igraph", "leidenalg",
                         "scikit-learn", "scipy", "pynndescent"),
}

# The subpackages whose code trains the stages (reading and preprocessing, the networks and
# losses, the training loops).
_TRAINING_PACKAGES = ("data", "nn", "model")


def stage_fields(stage: str, config) -> dict[str, Any]:
    """The configuration fields (name -> value) in ``stage``'s key: all but those
    :data:`FIELD_ROLES` excludes from it. A field the table does not know enters."""
    roles = _STAGE_ROLES[stage]
    values = config.to_dict()
    return {name: values[name] for name in (f.name for f in dataclasses.fields(config))
            if FIELD_ROLES.get(name, ("bulk", ""))[0] in roles}


def unclassified_fields(config_class) -> list[str]:
    """Fields of ``config_class`` that :data:`FIELD_ROLES` does not classify (should be none)."""
    return [f.name for f in dataclasses.fields(config_class) if f.name not in FIELD_ROLES]


@functools.cache
def library_versions(stage: str) -> dict[str, str | None]:
    """Installed versions of :data:`STAGE_LIBRARIES` of ``stage`` (None: not installed)."""
    found = {}
    for name in STAGE_LIBRARIES[stage]:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 of the source files of scdeal's ``data``, ``nn`` and ``model`` packages (names
    and contents, in a fixed order)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _TRAINING_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(b"\x00")
            digest.update(path.read_bytes())
            digest.update(b"\x00")
    return digest.hexdigest()


def stage_key(stage: str, config, **parts: Any) -> str:
    """The cache key of ``stage`` (``bulk_extractor`` or ``target_extractor``) trained with
    ``config`` on the data that ``parts`` fingerprint (see the module docstring)."""
    from .. import __version__
    from .cache import CACHE_FORMAT, cache_key

    return cache_key({"stage": stage, "format": CACHE_FORMAT, "scdeal": __version__,
                      "code": code_fingerprint(), "libraries": library_versions(stage),
                      "config": stage_fields(stage, config), **parts})
