"""``scdeal screen``: many drugs on one target, ranked per cell group, on Dask."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._run import (
    add_cache_argument,
    add_target_arguments,
    config_from_args,
    label_map_from_args,
    read_target_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "screen", help="predict many drugs on one target and rank them per cell group (Dask)",
        description="Predict many drugs on the same cells, the drug-independent pre-training "
                    "done once. By default (--strategy joint) the drugs are grouped by their "
                    "GDSC response into at most --blocks fits, one joint model per group (a "
                    "drug alone: its per-drug model), fitted here or on Dask (--scheduler, "
                    "--workers); --strategy per-drug fits one model per drug, the drugs in "
                    "parallel on Dask. Writes DIR/screen.h5ad (obsm 'scdeal_screen': cells x "
                    "drugs P(sensitive)), DIR/drugs.csv, DIR/groups.csv and DIR/heatmap.png "
                    "(joint: and DIR/model). Finished drugs in DIR are reused when the screen "
                    "is run again.")
    parser.add_argument("--drugs", required=True, metavar="LIST",
                        help="comma-separated drug names, @FILE (one per line) or 'all' (every "
                             "GDSC drug with enough labelled cell lines)")
    add_target_arguments(parser)
    parser.add_argument("--groupby", metavar="KEY",
                        help="obs column of the cell groups (default: Leiden clusters of the "
                             "pre-trained cell embedding, obs 'scdeal_cluster')")
    parser.add_argument("--config", help="JSON or TOML file of configuration keys")
    parser.add_argument("--preset", help="named configuration, e.g. default")
    parser.add_argument("--seed", type=int, help="random seed (default: the configuration's, 0)")
    parser.add_argument("--release", choices=["auto", "GDSC1", "GDSC2"],
                        help="GDSC release of the labels (default: the configuration's, auto: "
                             "GDSC2 where it screened the drug, else GDSC1; with --drugs all, "
                             "auto takes the drugs of both, each once)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                             "(default: a local cluster on this machine's cores)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for --scheduler to answer (default 10)")
    parser.add_argument("--strategy", choices=["joint", "per-drug"], default="joint",
                        help="per-drug: one model per drug (the paper's method), the drugs "
                             "spread over Dask workers; joint: the drugs grouped by their GDSC "
                             "response into at most --blocks fits (a joint model per group, "
                             "shared trunk and one output per drug; a drug alone: its per-drug "
                             "model), saved in DIR/model, the fits run here or on --scheduler "
                             "(default joint; with no more drugs than --blocks, every drug is "
                             "fitted alone, as per-drug)")
    parser.add_argument("--blocks", type=int, metavar="N",
                        help="--strategy joint: at most N fits (default: the configuration's "
                             "joint_blocks, 8); with no more drugs than N every drug is "
                             "fitted alone")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes of the local cluster (default: one per core; "
                             "--strategy joint fits its blocks here unless N is given)")
    parser.add_argument("--out", required=True, help="output folder (finished drugs are kept)")
    add_cache_argument(parser)
    parser.set_defaults(func=_screen)


def _screen(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..errors import ScdealError
    from ..workflows import parse_drug_list, screen

    if args.workers is not None and args.workers < 1:
        raise ScdealError(f"--workers must be at least 1, got {args.workers}")
    if args.blocks is not None and args.strategy != "joint":
        raise ScdealError("--blocks groups the drugs of --strategy joint; give --strategy "
                          "joint or leave --blocks out")
    if args.scheduler and args.workers is not None:
        raise ScdealError("--workers sizes the local cluster; with --scheduler the cluster "
                          "has its own workers: give one or the other")
    drugs = parse_drug_list(args.drugs)
    config = config_from_args(args)
    adata = read_target_from_args(args)
    result = screen(adata, drugs, config=config, out=Path(args.out), groupby=args.groupby,
                    label_key=args.label_key, label_map=label_map_from_args(args),
                    gene_ids=args.gene_ids, scheduler=args.scheduler, n_workers=args.workers,
                    cache=not args.no_cache, progress=not args.quiet,
                    connect_timeout=args.connect_timeout, strategy=args.strategy)
    table = result.drugs
    ok = table[table.status == "ok"]
    reliable = int((ok.reliable.astype(str) == "True").sum())
    print(f"scdeal screen: {len(ok)} of {len(table)} drugs screened on {adata.n_obs} cells "
          f"({reliable} flagged reliable), groups from obs[{result.groupby!r}] -> {args.out}")
    for row in table[table.status != "ok"].itertuples():
        print(f"  {row.drug}: {row.status} ({row.reason})")
    return 0
