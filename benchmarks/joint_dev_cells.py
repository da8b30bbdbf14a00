"""The joint transfer "cells" against per-drug and against the joint transfer "shared" on the
development benchmark (benchmarks/README.md section 14; not a test). The "cells" rows come
from

    SCDEAL_DATA_DIR=../shared/data/pypi python benchmarks/dev_drugs.py --out OUT/joint_cells \\
        --drugs 30 --seeds 2 --joint --set 'joint_transfer="cells"' --jobs 2

copied to joint_dev_cells/rows_joint_cells.csv; the per-drug and "shared" rows are section
11's (joint_dev/). Also: the joint model's pre-transfer AUROC against per-drug, from the same
rows. Writes joint_dev_cells/summary.json.
"""

from __future__ import annotations

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
    cells = rows(HERE / "joint_dev_cells" / "rows_joint_cells.csv")
    per_drug = rows(HERE / "joint_dev" / "rows_per_drug.csv")
    shared = rows(HERE / "joint_dev" / "rows_joint_linear.csv")
    pre = shared.assign(auroc=shared["auroc_pretransfer"])
    summary = {"cells_vs_per_drug": paired(cells, per_drug),
               "cells_vs_shared": paired(cells, shared),
               "shared_vs_per_drug": paired(shared, per_drug),
               "shared_pretransfer_vs_per_drug": paired(pre, per_drug),
               "cells_flags": flags(cells)}
    summary["criterion_met"] = summary["cells_vs_per_drug"]["mean_difference"] >= -0.01
    (HERE / "joint_dev_cells" / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
