"""Label-free reliability of a fit: do the ensemble's members agree, and is the bulk model good?

A scDEAL fit has no target labels to check itself against. What it does have is several
independently seeded members. When the bulk signal does not carry over to the cells, each
member's pre-transfer ranking of the cells is near chance, the transfer amplifies whatever
direction each member happened to have, and the members end up ranking the cells in unrelated
or opposite orders; their average then scores anywhere from far below to above chance,
depending on the seed. When the signal carries over, the members rank the cells alike. So the
members' agreement, measured on the cells themselves without labels, tells the two apart
(evidence: ``benchmarks/README.md``, section "Reliability").

The rule (:data:`RULE`): a fit is **reliable** when

- the members agree on how to rank the cells: their mean pairwise Pearson correlation over
  the cells (``member_agreement``) is at least 0.55,
- no two members rank the cells in opposite directions: every pair correlates positively
  (``direction_agreement``, the share of such pairs, is 1), and
- the bulk predictor separates the drug's held-out bulk test lines: the members' mean test
  AUROC (``bulk_test_auroc``) is at least 0.65.

An ensemble whose members point both ways is never called reliable: the development data held
too few such runs flagged by any other rule to show them right (a held-out run of this kind
scored AUROC 0.02 with a high ``member_consensus``, the median correlation of each member with
the others, which stays high when two of five members dissent). The statistics and thresholds
were chosen by ``benchmarks/reliability_rule.py`` on development evidence only, by a criterion
written before the results (benchmarks/README.md, section 12; :class:`ReliabilityRule` holds
them).

With one member agreement cannot be measured: ``reliable`` is ``None`` and ``reason`` says
why (train with ``n_models >= 2`` to get a verdict).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> signal = rng.random(200)
>>> agree = np.stack([signal + 0.05 * rng.random(200) for _ in range(5)])
>>> d = reliability_diagnostics(agree, agree, bulk_test_auroc=[0.8] * 5)
>>> d["reliable"], d["member_agreement"] > 0.9
(True, True)
>>> noise = rng.random((5, 200))
>>> reliability_diagnostics(noise, noise, bulk_test_auroc=[0.8] * 5)["reliable"]
False
>>> reliability_diagnostics(agree[:1], agree[:1], bulk_test_auroc=[0.8])["reliable"] is None
True
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

AGREEMENT_STATISTICS = ("member_agreement", "member_consensus")


@dataclass(frozen=True)
class ReliabilityRule:
    """The reliability verdict: which agreement statistic, and the thresholds (fixed from
    development evidence only)."""

    # Chosen by benchmarks/reliability_rule.py on development evidence only (simulated GDSC
    # drugs and the shared cases; criterion written before the results in
    # benchmarks/README.md, section 12: reliability_rule_direction.md). Before the direction
    # split was available: member_consensus >= 0.7 and bulk_test_auroc >= 0.6.
    statistic: str = "member_agreement"
    min_agreement: float = 0.55
    min_bulk_test_auroc: float = 0.65
    # The share of member pairs whose predictions correlate positively; 0: not used.
    min_direction_agreement: float = 1.0

    def __post_init__(self) -> None:
        if self.statistic not in AGREEMENT_STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(AGREEMENT_STATISTICS)}")

    def describe(self) -> str:
        direction = (f" and direction_agreement >= {self.min_direction_agreement}"
                     if self.min_direction_agreement > 0 else "")
        return (f"reliable when {self.statistic} >= {self.min_agreement} and "
                f"bulk_test_auroc >= {self.min_bulk_test_auroc}{direction}; null with one "
                "member")

    def flags(self, agreement, bulk_test_auroc, direction_agreement):
        """The verdict of the rule on arrays (or numbers) of the three statistics."""
        return ((np.asarray(agreement) >= self.min_agreement)
                & (np.asarray(bulk_test_auroc) >= self.min_bulk_test_auroc)
                & (np.asarray(direction_agreement) >= self.min_direction_agreement))


RULE = ReliabilityRule()

UNRELIABLE_ADVICE = (
    "the ensemble's members disagree on which cells are sensitive or the bulk model is weak, "
    "so the direction of these predictions cannot be trusted; check them against cells of "
    "known response, try more members (n_models) or another seed, and do not base "
    "downstream analyses on them")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either vector is constant (no ranking to agree on)."""
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-12 else 0.0


def _pairwise(probs: np.ndarray) -> list[float]:
    return [_pearson(probs[i], probs[j])
            for i, j in itertools.combinations(range(len(probs)), 2)]


