"""The model of a joint screen (:class:`scdeal.model.ScreenModel`): drugs grouped by their
GDSC response into blocks, a drug alone fitted as ``scdeal run`` fits it, save and load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from scdeal.errors import ScdealError
from scdeal.model.drug_blocks import drug_blocks, response_table

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=2)
MAPK = ["Dabrafenib", "PLX-4720", "SB590885", "Selumetinib", "Trametinib", "PD0325901",
        "Refametinib", "SCH772984", "Ulixertinib", "VX-11e", "ERK_2440", "ERK_6604"]


# ------------------------------------------------------------------------------ the blocks


def _profiles(seed: int = 0) -> pd.DataFrame:
    """Six drugs on 40 lines: u1-u3 follow one pattern, v1-v3 another, with noise."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=40), rng.normal(size=40)
    columns = {f"u{i}": u + 0.3 * rng.normal(size=40) for i in (1, 2, 3)}
    columns.update({f"v{i}": v + 0.3 * rng.normal(size=40) for i in (1, 2, 3)})
    table = pd.DataFrame(columns, index=[f"line{i}" for i in range(40)])
    table = table[["u1", "v1", "u2", "v2", "u3", "v3"]]  # the groups interleaved
    table.iloc[:5, 0] = np.nan  # a drug not screened on every line
    return table


def test_drugs_of_one_response_pattern_share_a_block():
    blocks = drug_blocks(_profiles(), 2)
    assert blocks == [["u1", "u2", "u3"], ["v1", "v2", "v3"]]  # order of the columns kept
    # The same drugs in another order: the same groups (no seed enters).
    shuffled = _profiles()[["v3", "u2", "v1", "u1", "v2", "u3"]]
    assert sorted(map(sorted, drug_blocks(shuffled, 2))) == sorted(map(sorted, blocks))


def test_the_number_of_blocks_bounds_the_fits():
    table = _profiles()
    assert drug_blocks(table, 1) == [list(table.columns)]
    assert drug_blocks(table, 6) == drug_blocks(table, 50) == [[d] for d in table.columns]
    assert len(drug_blocks(table, 4)) == 4
    with pytest.raises(ScdealError, match="whole number >= 1"):
        drug_blocks(table, 0)
    with pytest.raises(ScdealError, match="named twice"):
        drug_blocks(table[["u1", "u1"]], 1)


def test_gdsc_groups_drugs_of_one_target(bulk):
    table = response_table(bulk, ["Gefitinib", "PLX-4720", "Erlotinib", "Dabrafenib",
                                  "Afatinib", "SB590885"], "GDSC2")
    assert drug_blocks(table, 2) == [["Gefitinib", "Erlotinib", "Afatinib"],
                                     ["PLX-4720", "Dabrafenib", "SB590885"]]
    # Every GDSC2 drug in the default number of blocks: the 12 BRAF/MEK/ERK inhibitors fall
    # in one.
    from scdeal.model import ScDealConfig
    from scdeal.workflows.drug_screen import resolve_drugs

    every = [r["drug"] for r in resolve_drugs(bulk, "all", ScDealConfig(release="GDSC2"))
             if r["status"] == "todo"]
    n = ScDealConfig().joint_blocks
    blocks = drug_blocks(response_table(bulk, every, "GDSC2"), n)
    assert len(blocks) == n and sorted(sum(blocks, [])) == sorted(every)
    assert len({i for i, block in enumerate(blocks) for d in block if d in MAPK}) == 1


def test_the_configuration_refuses_no_blocks():
    from scdeal.model import ScDealConfig

    with pytest.raises(ScdealError, match="joint_blocks"):
        ScDealConfig(joint_blocks=0)


# ------------------------------------------------------------------------------ the model


@pytest.fixture(scope="module")
def screen_model(demo_cells):
    from scdeal.model import ScreenModel

    adata, bulk = demo_cells
    return ScreenModel(TINY, cache=False, joint_blocks=2).fit(
        adata, ["Gefitinib", "PLX4720", "Erlotinib"], bulk=bulk, gene_ids="symbol")


def test_a_drug_alone_in_its_block_gets_the_numbers_of_its_own_run(screen_model, demo_cells):
    from scdeal import ScDEAL
    from scdeal.model import JointScDEAL

    adata, bulk = demo_cells
    assert screen_model.blocks == [["Gefitinib", "Erlotinib"], ["PLX-4720"]]
    assert [type(m) for m in screen_model.models] == [JointScDEAL, ScDEAL]
    own = ScDEAL(TINY, cache=False).fit(adata, "PLX4720", bulk=bulk, gene_ids="symbol")
    alone = own.predict(adata, copy=True).obs["sens_preds"]
    p = screen_model.predict_proba(adata)
    assert list(p.columns) == ["Gefitinib", "Erlotinib", "PLX-4720"]
    np.testing.assert_allclose(p["PLX-4720"].to_numpy(), alone.to_numpy(), atol=1e-6)
    table = screen_model.reliability_table()
    assert table.drug.tolist() == list(p.columns)
    assert table.set_index("drug").loc["PLX-4720", "reliable"] == own.reliability["reliable"]


def test_a_saved_screen_model_predicts_the_same(screen_model, demo_cells, tmp_path):
    from scdeal import ScDEAL
    from scdeal.model import ScreenModel, load_model

    adata = demo_cells[0].copy()
    screen_model.save(tmp_path / "model")
    with pytest.raises(ScdealError, match="exists"):
        screen_model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, ScreenModel) and loaded.blocks == screen_model.blocks
    pd.testing.assert_frame_equal(loaded.predict_proba(adata),
                                  screen_model.predict_proba(adata), atol=1e-6)
    pd.testing.assert_frame_equal(loaded.reliability_table(), screen_model.reliability_table())
    loaded.predict(adata)
    sd = adata.obsm["scdeal_screen_sd"]
    assert list(sd.columns) == loaded.drugs and (sd >= 0).all().all()
    assert json.loads(adata.uns["scdeal_screen_model"]["summary_json"])["n_blocks"] == 2
    with pytest.raises(ScdealError, match="holds a screen model"):
        ScDEAL.load(tmp_path / "model")
    shutil.rmtree(tmp_path / "model" / "blocks" / "001")
    with pytest.raises(ScdealError, match="block 1 \\(PLX-4720\\) has no saved model"):
        load_model(tmp_path / "model")
