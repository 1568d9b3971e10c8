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
    from misrep.mnist_eval import load_mnist
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "MNIST" / "raw")):
        load_mnist(tmp_path, download=False)
