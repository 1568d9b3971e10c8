"""Every experiment notebook's `paper` profile, for 2 iterations per stage on the CPU, so that a GPU run cannot die of a
shape, dtype or device error: the papers' architectures and batch sizes, on small data where the real data set is
absent (a 1,440-image Shapes3D file rendered here: 3 images of each of the 480 (scale, shape, orientation) groups; a
folder of 32x32 RGB images in CIFAR-10's 10 classes; real MNIST when it is there, else a small file in its layout).

Only the notebooks' own step/epoch/evaluation-size parameters and the data are changed; each run is checked for
  - a config.json whose every other setting (architecture, batch size, learning rates, weights) is the paper
    profile's, resolved here independently;
  - checkpoints at 2 steps per stage whose every tensor has the shape and dtype of the modules built from that
    paper config (so the notebook trained the paper's networks, not a smaller profile's);
  - finite training metrics at the last step, and the experiment's main table with numbers in it.
Slow (minutes per notebook on a shared 2-core CPU): marked `slow`, deselected by default; `make paper-check` runs it
(`pytest -m slow tests/test_paper_profiles.py`)."""
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SHARED_DATA, run_notebook, write_fake_mnist
from misrep.core import resolve_run_config

pytestmark = pytest.mark.slow
STEPS = 2
THREADS = int(os.environ.get("MISREP_PAPER_CHECK_THREADS", "1"))   # torch threads of each notebook's kernel
# settings that may differ from the paper profile besides those a case passes: where things run and what data
WHERE = {"out_dir", "device", "threads", "data", "data_root", "download", "dataset", "resume"}


# ---------------------------------------------------------------- small data
@pytest.fixture(scope="session")
def shapes3d_file(tmp_path_factory):
    "A Shapes3D file in the official layout: 3 rendered images of each of the 480 groups (1,440 images)."
    from misrep.shapes3d import N_IMAGES, SHARED_FACTORS, build_shapes3d, grid_classes, grid_index, select_rows
    classes = grid_classes(np.arange(N_IMAGES))
    rows = select_rows(classes, 3, None, SHARED_FACTORS, seed=0)
    return str(build_shapes3d(path=tmp_path_factory.mktemp("shapes3d") / "3dshapes_small.h5",
                              indices=grid_index(classes[rows]), device="cpu", progress_bar=False))


@pytest.fixture(scope="session")
def mnist_data(tmp_path_factory):
    "Real MNIST when it is there, else 600 + 100 random images in its idx layout."
    if (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists(): return str(SHARED_DATA)
    root = tmp_path_factory.mktemp("mnist")
    write_fake_mnist(root, n_train=600, n_test=100)
    return str(root)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    "10 classes of 32x32 RGB images (8 training, 2 test images each): CIFAR-10's shape and class count."
    from PIL import Image
    root, rng = tmp_path_factory.mktemp("folder"), np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 2)):
        for c in range(10):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / f"c{c}" / f"{i}.png")
    return str(root)


# ---------------------------------------------------------------- checks shared by every case
def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict): out.update(_flat(v, f"{prefix}{k}."))
        else: out[prefix + k] = v
    return out


def check_config(out, paper_cfg, passed):
    "config.json differs from the paper profile's config only in the passed settings and where/what data it runs on."
    from misrep.core import _jsonable
    run, paper = _flat(json.loads((out / "config.json").read_text())), _flat(_jsonable(paper_cfg))
    assert run["profile"] == "paper"
    differ = {k for k in set(run) | set(paper) if run.get(k) != paper.get(k)}
    allowed = WHERE | set(passed)
    assert {k for k in differ if k.split(".")[-1] not in allowed and k not in allowed} == set(), (differ, allowed)
    assert not any(k.startswith("model.") or k.endswith("batch_size") for k in passed)
    return run


def check_checkpoint(path, modules, steps=STEPS):
    "The checkpoint is at `steps` of `steps`, and holds tensors of exactly the shapes and dtypes of `modules`."
    ck = torch.load(path, weights_only=True)
    assert ck["step"] == ck["total_steps"] == steps, (path, ck["step"], ck["total_steps"])
    assert set(ck["modules"]) == set(modules), (sorted(ck["modules"]), sorted(modules))
    n = 0
    for key, m in modules.items():
        want, got = m.state_dict(), ck["modules"][key]
        assert set(want) == set(got), (key, set(want) ^ set(got))
        for k, t in want.items():
            assert got[k].shape == t.shape and got[k].dtype == t.dtype, (key, k, got[k].shape, t.shape, got[k].dtype)
            if t.is_floating_point(): assert torch.isfinite(got[k]).all(), (key, k)
        n += sum(t.numel() for t in want.values())
    return n


def check_metrics(path, last_step, columns):
    "The metrics row at `last_step` holds finite values of every named column."
    m = pd.read_csv(path)
    row = m[m.step == last_step]
    assert len(row), (path, m.step.tolist())
    for c in columns: assert math.isfinite(row[c].dropna().iloc[-1]), (path, c)
    return m


