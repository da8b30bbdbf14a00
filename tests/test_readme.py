"""The README's Python example runs as written, on the file it names."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_the_readme_has_one_python_example_naming_the_demo_output():
    from scdeal.cli import build_parser

    (block,) = readme_python_blocks()
    demo = build_parser().parse_args(["demo"])
    # `scdeal demo` (the README's set-up) writes predictions.h5ad into --out (write_run).
    assert f'"{demo.out}/predictions.h5ad"' in block


@pytest.mark.slow
def test_readme_python_example_runs_verbatim(bulk, gdsc_data_dir, tmp_path, monkeypatch):
    from scdeal.data.simulate import demo_target

    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    monkeypatch.chdir(tmp_path)
    # What `scdeal demo` leaves in scdeal_demo/predictions.h5ad: its simulated cells (fewer
    # here, to keep the test short), with the demo's predictions in obs.
    cells, _ = demo_target(bulk, "Gefitinib", lines_per_class=4, cells_per_line=10)
    cells.obs["sens_preds"] = 0.5
    (tmp_path / "scdeal_demo").mkdir()
    cells.write_h5ad(tmp_path / "scdeal_demo" / "predictions.h5ad")

    (block,) = readme_python_blocks()
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), namespace)

    adata, model = namespace["adata"], namespace["model"]
    probs = adata.obs["sens_preds"].to_numpy(dtype=float)
    assert adata.n_obs == 80 and np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()
    assert not np.allclose(probs, 0.5)  # the demo's placeholder was overwritten
    assert 0 <= adata.uns["scdeal"]["metrics"]["auroc"] <= 1 and "AUROC" in out.getvalue()
    assert model.is_fitted and model.config.n_models == 2 and model.drug == "Gefitinib"
    assert (tmp_path / "gefitinib_model" / "model.safetensors").is_file()
    assert namespace["fig"].axes and (tmp_path / "runs" / "gefitinib" / "run.json").is_file()
    assert namespace["result"].info["metrics"]["n_cells"] == 80
