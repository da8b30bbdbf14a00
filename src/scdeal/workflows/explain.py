"""Run every interpretation analysis on a run folder and write the results into it.

This is what ``scdeal explain --run DIR`` does; see :func:`explain_run` for the files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from .._io import atomic_path, jsonable, uns_safe, write_text_atomic
from ..errors import ScdealError
from ..tl.attribution import AttributionConfig, integrated_gradients, write_attributions
from ..tl.critical_genes import CriticalGeneConfig, critical_genes
from ..tl.enrichment import RegulatorMode, over_representation, read_gmt, read_regulons
from ..tl.gene_scores import GeneScoreConfig, gene_scores
from ..tl.trajectory import GraphConfig, cell_graph, pseudotime_correlations, trajectory

log = logging.getLogger(__name__)

ATTRIBUTION_FILE = "attr_integrated_gradient.h5ad"
FIGURES = "figures"
SUMMARY_FILE = "explain.json"
CORRELATED_WITH_PSEUDOTIME = ("rest_preds", "sens_preds", "resistant_score_pred",
                              "sensitive_score_pred", "resistant_score_true",
                              "sensitive_score_true")


@dataclass
class ExplainConfig:
    """Everything :func:`explain_run` does, with the paper's defaults.

    Attributes
    ----------
    attribution, critical, scores, graph
        Settings of the four analyses.
    label_key, label_map
        True labels (default: the run's ``label_key``; 0/1 or sensitive/resistant values
        unless a map is given). Used for the truth-derived gene scores and the figures only.
    groupby, root
        Cell groups for PAGA, and the group rooting the diffusion pseudotime.
    gmt, regulons, regulon_mode
        Gene-set collections (GMT) and TF -> target tables for enrichment.
    min_set_size, max_set_size, min_regulon_size
        Gene-set sizes tested (within the background).
    figures, n_heatmap_genes
        Draw the figures (PNG and PDF); genes per direction in the heatmap.

    Examples
    --------
    >>> from scdeal.workflows import ExplainConfig
    >>> config = ExplainConfig(groupby="leiden", figures=False)
    >>> config.groupby, config.figures
    ('leiden', False)
    """

    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    critical: CriticalGeneConfig = field(default_factory=CriticalGeneConfig)
    scores: GeneScoreConfig = field(default_factory=GeneScoreConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    label_key: str | None = None
    label_map: dict | None = None
    groupby: str | None = None
    root: str | None = None
    gmt: tuple[str, ...] = ()
    regulons: tuple[str, ...] = ()
    regulon_mode: RegulatorMode = "all"
    min_set_size: int = 10
    max_set_size: int | None = 500
    min_regulon_size: int = 5
    figures: bool = True
    n_heatmap_genes: int = 20


def _write_csv(table: pd.DataFrame, path: Path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=index)


def _truth(adata: AnnData, config: ExplainConfig) -> tuple[str | None, pd.Series | None]:
    from ..data.labels import binary_labels

    key = config.label_key or adata.uns.get("scdeal", {}).get("label_key")
    if not key:
        return None, None
    if key not in adata.obs:
        raise ScdealError(f"the predictions have no label column {key!r}; pass --label-key "
                          "with one of their obs columns")
    return key, binary_labels(adata.obs, key, config.label_map)


def explain_run(run_dir: str | Path, config: ExplainConfig | None = None) -> dict:
    """Interpret a run folder written by ``scdeal run`` and write the results into it.

    Files written into ``run_dir``:

    - ``attr_integrated_gradient.h5ad``: integrated gradients, cells x genes, layers
      ``ig_sensitive`` and ``ig_resistant`` (:func:`scdeal.tl.integrated_gradients`);
    - ``critical_genes_sensitive.csv``, ``critical_genes_resistant.csv`` (selected genes) and
      ``critical_gene_tests.csv`` (every gene's test; :func:`scdeal.tl.critical_genes`);
    - ``gene_scores.csv`` (per cell), ``gene_score_genes.csv``,
      ``gene_score_correlations.csv`` (with truth labels; :func:`scdeal.tl.gene_scores`);
    - ``enrichment_{sensitive,resistant}.csv`` (with ``gmt``) and
      ``regulators_{sensitive,resistant}.csv`` (with ``regulons``);
    - ``analysis.h5ad``: the prepared expression with predictions, scores, PCA, UMAP, and
      with ``groupby`` the diffusion map, pseudotime, PAGA and layout; ``trajectory.csv`` and
      ``trajectory_correlations.csv`` with a root;
    - ``figures/*.png|pdf`` and ``explain.json`` (settings, key numbers, timings).

    Examples
    --------
    Not run here: it needs a run folder (tests/test_cli_explain.py makes one and explains it).

    >>> summary = explain_run("runs/plx", ExplainConfig(groupby="response", root="1"))  # doctest: +SKIP
    """
    from ..model import ScDEAL

    config = config or ExplainConfig()
    run = Path(run_dir)
    if not (run / "predictions.h5ad").is_file() or not (run / "model").is_dir():
        raise ScdealError(f"{run} is not a run folder (needs predictions.h5ad and model/ from "
                          "scdeal run)")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    import anndata

    adata = anndata.read_h5ad(run / "predictions.h5ad")
    for key in ("sens_preds", "sens_label", "rest_preds"):
        if key not in adata.obs:
            raise ScdealError(f"{run}/predictions.h5ad has no obs[{key!r}]; rerun scdeal run")
    model = ScDEAL.load(run / "model")
    truth_key, truth = _truth(adata, config)
    if config.groupby and config.groupby not in adata.obs:
        raise ScdealError(f"--groupby {config.groupby!r} is not a column of the predictions "
                          f"(columns: {', '.join(map(str, adata.obs.columns))})")
    if config.root is not None and not config.groupby:
        raise ScdealError("--root names a group, so it needs --groupby")
    gmts = [read_gmt(p) for p in config.gmt]
    regulons = [read_regulons(p, mode=config.regulon_mode) for p in config.regulons]
    timings["load"] = time.perf_counter() - t0
    summary: dict = {"run": str(run), "drug": model.drug, "label_key": truth_key,
                     "warnings": []}

    # 1. Integrated gradients.
    t0 = time.perf_counter()
    attr = integrated_gradients(adata, model, config.attribution, obs=adata.obs)
    write_attributions(attr, run / ATTRIBUTION_FILE)
    ig_info = attr.uns["integrated_gradients"]
    summary["integrated_gradients"] = {k: ig_info[k] for k in (
        "n_steps", "method", "baseline", "tolerance", "max_abs_delta", "passed")}
    summary["integrated_gradients"].update(n_cells=attr.n_obs, n_genes=attr.n_vars)
    timings["integrated_gradients"] = time.perf_counter() - t0

    # 2. Critical genes.
    t0 = time.perf_counter()
    cg = None
    try:
        cg = critical_genes(attr, config.critical)
    except ScdealError as exc:
        log.warning("critical genes skipped: %s", exc)
        summary["warnings"].append(f"critical genes skipped: {exc}")
    if cg is not None:
        _write_csv(cg.sensitive, run / "critical_genes_sensitive.csv")
        _write_csv(cg.resistant, run / "critical_genes_resistant.csv")
        _write_csv(cg.tests, run / "critical_gene_tests.csv")
        summary["critical_genes"] = cg.summary()
    timings["critical_genes"] = time.perf_counter() - t0

    # 3. Gene scores on the prepared (normalised) expression the model was given.
    t0 = time.perf_counter()
    expr = model.prepare_target(adata)
    obs = adata.obs.reindex(expr.obs_names)
    truth_cells = truth.reindex(expr.obs_names) if truth is not None else None
    expr.obs["sens_label"] = obs["sens_label"]
    if truth_cells is not None:
        expr.obs["truth"] = truth_cells
    gs = None
    try:
        gs = gene_scores(expr, "sens_label", "truth" if truth_cells is not None else None,
                         config.scores)
    except ScdealError as exc:
        log.warning("gene scores skipped: %s", exc)
        summary["warnings"].append(f"gene scores skipped: {exc}")
    cell_table = obs[["sens_preds", "rest_preds", "sens_label"]].copy()
    if truth_cells is not None:
        cell_table["truth"] = truth_cells
    if gs is not None:
        cell_table = cell_table.join(gs.scores)
        _write_csv(gs.gene_sets, run / "gene_score_genes.csv")
        _write_csv(gs.correlations, run / "gene_score_correlations.csv")
        summary["gene_scores"] = {"n_null": gs.config.n_null,
                                  "correlations": gs.correlations.to_dict(orient="records")}
    _write_csv(cell_table, run / "gene_scores.csv", index=True)
    timings["gene_scores"] = time.perf_counter() - t0

    # 4. Enrichment of the critical genes against the model's genes.
    t0 = time.perf_counter()
    enrichment: dict[str, pd.DataFrame] = {}
    if cg is not None:
        background = list(attr.var_names)
        for prefix, collections, min_size, max_size in (
                ("enrichment", gmts, config.min_set_size, config.max_set_size),
                ("regulators", regulons, config.min_regulon_size, None)):
            if not collections:
                continue
            for direction, table in (("sensitive", cg.sensitive), ("resistant", cg.resistant)):
                parts = [over_representation(table["gene"], c, background, min_size=min_size,
                                             max_size=max_size) for c in collections]
                result = pd.concat(parts, ignore_index=True).sort_values("pvalue", kind="stable")
                enrichment[f"{prefix}_{direction}"] = result
                _write_csv(result, run / f"{prefix}_{direction}.csv")
        summary["enrichment"] = {name: {"n_terms_tested": len(t),
                                        "n_significant": int((t["pvalue_adj"] < 0.05).sum())}
                                 for name, t in enrichment.items()}
    timings["enrichment"] = time.perf_counter() - t0

    # 5. Cell graph, UMAP and (with a grouping) the trajectory.
    t0 = time.perf_counter()
    # obs: the input's annotations plus predictions, truth and gene scores (no duplicates).
    annotations = obs.drop(columns=[c for c in cell_table.columns if c in obs.columns])
    graph_expr = AnnData(X=expr.X, obs=cell_table.join(annotations),
                         var=pd.DataFrame(index=expr.var_names))
    embedding = np.asarray(adata.obsm["X_scdeal"])[adata.obs_names.get_indexer(expr.obs_names)]
    graph = cell_graph(graph_expr, config.graph, obsm={"X_scdeal": embedding})
    analysis = graph
    if config.groupby:
        analysis = trajectory(graph, config.groupby, config.root, config.graph)
        info = analysis.uns["scdeal_trajectory"]
        summary["trajectory"] = {k: info[k] for k in ("groupby", "root_group", "root_cell",
                                                      "layout")}
        if "dpt_pseudotime" in analysis.obs:
            corr = pseudotime_correlations(analysis, CORRELATED_WITH_PSEUDOTIME)
            _write_csv(corr, run / "trajectory_correlations.csv")
            summary["trajectory"]["correlations"] = corr.to_dict(orient="records")
            cols = ["dpt_pseudotime", config.groupby]
            coords = pd.DataFrame(analysis.obsm[info["layout"]][:, :2], columns=["x", "y"],
                                  index=analysis.obs_names)
            _write_csv(analysis.obs[cols].join(coords), run / "trajectory.csv", index=True)
    for key in ("scdeal_graph", "scdeal_trajectory"):
        if key in analysis.uns:
            analysis.uns[key] = uns_safe(dict(analysis.uns[key]))
    with atomic_path(run / "analysis.h5ad", suffix=".h5ad") as tmp:
        analysis.write_h5ad(tmp)
    timings["graph_and_trajectory"] = time.perf_counter() - t0

    # 6. Figures.
    t0 = time.perf_counter()
    if config.figures:
        summary["figures"] = _figures(run / FIGURES, adata, attr, cg, expr if gs else None,
                                      analysis, enrichment, truth_key, config)
    timings["figures"] = time.perf_counter() - t0
    summary["timings_s"] = timings
    summary["config"] = uns_safe(jsonable(asdict(config)))
    write_text_atomic(run / SUMMARY_FILE, json.dumps(jsonable(summary), indent=2, default=str))
    return summary


def _figures(folder: Path, adata, attr, cg, scored, analysis, enrichment, truth_key, config
             ) -> list[str]:
    """Draw every figure the results allow (``scored``: the expression
    :func:`scdeal.tl.gene_scores` wrote into, or None); return their names."""
    from .. import pl

    made: list[str] = []

    def save(fig, name):
        pl.save_figure(fig, folder, name)
        made.append(name)

    obs = analysis.obs
    if truth_key is not None:
        obs = obs.assign(**{truth_key: adata.obs[truth_key].reindex(obs.index)})
    cells = AnnData(obs=obs, obsm={"X_umap": analysis.obsm["X_umap"]})
    save(pl.prediction_panels(cells, basis="umap", truth_key=truth_key, groupby=config.groupby,
                              show=False), "umap_predictions")
    if "truth" in obs and obs["truth"].nunique() == 2:
        if "sens_preds_pret" in adata.obs:
            cells.obs["sens_preds_pret"] = adata.obs["sens_preds_pret"].reindex(obs.index)
        save(pl.roc_pr_curves(cells, truth_key="truth", show=False), "roc_pr")
    if scored is not None and not scored.uns["gene_scores"]["correlations"].empty:
        save(pl.gene_score_regression(scored, key="gene_scores", show=False), "gene_scores")
    if cg is not None and (len(cg.sensitive) or len(cg.resistant)):
        save(pl.attribution_heatmap(attr, key="critical_genes", n_top=config.n_heatmap_genes,
                                    truth_key=truth_key, show=False),
             "critical_genes_heatmap")
    for name, table in enrichment.items():
        if len(table):
            what = name.replace("_", " ").replace("enrichment", "gene sets").replace(
                "regulators", "regulators (TF targets)")
            save(pl.enrichment_barplot(table, title=f"{what}: critical genes", show=False), name)
    if config.groupby:
        save(pl.trajectory_panels(analysis, groupby=config.groupby,
                                  keys=[k for k in ("rest_preds", "resistant_score_pred",
                                                    "resistant_score_true") if k in obs],
                                  show=False),
             "trajectory")
    return made