def check_table(out, name):
    t = pd.read_csv(out / "tables" / f"{name}.csv", index_col=0)
    assert len(t) and np.isfinite(t.select_dtypes("number").to_numpy(dtype=float)).any(), name
    return t


def run_paper(name, out, **params):
    run_notebook(name, out, kernel=True, profile="paper", device="cpu", **params)


# ---------------------------------------------------------------- Shapes3D shared/exclusive (nbs/30)
def test_shapes3d_shared_exclusive_paper(tmp_path, shapes3d_file):
    from misrep.shared_exclusive import SHAPES3D_PROFILES, ExclusiveStage, SharedStage, Shapes3DRunConfig
    passed = dict(steps1=STEPS, steps2=STEPS, probe_epochs=1)
    run_paper("30_shapes3d.ipynb", tmp_path, data=shapes3d_file, threads=THREADS, **passed)
    paper = resolve_run_config(Shapes3DRunConfig, "paper", SHAPES3D_PROFILES)
    assert paper.batch_size == 64 and paper.model.shared_dim == paper.model.exclusive_dim == 64
    check_config(tmp_path, paper, passed)
    stage1 = SharedStage(paper.model)
    n1 = check_checkpoint(tmp_path / "checkpoints" / "1.pt", {"stage1": stage1})
    check_checkpoint(tmp_path / "checkpoints" / "2.pt", {"stage2": ExclusiveStage(stage1.encoder, paper.model)})
    assert sum(p.numel() for p in stage1.encoder.parameters()) > 3e6 and n1 > 3e6        # the 3.58 M-parameter encoder
    check_metrics(tmp_path / "metrics.csv", STEPS, ["s1_loss", "s1_mi_global", "s1_mi_local"])
    check_metrics(tmp_path / "metrics.csv", 2 * STEPS, ["s2_loss", "s2_adv", "s2_d_loss"])
    check_table(tmp_path, "probe_accuracy")


# ---------------------------------------------------------------- the InfoGAN family on MNIST (nbs/31, 31a)
MNIST_EVAL = dict(n_per_code=10, clf_epochs=1, clf_n_train=512, n_test=256, log_every=1, ckpt_every=1)


@pytest.mark.parametrize("model", ["infogan", "hsic_infogan", "bi_infogan"])
def test_mnist_paper(tmp_path, mnist_data, model):
    from misrep.mnist_eval import mnist_run_config
    passed = dict(steps=STEPS, n_seeds=1, **MNIST_EVAL)
    run_paper("31_mnist.ipynb", tmp_path, model=model, data_root=mnist_data, download=False, threads=THREADS, **passed)
    paper = mnist_run_config(model, "paper")
    assert paper.batch_size == 128 and paper.width_div == 1
    check_config(tmp_path, paper, passed)
    check_checkpoint(tmp_path / "checkpoints" / "seed0.pt", {"model": paper.build()})
    m = check_metrics(tmp_path / "metrics.csv", STEPS, ["loss_d"])
    assert (m.seed == 0).all()
    check_table(tmp_path, "accuracy")


def test_hsic_sweep_paper(tmp_path, mnist_data):
    from misrep.mnist_eval import HSIC_SWEEP_PROFILES, HSICSweepRun
    passed = dict(steps=STEPS, n_seeds=1, lams=[0.0, 20.0], widths=[2.0], n_per_code=10, clf_epochs=1, log_every=1,
                  ckpt_every=1)
    run_paper("31a_hsic_sweep.ipynb", tmp_path, data_root=mnist_data, download=False, threads=THREADS, **passed)
    paper = resolve_run_config(HSICSweepRun, "paper", HSIC_SWEEP_PROFILES)
    assert paper.batch_size == 128 and paper.width_div == 1
    check_config(tmp_path, paper, passed)
    cks = sorted((tmp_path / "checkpoints").glob("*.pt"))
    assert len(cks) == 3                                             # lambda 0 and 20 at width 1, lambda 20 at width 2
    for ck in cks: check_checkpoint(ck, {"model": paper.build()})
    check_table(tmp_path, "hsic_sweep")


# ---------------------------------------------------------------- Deep InfoMax (nbs/32)
DIM_CASES = {"local_infonce_dot": dict(objective="local", estimator="infonce", critic="dot"),
             "local+global_dv_concat": dict(objective="local+global", estimator="dv", critic="concat"),
             "supervised": dict(objective="supervised")}


@pytest.mark.parametrize("case", list(DIM_CASES))
def test_dim_paper(tmp_path, image_folder, case):
    from misrep.dim import DIM_PROFILES, DIMRunConfig, DeepInfoMax, make_prior_discriminator
    model = DIM_CASES[case]
    passed = dict(max_steps=STEPS, probe_epochs=1)             # paper: 1,000 epochs, capped at 2 steps
    run_paper("32_dim.ipynb", tmp_path, dataset=image_folder, threads=THREADS, **model, **passed)
    paper = resolve_run_config(DIMRunConfig, "paper", DIM_PROFILES, **model)
    assert paper.batch_size == 64 and paper.model.embed_dim == 2048 and paper.model.in_channels == 3
    check_config(tmp_path, paper, passed)
    disc = make_prior_discriminator(paper.model)
    check_checkpoint(tmp_path / "checkpoints" / "dim.pt",
                     {"model": DeepInfoMax(paper.model), **({"disc": disc} if disc is not None else {})})
    check_metrics(tmp_path / "metrics.csv", STEPS, ["loss"])
    check_table(tmp_path, "probe_accuracy")


