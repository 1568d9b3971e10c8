"""The MNIST experiments of the InfoGAN family: smoke runs of nbs/31_mnist.ipynb and nbs/31a_hsic_sweep.ipynb (papermill,
real MNIST), their resume and refusals, exact resume of every model on the trainer, and the code-digit accuracies on
fixtures whose answer is known by hand."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import NotebookError, run_notebook
from misrep.bi_infogan import BiArch, BiInfoGAN, BiInfoGANConfig
from misrep.core import DataNotFoundError, RunDir
from misrep.evaluation import hungarian_accuracy
from misrep.hsic_infogan import HSICInfoGAN, HSICInfoGANConfig
from misrep.images import load_mnist
from misrep.infogan import GANBase, InfoGAN, InfoGANArch, InfoGANConfig, LatentSpec, QOut, gan_trainer
from misrep.mnist_eval import MNIST_RUNS, code_confusion, encoder_accuracy, generator_accuracy, mnist_run_config

FIGURES = ["traversal_categorical", "traversal_continuous_1", "traversal_continuous_2", "samples", "training_curves"]


@pytest.fixture(scope="module")
def classifier_cache(tmp_path_factory):
    """One classifier cache for this file's runs: the first run trains the digit classifier, the others load it."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def quiet_env(classifier_cache, monkeypatch):
    """A classifier cache of the tests' own, no progress bars, one thread."""
    monkeypatch.setenv("MISREP_CACHE", str(classifier_cache))
    monkeypatch.setenv("MISREP_PROGRESS", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _matched_accuracy(conf: pd.DataFrame) -> float:
    """Accuracy of a confusion table under its own 'matched' column: sum of the matched cells over all counts."""
    counts = conf[[c for c in conf.columns if c.startswith("digit ")]].to_numpy()
    return sum(counts[c, d] for c, d in enumerate(conf.matched) if d >= 0) / counts.sum()


# --- smoke runs of the experiment notebooks (real MNIST) --------------------------------------------------------------
@pytest.mark.parametrize("model", ["infogan", "hsic_infogan", "bi_infogan"])
def test_smoke_run_values(tmp_path, mnist_root, quiet_env, model):
    out = tmp_path / "run"
    run_notebook("31_mnist.ipynb", out, model=model, profile="smoke", data_root=str(mnist_root), device="cpu")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["profile"] == "smoke" and cfg["steps"] == 30 and cfg["n_seeds"] == 1 and cfg["model"]["arch"]
    assert ("lam_hsic" in cfg["model"]) == (model == "hsic_infogan")          # only the model that ran is recorded
    m = pd.read_csv(out / "metrics.csv")
    assert m.step.tolist() == [10, 20, 30] and (m.seed == 0).all()              # steps completed
    assert m.drop(columns=["step", "seed"]).notna().all().all()
    ck = torch.load(out / "checkpoints" / "seed0.pt", weights_only=True)      # opens with the safe loader
    assert ck["step"] == 30 and ck["tag"] == "seed0" and json.loads(ck["config"])["model"] == cfg["model"]
    acc = pd.read_csv(out / "tables" / "accuracy.csv", index_col=0)
    assert list(acc.index.astype(str)) == ["0", "mean", "std"]
    # the reported accuracy is the confusion table's matched share, and the matching is a one-to-one map
    conf = pd.read_csv(out / "tables" / "confusion_generator_seed0.csv", index_col=0)
    assert conf.iloc[:, :10].to_numpy().sum() == 10 * cfg["n_per_code"] and (conf.iloc[:, :10].sum(axis=1) == cfg["n_per_code"]).all()
    assert sorted(conf.matched) == list(range(10))
    assert acc.loc["0", "acc_generator"] == pytest.approx(_matched_accuracy(conf), abs=1e-9)
    if model == "hsic_infogan":
        assert pd.isna(acc.loc["0", "acc_encoder"]) and not (out / "tables" / "confusion_encoder_seed0.csv").exists()
    else:
        conf = pd.read_csv(out / "tables" / "confusion_encoder_seed0.csv", index_col=0)
        assert conf.iloc[:, :10].to_numpy().sum() == cfg["n_test"]
        assert acc.loc["0", "acc_encoder"] == pytest.approx(_matched_accuracy(conf), abs=1e-9)
    assert 0.5 < acc.loc["0", "classifier_test_acc"] <= 1.0   # 2,000 images, 1 epoch: far above chance
    for f in FIGURES:
        assert (out / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG", f


def test_smoke_resume_and_changed_setting(tmp_path, mnist_root, quiet_env):
    out = tmp_path / "run"
    params = dict(model="infogan", profile="smoke", data_root=str(mnist_root), device="cpu")
    run_notebook("31_mnist.ipynb", out, **params)
    m = pd.read_csv(out / "metrics.csv"); acc = pd.read_csv(out / "tables" / "accuracy.csv", index_col=0)
    before = (out / "config.json").read_text()
    # running it again resumes from the finished checkpoint: nothing retrained, the same metrics and accuracies
    run_notebook("31_mnist.ipynb", out, **params)
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), m)
    pd.testing.assert_frame_equal(pd.read_csv(out / "tables" / "accuracy.csv", index_col=0).drop(columns="train_wall_s"),
                                  acc.drop(columns="train_wall_s"))
    # a resume with another setting stops with the difference, before config.json is touched
    with pytest.raises(NotebookError, match=r"model.lam_cat: 1.0 -> 2.0"):
        run_notebook("31_mnist.ipynb", out, lam_cat=2.0, **params)
    assert (out / "config.json").read_text() == before


