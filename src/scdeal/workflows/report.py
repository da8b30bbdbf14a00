"""One self-contained HTML page from a run folder (``scdeal report DIR``).

The page gathers what the folder holds: the run's settings and metrics (``scdeal run``), the
interpretation results (``scdeal explain``), and stability results (``scdeal stability``).
Figures are embedded as base64 PNG, so the file can be mailed or archived alone. Prediction
figures (UMAP, ROC/PR) missing from ``figures/`` are drawn first from ``predictions.h5ad``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
from pathlib import Path

import pandas as pd

from .._io import write_text_atomic
from ..errors import ScdealError

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: .6em 0; }
td { max-width: 420px; overflow-wrap: break-word; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
.note { color: #555; font-size: 13px; } .warn { color: #a00; }
figure { margin: 1em 0; } figcaption { font-size: 13px; color: #555; }
"""


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        log.warning("report: %s is not valid JSON; skipped", path)
        return None


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def _table(df: pd.DataFrame, n: int | None = None, columns=None) -> str:
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    if n is not None:
        df = df.head(n)
    df = df.copy()
    for column in df.columns:  # long gene lists and URLs would stretch the page
        if df[column].dtype == object:
            df[column] = df[column].map(_short_text)
    table = df.to_html(index=False, escape=True, border=0, na_rep="",
                       float_format=lambda v: f"{v:.3g}")
    return f'<div class="scroll">{table}</div>'


def _short_text(value):
    """Gene lists wrap after each ';'; URLs (e.g. MSigDB descriptions) and long text are cut."""
    if not isinstance(value, str):
        return value
    if value.startswith(("http://", "https://")):
        return ""
    value = value.replace(";", "; ")
    return value if len(value) <= 160 else value[:157] + "..."


