"""``scdeal predict``: apply a saved model to a target file."""

from __future__ import annotations

import argparse

from .._io import atomic_path
from ._run import (
    add_target_arguments,
    label_map_from_args,
    print_reliability,
    read_target_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("predict", help="predict a target with a saved model (no labels needed)")
    parser.add_argument("--model", required=True, help="model folder (DIR/model from scdeal run)")
    add_target_arguments(parser)
    parser.add_argument("--key-prefix", default="", help="prefix for the obs/obsm/uns keys")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--chunk-size", type=int, help="read a .h5ad target in chunks of this "
                        "many cells (for data larger than memory); the output then holds the "
                        "predictions without the expression matrix. Default: whole, unless "
                        "its matrix would take more than 5%% of this machine's memory (then "
                        "chunks of 20,000, and one line says so)")
    parser.add_argument("--out", required=True, help="output .h5ad file")
    parser.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..model import load_model

    folder = Path(args.model)
    if (folder / "model" / "config.json").is_file():  # a run folder: use its model
        folder = folder / "model"
    model = load_model(folder, device=args.device)
    gene_ids = None if args.gene_ids == "auto" else args.gene_ids
    if model.KIND == "joint":
        return _predict_joint(args, model, gene_ids)
    if not args.chunk_size:
        from ..model.backed import reads_backed

        reason = reads_backed(args.target)
        if reason is not None:
            print(f"scdeal predict: {reason} (chunks of 20,000 cells; --chunk-size sets them)")
            args.chunk_size = 20_000
    if args.chunk_size:
        out = model.predict_file(args.target, chunk_size=args.chunk_size,
                                 key_prefix=args.key_prefix, gene_ids=gene_ids)
        with atomic_path(args.out, suffix=".h5ad") as tmp:
            out.write_h5ad(tmp)
        n_sens = int((out.obs[f"{args.key_prefix}sens_label"] == 1).sum())
        print(f"scdeal predict: {model.drug}, {out.n_obs} cells (chunks of {args.chunk_size}), "
              f"{n_sens} predicted sensitive -> {args.out}")
        print_reliability(model)
        return 0
    adata = read_target_from_args(args)
    model.predict(adata, label_key=args.label_key, label_map=label_map_from_args(args),
                  key_prefix=args.key_prefix, gene_ids=gene_ids)
    with atomic_path(args.out, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp)
    info = adata.uns[f"{args.key_prefix}scdeal"]
    n_sens = int((adata.obs[f"{args.key_prefix}sens_label"] == 1).sum())
    print(f"scdeal predict: {model.drug}, {adata.n_obs} cells, {n_sens} predicted sensitive "
          f"-> {args.out}")
    print_check(model.check(adata, gene_ids=gene_ids))
    if "metrics" in info:
        m = info["metrics"]
        print(f"  AUROC {m['auroc']:.3f}  AP {m['ap']:.3f}  F1 {m['f1']:.3f}")
    return 0


def _predict_joint(args: argparse.Namespace, model, gene_ids: str | None) -> int:
    """A joint model (DIR/model of ``scdeal screen --strategy joint``): every drug."""
    if args.chunk_size:
        from ..errors import ScdealError

        raise ScdealError("--chunk-size: a joint model predicts a target read whole; "
                          "split the file and predict each part")
    adata = read_target_from_args(args)
    key = f"{args.key_prefix}scdeal_screen"
    model.predict(adata, key_added=key, gene_ids=gene_ids)
    with atomic_path(args.out, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp)
    table = model.reliability_table()
    print(f"scdeal predict: joint model, {len(model.drugs)} drugs x {adata.n_obs} cells "
          f"(obsm {key!r}), {int(table.reliable.fillna(False).astype(bool).sum())} drugs "
          f"flagged reliable when fitted -> {args.out}")
    return 0


def print_check(found: dict) -> None:
    """One line: whether the members agree on these cells (:meth:`ScDEAL.check`)."""
    if found.get("reliable") is True:
        print(f"  reliable on these {found['n_cells']} cells: {found['reason']}")
    elif found.get("reliable") is False:
        print(f"  NOT reliable on these {found['n_cells']} cells ({found['reason']}): the "
              "members disagree here; check the predictions against cells of known response")
    else:
        print(f"  reliability on these cells: no verdict ({found.get('reason')})")
