"""``scdeal explain``: integrated gradients, critical genes, gene scores, enrichment and
trajectory for a run folder; results are written into the folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "explain", help="interpret a run: integrated gradients, critical genes, gene scores, "
                        "enrichment, trajectory, figures",
        description="Compute integrated gradients of both outputs, critical genes, gene scores "
                    "(compared with the truth when the run has labels), enrichment of the "
                    "critical genes in GMT gene sets and TF target tables, and (with --groupby) "
                    "PAGA and diffusion pseudotime; write tables, figures and "
                    "attr_integrated_gradient.h5ad into the run folder.")
    parser.add_argument("--run", required=True, help="run folder written by scdeal run")
    parser.add_argument("--groupby", help="obs column of cell groups for PAGA (e.g. cell_color)")
    parser.add_argument("--root", help="group (value of --groupby) where pseudotime starts, "
                        "e.g. the parental or primary-site cells")
    parser.add_argument("--gmt", nargs="+", action="extend", default=[], metavar="FILE",
                        help="gene-set collections (.gmt or .gmt.gz) for enrichment")
    parser.add_argument("--regulons", nargs="+", action="extend", default=[], metavar="FILE",
                        help="TF -> target tables (CollecTRI csv or TRRUST tsv)")
    parser.add_argument("--regulon-mode", choices=["all", "activation", "repression"],
                        default="all", help="which TF -> target edges to use (default: all)")
    parser.add_argument("--label-key", help="true-label column (default: the run's)")
    parser.add_argument("--label-map", help="how label values map to 1/0, e.g. "
                        "'sensitive=1,resistant=0'")
    ig = parser.add_argument_group("integrated gradients")
    ig.add_argument("--n-steps", type=int, default=50, help="integration steps (default 50)")
    ig.add_argument("--ig-method", default="gausslegendre",
                    choices=["gausslegendre", "riemann_trapezoid", "riemann_left",
                             "riemann_right", "riemann_middle"])
    ig.add_argument("--baseline", choices=["zero_expression", "mean_cell"],
                    default="zero_expression", help="IG baseline (default: zero expression)")
    ig.add_argument("--ig-batch-size", type=int, default=64, help="cells per IG pass")
    cg = parser.add_argument_group("critical genes")
    cg.add_argument("--alpha", type=float, default=0.05, help="adjusted p cut (default 0.05)")
    cg.add_argument("--correction", choices=["bonferroni", "bh"], default="bonferroni")
    cg.add_argument("--min-effect", type=float, default=0.8,
                    help="smallest Cohen's d of the attributions (default 0.8)")
    gs = parser.add_argument_group("gene scores and enrichment")
    gs.add_argument("--n-top", type=int, default=50, help="marker genes per group (default 50)")
    gs.add_argument("--n-null", type=int, default=1000,
                    help="random gene sets in the null of r (default 1000; 0: none)")
    gs.add_argument("--min-set-size", type=int, default=10)
    gs.add_argument("--max-set-size", type=int, default=500)
    gr = parser.add_argument_group("cell graph")
    gr.add_argument("--use-rep", help="obsm key for the neighbour graph (default: PCA of the "
                    "expression; X_scdeal: the model's embedding)")
    gr.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parts")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..tl import AttributionConfig, CriticalGeneConfig, GeneScoreConfig, GraphConfig
    from ..workflows import ExplainConfig, explain_run
    from ._run import label_map_from_args

    config = ExplainConfig(
        attribution=AttributionConfig(n_steps=args.n_steps, method=args.ig_method,
                                      baseline=args.baseline, batch_size=args.ig_batch_size),
        critical=CriticalGeneConfig(alpha=args.alpha, correction=args.correction,
                                    min_effect=args.min_effect),
        scores=GeneScoreConfig(n_top=args.n_top, n_null=args.n_null, seed=args.seed),
        graph=GraphConfig(use_rep=args.use_rep, n_neighbors=args.n_neighbors, seed=args.seed),
        label_key=args.label_key, label_map=label_map_from_args(args), groupby=args.groupby,
        root=args.root, gmt=tuple(args.gmt), regulons=tuple(args.regulons),
        regulon_mode=args.regulon_mode, min_set_size=args.min_set_size,
        max_set_size=args.max_set_size, figures=not args.no_figures)
    summary = explain_run(args.run, config)
    ig = summary["integrated_gradients"]
    print(f"scdeal explain: {summary['drug']}, {ig['n_cells']} cells x {ig['n_genes']} genes "
          f"-> {args.run}")
    print(f"  integrated gradients: largest completeness error {ig['max_abs_delta']:.2g} "
          f"(tolerance {ig['tolerance']})")
    if "critical_genes" in summary:
        cg = summary["critical_genes"]
        print(f"  critical genes: {cg['n_sensitive']} sensitive, {cg['n_resistant']} resistant")
    for row in summary.get("gene_scores", {}).get("correlations", []):
        print(f"  {row['direction']} gene score: r = {row['pearson_r']:.3f} "
              f"(empirical p = {row['p_empirical']:.3g}, {row['n_null']} random sets)")
    for name, info in summary.get("enrichment", {}).items():
        print(f"  {name}: {info['n_significant']} of {info['n_terms_tested']} sets with "
              "adjusted p < 0.05")
    for row in summary.get("trajectory", {}).get("correlations", []):
        print(f"  pseudotime vs {row['variable']}: Pearson {row['pearson_r']:.3f}, "
              f"Spearman {row['spearman_rho']:.3f}")
    for warning in summary.get("warnings", []):
        print(f"  warning: {warning}")
    return 0
