"""Shapes3D benchmark: papermill smoke run of nbs/34_shapes3d_benchmark.ipynb (every method x metric, wall times,
values that can fail: the factors' ceiling, a random encoder's MIG, a table cell recomputed from the metric pool, the
logged VAE losses), the reuse of a finished shared/exclusive run, and bad parameters."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import NotebookError, run_notebook
from misrep.benchmark import (BENCHMARK_PROFILES, METHODS, METRIC_NAMES, RENDERED, BenchmarkRunConfig, benchmark_data,
                              shared_exclusive_config)
from misrep.core import resolve_run_config
from misrep.metrics import mig, modularity

NB = "34_shapes3d_benchmark.ipynb"
CODES = [c for cs in METHODS.values() for c in cs]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark") / "run"
    run_notebook(NB, out, profile="smoke", device="cpu")
    return out


def _table(out):
    return pd.read_csv(out / "tables" / "benchmark.csv", index_col=0)


def test_every_method_and_metric(smoke):
    t = _table(smoke)
    ours = t[t.data == RENDERED]
    assert list(ours.index) == CODES                                   # every code of every method, in order
    vals = ours[list(METRIC_NAMES)].to_numpy(dtype=float)
    assert np.isfinite(vals).all() and (vals >= 0).all() and (vals <= 1 + 1e-9).all()
    assert (ours.method.map(lambda m: m in METHODS)).all()
    dims = ours.dims.to_dict()
    assert dims == {"S_X": 8, "E_X": 8, "S_X+E_X": 16, "DIM(L)": 8, "beta-VAE": 10, "VAE": 10, "random encoder": 8, "factors": 6}
    # wall times: the trained methods took time, the untrained ones none; every code was scored; total is the sum
    trained = ["S_X", "E_X", "S_X+E_X", "DIM(L)", "beta-VAE", "VAE"]
    assert (ours.loc[trained, "train_s"] > 0).all() and (ours.loc[["random encoder", "factors"], "train_s"] == 0).all()
    assert ours.loc["E_X", "train_s"] > ours.loc["S_X", "train_s"]      # E_X needs both stages
    assert (ours.metrics_s > 0).all()
    np.testing.assert_allclose(ours.total_s, ours.train_s + ours.encode_s + ours.metrics_s, rtol=1e-3)
    # published rows are marked as real data and name their source
    pub = t[t.data != RENDERED]
    assert (pub.data == "real Shapes3D").all() and pub.source.notna().all()
    assert (smoke / "figures" / "benchmark.png").stat().st_size > 10_000


def test_ceiling_and_floor(smoke):
    ours = _table(smoke)
    f, r = ours.loc["factors"], ours.loc["random encoder"]
    # the factor classes as a code: one dim per factor, nothing else
    assert f.dci_disentanglement > 0.95 and f.dci_completeness > 0.95 and f.dci_informativeness > 0.99
    assert f.factor_vae == 1 and f.beta_vae > 0.99 and f.mig > 0.8   # MIG: plug-in MI bias on 300 rows
    # an untrained encoder: no factor in a dim of its own
    assert r.mig < 0.1 and r.dci_disentanglement < 0.3 and r.sap < 0.2


def test_table_cell_recomputed(smoke):
    cfg = resolve_run_config(BenchmarkRunConfig, "smoke", BENCHMARK_PROFILES)
    bd = benchmark_data(shared_exclusive_config(cfg), cfg.metric_train + cfg.metric_test)
    assert len(bd.metric_rows) == 450 and not np.isin(bd.metric_rows, bd.train_rows).any()
    y = bd.classes[bd.metric_rows]
    t = _table(smoke)
    # the 'factors' row is the metrics of the pool's own classes: recomputed here, same rows, same seed (the csv keeps
    # 4 significant digits)
    assert t.loc["factors", "mig"] == pytest.approx(mig(y.astype(float), y, cfg.metric_train, seed=cfg.seed), abs=5e-5)
    assert t.loc["factors", "modularity"] == pytest.approx(modularity(y.astype(float), y, cfg.metric_train, seed=cfg.seed), abs=5e-5)
    # the per-factor MIG table averages to the table's MIG, for every code
    pf = pd.read_csv(smoke / "tables" / "mig_per_factor.csv", index_col=0)
    np.testing.assert_allclose(pf.mean(axis=1).loc[CODES], t.loc[CODES, "mig"], atol=5e-4)   # the csv keeps 3 decimals


def test_probes_and_logs(smoke):
    p = pd.read_csv(smoke / "tables" / "probe_accuracy.csv", index_col=0)
    assert list(p.index) == [c for c in CODES if c != "factors"]
    assert list(p.columns) == ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]
    assert ((p >= 0) & (p <= 100)).all().all()
    s = json.loads((smoke / "summary.json").read_text())
    assert s["n_train"] + s["n_test"] == s["n_run_images"] and s["n_metric_pool"] == 450
    assert s["shared_exclusive_reused"] is False and set(s["seconds_metrics"]) == set(CODES)
    m = pd.read_csv(smoke / "metrics.csv")
    for method in ("dim", "beta_vae", "vae"):
        assert m[m.method == method].step.tolist() == [1, 2, 3, 4]     # steps completed, one row per step (smoke)
    cfg = json.loads((smoke / "config.json").read_text())
    # each logged loss is -ELBO_beta = nll + beta * kl with the run's beta (4) or the VAE's (1)
    for method, beta in (("beta_vae", cfg["bvae"]["beta"]), ("vae", cfg["vae_beta"])):
        r = m[m.method == method]
        np.testing.assert_allclose(r[f"{method}_loss"], r[f"{method}_nll"] + beta * r[f"{method}_kl"], rtol=1e-5)
    assert cfg["bvae"]["beta"] == 4.0 and cfg["vae_beta"] == 1.0
    d = m[m.method == "dim"]
    assert (d.dim_mi_local <= np.log(1 + 7 * 25) + 1e-5).all()       # infoNCE ceiling: batch 8, 5x5 map
    for name in ("dim", "beta_vae", "vae"): assert (smoke / "checkpoints" / f"{name}.pt").is_file()


def test_reuses_a_finished_shared_exclusive_run(smoke, tmp_path):
    se = smoke / "shared_exclusive"
    before = (se / "metrics.csv").read_bytes()
    out = tmp_path / "again"
    run_notebook(NB, out, profile="smoke", device="cpu", methods="shared_exclusive", se_out_dir=str(se))
    s = json.loads((out / "summary.json").read_text())
    assert s["shared_exclusive_reused"] is True and s["shared_exclusive_run"] == str(se)
    assert (se / "metrics.csv").read_bytes() == before                 # nothing trained
    a, b = _table(smoke), _table(out)
    assert list(b[b.data == RENDERED].index) == ["S_X", "E_X", "S_X+E_X"]
    for code in ("S_X", "E_X", "S_X+E_X"):                              # same checkpoints, same pool: same scores
        np.testing.assert_allclose(b.loc[code, list(METRIC_NAMES)].astype(float), a.loc[code, list(METRIC_NAMES)].astype(float),
                                   atol=1e-9)
        assert b.loc[code, "train_s"] == pytest.approx(a.loc[code, "train_s"], rel=1e-6)   # the checkpoints' training time


def test_bad_parameters(smoke, tmp_path):
    with pytest.raises(NotebookError) as e:
        run_notebook(NB, tmp_path / "bad", profile="smoke", device="cpu", methods="shared_exclusive,pca")
    assert "non-empty subset" in str(e.value)
    before = (smoke / "config.json").read_text()
    with pytest.raises(NotebookError) as e:     # a resume with other settings stops before writing
        run_notebook(NB, smoke, profile="smoke", device="cpu", bvae_steps=6)
    assert "bvae_steps: 4 -> 6" in str(e.value)
    assert (smoke / "config.json").read_text() == before