def test_hsic_sweep_smoke(tmp_path, mnist_root, quiet_env):
    out = tmp_path / "sweep"
    run_notebook("31a_hsic_sweep.ipynb", out, profile="smoke", data_root=str(mnist_root), device="cpu")
    cfg = json.loads((out / "config.json").read_text())
    t = pd.read_csv(out / "tables" / "hsic_sweep.csv")
    # lambda over lams at the base width (lambda_cont = lambda / 4), then the width over widths at the base lambda
    assert t[["lam_hsic", "lam_hsic_cont", "hsic_width"]].values.tolist() == [[0, 0, 1], [20, 5, 1], [20, 5, 2]]
    seeds = pd.read_csv(out / "tables" / "hsic_sweep_seeds.csv")
    assert (seeds.acc_generator.values == t.acc_generator.values).all()          # one seed: the mean is that seed
    m = pd.read_csv(out / "metrics.csv")
    assert set(m.point) == {"lam0_w1", "lam20_w1", "lam20_w2"} and sorted(set(m.step)) == [3, 6]
    # the table's final HSIC is the last logged row of that point; the plain GAN (lambda 0) logs HSIC too
    for _, r in t.iterrows():
        name = f"lam{r.lam_hsic:g}_w{r.hsic_width:g}"
        assert r.hsic_cat == pytest.approx(m[(m.point == name) & (m.step == cfg["steps"])].hsic_cat.item(), rel=1e-5)  # tables keep 6 digits
    assert (out / "figures" / "hsic_sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["lam0_w1_seed0.pt", "lam20_w1_seed0.pt", "lam20_w2_seed0.pt"]


# --- refusals (no data needed: they stop in the config cell) ----------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    (dict(model="infogan", profile="fast"), "unknown profile"),
    (dict(model="vae", profile="smoke"), "model must be one of"),
    (dict(model="infogan", profile="smoke", lam_hsic=5.0), "unknown setting 'lam_hsic'"),
])
def test_bad_parameters_stop_before_anything_is_written(tmp_path, params, message):
    out = tmp_path / "bad"
    with pytest.raises(NotebookError, match=message):
        run_notebook("31_mnist.ipynb", out, data_root=str(tmp_path / "no_data"), **params)
    assert not (out / "config.json").exists() and not (out / "checkpoints").exists()


def test_run_folders_differ_by_model():
    dirs = {m: mnist_run_config(m, "quick").out_dir for m in MNIST_RUNS}
    assert len(set(dirs.values())) == 3 and all(f"mnist__{m}__" in d for m, d in dirs.items())
    assert mnist_run_config("infogan", "quick", seed=2, n_seeds=1).out_dir.endswith("__quick__seed2")


def test_paper_profile_is_the_papers_settings():
    c = mnist_run_config("infogan", "paper")    # Chen et al.: batch 128, 5,000 updates, full widths, Adam 2e-4 / 1e-3, beta1 0.5
    assert (c.steps, c.batch_size, c.model.arch) == (5000, 128, InfoGANArch())
    assert (c.model.lr_d, c.model.lr_g, c.model.lr_q, c.model.beta1, c.model.lam_cat) == (2e-4, 1e-3, 1e-3, .5, 1.)
    assert (c.model.latent.n_z, c.model.latent.k, c.model.latent.n_cont, c.model.latent.z_dist) == (62, 10, 2, "uniform")
    b = mnist_run_config("bi_infogan", "paper")  # Hinz and Wermter: 30k iterations, batch 128, Adam 1e-4 / 5e-4
    assert (b.steps, b.batch_size, b.model.arch, b.model.lr_d, b.model.lr_ge, b.model.latent.n_z) == (30000, 128, BiArch(), 1e-4, 5e-4, 16)


def test_missing_data_error(tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "MNIST" / "raw")):
        load_mnist(tmp_path, download=False)