def _image(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _p(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


def _prediction_figures(run: Path) -> None:
    """Draw umap_predictions and roc_pr from predictions.h5ad when they are missing."""
    figures = run / "figures"
    wanted = [n for n in ("umap_predictions", "roc_pr") if not (figures / f"{n}.png").is_file()]
    if not wanted or not (run / "predictions.h5ad").is_file():
        return
    import anndata

    from .. import pl

    adata = anndata.read_h5ad(run / "predictions.h5ad")
    info = adata.uns.get("scdeal", {})
    label_key = info.get("label_key")
    labelled = label_key in adata.obs if label_key else False
    if "roc_pr" in wanted and labelled:
        try:
            pl.save_figure(pl.roc_pr_curves(adata, truth_key=label_key, show=False),
                           figures, "roc_pr")
        except ScdealError as exc:
            log.warning("report: no ROC/PR figure (%s)", exc)
    if "umap_predictions" in wanted and (run / "model").is_dir():
        from ..model import ScDEAL
        from ..tl import cell_graph

        model = ScDEAL.load(run / "model")
        expr = model.prepare_target(adata)
        obs = adata.obs.reindex(expr.obs_names)
        graph = cell_graph(anndata.AnnData(X=expr.X, obs=obs,
                                           var=pd.DataFrame(index=expr.var_names)))
        pl.save_figure(pl.prediction_panels(graph, basis="umap",
                                            truth_key=label_key if labelled else None,
                                            show=False),
                       figures, "umap_predictions")


RELIABILITY_ROWS = (
    ("member_consensus", "median over members of r(member, mean of the other members)"),
    ("member_agreement", "mean pairwise Pearson r of the members' P(sensitive) over the cells"),
    ("member_agreement_pretransfer", "the same before the transfer step"),
    ("direction_agreement", "fraction of member pairs ranking the cells the same way (r > 0)"),
    ("transfer_consistency", "mean r of each member's predictions after vs before transfer"),
    ("bulk_test_auroc", "mean AUROC of the members on their held-out bulk test lines"),
    ("fraction_uncertain", "fraction of cells whose members' spread reaches across 0.5"),
    ("n_members", "ensemble members"),
)


def _reliability_section(rel: dict | None) -> list[str]:
    """The label-free reliability verdict and its diagnostics (first thing on the page)."""
    if not rel:
        return ["<h2>Reliability</h2>", _p("No reliability diagnostics in run.json (a run "
                                          "written before they existed); rerun to get them.",
                                          "warn")]
    verdict = {True: "RELIABLE", False: "NOT RELIABLE", None: "NO VERDICT"}[rel.get("reliable")]
    cls = "warn" if rel.get("reliable") is not True else "note"
    rows = [{"diagnostic": key, "value": rel.get(key), "meaning": meaning}
            for key, meaning in RELIABILITY_ROWS if key in rel]
    parts = ["<h2>Reliability</h2>",
             f'<p class="{cls}"><b>{verdict}</b>: {html.escape(str(rel.get("reason", "")))}</p>']
    if rel.get("reliable") is False:
        from ..model.reliability import UNRELIABLE_ADVICE

        parts.append(_p("This means " + UNRELIABLE_ADVICE + ".", "warn"))
    parts += [_p(f"Computed without labels at the end of the fit. Rule: {rel.get('rule', '')}."),
              _table(pd.DataFrame(rows))]
    return parts


def _metrics_section(metrics: dict) -> str:
    from .._types import MetricName, choices

    names = choices(MetricName)
    before = metrics.get("before_transfer", {})
    rows = [{"metric": m, "after transfer": metrics.get(m), "before transfer": before.get(m)}
            for m in names if m in metrics]
    return ("<h2>Prediction metrics</h2>"
            + _p(f"True labels from obs[{metrics.get('label_key')!r}]; positive class = "
                 "sensitive; AUROC and AP from P(sensitive), F1/MCC/balanced accuracy from "
                 "P >= 0.5. Labels are used only here, never in training.")
            + _table(pd.DataFrame(rows)))


def build_report(run_dir: str | Path, out: str | Path | None = None, *,
                 draw_missing: bool = True) -> Path:
    """Write the HTML report of ``run_dir`` (default ``run_dir/report.html``); return its path.

    Examples
    --------
    A run folder of a tiny fit on simulated cells, then its report:

    >>> import scdeal
    >>> from scdeal.data.simulate import demo_target
    >>> bulk = scdeal.data.load_gdsc()                                         # doctest: +GDSC_DATA
    >>> adata, held = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=10)
    >>> _ = scdeal.workflows.run(adata, "Gefitinib", "runs/gefitinib", label_key="sensitive",
    ...                          config=dict(n_models=1, pretrain_epochs=2, predictor_epochs=2,
    ...                                      transfer_epochs=2),
    ...                          gene_ids="symbol", bulk=bulk.without_lines(held), cache=False,
    ...                          progress=False)
    >>> page = build_report("runs/gefitinib")
    >>> page.name, "Gefitinib" in page.read_text()
    ('report.html', True)
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ScdealError(f"report folder not found: {run}")
    run_info = _read_json(run / "run.json")
    explain = _read_json(run / "explain.json")
    stability = _read_csv(run / "stability_summary.csv")
    screen = _read_csv(run / "drugs.csv") if (run / "screen.json").is_file() else None
    if run_info is None and explain is None and stability is None and screen is None:
        raise ScdealError(f"{run} holds no run.json, explain.json, stability_summary.csv or "
                          "screen.json; give a folder written by scdeal run, explain, "
                          "stability or screen")
    if draw_missing and run_info is not None:
        _prediction_figures(run)
    fig = run / "figures"
    drug = ((run_info or {}).get("drug") or (explain or {}).get("drug")
            or (_read_json(run / "stability.json") or {}).get("drug", "")
            or (f"screen of {len(screen)} drugs" if screen is not None else ""))
    parts = [f"<h1>scDEAL report: {html.escape(str(drug))}</h1>",
             _p(f"Folder {run.resolve()}; generated {_dt.datetime.now():%Y-%m-%d %H:%M}.")]
    if run_info is not None:
        parts += _reliability_section(run_info.get("reliability"))

    if run_info is not None:
        training = run_info.get("training", {})
        rows = {"drug": run_info.get("drug"), "command": run_info.get("command"),
                "target cells": training.get("n_target_cells"),
                "model genes": training.get("n_target_genes"),
                "ensemble members": training.get("n_models"),
                "bulk lines (sensitive/resistant)": "{}/{}".format(
                    training.get("bulk_lines", {}).get("sensitive"),
                    training.get("bulk_lines", {}).get("resistant")),
                "GDSC release": training.get("release"),
                "scdeal version": run_info.get("versions", {}).get("scdeal"),
                "total seconds": round(run_info.get("timings_s", {}).get("total", 0), 1)}
        parts += ["<h2>Run</h2>", _table(pd.DataFrame({"item": list(rows),
                                                       "value": list(map(str, rows.values()))}))]
    metrics = _read_json(run / "metrics.json")
    if metrics:
        parts.append(_metrics_section(metrics))
    parts += [_image(fig / "umap_predictions.png", "UMAP of the prepared expression coloured "
                     "by the truth, the predicted label, P(sensitive) (and the --groupby groups)"),
              _image(fig / "roc_pr.png", "ROC and precision-recall curves, after and before "
                     "the transfer step")]
    if explain is not None:
        parts += _explain_sections(run, explain)
    if stability is not None:
        runs = _read_csv(run / "stability_runs.csv")
        parts += ["<h2>Stability</h2>",
                  _p("Each repeat retrains on a stratified 80% subsample (without replacement) "
                     "with its own seed and scores the subsample's cells."),
                  _table(stability), _image(fig / "stability_boxplot.png", "metrics over "
                                            "repeats")]
        if runs is not None:
            parts += ["<details><summary>every repeat</summary>", _table(runs), "</details>"]
    if screen is not None:
        parts += _screen_section(run, screen)
    files = sorted(p for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and "parts" not in p.relative_to(run).parts)
    listing = pd.DataFrame({"file": [str(p.relative_to(run)) for p in files],
                            "kB": [f"{p.stat().st_size / 1024:,.1f}" for p in files]})
    parts += ["<h2>Files in the folder</h2>", _table(listing)]
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>scDEAL report {html.escape(str(drug))}</title><style>{CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>")
    target = Path(out) if out is not None else run / REPORT_FILE
    write_text_atomic(target, page)
    return target


def _screen_section(run: Path, drugs: pd.DataFrame) -> list[str]:
    """The drug screen: the drug table (reliable drugs first, by mean P) and the heatmap."""
    ok = drugs[drugs["status"] == "ok"]
    others = drugs[drugs["status"] != "ok"]
    reliable = ok[ok["reliable"].astype(str) == "True"]
    parts = ["<h2>Drug screen</h2>",
             _p(f"{len(ok)} drugs screened ({len(reliable)} flagged reliable), {len(others)} not "
                "(see status and reason). Each drug's fit is judged by the same label-free "
                "checks as a single run; a drug not flagged reliable should not be ranked.")]
    if len(reliable) < len(ok):
        parts.append(_p(f"{len(ok) - len(reliable)} drug(s) NOT flagged reliable: "
                        + ", ".join(map(str, ok.loc[ok["reliable"].astype(str) != "True",
                                                    "drug"])), "warn"))
    columns = ["drug", "reliable", "member_consensus", "bulk_test_auroc", "fraction_sensitive",
               "auroc", "ap", "seconds"]
    ranked = ok.assign(_r=ok["reliable"].astype(str) == "True").sort_values(
        ["_r", "fraction_sensitive"], ascending=False)
    parts += [_table(ranked, None, [c for c in columns if ranked[c].notna().any()]),
              _image(run / "heatmap.png", "mean P(sensitive) per cell group and drug; hatched "
                     "drugs (*) were not flagged reliable")]
    if len(others):
        parts += ["<h3>Drugs not screened</h3>", _table(others, None, ["drug", "status",
                                                                       "reason"])]
    return parts


def _explain_sections(run: Path, explain: dict) -> list[str]:
    fig = run / "figures"
    parts = []
    for warning in explain.get("warnings", []):
        parts.append(_p(warning, "warn"))
    ig = explain.get("integrated_gradients", {})
    parts += ["<h2>Integrated gradients and critical genes</h2>",
              _p(f"Attributions of both outputs for {ig.get('n_cells')} cells x "
                 f"{ig.get('n_genes')} genes ({ig.get('n_steps')} {ig.get('method')} steps, "
                 f"{ig.get('baseline')} baseline) in attr_integrated_gradient.h5ad. Completeness "
                 f"(attributions sum to F(x) - F(baseline)): largest error "
                 f"{ig.get('max_abs_delta', float('nan')):.2g} against a tolerance of "
                 f"{ig.get('tolerance')}.", "note" if ig.get("passed", True) else "warn")]
    cg = explain.get("critical_genes")
    if cg:
        parts.append(_p(
            f"{cg['n_sensitive']} sensitive and {cg['n_resistant']} resistant critical genes "
            f"of {cg['n_genes_tested']} (Wilcoxon rank-sum of the attributions between predicted "
            f"groups, {cg['correction']}-adjusted p < {cg['alpha']}, Cohen's d > "
            f"{cg['min_effect']}; sensitive when the gene's input is higher in the predicted "
            "sensitive cells, resistant when higher in the predicted resistant cells)."))
        cols = ["gene", "pvalue_adj", "cohens_d", "rank_biserial", "mean_attr_sensitive_S",
                "mean_attr_sensitive_R", "input_diff"]
        for direction in ("sensitive", "resistant"):
            table = _read_csv(run / f"critical_genes_{direction}.csv")
            if table is not None and len(table):
                parts += [f"<h3>Top {direction} critical genes</h3>", _table(table, 15, cols)]
        parts.append(_image(fig / "critical_genes_heatmap.png", "attributions of the top "
                            "critical genes"))
    corr = _read_csv(run / "gene_score_correlations.csv")
    parts.append("<h2>Gene scores</h2>")
    if corr is not None and len(corr):
        parts += [_p("Top 50 genes (BH-adjusted p < 0.05) up in each predicted group and in each "
                     "true group, scored with scanpy's score_genes on the same normalised data; "
                     "Pearson r between predicted- and truth-derived scores against random gene "
                     "sets of the same size (empirical p = (1 + #null >= r) / (1 + n))."),
                  _table(corr), _image(fig / "gene_scores.png", "gene-score agreement")]
    else:
        parts.append(_p("Per-cell scores from the predicted groups are in gene_scores.csv; "
                        "no true labels, so no comparison."))
    for prefix, title in (("enrichment", "Gene-set enrichment of critical genes"),
                          ("regulators", "Regulator (TF target) enrichment of critical genes")):
        tables = {d: _read_csv(run / f"{prefix}_{d}.csv") for d in ("sensitive", "resistant")}
        if all(t is None for t in tables.values()):
            continue
        parts += [f"<h2>{title}</h2>", _p("Hypergeometric test (gseapy enrich), background = "
                                          "the model's genes, BH-adjusted.")]
        for direction, table in tables.items():
            if table is None:
                continue
            parts.append(f"<h3>{direction} critical genes</h3>")
            if len(table):
                parts += [_table(table, 10, ["collection", "term", "description", "overlap",
                                             "set_size", "fold_enrichment", "pvalue",
                                             "pvalue_adj", "genes"]),
                          _image(fig / f"{prefix}_{direction}.png", f"top terms, {direction}")]
            else:
                parts.append(_p("no set shares a gene with this list"))
    traj = explain.get("trajectory")
    if traj:
        parts += ["<h2>Trajectory</h2>",
                  _p(f"PAGA on {traj.get('groupby')!r}; diffusion pseudotime rooted at group "
                     f"{traj.get('root_group')!r} (cell {traj.get('root_cell')}); layout "
                     f"{traj.get('layout')}.")]
        tc = _read_csv(run / "trajectory_correlations.csv")
        if tc is not None:
            parts.append(_table(tc))
        parts.append(_image(fig / "trajectory.png", "trajectory"))
    parts += ["<h2>Settings</h2>", "<details><summary>explain settings</summary><pre>",
              html.escape(json.dumps(explain.get("config", {}), indent=1)), "</pre></details>",
              _p("Seconds per step: " + ", ".join(
                  f"{k} {v:.1f}" for k, v in explain.get("timings_s", {}).items()))]
    return parts
