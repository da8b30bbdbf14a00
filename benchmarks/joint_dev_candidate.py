"""A joint transfer candidate against per-drug and against the joint transfer "shared" on the
development benchmark (benchmarks/README.md sections 14 and 15; not a test). The candidate's
rows come from

    SCDEAL_DATA_DIR=../shared/data/pypi python benchmarks/dev_drugs.py --out OUT/joint_NAME \\
        --drugs 30 --seeds 2 --joint --set 'joint_transfer="NAME"' --jobs 2

copied to joint_dev_NAME/rows_joint_NAME.csv; the per-drug and "shared" rows are section
11's (joint_dev/). Also: the "shared" joint model's pre-transfer AUROC against per-drug, from
the same rows. Writes joint_dev_NAME/summary.json.

    python benchmarks/joint_dev_candidate.py cells
    python benchmarks/joint_dev_candidate.py summed
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from joint_dev import flags, paired  # same folder

HERE = Path(__file__).resolve().parent


def rows(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    table["drug"] = table["drug"].astype(str)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the joint_transfer value: cells, summed, ...")
    name = parser.parse_args().name
    folder = HERE / f"joint_dev_{name}"
    candidate = rows(folder / f"rows_joint_{name}.csv")
    per_drug = rows(HERE / "joint_dev" / "rows_per_drug.csv")
    shared = rows(HERE / "joint_dev" / "rows_joint_linear.csv")
    pre = shared.assign(auroc=shared["auroc_pretransfer"])
    summary = {f"{name}_vs_per_drug": paired(candidate, per_drug),
               f"{name}_vs_shared": paired(candidate, shared),
               "shared_vs_per_drug": paired(shared, per_drug),
               "shared_pretransfer_vs_per_drug": paired(pre, per_drug),
               f"{name}_flags": flags(candidate)}
    summary["criterion_met"] = summary[f"{name}_vs_per_drug"]["mean_difference"] >= -0.01
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
