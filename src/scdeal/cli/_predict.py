"""``scdeal predict``: apply a saved model to a target file."""

from __future__ import annotations

import argparse

from ._run import add_target_arguments, label_map_from_args, print_reliability


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
    from ..workflows import predict

    result = predict(args.model, args.target, args.out, chunk_size=args.chunk_size,
                     key_prefix=args.key_prefix,
                     gene_ids=None if args.gene_ids == "auto" else args.gene_ids,
                     label_key=args.label_key, label_map=label_map_from_args(args),
                     device=args.device, sep=args.sep,
                     orientation=args.orientation.replace("-", "_"))
    model, adata = result.model, result.adata
    if result.chunk_reason is not None:
        print(f"scdeal predict: {result.chunk_reason} (chunks of 20,000 cells; --chunk-size "
              "sets them)")
    if model.KIND in ("joint", "screen"):
        table = model.reliability_table()
        what = ("joint model" if model.KIND == "joint" else
                f"screen model of {len(model.blocks)} fits")
        print(f"scdeal predict: {what}, {len(model.drugs)} drugs x {adata.n_obs} cells "
              f"(obsm {args.key_prefix + 'scdeal_screen'!r}), "
              f"{int(table.reliable.fillna(False).astype(bool).sum())} drugs "
              f"flagged reliable when fitted -> {args.out}")
        return 0
    if result.chunk_size:
        print(f"scdeal predict: {model.drug}, {adata.n_obs} cells (chunks of "
              f"{result.chunk_size}), {result.n_sensitive} predicted sensitive -> {args.out}")
        print_reliability(model)
        return 0
    print(f"scdeal predict: {model.drug}, {adata.n_obs} cells, {result.n_sensitive} predicted "
          f"sensitive -> {args.out}")
    print_check(result.check)
    info = adata.uns[f"{args.key_prefix}scdeal"]
    if "metrics" in info:
        m = info["metrics"]
        print(f"  AUROC {m['auroc']:.3f}  AP {m['ap']:.3f}  F1 {m['f1']:.3f}")
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
