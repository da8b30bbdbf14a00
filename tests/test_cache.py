"""The cache of drug-independent training: storage (atomic, verified, concurrent writers) and
its use by fits (reuse across drugs gives the same networks as training afresh)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from scdeal.errors import ScdealError
from scdeal.model import ScDEAL, ScDealConfig
from scdeal.model.cache import ModelCache, cache_key, fingerprint

TINY = dict(hidden_dims=(32,), latent_dim=8, predictor_dims=(8,), pretrain_epochs=3,
            predictor_epochs=3, transfer_epochs=3, patience=2, batch_size=64, n_models=2)


# ------------------------------------------------------------------------------------------
# storage


def test_keys_change_with_any_part():
    a = np.arange(6, dtype=np.float32)
    assert fingerprint(a, ["g1", "g2"]) == fingerprint(a.copy(), ["g1", "g2"])
    assert fingerprint(a, ["g1", "g2"]) != fingerprint(a, ["g2", "g1"])
    assert fingerprint(a) != fingerprint(a.astype(np.float64))
    assert fingerprint(a) != fingerprint(a.reshape(2, 3))
    assert cache_key({"seed": 0, "x": [1]}) == cache_key({"x": [1], "seed": 0})
    assert cache_key({"seed": 0}) != cache_key({"seed": 1})


@pytest.mark.parametrize("damage", ["tensors", "meta", "truncate"])
def test_a_corrupt_entry_is_removed_and_rebuilt(tmp_path, damage, caplog):
    store = ModelCache(tmp_path)
    key = cache_key({"k": 1})
    store.put("stage", key, {"w": torch.arange(1000.0)}, {"note": "x"})
    entry = store.root / "stage" / key
    if damage == "tensors":
        data = bytearray((entry / "tensors.safetensors").read_bytes())
        data[-8] ^= 0xFF  # flip bits inside the stored values
        (entry / "tensors.safetensors").write_bytes(bytes(data))
    elif damage == "meta":
        (entry / "meta.json").write_text("{not json")
    else:
        (entry / "tensors.safetensors").write_bytes(b"")
    assert store.get("stage", key) is None
    assert "unreadable" in caplog.text
    assert not entry.exists()
    store.put("stage", key, {"w": torch.arange(1000.0)}, {"note": "x"})
    tensors, meta = store.get("stage", key)
    assert torch.equal(tensors["w"], torch.arange(1000.0)) and meta["note"] == "x"


def _writer(root: str, key: str, value: float, barrier) -> None:
    store = ModelCache(root)
    barrier.wait()
    for _ in range(20):
        store.put("stage", key, {"w": torch.full((20000,), value)}, {"value": value})
        got = store.get("stage", key)
        assert got is not None  # a reader never sees half an entry


def test_two_processes_filling_the_same_entry(tmp_path):
    key = cache_key({"k": "race"})
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), key, v, barrier))
             for v in (1.0, 2.0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    store = ModelCache(tmp_path)
    tensors, meta = store.get("stage", key)
    # One writer's complete entry, never a mix of the two.
    assert torch.all(tensors["w"] == meta["value"])
    assert [p.name for p in (store.root / "stage").iterdir()] == [key]  # no leftovers
    assert store.info()["entries"] == 1


_FIRST_RUN = """
import json, os, sys
import numpy as np
from scdeal.data import load_gdsc
from scdeal.data.simulate import demo_target
from scdeal.model import ScDEAL
open(sys.argv[1], "w").close()  # ready
while not os.path.exists(sys.argv[2]):  # start together
    pass
bulk = load_gdsc()
cells, _ = demo_target(bulk, "Gefitinib", lines_per_class=3, cells_per_line=5, n_genes=300)
model = ScDEAL(**json.loads(sys.argv[3])).fit(cells, "Gefitinib", gene_ids="symbol")
print(json.dumps({"lines": bulk.expression.shape[0], "cache": model.training["cache"],
                  "p": model.predict_proba(cells).round(6).tolist()}))
