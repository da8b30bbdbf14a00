"""Critical genes: genes whose attributions differ between predicted sensitive and resistant
cells (paper Methods "Critical gene identification with Integrated Gradients").

The paper tests IG values with a Wilcoxon rank-sum test between the predicted sensitive and
resistant cells and keeps genes with Bonferroni-adjusted p < 0.05 and log-fold change > 1. The
original notebooks instead tested |IG| between ground-truth groups after treating it as counts
(normalise, log), with BH and |logFC| > 0.1 (method notes 9.4, item 18). Attributions are signed
and centred near zero, so a fold change is undefined; this module uses a standardised mean
difference instead (see :func:`rank_attributions`).

Definitions (``A_s`` / ``A_r`` = attribution of a gene to the sensitive / resistant
probability; "S" / "R" = the cells predicted sensitive / resistant):

- **test**: ``A_s`` in S against ``A_s`` in R, two-sided Wilcoxon rank-sum
  (:func:`scipy.stats.mannwhitneyu`, the same setting as the gene scores' scanpy test),
  corrected over genes (Bonferroni by default);
- **effect size**: Cohen's d of ``A_s``, (mean over S - mean over R) / pooled SD. A positive d
  means the gene pushes S cells more towards "sensitive" than it pushes R cells, i.e. its
  attribution agrees with the call. The rank-biserial correlation ``2U/(n_S n_R) - 1`` (the
  Wilcoxon test's own effect size) and the raw difference of means are reported beside it;
- **tested genes**: those whose model input varies across the cells (a constant gene cannot
  separate cells, though its attribution (input - baseline) x gradient still varies with the
  gradient); the correction counts only these;
- **critical gene**: adjusted p < alpha and d > ``min_effect``;
- **sensitive or resistant**: a critical gene is *sensitive* when its model input is higher
  on average in S than in R (``input_diff`` > 0): it is expressed more in the sensitive cells
  and, since d > 0, that higher expression raises P(sensitive) there. It is *resistant* when its
  input is higher in R: expressed more in the resistant cells, where it raises P(resistant).
  This matches the paper's description (sensitive critical genes high in the sensitive,
  primary-site cells; resistant ones rising towards the resistant end) and, unlike the size of
  the attributions, does not depend on the baseline: the baseline's own prediction decides how
  much each cell has to explain (completeness), so with a baseline that looks resistant nearly
  every gene has larger attributions in the sensitive cells.

With two softmax outputs ``A_r = -A_s`` exactly, so testing ``A_r`` between R and S gives the
same p-values and d; the table reports the means of both layers. Genes with d < -``min_effect``
(attributions that oppose the call) are in the full test table but in neither list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from ..errors import ScdealError
from .attribution import INPUT_LAYER, RESISTANT_LAYER, SENSITIVE_LAYER

Correction = Literal["bonferroni", "bh"]


@dataclass
class CriticalGeneConfig:
    """Thresholds for critical genes (paper: Bonferroni p < 0.05 and a large effect).

    Attributes
    ----------
    alpha
        Largest adjusted p-value kept.
    correction
        ``bonferroni`` (paper) or ``bh`` (Benjamini-Hochberg, scanpy's default).
    min_effect
        Smallest Cohen's d kept; 0.8 is Cohen's "large" effect, standing in for the paper's
        log-fold change > 1 (a doubling), which signed attributions do not have.

    Examples
    --------
    >>> CriticalGeneConfig(correction="bh").alpha
    0.05
    """

    alpha: float = 0.05
    correction: Correction = "bonferroni"
    min_effect: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ScdealError(f"alpha must lie in (0, 1], got {self.alpha!r}")
        if self.correction not in ("bonferroni", "bh"):
            raise ScdealError(f"correction must be 'bonferroni' or 'bh', got {self.correction!r}")


@dataclass
class CriticalGenes:
    """The per-gene test table (every gene) and the two lists of critical genes.

    Examples
    --------
    Made by :func:`critical_genes`; by hand:

    >>> cg = CriticalGenes(pd.DataFrame({"gene": ["G1"]}), pd.DataFrame({"gene": []}),
    ...                    pd.DataFrame({"gene": ["G1", "G2"]}), CriticalGeneConfig())
    >>> cg.summary()["n_sensitive"], cg.summary()["n_genes_tested"]
    (1, 2)
    """

    sensitive: pd.DataFrame
    resistant: pd.DataFrame
    tests: pd.DataFrame
    config: CriticalGeneConfig
    n_constant: int = 0

    def summary(self) -> dict:
        return {"n_sensitive": len(self.sensitive), "n_resistant": len(self.resistant),
                "n_genes_tested": len(self.tests), "n_genes_constant": self.n_constant,
                "alpha": self.config.alpha,
                "correction": self.config.correction, "min_effect": self.config.min_effect}


def adjust_pvalues(p: np.ndarray, method: Correction = "bonferroni") -> np.ndarray:
    """Bonferroni (``min(1, p m)``) or Benjamini-Hochberg adjusted p-values over ``m`` tests.

    Examples
    --------
    >>> adjust_pvalues(np.array([0.01, 0.04]), "bonferroni").tolist()
    [0.02, 0.08]
    """
    p = np.asarray(p, dtype=float)
    if method == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    if method == "bh":
        return stats.false_discovery_control(p, method="bh")
    raise ScdealError(f"correction must be 'bonferroni' or 'bh', got {method!r}")


def rank_attributions(values: np.ndarray, in_group: np.ndarray, genes,
                      correction: Correction = "bonferroni") -> pd.DataFrame:
    """Wilcoxon rank-sum test of every column of ``values`` between two groups of rows.

    Parameters
    ----------
    values
        Cells x genes (signed attributions).
    in_group
        Boolean per cell: the group (e.g. the cells predicted sensitive); the rest is the
        reference.
    genes
        Column names.
    correction
        Multiple-testing correction over the genes.

    Returns
    -------
    DataFrame
        One row per gene, sorted by adjusted p then by decreasing effect: the Mann-Whitney U of
        the group, two-sided p (scipy's asymptotic normal approximation with tie correction and
        no continuity correction, the setting of :func:`scdeal.tl.gene_scores.marker_genes`), adjusted p, Cohen's d (pooled SD; 0 where both groups are constant), the
        rank-biserial correlation ``2U / (n1 n2) - 1``, the two means and their difference.

    Examples
    --------
    >>> A = np.array([[1.0, 0.1], [2.0, 0.0], [-1.0, 0.1], [-2.0, 0.0]])
    >>> rank_attributions(A, np.array([True, True, False, False]), ["G1", "G2"]).gene.tolist()
    ['G1', 'G2']
    """
    values = np.asarray(values, dtype=np.float64)
    in_group = np.asarray(in_group, dtype=bool)
    n1, n0 = int(in_group.sum()), int((~in_group).sum())
    if n1 < 2 or n0 < 2:
        raise ScdealError(f"critical genes need at least 2 cells in each predicted group, got "
                          f"{n1} and {n0}; the model predicts (almost) every cell the same")
    a, b = values[in_group], values[~in_group]
    # scdeal's one Wilcoxon rank-sum setting, shared with gene_scores.marker_genes (which runs
    # it through scanpy's sparse, chunked rank_genes_groups on expression matrices): two-sided,
    # normal approximation, tie-corrected, no continuity correction.
    u, p = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic",
                              use_continuity=False, axis=0)
    p = np.where(np.isnan(p), 1.0, p)  # constant columns (no attribution anywhere)
    mean_a, mean_b = a.mean(0), b.mean(0)
    pooled = np.sqrt(((n1 - 1) * a.var(0, ddof=1) + (n0 - 1) * b.var(0, ddof=1)) / (n1 + n0 - 2))
    diff = mean_a - mean_b
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(pooled > 0, diff / pooled, 0.0)
    table = pd.DataFrame({
        "gene": list(genes), "statistic_u": u, "pvalue": p,
        "pvalue_adj": adjust_pvalues(p, correction), "cohens_d": d,
        "rank_biserial": 2 * u / (n1 * n0) - 1, "mean_in_group": mean_a, "mean_in_rest": mean_b,
        "mean_diff": diff, "n_group": n1, "n_rest": n0})
    return table.sort_values(["pvalue_adj", "cohens_d"], ascending=[True, False],
                             kind="stable").reset_index(drop=True)


def select_critical(tests: pd.DataFrame, config: CriticalGeneConfig
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the significant, large-effect genes of ``tests`` into sensitive and resistant
    critical genes by ``input_diff`` (see the module docstring); each by decreasing d."""
    critical = tests[(tests["pvalue_adj"] < config.alpha)
                     & (tests["cohens_d"] > config.min_effect)]

    def tidy(table: pd.DataFrame) -> pd.DataFrame:
        return table.sort_values("cohens_d", ascending=False, kind="stable").reset_index(
            drop=True)

    return (tidy(critical[critical["input_diff"] > 0]),
            tidy(critical[critical["input_diff"] < 0]))


def predicted_sensitive(obs: pd.DataFrame, key: str = "sens_label") -> np.ndarray:
    """Boolean "predicted sensitive" per cell from a 0/1 label column."""
    if key not in obs:
        raise ScdealError(f"obs has no predicted-label column {key!r}; run predict first")
    labels = pd.to_numeric(obs[key].astype(object), errors="coerce")
    if labels.isna().any():
        raise ScdealError(f"{int(labels.isna().sum())} cells have no predicted label in {key!r}")
    return labels.to_numpy() == 1


def critical_genes(attr: AnnData, config: CriticalGeneConfig | None = None, *,
                   label_key: str = "sens_label", key_added: str = "critical_genes"
                   ) -> CriticalGenes:
    """Sensitive and resistant critical genes from an attribution AnnData.

    Parameters
    ----------
    attr
        Output of :func:`scdeal.tl.integrated_gradients` (layers ``ig_sensitive``,
        ``ig_resistant`` and ``input``; ``obs[label_key]`` the predicted label, 1 = sensitive).
    config
        Thresholds (:class:`CriticalGeneConfig`).
    label_key
        Predicted-label column.
    key_added
        uns key of the results in ``attr`` (default ``critical_genes``; the key
        :func:`scdeal.pl.attribution_heatmap` reads).

    Returns
    -------
    CriticalGenes
        ``sensitive`` / ``resistant``: the critical genes with their statistics (definitions in
        the module docstring); ``tests``: every gene's test, effect sizes, the mean
        attributions of both outputs in S and R, and ``input_diff`` (mean standardised input,
        S minus R).

        Written into ``attr``: ``attr.uns[key_added]``, a dict of the tables ``sensitive``,
        ``resistant`` and ``tests`` and of ``params`` (:meth:`CriticalGenes.summary`).

    Examples
    --------
    On the output of :func:`scdeal.tl.integrated_gradients`, or a tiny stand-in: G1 is
    expressed more in, and pushes towards "sensitive", the cells predicted sensitive.

    >>> rng = np.random.default_rng(0)
    >>> label = np.r_[np.ones(20, int), np.zeros(20, int)]
    >>> attr = AnnData(obs=pd.DataFrame({"sens_label": label}, index=[f"c{i}" for i in range(40)]),
    ...                var=pd.DataFrame(index=["G1", "G2", "G3"]))
    >>> attr.layers["ig_sensitive"] = rng.normal(size=(40, 3)) * 0.1
    >>> attr.layers["ig_sensitive"][:, 0] += 0.5 * label
    >>> attr.layers["ig_resistant"] = -attr.layers["ig_sensitive"]
    >>> attr.layers["input"] = rng.normal(size=(40, 3))
    >>> attr.layers["input"][:, 0] += 2 * label
    >>> cg = critical_genes(attr)
    >>> cg.sensitive["gene"].tolist(), cg.resistant["gene"].tolist()
    (['G1'], [])
    >>> attr.uns["critical_genes"]["sensitive"]["gene"].tolist()
    ['G1']
    """
    config = config or CriticalGeneConfig()
    for layer in (SENSITIVE_LAYER, RESISTANT_LAYER, INPUT_LAYER):
        if layer not in attr.layers:
            raise ScdealError(f"the attribution data have no layer {layer!r}; compute them with "
                              "scdeal.tl.integrated_gradients")
    sens = predicted_sensitive(attr.obs, label_key)
    target = attr  # the AnnData the results are written into (attr is subset below)
    inputs = np.asarray(attr.layers[INPUT_LAYER], dtype=np.float64)
    # A gene with the same input in every cell cannot tell cells apart; its attributions
    # ((input - baseline) x gradient) still vary with the gradient, so it is not tested.
    varying = inputs.max(axis=0) > inputs.min(axis=0)
    if not varying.any():
        raise ScdealError("every gene has the same input in all cells; nothing to test")
    attr = attr[:, varying]
    inputs = inputs[:, varying]
    tests = rank_attributions(np.asarray(attr.layers[SENSITIVE_LAYER]), sens, attr.var_names,
                              config.correction)
    tests = tests.rename(columns={"mean_in_group": "mean_attr_sensitive_S",
                                  "mean_in_rest": "mean_attr_sensitive_R",
                                  "n_group": "n_S", "n_rest": "n_R"})
    resistant_attr = np.asarray(attr.layers[RESISTANT_LAYER], dtype=np.float64)
    order = attr.var_names.get_indexer(tests["gene"])
    extra = {"mean_attr_resistant_S": resistant_attr[sens].mean(0),
             "mean_attr_resistant_R": resistant_attr[~sens].mean(0),
             "input_diff": inputs[sens].mean(0) - inputs[~sens].mean(0)}
    for offset, (name, values) in enumerate(extra.items()):
        tests.insert(9 + offset, name, values[order])
    sensitive, resistant = select_critical(tests, config)
    result = CriticalGenes(sensitive, resistant, tests, config,
                           n_constant=int((~varying).sum()))
    target.uns[key_added] = {"sensitive": sensitive, "resistant": resistant, "tests": tests,
                             "params": result.summary()}
    return result
