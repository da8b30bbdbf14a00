"""Evidence for the reliability rule: how the label-free verdict relates to AUROC.

Reads the members' predictions stored by ``benchmarks/dev_drugs.py`` (one or more output
folders: the simulated-drug development benchmark and the real shared cases) and writes
``OUT.md`` / ``OUT.csv``:

1. every fit as run (5 members), with the verdict of the rule in ``scdeal.model.reliability``;
2. more ensembles from the same single models: all members of a case's replicates pooled
   (independently seeded single models) and redrawn as ``--draws`` random 5-member
   ensembles per case. These show how the rule behaves on ensembles whose members flip,
   including on the real cases, where the fits as run rarely do;
3. a grid of thresholds (member agreement x bulk test AUROC), per development source: share
   flagged reliable, AUROC of the reliable fits (mean, 5th percentile, min), the share of
   reliable fits below 0.6 and the share of fits below 0.6 that are flagged. The thresholds
   are chosen on all development sources (the simulated drugs and the shared real cases, fits
   as run and redrawn) by a criterion fixed before the full results were in: in EVERY source
   at most 5% of the fits flagged reliable score AUROC < 0.6; among the pairs that meet it,
   the largest mean (over sources) share flagged reliable; ties go to the lower thresholds.

    python benchmarks/reliability_rule.py --dev benchmarks/dev_drugs benchmarks/dev_shared \
        --out benchmarks/reliability_rule
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from scdeal.model.reliability import (
    AGREEMENT_STATISTICS,
    RULE,
    ReliabilityRule,
    reliability_diagnostics,
)

AGREEMENT_GRID = tuple(round(0.05 * i, 2) for i in range(15))  # 0 .. 0.7
BULK_GRID = (0.5, 0.55, 0.6, 0.65, 0.7)
DIRECTION_GRID = (0.0, 0.6, 0.7, 0.8, 0.9, 1.0)  # 0: not used
MIN_SPLIT_EVIDENCE = 10  # split ensembles a rule must flag, pooled, to be allowed to flag any
MAX_BAD_AMONG_RELIABLE = 0.05
BAD_AUROC = 0.6


def read_fits(folder: Path) -> list[dict]:
    fits = []
    for path in sorted((folder / "fits").glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            fits.append({"unit": meta["drug"], "seed": meta["seed"], "post": npz["post"],
                         "pre": npz["pre"], "y": npz["y"],
                         "simulated": "lines_per_class" in meta,
                         "bulk": [m["auroc"] for m in meta["bulk_test_metrics_per_model"]]})
    return fits


def ensemble_row(source: str, kind: str, unit: str, post, pre, y, bulk) -> dict:
    d = reliability_diagnostics(post, pre, bulk)
    members = [roc_auc_score(y, p) for p in post]
    return {"source": source, "kind": kind, "unit": unit, "n_members": len(post),
            "auroc": roc_auc_score(y, post.mean(0)),
            "member_auroc_min": min(members), "member_auroc_max": max(members),
            "member_agreement": d["member_agreement"],
            "member_consensus": d["member_consensus"],
            "direction_agreement": d["direction_agreement"],
            "bulk_test_auroc": d["bulk_test_auroc"], "reliable": d["reliable"]}


def same_cells(fits: list[dict]) -> bool:
    """Members of several fits can be pooled only when the fits scored the same cells (the
    real cases; not the simulated drugs, whose held-out lines differ with the seed)."""
    return (not any(f["simulated"] for f in fits)
            and all(np.array_equal(f["y"], fits[0]["y"]) for f in fits))


def rows_for(folder: Path, source: str, draws: int, size: int, seed: int) -> list[dict]:
    fits = read_fits(folder)
    rows = [ensemble_row(source, "as run", f["unit"], f["post"], f["pre"], f["y"], f["bulk"])
            for f in fits]
    rng = np.random.default_rng(seed)
    for unit in sorted({f["unit"] for f in fits}):
        mine = [f for f in fits if f["unit"] == unit]
        if not same_cells(mine):
            continue
        post = np.concatenate([f["post"] for f in mine])
        pre = np.concatenate([f["pre"] for f in mine])
        bulk = np.concatenate([f["bulk"] for f in mine])
        if len(post) <= size:
            continue
        for _ in range(draws):
            pick = np.sort(rng.choice(len(post), size, replace=False))
            rows.append(ensemble_row(source, "redrawn", unit, post[pick], pre[pick], mine[0]["y"],
                                     bulk[pick]))
    return rows


def grid(table: pd.DataFrame) -> pd.DataFrame:
    """Every threshold triple on every source of ``table``."""
    out = []
    for source, t in table.groupby("source", sort=True):
        bad = t["auroc"] < BAD_AUROC
        split = t["direction_agreement"] < 1.0
        for stat, a, b, c in itertools.product(AGREEMENT_STATISTICS, AGREEMENT_GRID, BULK_GRID,
                                               DIRECTION_GRID):
            flag = ReliabilityRule(stat, a, b, c).flags(t[stat], t["bulk_test_auroc"],
                                                        t["direction_agreement"])
            good = t.loc[flag, "auroc"]
            out.append({
                "source": source, "statistic": stat, "min_agreement": a,
                "min_bulk_test_auroc": b, "min_direction_agreement": c,
                "split_flagged": int((flag & split).sum()),
                "split_flagged_bad": int((flag & split & bad).sum()),
                "share_reliable": flag.mean(),
                "auroc_reliable_mean": good.mean(),
                "auroc_reliable_p5": good.quantile(0.05) if len(good) else np.nan,
                "auroc_reliable_min": good.min(),
                "reliable_below_0.6": (good < BAD_AUROC).mean() if len(good) else 0.0,
                "bad_flagged": (~flag[bad]).mean() if bad.any() else np.nan,
                "auroc_unreliable_mean": t.loc[~flag, "auroc"].mean()})
    return pd.DataFrame(out)


KEYS = ["statistic", "min_agreement", "min_bulk_test_auroc", "min_direction_agreement"]


def choose(g: pd.DataFrame) -> pd.DataFrame:
    """Per threshold triple: the worst source's share of reliable fits below 0.6, the mean
    share reliable over sources and the split ensembles it flags (pooled), ranked by the
    criterion of benchmarks/README.md section 12 (the chosen rule first)."""
    per = (g.groupby(KEYS)
           .agg(worst_reliable_below_06=("reliable_below_0.6", "max"),
                mean_share_reliable=("share_reliable", "mean"),
                split_flagged=("split_flagged", "sum"),
                split_flagged_bad=("split_flagged_bad", "sum"))
           .reset_index())
    evidence = ((per.split_flagged >= MIN_SPLIT_EVIDENCE)
                & (per.split_flagged_bad <= MAX_BAD_AMONG_RELIABLE * per.split_flagged))
    per["meets"] = ((per["worst_reliable_below_06"] <= MAX_BAD_AMONG_RELIABLE)
                    & ((per.min_direction_agreement >= 1.0) | evidence))
    return per.sort_values(["meets", "mean_share_reliable", *KEYS],
                           ascending=[False, False, True, True, True, True])


def _flag(table: pd.DataFrame, rule: ReliabilityRule) -> pd.Series:
    return pd.Series(rule.flags(table[rule.statistic], table["bulk_test_auroc"],
                                table["direction_agreement"]), index=table.index)


def describe(table: pd.DataFrame, rule: ReliabilityRule) -> pd.DataFrame:
    """Per source and kind: fits, share reliable, AUROC of reliable / not, bad fits flagged."""
    flag = _flag(table, rule)
    table = table.assign(flag=flag, bad=table["auroc"] < BAD_AUROC)
    out = []
    for (source, kind), t in table.groupby(["source", "kind"], sort=False):
        out.append({"source": source, "ensembles": kind, "n": len(t),
                    "flagged reliable": f"{t.flag.mean():.0%}",
                    "AUROC reliable (mean / min)": (f"{t.auroc[t.flag].mean():.3f} / "
                                                    f"{t.auroc[t.flag].min():.3f}"
                                                    if t.flag.any() else "-"),
                    "AUROC not reliable (mean)": (f"{t.auroc[~t.flag].mean():.3f}"
                                                  if (~t.flag).any() else "-"),
                    "AUROC < 0.6": int(t.bad.sum()),
                    "of those flagged": int((t.bad & ~t.flag).sum()),
                    "reliable with AUROC < 0.6": int((t.bad & t.flag).sum())})
    return pd.DataFrame(out)


def _loo_trimmed(post: np.ndarray) -> np.ndarray:
    """Members whose predictions correlate positively with the mean of the others."""
    keep = []
    for i in range(len(post)):
        others = np.delete(post, i, axis=0).mean(0)
        keep.append(np.corrcoef(post[i], others)[0, 1] > 0)
    keep = np.asarray(keep)
    return post[keep] if keep.any() else post


def posthoc_ideas(folders: list[Path], big: int = 9, draws: int = 20) -> pd.DataFrame:
    """Ensemble variants computed from stored members, no refit (mean AUROC, share < 0.6)."""
    rows = []
    rng = np.random.default_rng(1)
    for folder in folders:
        fits = read_fits(folder)
        for f in fits:
            post, y, bulk = f["post"], f["y"], np.asarray(f["bulk"])
            top = post[np.argsort(-np.nan_to_num(bulk, nan=0))[:3]]
            rows += [{"source": folder.name, "idea": "5 members, mean (default)",
                      "auroc": roc_auc_score(y, post.mean(0))},
                     {"source": folder.name, "idea": "3 of 5 members with best bulk test AUROC",
                      "auroc": roc_auc_score(y, top.mean(0))},
                     {"source": folder.name, "idea": "drop members anti-correlated with the rest",
                      "auroc": roc_auc_score(y, _loo_trimmed(post).mean(0))},
                     {"source": folder.name, "idea": "5 members, median",
                      "auroc": roc_auc_score(y, np.median(post, 0))}]
        for unit in sorted({f["unit"] for f in fits}):
            mine = [f for f in fits if f["unit"] == unit]
            if not same_cells(mine):
                continue
            pool = np.concatenate([f["post"] for f in mine])
            y = mine[0]["y"]
            if len(pool) < 2 * big:
                continue
            for _ in range(draws):
                for size in (5, big):
                    pick = rng.choice(len(pool), size, replace=False)
                    rows.append({"source": folder.name,
                                 "idea": f"{size} members redrawn from the pooled seeds",
                                 "auroc": roc_auc_score(y, pool[pick].mean(0))})
    table = pd.DataFrame(rows)
    return (table.groupby(["source", "idea"], sort=False)["auroc"]
            .agg(n="count", mean="mean", sd="std", below_06=lambda a: (a < BAD_AUROC).mean())
            .reset_index())


def flips(table: pd.DataFrame, rule: ReliabilityRule) -> pd.DataFrame:
    """How often directions flip, and whether the rule flags those fits."""
    flag = _flag(table, rule)
    split = (table["member_auroc_min"] < 0.5) & (table["member_auroc_max"] > 0.5)
    wrong = table["auroc"] < 0.5
    out = []
    for (source, kind), idx in table.groupby(["source", "kind"], sort=False).groups.items():
        f, s, w = flag[idx], split[idx], wrong[idx]
        out.append({"source": source, "ensembles": kind, "n": len(idx),
                    "members point both ways": f"{s.mean():.0%}",
                    "of those flagged": f"{(~f[s]).mean():.0%}" if s.any() else "-",
                    "ensemble points the wrong way (AUROC < 0.5)": f"{w.mean():.0%}",
                    "of those flagged ": f"{(~f[w]).mean():.0%}" if w.any() else "-"})
    return pd.DataFrame(out)


def markdown(df: pd.DataFrame) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, nargs="+", required=True,
                        help="dev_drugs.py output folders the thresholds are chosen on")
    parser.add_argument("--check", type=Path, nargs="*", default=[],
                        help="folders of real cases, used only to check the rule")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = []
    for folder in args.dev:
        rows += rows_for(folder, f"dev:{folder.name}", args.draws, 5, 0)
    for folder in args.check:
        rows += rows_for(folder, f"check:{folder.name}", args.draws, 5, 0)
    table = pd.DataFrame(rows)
    table.to_csv(args.out.with_suffix(".csv"), index=False, float_format="%.4f")
    dev = table[table.source.str.startswith("dev:")]
    g = grid(dev)
    ranked = choose(g)
    best = ranked.iloc[0]
    chosen = ReliabilityRule(str(best.statistic), float(best.min_agreement),
                             float(best.min_bulk_test_auroc),
                             float(best.min_direction_agreement))
    near = g[(g.statistic == chosen.statistic)
             & ((g.min_agreement - chosen.min_agreement).abs() <= 0.1)
             & ((g.min_bulk_test_auroc - chosen.min_bulk_test_auroc).abs() <= 0.05)
             & (g.min_direction_agreement == chosen.min_direction_agreement)]
    before = ReliabilityRule("member_consensus", 0.7, 0.6, 0.0)  # no direction
    lines = ["# Reliability rule: evidence", "",
             f"Command: `python benchmarks/reliability_rule.py --dev "
             f"{' '.join(map(str, args.dev))}"
             + (f" --check {' '.join(map(str, args.check))}" if args.check else "")
             + f" --draws {args.draws} --out {args.out}`", "",
             f"Criterion: (i) in every development source (fits as run and redrawn) at "
             f"most {MAX_BAD_AMONG_RELIABLE:.0%} of the fits flagged reliable score AUROC < "
             f"{BAD_AUROC}; (ii) a rule flags split ensembles (direction_agreement < 1) only "
             f"if, pooled, it flags at least {MIN_SPLIT_EVIDENCE} and at most "
             f"{MAX_BAD_AMONG_RELIABLE:.0%} of them score below {BAD_AUROC}, else it needs "
             "min_direction_agreement 1.0; (iii) among the rules meeting both, the largest "
             "mean share flagged reliable; ties to the lower thresholds.", "",
             f"Chosen: {chosen.describe()}.",
             f"Rule in the package now: {RULE.describe()}.", "",
             "## The package's rule on every source", "",
             markdown(describe(table, RULE)), "",
             f"## The rule before direction was available ({before.describe()})", "",
             markdown(describe(table, before)), "",
             "## Direction flips (members on both sides of AUROC 0.5; ensemble below 0.5)", "",
             markdown(flips(table, RULE)), "",
             "## Rules ranked by the criterion (top 15)", "",
             markdown(ranked.head(15)), "",
             "## Per source, near the chosen rule", "",
             markdown(near), "",
             "## Fewer flips without refitting: ensemble variants from the stored members", "",
             "AUROC over fits (mean, sd, share below 0.6). 'redrawn' rows pool every member "
             "of a case's replicates and draw ensembles of 5 or 9 from them.", "",
             markdown(posthoc_ideas([*args.dev, *args.check])), ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