# ---------------------------------------------------------------- the MI staircase (nbs/33)
def test_mi_bounds_paper(tmp_path):
    from misrep.staircase import PROFILES, StaircaseConfig, make_critic
    passed = dict(steps_per_level=STEPS)
    run_paper("33_mi_bounds.ipynb", tmp_path, threads=THREADS, **passed)
    paper = resolve_run_config(StaircaseConfig, "paper", PROFILES)
    assert (paper.dim, paper.batch_size, paper.hidden, len(paper.mi_levels)) == (20, 64, 256, 5)
    check_config(tmp_path, paper, passed)
    critics = {f"{c}_{b}": make_critic(c, paper, b) for c in paper.critics for b in paper.bounds}
    check_checkpoint(tmp_path / "checkpoints" / "staircase.pt", critics, steps=STEPS * len(paper.mi_levels))
    check_metrics(tmp_path / "metrics.csv", STEPS * len(paper.mi_levels), [f"{c}_infonce" for c in paper.critics])
    check_table(tmp_path, "estimates")


# ---------------------------------------------------------------- the Shapes3D benchmark (nbs/34)
def test_shapes3d_benchmark_paper(tmp_path, shapes3d_file):
    """Every method but shared/exclusive, whose 50,000 + 30,000 steps the notebook takes from nbs/30's paper profile
    (no parameter here shortens them; its code path is nbs/30's, checked above)."""
    from misrep.benchmark import BENCHMARK_PROFILES, BenchmarkRunConfig, ConvDIM, shared_exclusive_config
    from misrep.beta_vae import BetaVAE
    from misrep.dim import make_prior_discriminator
    passed = dict(methods="dim,beta_vae,vae,random,factors", dim_steps=STEPS, bvae_steps=STEPS, metric_train=300,
                  metric_test=150, probe_epochs=1)
    run_paper("34_shapes3d_benchmark.ipynb", tmp_path, data=shapes3d_file, threads=THREADS, **passed)
    paper = resolve_run_config(BenchmarkRunConfig, "paper", BENCHMARK_PROFILES)
    assert paper.dim_batch_size == paper.bvae_batch_size == 64
    check_config(tmp_path, paper, passed)
    se = shared_exclusive_config(paper)
    check_checkpoint(tmp_path / "checkpoints" / "dim.pt", {"dim": ConvDIM(paper.dim, se.model),
                                                           "dim_disc": make_prior_discriminator(paper.dim)})
    for tag in ("beta_vae", "vae"): check_checkpoint(tmp_path / "checkpoints" / f"{tag}.pt", {tag: BetaVAE(paper.bvae)})
    check_table(tmp_path, "benchmark")


# ---------------------------------------------------------------- colored MNIST shared/exclusive (nbs/35)
def test_colored_mnist_paper(tmp_path, mnist_data):
    from misrep.colored_mnist_model import (CMNIST_PROFILES, ColoredMNISTRunConfig, TwoDomainExclusiveStage,
                                            TwoDomainSharedStage)
    passed = dict(steps1=STEPS, steps2=STEPS, probe_epochs=1)
    run_paper("35_colored_mnist.ipynb", tmp_path, data_root=mnist_data, download=False, threads=THREADS, **passed)
    paper = resolve_run_config(ColoredMNISTRunConfig, "paper", CMNIST_PROFILES)
    assert paper.batch_size == 64 and paper.model.exclusive_dim == 8 and paper.model.channels == (64, 128, 256)
    check_config(tmp_path, paper, passed)
    stage1 = TwoDomainSharedStage(paper.model)
    check_checkpoint(tmp_path / "checkpoints" / "1.pt", {"stage1": stage1})
    check_checkpoint(tmp_path / "checkpoints" / "2.pt",
                     {"stage2": TwoDomainExclusiveStage(stage1.encoder, stage1.encoder_y, paper.model)})
    check_metrics(tmp_path / "metrics.csv", STEPS, ["s1_loss"])
    check_metrics(tmp_path / "metrics.csv", 2 * STEPS, ["s2_loss"])
    check_table(tmp_path, "probe_accuracy")


def test_every_experiment_notebook_is_covered():
    "A new nbs/3* experiment notebook must get a case here (32a_dim_table trains nothing: it gathers finished runs)."
    here = Path(__file__).read_text()
    for nb in sorted((Path(__file__).resolve().parents[1] / "nbs").glob("3*.ipynb")):
        assert nb.name == "32a_dim_table.ipynb" or f'"{nb.name}"' in here, f"{nb.name} has no paper-profile case"
