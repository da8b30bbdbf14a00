"""``scdeal demo``: the whole pipeline on real GDSC data, no user data needed.

Trains on GDSC cell lines for one drug while holding out some lines, simulates single cells
from the held-out lines (clearly marked as simulated), predicts them and scores the result.
"""

from __future__ import annotations

import argparse
import time

from ._run import add_cache_argument, print_reliability


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="train on real GDSC lines, predict cells simulated from held-out lines",
        description="Train scDEAL on real GDSC data for one drug with some cell lines held "
                    "out, simulate single cells from the held-out lines (Poisson counts, "
                    "library-size variation, dropout: SIMULATED, not real single cells), "
                    "predict them and print the metrics.")
    parser.add_argument("--drug", default="Gefitinib")
    parser.add_argument("--lines-per-class", type=int, default=12,
                        help="held-out cell lines per class")
    parser.add_argument("--cells-per-line", type=int, default=25)
    parser.add_argument("--n-genes", type=int, default=2000,
                        help="genes measured in the simulated cells: the most variable GDSC genes "
                             "(single-cell studies typically keep about 2,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="scdeal_demo", help="output folder (default: scdeal_demo)")
    add_cache_argument(parser)
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from ..workflows import demo

    started = time.perf_counter()
    lines = args.lines_per_class
    print(f"scdeal demo: {args.drug}; training on GDSC lines with {2 * lines} held out, "
          f"predicting {2 * lines * args.cells_per_line} SIMULATED cells from them "
          f"({lines} sensitive, {lines} resistant)")
    result = demo(args.drug, args.out, lines_per_class=lines,
                  cells_per_line=args.cells_per_line, n_genes=args.n_genes, seed=args.seed,
                  cache=not args.no_cache, progress=not args.quiet)
    m = result.info["metrics"]
    b = result.model.training["bulk_test_metrics"]
    print_reliability(result.model)
    print(f"  {result.model.drug}: trained on {result.info['n_training_lines']} GDSC lines")
    print(f"  bulk test lines ({b['n_cells']:.0f}): AUROC {b['auroc']:.3f}")
    print(f"  simulated cells ({m['n_cells']}): AUROC {m['auroc']:.3f}  AP {m['ap']:.3f} "
          f"(prevalence {m['prevalence']:.2f})  F1 {m['f1']:.3f}  MCC {m['mcc']:.3f}")
    print(f"  outputs: {args.out}/predictions.h5ad, {args.out}/model/, {args.out}/run.json, "
          f"{args.out}/metrics.json  ({time.perf_counter() - started:.0f} s)")
    return 0
