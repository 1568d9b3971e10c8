"""tools/gpu_check.py: the GPU script's --dry mode (the same script on the CPU with tiny settings: a 240-image render
and build, every step case at the smoke profile, InfoGAN smoke for 2 seeds as 2 processes). Its
notebook executor, misrep.cli.exec_notebook, is tested in nbs/06_cli.ipynb."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import REPO, write_fake_mnist

sys.path.insert(0, str(REPO / "tools"))
import gpu_check  # noqa: E402


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_dry")
    write_fake_mnist(root / "data", n_train=600, n_test=100)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MISREP_CACHE": str(root / "cache")}
    # relative paths, as a user types them: the seeds' processes run elsewhere (in the repository)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--dry", "--out", "out", "--mnist-root", "data"],
                       env=env, capture_output=True, text=True, timeout=900, cwd=root)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root / "out"


def test_dry_run_every_phase(dry):
    s = json.loads((dry / "summary.json").read_text())
    assert s["ok"] and s["dry"] and s["device"] == "cpu"
    for phase in ("machine", "render_in_memory", "steps", "infogan", "build"): assert s[phase]["ok"], (phase, s[phase])
    assert json.loads((dry / "machine.json").read_text())["torch"] == torch.__version__
    n = gpu_check.DRY_IMAGES
    assert s["render_in_memory"]["images"] == n and s["build"]["images"] == n and s["render_in_memory"]["cells"] == min(n, 480)
    assert f"OK, {n} images" in s["build"]["check"] and s["build"]["read_gb"] == pytest.approx(n * 64 * 64 * 3 / 1e9)
    assert (dry / "report.md").read_text().startswith("# misrep GPU check (dry run on the CPU)")


def test_dry_run_measures_every_step_case(dry):
    import bench_steps
    t = pd.read_csv(dry / "steps_smoke.csv", dtype={"negatives": str})
    timed = t[t.it_s.notna()]
    assert set(timed[timed.negatives == "all"].case) == set(bench_steps.CASES) and set(t.negatives) <= {"all", "1"}
    k1 = t[t.negatives == "1"]                           # K = 1: timed where the case's critics take negatives ...
    assert set(k1.case) == set(bench_steps.CASES) and k1.it_s.notna().any()
    assert (timed.it_s > 0).all() and all(math.isclose(a * b, 1, rel_tol=1e-9) for a, b in zip(timed.it_s, timed.s_per_it))
    assert (timed.batch == timed.case.map(lambda c: 16 if c.startswith("dim") or c == "mi_staircase"
                                          else 32 if "infogan" in c else 8)).all()   # the smoke profiles' batch sizes
    assert t[t.it_s.isna()].note.notna().all()          # ... and said, not timed, where it has no such setting


def test_dry_run_infogan_seeds_ran_as_separate_processes(dry):
    acc = pd.read_csv(dry / "infogan_paper" / "tables" / "accuracy.csv", index_col=0)
    assert list(acc.index) == ["0", "1", "mean", "std"]
    for col in ("acc_generator", "acc_encoder"):
        assert acc[col].iloc[:2].between(0, 1).all()
        assert acc.loc["mean", col] == pytest.approx(acc[col].iloc[:2].mean())
    for s in (0, 1):
        d = dry / "infogan_paper" / f"seed{s}"
        cfg = json.loads((d / "config.json").read_text())
        assert (cfg["seed"], cfg["n_seeds"], cfg["steps"], cfg["profile"]) == (s, 1, 4, "smoke")
        assert json.loads((d / "summary.json").read_text())["seeds"] == [s]
        assert pd.read_csv(d / "metrics.csv").step.max() == 4
        assert acc.loc[str(s), "acc_encoder"] == pytest.approx(pd.read_csv(d / "tables" / "accuracy.csv", index_col=0).loc[str(s), "acc_encoder"])


def test_missing_mnist_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST not found"): gpu_check.prepare_mnist(tmp_path)
    write_fake_mnist(tmp_path, n_train=3, n_test=2)
    raw = tmp_path / "MNIST" / "raw"
    import gzip
    data = (raw / "t10k-labels-idx1-ubyte").read_bytes()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data)); (raw / "t10k-labels-idx1-ubyte").unlink()
    assert gpu_check.prepare_mnist(tmp_path) == tmp_path and (raw / "t10k-labels-idx1-ubyte").read_bytes() == data


def test_a_failed_seed_fails_the_phase(tmp_path, monkeypatch):
    "A seed whose process exits non-zero makes the InfoGAN phase (and so the check) fail, with its log's end in the error."
    import misrep.mnist_eval
    monkeypatch.setattr(misrep.mnist_eval, "get_classifier", lambda *a, **k: None)
    class Failing:                                      # stands in for the seed's process: it fails at once
        def __init__(self, cmd, stdout, **kw): stdout.write("Traceback ...\nDataNotFoundError: mnist not found\n"); stdout.close()
        def wait(self, timeout=None): return 1
    monkeypatch.setattr(gpu_check.subprocess, "Popen", Failing)
    summary = {}
    gpu_check.phase(summary, "infogan", gpu_check.infogan_seeds, tmp_path, "cpu", True, tmp_path, [0, 1], tmp_path, 60)
    g = summary["infogan"]
    assert g["ok"] is False and set(g["failed"]) == {0, 1} and g["acc_generator_mean"] is None
    assert "2 of 2 seeds failed" in g["error"] and "mnist not found" in g["error"]