def reliability_diagnostics(
    post: np.ndarray, pre: np.ndarray, bulk_test_auroc, *, rule: ReliabilityRule = RULE,
) -> dict[str, Any]:
    """Diagnostics of one fit from its members' predictions on the target cells.

    Parameters
    ----------
    post, pre
        Members x cells P(sensitive) after and before the transfer step.
    bulk_test_auroc
        Each member's AUROC on its bulk test lines (NaN where undefined).
    rule
        The thresholds of the verdict.

    Returns
    -------
    dict with ``n_members``; ``member_agreement`` (mean pairwise Pearson correlation of the
    members' P(sensitive) over the cells, ``None`` with one member) and
    ``member_agreement_pretransfer`` (the same before transfer); ``direction_agreement``
    (fraction of member pairs whose correlation is positive); ``member_consensus`` (median over
    members of the correlation between a member and the mean of the others: high when most
    members agree, even if one dissents); ``transfer_consistency`` (mean
    over members of the correlation between a member's predictions after and before transfer:
    negative means the transfer turned a member's direction round) and
    ``ensemble_transfer_consistency`` (the same for the averaged predictions);
    ``bulk_test_auroc`` (mean) and ``bulk_test_auroc_min``; ``mean_cell_sd`` (mean over cells of
    the members' standard deviation) and ``fraction_uncertain`` (see :func:`uncertain_cells`);
    ``reliable`` (bool, or ``None`` with one member), ``reason`` and ``rule``.
    """
    post = np.asarray(post, dtype=np.float64)
    pre = np.asarray(pre, dtype=np.float64)
    n = len(post)
    auroc = np.asarray(bulk_test_auroc, dtype=np.float64)
    bulk_mean = float(np.nanmean(auroc)) if np.isfinite(auroc).any() else float("nan")
    mean = post.mean(axis=0)
    out: dict[str, Any] = {
        "n_members": int(n),
        "member_agreement": None,
        "member_agreement_pretransfer": None,
        "direction_agreement": None,
        "member_consensus": None,
        "transfer_consistency": float(np.mean([_pearson(a, b) for a, b in zip(post, pre,
                                                                              strict=True)])),
        "ensemble_transfer_consistency": _pearson(mean, pre.mean(axis=0)),
        "bulk_test_auroc": bulk_mean,
        "bulk_test_auroc_min": float(np.nanmin(auroc)) if np.isfinite(auroc).any() else None,
        "mean_cell_sd": float(post.std(axis=0).mean()) if n > 1 else None,
        "fraction_uncertain": (float(uncertain_cells(mean, post.std(axis=0)).mean())
                               if n > 1 else None),
        "rule": rule.describe(),
    }
    if n > 1:
        pairs = _pairwise(post)
        out["member_agreement"] = float(np.mean(pairs))
        out["member_agreement_pretransfer"] = float(np.mean(_pairwise(pre)))
        out["member_consensus"] = float(np.median([
            _pearson(post[i], np.delete(post, i, axis=0).mean(axis=0)) for i in range(n)]))
        out["direction_agreement"] = float(np.mean(np.asarray(pairs) > 0))
    reasons = []
    if n < 2:
        out["reliable"] = None
        out["reason"] = ("one member: agreement cannot be measured, so no verdict; train with "
                         f"n_models >= 2 (bulk test AUROC {bulk_mean:.3f})")
        return out
    agreement = out[rule.statistic]
    if agreement < rule.min_agreement:
        reasons.append(f"members disagree ({rule.statistic} {agreement:.2f} < "
                       f"{rule.min_agreement})")
    if not bulk_mean >= rule.min_bulk_test_auroc:
        reasons.append(f"weak bulk model (test AUROC {bulk_mean:.2f} < "
                       f"{rule.min_bulk_test_auroc})")
    if out["direction_agreement"] < rule.min_direction_agreement:
        reasons.append(f"members point both ways (direction_agreement "
                       f"{out['direction_agreement']:.2f} < {rule.min_direction_agreement})")
    out["reliable"] = not reasons
    out["reason"] = "; ".join(reasons) if reasons else (
        f"members agree ({rule.statistic} {agreement:.2f}) and the bulk model separates its "
        f"test lines (AUROC {bulk_mean:.2f})")
    return out


def uncertain_cells(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Cells whose call is uncertain: the members' spread reaches across the 0.5 threshold
    (``|mean - 0.5| < sd``). NaN inputs give False.

    Examples
    --------
    >>> uncertain_cells(np.array([0.9, 0.55, 0.3]), np.array([0.05, 0.2, 0.1])).tolist()
    [False, True, False]
    """
    with np.errstate(invalid="ignore"):
        return np.abs(np.asarray(mean) - 0.5) < np.asarray(sd)

