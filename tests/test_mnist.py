"Smoke runs of nbs/31_mnist.ipynb (papermill, profile='smoke') for the three models, on real MNIST."
import json, os, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).parents[1]
DATA = REPO.parent / "shared" / "data"
NB = REPO / "nbs" / "31_mnist.ipynb"
FIGURES = ["traversal_categorical", "traversal_continuous_1", "traversal_continuous_2", "samples"]

needs_mnist = pytest.mark.skipif(not (DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists(),
                                 reason=f"real MNIST not found in {DATA / 'MNIST' / 'raw'} (smoke runs need it)")

def run_nb(tmp_path, **params):
    out = tmp_path / "run"
    args = [str(REPO / ".venv" / "bin" / "papermill"), str(NB), str(tmp_path / "out.ipynb"), "--cwd", str(REPO),
            "-p", "profile", "smoke", "-p", "out_dir", str(out), "-p", "data_root", str(DATA), "-p", "device", "cpu"]
    for k, v in params.items(): args += ["-p", k, str(v)]
    env = {**os.environ, "MISREP_CACHE": str(tmp_path / "cache"), "MISREP_PROGRESS": "0", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}  # one thread: far faster on a shared, loaded CPU
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

@needs_mnist
@pytest.mark.parametrize("model", ["infogan", "hsic_infogan", "bi_infogan"])
def test_smoke(tmp_path, model):
    out = run_nb(tmp_path, model=model)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == model and cfg["profile"] == "smoke" and cfg["steps"] == 30 and cfg["seeds"] == [0]
    m = pd.read_csv(out / "metrics.csv")
    assert m.step.tolist() == [10, 20, 30] and (m.seed == 0).all()
    assert m.drop(columns=["step", "seed"]).notna().all().all() and len(m.columns) >= 4
    acc = pd.read_csv(out / "tables" / "accuracy.csv", index_col=0)
    assert list(acc.index.astype(str)) == ["0", "mean", "std"]
    g = acc.loc["0", "acc_generator"]
    assert 0.1 <= g <= 1.0                      # Hungarian matching can never score below 1/10 here
    enc = acc.loc["0", "acc_encoder"]
    if model == "hsic_infogan": assert pd.isna(enc)   # no inference network
    else: assert 0.1 <= enc <= 1.0
    assert 0.5 < acc.loc["0", "classifier_test_acc"] <= 1.0   # 2,000 images, 1 epoch: well above chance
    for f in FIGURES:
        p = out / "figures" / f"{f}.png"
        assert p.read_bytes()[:4] == b"\x89PNG", f
    assert (out / "seeds" / "seed0" / "checkpoints" / "model.pt").exists()

@needs_mnist
def test_bad_profile(tmp_path):
    with pytest.raises(AssertionError, match="profile must be one of"):
        run_nb(tmp_path, model="infogan", profile="fast")

def test_missing_data_error(tmp_path):
    sys.path.insert(0, str(REPO))
    from misrep.images import load_mnist
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "MNIST" / "raw")):
        load_mnist(tmp_path, download=False)


# --- the known bugs of the public ports, checked on the library (fast, CPU, no data) -------------------------------
def _lib():
    sys.path.insert(0, str(REPO))
    import torch
    from misrep import infogan
    return torch, infogan

def test_q_gradient_reaches_trunk():
    torch, ig = _lib()
    d0, d1 = ig.trunk_delta(0.), ig.trunk_delta(1.)
    assert (d0 - d1).abs().max() > 1e-6          # the Q loss changes the trunk's update

def test_no_double_softmax():
    torch, ig = _lib()
    import torch.nn.functional as F
    m = ig.InfoGAN(ig.InfoGANConfig(arch=ig.InfoGANArch.small(16)))
    assert not any(isinstance(x, (torch.nn.Softmax, torch.nn.LogSoftmax)) for x in m.modules())
    lat = ig.sample_latent(m.spec, 8, generator=torch.Generator().manual_seed(0))
    q = ig.QOut(F.softmax(torch.randn(8, 1, 10), -1), torch.zeros(8, 2))
    with pytest.raises(ValueError, match="double-softmax"): ig.info_li(q, lat)

def test_same_code_distribution_in_both_steps():
    torch, ig = _lib()
    m = ig.InfoGAN(ig.InfoGANConfig(arch=ig.InfoGANArch.small(16)), seed=3); m.trace = []
    for _ in range(4): m.train_step(torch.rand(64, 1, 28, 28))
    for step in "dg":
        cont = torch.cat([l.cont for s, l in m.trace if s == step])
        assert cont.abs().max() <= 1 and abs(cont.var().item() - 1 / 3) < .06   # Unif(-1, 1), not N(0, 1)
    from misrep.bi_infogan import BiInfoGAN, BiInfoGANConfig, BiArch
    b = BiInfoGAN(BiInfoGANConfig(arch=BiArch.small(8))); b.trace = []
    b.train_step(torch.rand(64, 1, 28, 28))
    assert all(l.cont.abs().max() <= 1 and l.z.abs().max() <= 1 for _, l in b.trace)

def test_traversal_keeps_z_fixed():
    torch, ig = _lib()
    spec = ig.LatentSpec()
    t = ig.traversal_latent(spec, "cont", index=0, n_cols=10, generator=torch.Generator().manual_seed(0))
    z = t.z.view(10, 10, -1)
    assert (z == z[:, :1]).all() and not (z[0] == z[1]).all()        # fixed along each row, different rows
    t = ig.traversal_latent(spec, "cat", n_cols=10, generator=torch.Generator().manual_seed(0))
    assert (t.z.view(10, 10, -1) == t.z.view(10, 10, -1)[:1]).all()   # fixed down each column
    assert (t.cat.view(10, 10) == torch.arange(10)[:, None]).all()

def test_hungarian_recovers_permutation():
    torch, ig = _lib()
    from misrep.evaluation import hungarian_accuracy
    y = torch.randint(0, 10, (1000,), generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    acc, mapping = hungarian_accuracy(perm[y], y)
    assert acc == 1.0 and mapping == {int(perm[k]): k for k in range(10)}
