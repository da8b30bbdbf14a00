"""Saving and loading a fitted model: a folder of JSON, NumPy and safetensors files (no pickle).

``config.json`` (format, version, drug, gene ids, configuration), ``model.safetensors`` (every
member's bulk, target and pre-transfer networks), ``genes.json``, ``scalers.npz``,
``training.json``, ``reliability.json`` (absent in models saved before it existed) and, for a
fit with labelled cells, ``labelled_stack.npz`` (:mod:`scdeal.model.labelled`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from .._io import atomic_dir, jsonable
from ..errors import ScdealError
from . import prepare as prep
from ._fitting import Member
from .config import ScDealConfig

log = logging.getLogger(__name__)


def save_model(model, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the fitted model ``self`` to a folder, atomically (see ``ScDEAL.save``)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise ScdealError(f"{path} exists; choose another folder or pass overwrite=True")
    tensors, scalers = {}, {"target_mean": model.target_scaler.mean,
                            "target_scale": model.target_scaler.scale}
    for i, member in enumerate(model.members):
        for prefix, net in (("bulk", member.bulk_net), ("target", member.target_net),
                            ("pretransfer", member.pretransfer_net)):
            for key, value in net.state_dict().items():
                tensors[f"m{i}.{prefix}.{key}"] = value.detach().cpu().clone().contiguous()
        scalers[f"bulk_mean_{i}"] = member.bulk_scaler.mean
        scalers[f"bulk_scale_{i}"] = member.bulk_scaler.scale
    meta = {"format": "scdeal-model", "format_version": 1, "scdeal_version": __version__,
            "kind": model.KIND, "drug": model.drug, "gene_ids": model.gene_ids,
            "config": model.config.to_dict()}
    if model.KIND == "joint":
        meta["drugs"] = list(model.drugs)
    with atomic_dir(path) as tmp:
        save_file(tensors, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(jsonable(meta), indent=2))
        (tmp / "genes.json").write_text(json.dumps(
            {"bulk": model.bulk_genes, "target": model.target_genes,
             "normalized": model.normalization_genes}))
        np.savez(tmp / "scalers.npz", **scalers)
        (tmp / "training.json").write_text(json.dumps(jsonable(model.training), indent=2))
        if model.labelled_stack is not None:
            np.savez(tmp / "labelled_stack.npz", **model.labelled_stack.to_arrays())
        if model.reliability is not None:
            (tmp / "reliability.json").write_text(
                json.dumps(jsonable(model.reliability), indent=2))
    return path

def model_kind(path: str | Path) -> str:
    """``single`` (:class:`~scdeal.ScDEAL`), ``joint`` (:class:`~scdeal.model.JointScDEAL`) or
    ``screen`` (:class:`~scdeal.model.ScreenModel`): the kind of model saved in ``path``
    (models saved before the joint model are single)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise ScdealError(f"{path} is not a saved scdeal model (no config.json)")
    try:
        return json.loads(config.read_text()).get("kind", "single")
    except ValueError:
        raise ScdealError(f"{config} is not valid JSON; the model folder is damaged") from None


def load_model(cls, path: str | Path, *, device: str | None = None):
    """An instance of ``cls`` from a folder written by :func:`save_model`."""
    from safetensors.torch import load_file

    path = Path(path)
    kind = model_kind(path)  # first: a screen model's folder holds no weights of its own
    if kind != cls.KIND:
        name = {"joint": "scdeal.model.JointScDEAL", "screen": "scdeal.model.ScreenModel"}.get(
            kind, "scdeal.ScDEAL")
        raise ScdealError(f"{path} holds a {kind} model; load it with {name}.load (or "
                          "scdeal.model.load_model, which picks the class)")
    needed = ["config.json", "model.safetensors", "genes.json", "scalers.npz"]
    if not path.is_dir() or any(not (path / n).is_file() for n in needed):
        raise ScdealError(f"{path} is not a saved scdeal model (needs {', '.join(needed)})")
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format") != "scdeal-model":
        raise ScdealError(f"{path}/config.json is not a scdeal model configuration")
    config = ScDealConfig.from_dict(meta["config"])
    if device is not None:
        config = config.replace(device=device)
    model = cls(config)
    genes = json.loads((path / "genes.json").read_text())
    model.bulk_genes, model.target_genes = genes["bulk"], genes["target"]
    model.normalization_genes = genes.get("normalized")  # absent before it was kept
    model.drug, model.gene_ids = meta["drug"], meta["gene_ids"]
    if kind == "joint":
        model.drugs = list(meta["drugs"])
    with np.load(path / "scalers.npz", allow_pickle=False) as npz:
        model.target_scaler = prep.Standardizer(npz["target_mean"], npz["target_scale"])
        bulk_scalers = [prep.Standardizer(npz[f"bulk_mean_{i}"], npz[f"bulk_scale_{i}"])
                        for i in range(config.n_models)]
    if (path / "training.json").is_file():
        model.training = json.loads((path / "training.json").read_text())
    if (path / "reliability.json").is_file():
        model.reliability = json.loads((path / "reliability.json").read_text())
    else:
        log.info("%s has no reliability diagnostics (saved before they existed)", path)
    if (path / "labelled_stack.npz").is_file():
        from .labelled import LabelledStack

        with np.load(path / "labelled_stack.npz", allow_pickle=False) as npz:
            model.labelled_stack = LabelledStack.from_arrays(npz)
    tensors = load_file(path / "model.safetensors")
    dev = model._device()

    def build(prefix: str, n_genes: int):
        net = model._network(model._extractor(n_genes), model._predictor())
        state = {k[len(prefix) + 1:]: v for k, v in tensors.items()
                 if k.startswith(prefix + ".")}
        net.load_state_dict(state, strict=True)
        return net.to(dev).eval()

    model.members = [
        Member(build(f"m{i}.bulk", len(model.bulk_genes)),
               build(f"m{i}.target", len(model.target_genes)),
               build(f"m{i}.pretransfer", len(model.target_genes)), bulk_scalers[i])
        for i in range(config.n_models)]
    model._assemble()
    model.is_fitted = True
    return model


def model_summary(model) -> dict[str, Any]:
    """Configuration, genes, versions and training summary (JSON-serialisable)."""
    from importlib.metadata import version

    return jsonable({
        "drug": model.drug,
        "config": model.config.to_dict(),
        "seed": model.config.seed,
        "gene_ids": model.gene_ids,
        "genes": list(model.target_genes),
        "versions": {"scdeal": __version__, "torch": str(torch.__version__),
                     "anndata": version("anndata"), "scanpy": version("scanpy")},
        "training": model.training,
        "reliability": model.reliability if model.reliability is not None else {
            "reliable": None,
            "reason": "not computed: the model was saved by a scdeal version without "
                      "reliability diagnostics; refit to get them"},
    })