"""


def test_two_first_runs_at_once_on_an_empty_cache(gdsc_data_dir, bulk, tmp_path, monkeypatch):
    # Both succeed and leave one valid copy of everything they cache: GDSC's tables converted
    # from the wheel, and the pre-trained stages.
    cache = tmp_path / "cache"
    env = {**os.environ, "SCDEAL_DATA_DIR": gdsc_data_dir, "SCDEAL_CACHE_DIR": str(cache)}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _FIRST_RUN, str(tmp_path / f"ready{i}"),
                               str(go), json.dumps({**TINY, "member_threads": 1})],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    runs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert runs[0]["lines"] == runs[1]["lines"] > 900 and runs[0]["p"] == runs[1]["p"]
    # One copy of each file and entry, nothing temporary left, and all of it readable again.
    leftovers = [p.name for p in cache.rglob("*") if p.name.startswith(".")
                 or ".tmp" in p.name or p.name.endswith(".trash")]
    assert leftovers == []
    store = ModelCache(cache)
    assert store.info()["stages"] == {"bulk_extractor": 1, "target_extractor": 1}
    assert all(store.get(e["stage"], e["key"]) is not None for e in store.entries())
    from scdeal.data import load_gdsc

    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(cache))
    again = load_gdsc()  # from the converted tables the two runs left
    pd.testing.assert_frame_equal(again.expression, bulk.expression)
    pd.testing.assert_frame_equal(again.response, bulk.response)


def test_an_unwritable_cache_is_not_fatal(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = ModelCache(blocker)
    store.put("stage", "k" * 64, {"w": torch.ones(1)}, {})
    assert "could not store" in caplog.text
    assert store.get("stage", "k" * 64) is None


def test_clear_and_info(tmp_path):
    store = ModelCache(tmp_path)
    for i in range(3):
        store.put("a" if i else "b", cache_key({"i": i}), {"w": torch.ones(4)}, {})
    info = store.info()
    assert info["entries"] == 3 and info["stages"] == {"a": 2, "b": 1} and info["bytes"] > 0
    assert store.clear() == 3
    assert store.info()["entries"] == 0


def test_every_configuration_field_is_classified_for_the_cache_keys():
    # A field added to ScDealConfig must be put in FIELD_ROLES: does it enter the bulk
    # extractor's key, the cells' stage's, or neither (and why)? Unclassified, it enters every
    # key (safe, but it may keep a screen's workers from reusing the pre-training).
    from scdeal.model.cache_keys import FIELD_ROLES, unclassified_fields

    assert unclassified_fields(ScDealConfig) == []
    known = {f for f in ScDealConfig.__dataclass_fields__}
    assert set(FIELD_ROLES) <= known, f"stale entries: {sorted(set(FIELD_ROLES) - known)}"
    assert {role for role, _ in FIELD_ROLES.values()} <= {"bulk", "cells", "drug", "run"}
    assert all(reason for _, reason in FIELD_ROLES.values())


def test_keys_hold_every_field_the_code_and_the_libraries(monkeypatch):
    import dataclasses

    from scdeal.model import cache_keys as _keys

    base = ScDealConfig()
    bulk, cells = (_keys.stage_key(s, base) for s in ("bulk_extractor", "target_extractor"))
    # A field the table does not classify enters every key.
    monkeypatch.delitem(_keys.FIELD_ROLES, "transfer_epochs")
    assert _keys.stage_key("bulk_extractor", base.replace(transfer_epochs=7)) != bulk
    monkeypatch.undo()
    checked = 0
    for name, (role, _) in _keys.FIELD_ROLES.items():
        value = getattr(base, name)
        changed = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v / 2 + 0.01,
                   tuple: lambda v: (*v, 3)}.get(type(value))
        if name == "split":
            changed = lambda v: (0.5, 0.3, 0.2)  # noqa: E731
        if changed is None:  # the Literal fields and preprocess: covered by the others
            continue
        try:
            other = dataclasses.replace(base, **{name: changed(value)})
        except Exception:  # noqa: BLE001 - an invalid value for this field: not this check
            continue
        in_bulk = _keys.stage_key("bulk_extractor", other) != bulk
        in_cells = _keys.stage_key("target_extractor", other) != cells
        assert (in_bulk, in_cells) == {"bulk": (True, True), "cells": (False, True)}.get(
            role, (False, False)), name
        checked += 1
    assert checked >= 30  # the numeric and boolean fields; the Literal ones are not varied
    # The training code and the libraries that shape the clusters are parts of the keys.
    monkeypatch.setattr(_keys, "code_fingerprint", lambda: "other code")
    assert _keys.stage_key("bulk_extractor", base) != bulk
    monkeypatch.undo()
    versions = dict(_keys.library_versions("target_extractor"))
    assert {"scanpy", "igraph", "leidenalg"} <= set(versions)
    monkeypatch.setattr(_keys, "library_versions", lambda stage: {**versions, "scanpy": "0"})
    assert _keys.stage_key("target_extractor", base) != cells


def test_the_least_recently_used_entries_go_first_beyond_the_limit(tmp_path, monkeypatch):
    store = ModelCache(tmp_path, max_bytes=0)
    keys = [cache_key({"i": i}) for i in range(4)]
    for i, key in enumerate(keys[:3]):
        store.put("s", key, {"w": torch.zeros(25_000)}, {})  # 100 kB each
        os.utime(store.root / "s" / key / "meta.json", (1000 + i, 1000 + i))
    assert store.get("s", keys[0]) is not None  # the oldest, now the most recently used
    size = store.info()["bytes"]
    limited = ModelCache(tmp_path, max_bytes=size)  # room for three entries, not four
    limited.put("s", keys[3], {"w": torch.zeros(25_000)}, {})
    assert [limited.get("s", k) is not None for k in keys] == [True, False, True, True]
    monkeypatch.setenv("SCDEAL_CACHE_MAX_SIZE", "1kB")
    assert ModelCache(tmp_path).max_bytes == 1000
    monkeypatch.setenv("SCDEAL_CACHE_MAX_SIZE", "lots")
    with pytest.raises(ScdealError, match="is not a size"):
        ModelCache(tmp_path)


def test_a_passing_read_error_keeps_the_entry(tmp_path, monkeypatch, caplog):
    from scdeal.model import cache as cache_module

    store = ModelCache(tmp_path)
    key = cache_key({"k": "io"})
    store.put("s", key, {"w": torch.ones(3)}, {})

    def flaky(path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cache_module, "sha256_of", flaky)
    assert store.get("s", key) is None and "could not read" in caplog.text
    monkeypatch.undo()
    assert (store.root / "s" / key).is_dir() and store.get("s", key) is not None


# ------------------------------------------------------------------------------------------
# fits


def _fit(cells, bulk, drug, cache, **changes):
    model = ScDEAL(ScDealConfig(**{**TINY, **changes}), cache=cache)
    model.fit(cells.copy(), drug, bulk=bulk, gene_ids="entrez")
    return model


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_another_drug_reuses_the_pretraining_and_gives_the_same_networks(
        bulk, target_cells, tmp_path):
    cold = _fit(target_cells, bulk, "Gefitinib", tmp_path)
    assert cold.training["cache"] == {"bulk_extractor": "miss", "target_extractor": "miss"}
    other = _fit(target_cells, bulk, "Erlotinib", tmp_path)
    assert other.training["cache"] == {"bulk_extractor": "hit", "target_extractor": "hit"}
    assert other.drug == "Erlotinib"
    # The same drug again from the cache, and without any cache: identical to the cold fit.
    warm = _fit(target_cells, bulk, "Gefitinib", tmp_path)
    off = _fit(target_cells, bulk, "Gefitinib", False)
    assert off.training["cache"] == {"bulk_extractor": "off", "target_extractor": "off"}
    for model in (warm, off):
        for a, b in ((model.target_net, cold.target_net), (model.bulk_net, cold.bulk_net)):
            sa, sb = _state(a), _state(b)
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # M_b's pre-training happens once per fit, not once per member; P and M_s per member.
    stages = [(h["stage"], h["model"]) for h in cold.training["history"]]
    assert stages.count(("bulk_extractor", "shared")) == 1
    assert {("bulk_predictor", 0), ("bulk_predictor", 1), ("target_extractor", 1)} <= set(stages)


def test_what_the_key_depends_on(bulk, target_cells, tmp_path):
    _fit(target_cells, bulk, "Gefitinib", tmp_path)
    # Another seed or extractor setting: new entries; predictor settings: the same ones.
    assert _fit(target_cells, bulk, "Gefitinib", tmp_path, seed=1).training["cache"] == {
        "bulk_extractor": "miss", "target_extractor": "miss"}
    assert _fit(target_cells, bulk, "Gefitinib", tmp_path,
                predictor_dims=(16,)).training["cache"]["bulk_extractor"] == "hit"
    assert _fit(target_cells, bulk, "Gefitinib", tmp_path,
                latent_dim=4).training["cache"]["bulk_extractor"] == "miss"
    # Fewer cells: the bulk extractor is reused, the cell stages are not.
    fewer = _fit(target_cells[:50], bulk, "Gefitinib", tmp_path)
    assert fewer.training["cache"] == {"bulk_extractor": "hit", "target_extractor": "miss"}
    # Without the cluster term no shared cell extractor is needed, so none is trained.
    plain = _fit(target_cells, bulk, "Gefitinib", tmp_path, cluster_weight=0.0)
    assert plain.training["cache"] == {"bulk_extractor": "hit", "target_extractor": "unused"}
    # Other bulk lines (e.g. held out by the demo): a new bulk extractor.
    held = _fit(target_cells, bulk.without_lines(list(bulk.expression.index[:5])),
                "Gefitinib", tmp_path)
    assert held.training["cache"]["bulk_extractor"] == "miss"


def test_a_fit_survives_a_corrupt_entry(bulk, target_cells, tmp_path):
    first = _fit(target_cells, bulk, "Gefitinib", tmp_path)
    for f in (tmp_path / "models").glob("*/*/tensors.safetensors"):
        f.write_bytes(f.read_bytes()[:100])
    again = _fit(target_cells, bulk, "Gefitinib", tmp_path)
    assert again.training["cache"] == {"bulk_extractor": "miss", "target_extractor": "miss"}
    X, _ = first.target_matrix(target_cells)
    np.testing.assert_array_equal(first.target_net.predict_proba(torch.as_tensor(X)).numpy(),
                                  again.target_net.predict_proba(torch.as_tensor(X)).numpy())


def test_cli_cache_info_clear_and_no_cache(bulk, gdsc_data_dir, target_file, tmp_path, capsys,
                                           monkeypatch):
    from scdeal.cli import main

    monkeypatch.setenv("SCDEAL_DATA_DIR", gdsc_data_dir)
    monkeypatch.setenv("SCDEAL_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "hidden_dims": [32], "predictor_dims": [8]}))
    target = target_file
    args = ["--quiet", "run", "--drug", "Gefitinib", "--target", str(target), "--gene-ids",
            "entrez", "--config", str(config)]
    assert main([*args, "--no-cache", "--out", str(tmp_path / "a")]) == 0
    assert ModelCache(tmp_path / "cache").info()["entries"] == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["training"]["cache"] == {"bulk_extractor": "miss", "target_extractor": "miss"}
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and "bulk_extractor: 1" in out and "limit 2000 MB" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert ModelCache(tmp_path / "cache").info()["entries"] == 0


def test_umap_kernels_are_compiled_once_per_installation(tmp_path):
    # A fresh process builds a neighbour graph; numba must leave the compiled UMAP kernels
    # in its cache folder for the next process.
    code = ("import numpy as np, anndata as ad\n"
            "from scdeal.data.neighbors import neighbors\n"
            "a = ad.AnnData(np.zeros((30, 1), np.float32))\n"
            "a.obsm['e'] = np.random.default_rng(0).normal(size=(30, 3))\n"
            "neighbors(a, use_rep='e', n_neighbors=5)\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    names = {p.name.split(".")[1].split("-")[0] for p in tmp_path.rglob("umap_.*.nbi")}
    assert {"smooth_knn_dist", "compute_membership_strengths"} <= names


def test_the_shared_cells_stage_trained_beside_the_members_changes_nothing(
        bulk, target_cells, monkeypatch):
    # With member threads the shared M_s (for the clusters) trains in the members' pool
    # while the first members start; it draws from torch's global generator, which the members
    # leave alone, so every number is what the sequential fit gives.
    import threading

    import scdeal.model._ensemble as model_module
    import scdeal.model._fitting as fitting

    monkeypatch.setattr(model_module, "usable_cores", lambda: 2)  # also on a 1-core runner
    where = []
    leiden = fitting.leiden_clusters

    def spy(*args, **kwargs):
        where.append(threading.current_thread().name)
        return leiden(*args, **kwargs)

    monkeypatch.setattr(fitting, "leiden_clusters", spy)
    fits = [_fit(target_cells, bulk, "Gefitinib", False, member_threads=threads,
                 n_models=3, pretrain_epochs=6, patience=3) for threads in (1, 2)]
    assert where[0] == threading.current_thread().name and where[1].startswith("scdeal")
    X, _ = fits[0].target_matrix(target_cells)
    for one, two in zip(fits[0].members, fits[1].members, strict=True):
        for net in ("target_net", "pretransfer_net", "bulk_net"):
            np.testing.assert_array_equal(
                getattr(one, net).predict_proba(torch.as_tensor(X)).numpy(),
                getattr(two, net).predict_proba(torch.as_tensor(X)).numpy())
    same = [json.dumps(f.training["history"]) for f in fits]  # NaN-safe comparison
    assert same[0] == same[1]


def test_members_in_threads_give_the_same_numbers(bulk, target_cells, tmp_path):
    # Each member draws from its own generators, so training them side by side changes
    # nothing; a second fit with the same seed is identical too.
    one = _fit(target_cells, bulk, "Gefitinib", tmp_path, member_threads=1, n_models=3)
    two = _fit(target_cells, bulk, "Gefitinib", tmp_path, member_threads=2, n_models=3)
    again = _fit(target_cells, bulk, "Gefitinib", tmp_path, member_threads=2, n_models=3)
    X, _ = one.target_matrix(target_cells)
    p = [m.target_net.predict_proba(torch.as_tensor(X)).numpy() for m in (one, two, again)]
    np.testing.assert_array_equal(p[0], p[1])
    np.testing.assert_array_equal(p[1], p[2])
    # ... and the members still differ from each other (own splits, initialisation, noise).
    members = [m.target_net.predict_proba(torch.as_tensor(X)).numpy() for m in two.members]
    assert not np.allclose(members[0], members[1])