# --- the trainer: exact resume for every model ------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: InfoGAN(InfoGANConfig(arch=InfoGANArch.small(16))),
    lambda: HSICInfoGAN(HSICInfoGANConfig(arch=InfoGANArch.small(16))),
    lambda: BiInfoGAN(BiInfoGANConfig(arch=BiArch.small(8))),      # Gaussian noise in D: the global generator matters
], ids=["infogan", "hsic_infogan", "bi_infogan"])
def test_gan_trainer_resume_is_exact(tmp_path, make):
    x = (torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    kw = dict(steps=8, batch_size=16, seed=5, log_every=2, ckpt_every=4, show_progress=False)
    torch.manual_seed(0); full = make()
    gan_trainer(full, x, run=RunDir(tmp_path / "a"), **kw).fit()
    torch.manual_seed(0); half = make()
    gan_trainer(half, x, run=RunDir(tmp_path / "b"), **kw).fit(stop_at=4)
    torch.manual_seed(99); resumed = make()                       # other initial weights, empty optimisers
    gan_trainer(resumed, x, run=RunDir(tmp_path / "b"), **kw).fit()
    for (k, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), k
    pd.testing.assert_frame_equal(RunDir(tmp_path / "a").metrics(), RunDir(tmp_path / "b").metrics())
    # and the run is not a constant: another seed gives other weights
    torch.manual_seed(0); other = make()
    gan_trainer(other, x, **{**kw, "seed": 6}).fit()
    assert not torch.equal(other.G.state_dict()[next(iter(other.G.state_dict()))], full.G.state_dict()[next(iter(full.G.state_dict()))])


# --- code-digit accuracies on fixtures whose answer is known by hand --------------------------------------------------
def test_hungarian_accuracy_by_hand():
    # counts[code, digit]: code 0 -> {0: 6, 1: 5}, code 1 -> {0: 5}, code 2 -> {2: 3}. Matching each code greedily to
    # its largest cell gives 0->0 (6) and leaves code 1 nothing: 9 of 19. The best one-to-one map, checked over all
    # six maps by hand, is 0->1 (5) + 1->0 (5) + 2->2 (3) = 13 of 19, and it is the only one that reaches 13.
    codes = [0] * 11 + [1] * 5 + [2] * 3
    digits = [0] * 6 + [1] * 5 + [0] * 5 + [2] * 3
    acc, mapping = hungarian_accuracy(np.array(codes), np.array(digits))
    assert acc == 13 / 19 and mapping == {0: 1, 1: 0, 2: 2}


class BarReader(nn.Module):
    """A classifier that cannot err on bar digits: the brightest row r of columns 4..23 is digit (r - 4) / 2."""
    def __init__(self): super().__init__(); self.w = nn.Parameter(torch.zeros(1))
    def forward(self, x): return F.one_hot(((x[:, 0, :, 4:24].mean(-1).argmax(-1) - 4) // 2).clamp(0, 9), 10).float()


def bars(digits):
    x = torch.zeros(len(digits), 1, 28, 28); x[torch.arange(len(digits)), 0, 2 * digits + 4, 4:24] = 1.
    return x


class PlantedModel(GANBase):
    """Code c draws the digit digit_of_code[c]; the encoder reads digit d back as code code_of_digit[d]."""
    has_encoder = True
    def __init__(self, digit_of_code, code_of_digit):
        super().__init__(LatentSpec(n_z=2)); self.w = nn.Parameter(torch.zeros(1))
        self.d, self.c = torch.as_tensor(digit_of_code), torch.as_tensor(code_of_digit)
    def generate(self, lat): return bars(self.d[lat.cat[:, 0].cpu()])
    def encode(self, x): return QOut(F.one_hot(self.c[BarReader()(x).argmax(1)], 10).float()[:, None], torch.zeros(len(x), 2))


def test_generator_accuracy_planted_merge():
    # codes 0..7 draw digits 0..7, codes 8 and 9 both draw the digit 8: nine of ten code values can be matched,
    # the tenth (8 or 9) loses all its images -> exactly 0.9; the digit 9 is never drawn
    m = PlantedModel([0, 1, 2, 3, 4, 5, 6, 7, 8, 8], list(range(10)))
    r = generator_accuracy(m, BarReader(), n_per_code=30, seed=1)
    assert r.accuracy == pytest.approx(0.9) and {r.mapping[c] for c in range(8)} == set(range(8))
    assert {r.mapping[8], r.mapping[9]} == {8, 9}
    conf = code_confusion(r)
    assert conf.loc[9, "digit 8"] == 30 and conf["digit 9"].sum() == 0 and _matched_accuracy(conf) == pytest.approx(0.9)


def test_encoder_accuracy_planted_merge():
    # the encoder reads every digit d as code (d + 1) % 10, except 5, read as 4 like the 3s;
    # the best map sends code 4 to whichever of 3 and 5 is more frequent (3): accuracy = 1 - n5 / n
    y = torch.tensor([3] * 40 + [5] * 25 + [0, 1, 2, 4, 6, 7, 8, 9] * 10)
    code_of_digit = [(d + 1) % 10 for d in range(10)]; code_of_digit[5] = 4
    m = PlantedModel(list(range(10)), code_of_digit)
    r = encoder_accuracy(m, (bars(y) * 255).to(torch.uint8), y)
    assert r.accuracy == pytest.approx(1 - 25 / len(y)) and r.mapping[4] == 3
    assert encoder_accuracy(type("NoQ", (PlantedModel,), {"has_encoder": False})(list(range(10)), list(range(10))),
                            bars(y[:3]), y[:3]) is None
