"""Colored-MNIST shared/exclusive experiment (Sanchez et al.'s first): smoke run of nbs/35_colored_mnist.ipynb
with its resume and refusal of changed settings, the splits, exact resume of both two-domain stages (interrupted in
either stage), the paper profile's model on 28x28 pairs, and a short training run whose codes separate the factors."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import NotebookError, check_two_stage_resume, run_notebook, write_fake_mnist
from misrep.colored_mnist import ColoredMNISTPairs
from misrep.colored_mnist_model import (CMNIST_PAPER_TABLE, CMNIST_PROFILES, ColoredMNISTModelConfig, ColoredMNISTRunConfig,
                                        TwoDomainExclusiveStage, TwoDomainSharedStage, cmnist_distance, cmnist_probe_table,
                                        cmnist_splits, pair_batches)
from misrep.core import RunDir, resolve_run_config
from misrep.evaluation import encode, to_float
from misrep.shared_exclusive import stage_trainer

NB = "35_colored_mnist.ipynb"
TINY = ColoredMNISTModelConfig(channels=(4, 8, 8), shared_dim=6, exclusive_dim=3, global_convs=(4, 4), critic_hidden=16,
                               disc_hidden=(16, 8))


# --- the smoke run -------------------------------------------------------------------------------------------------
def test_smoke_run_outputs_resume_and_refusal(tmp_path, mnist_root):
    out = tmp_path / "run"
    params = dict(profile="smoke", device="cpu", data_root=str(mnist_root), download=False)
    run_notebook(NB, out, **params)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["profile"] == "smoke" and cfg["model"]["exclusive_dim"] == 8 and cfg["model"]["image_size"] == 28
    m = pd.read_csv(out / "metrics.csv")
    n1, n2 = cfg["steps1"], cfg["steps2"]
    assert m.step.tolist() == list(range(1, n1 + n2 + 1)) and m.stage.tolist() == [1] * n1 + [2] * n2
    s1, s2 = m[m.stage == 1], m[m.stage == 2]
    # the JSD objectives start at -log 4 (an uninformative critic) and never exceed 0
    mi = m[["s1_mi_global", "s1_mi_local", "s2_mi_global", "s2_mi_local"]].to_numpy()
    assert np.nanmax(mi) <= 0 and np.allclose(mi[0, :2], -math.log(4), atol=0.05)
    mod = cfg["model"]   # each logged loss is the weighted sum of its logged terms (MI columns: mean of the two domains)
    np.testing.assert_allclose(s1.s1_loss, -(mod["alpha_sh"] * 2 * s1.s1_mi_global + mod["beta_sh"] * 2 * s1.s1_mi_local)
                               + mod["gamma"] * s1.s1_l1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s2.s2_loss, -(mod["alpha_ex"] * 2 * s2.s2_mi_global + mod["beta_ex"] * 2 * s2.s2_mi_local)
                               + mod["lambda_adv"] * 2 * s2.s2_adv, rtol=1e-5, atol=1e-5)
    assert ((s2.s2_d_acc >= 0) & (s2.s2_d_acc <= 1)).all()
    # the table: every code on its own image's factors, the paper's rows, differences and distances recomputed
    t = pd.read_csv(out / "tables" / "probe_accuracy.csv", index_col=0)
    assert t.loc["S_X"].notna().tolist() == [True, True, False, True] and t.loc["E_Y"].notna().tolist() == [True, False, True, True]
    for code in ("S_X", "E_X", "S_Y", "E_Y"):
        own = t.loc[code].drop("distance_to_ideal").dropna().to_dict()
        assert all(0 <= v <= 100 for v in own.values())
        assert abs(t.loc[code, "distance_to_ideal"] - cmnist_distance(own, code)) < 1e-3
    for code, row in CMNIST_PAPER_TABLE.items():
        for f, v in row.items(): assert abs(t.loc[code, f] - v) < 1e-9
    assert abs(t.loc["S_X - paper", "digit"] - (t.loc["S_X", "digit"] - 94.48)) < 1e-3
    assert abs(t.loc["E_X (paper)", "distance_to_ideal"] - 0.0321) < 1e-4
    # both domains' networks are in the checkpoints
    ck = torch.load(out / "checkpoints" / "2.pt", weights_only=True)
    keys = set(ck["modules"]["stage2"])
    assert any(k.startswith("encoder_y.") for k in keys) and any(k.startswith("discriminator.y.") for k in keys)
    for f in ("probe_heatmaps", "learning_curves", "pairs"):
        png = out / "figures" / f"{f}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored_on"] == "test" and summary["n_scored"] == cfg["eval_size"]
    # running it again resumes from the finished checkpoints: nothing retrained, stage 2's rows kept, same table
    run_notebook(NB, out, **params)
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), m)
    pd.testing.assert_frame_equal(pd.read_csv(out / "tables" / "probe_accuracy.csv", index_col=0), t)
    # a resume with another setting stops, listing the difference, leaving config.json as it was
    before = (out / "config.json").read_text()
    with pytest.raises(NotebookError, match=r"model.lambda_adv: 0.01 -> 0.05"):
        run_notebook(NB, out, lambda_adv=0.05, **params)
    assert (out / "config.json").read_text() == before


def test_unknown_profile_and_bad_pairing_stop_at_once(tmp_path):
    for params, match in ((dict(profile="huge"), "unknown profile"), (dict(profile="smoke", pairing="pixel"), "pairing")):
        with pytest.raises(NotebookError, match=match):
            run_notebook(NB, tmp_path / "bad", device="cpu", **params)
        assert not (tmp_path / "bad" / "metrics.csv").exists()


# --- splits ----------------------------------------------------------------------------------------------------------
def test_splits_are_disjoint_and_validation_leaves_the_test_split(tmp_path):
    write_fake_mnist(tmp_path, n_train=300, n_test=40)
    kw = dict(data_root=str(tmp_path), download=False, val_size=60, batch_size=8, seed=3)
    test_run = cmnist_splits(resolve_run_config(ColoredMNISTRunConfig, "smoke", CMNIST_PROFILES, train_subset=0, eval_size=0, **kw))
    val_run = cmnist_splits(resolve_run_config(ColoredMNISTRunConfig, "smoke", CMNIST_PROFILES, train_subset=0, eval_size=0,
                                               validation=True, **kw))
    (pairs, tr), (vpairs, va) = val_run["train"], val_run["scored"]
    assert vpairs is pairs and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 300 and len(va) == 60
    assert torch.equal(test_run["train"][1], tr)                          # the same training rows either way
    tpairs, trows = test_run["scored"]
    assert test_run["scored_on"] == "test" and len(tpairs) == 40 and torch.equal(trows, torch.arange(40))
    assert val_run["scored_on"] == "validation"
    # colours are the run's seed's: the training pairs equal a data set built directly with that seed
    x, lab = write_fake_mnist(tmp_path / "again", n_train=300, n_test=40)
    direct = ColoredMNISTPairs(x, lab, seed=3)
    assert torch.equal(direct.background, pairs.background) and torch.equal(direct.digit_colour, pairs.digit_colour)


# --- exact resume of both stages, interrupted in either -----------------------------------------------------------------
def _pairs(n=64):
    g = torch.Generator().manual_seed(0)
    lab = torch.arange(n) % 10
    img = (torch.rand(n, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    return ColoredMNISTPairs(img, lab, seed=0)

def _both_stages(path, stop1=None, stop2=None, n=6):
    bf = pair_batches(_pairs(), np.arange(64), 8, seed=0)
    bfn = lambda t: tuple(to_float(v) for v in bf(t))
    run, kw = RunDir(path), dict(log_every=1, ckpt_every=2, show_progress=False)
    torch.manual_seed(0); st1 = TwoDomainSharedStage(TINY)
    t1 = stage_trainer(st1, bfn, n, run, lr=1e-3, **kw)
    if stop1 is not None: return t1.fit(stop_at=stop1), run
    t1.fit()   # finished: loads its checkpoint, keeps the rows stage 2 logged
    torch.manual_seed(1); st2 = TwoDomainExclusiveStage(st1.encoder, st1.encoder_y, TINY)
    stage_trainer(st2, bfn, n, run, lr=1e-3, disc_lr=1e-3, step_offset=n, **kw).fit(stop_at=stop2)
    return st2, run

@pytest.mark.parametrize("stop1,stop2", [(3, None), (None, 3)])
def test_resume_is_exact_in_either_stage(tmp_path, stop1, stop2):
    check_two_stage_resume(_both_stages, tmp_path, stop1, stop2)


# --- the paper profile's model --------------------------------------------------------------------------------------
def test_paper_profile_model_on_28x28_pairs():
    cfg = resolve_run_config(ColoredMNISTRunConfig, "paper", CMNIST_PROFILES, out_dir="unused")
    assert (cfg.batch_size, cfg.lr, cfg.model.shared_dim, cfg.model.exclusive_dim) == (64, 1e-4, 64, 8)
    torch.manual_seed(0)
    st1 = TwoDomainSharedStage(cfg.model)
    assert (st1.encoder.map_channels, st1.encoder.map_size) == (256, 4)          # 28 -> 25 -> 11 -> 4
    x, y = torch.rand(3, 3, 28, 28), torch.rand(3, 3, 28, 28)
    sc = st1.scores(x, y)
    assert sc["global_xy"].shape == (3, 3) and sc["local_xy"].shape == (3, 3, 16) and sc["s_x"].shape == (3, 64)
    st2 = TwoDomainExclusiveStage(st1.encoder, st1.encoder_y, cfg.model)
    loss, terms, codes = st2(x, y, torch.Generator().manual_seed(0))
    assert [c.shape[1] for c in codes] == [64, 8, 64, 8] and torch.isfinite(loss)
    assert st2.discriminator["y"].net[0].in_features == 72 and st2.discriminator["x"].net[0].out_features == 1000


# --- training separates the factors -----------------------------------------------------------------------------------
def test_short_training_puts_the_digit_in_s_and_the_colour_in_e(tmp_path):
    """On toy pairs (10 digit shapes, 12 colours), 150 + 150 steps separate the factors. Untrained, both codes read both
    (random convolutions keep colour and position: S_X about 90 % digit and 90-100 % colour, E_X 55-70 % of each, by the
    same probes); training takes the colour out of S_X and the digit out of E_X, keeps the digit in S_X and the colour in
    E_X well above chance (1 / 12). Measured against the untrained model, not against fixed levels alone: how far 150
    steps get depends on the CPU's kernels (E_X's colour 54-61 % at seed 0 across AVX2 / AVX-512 / scalar kernels)."""
    n = 1200
    lab = torch.arange(n) % 10
    img = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for k in range(10): img[lab == k, :, 3 + 2 * k:9 + 2 * k, 2 + 2 * k:8 + 2 * k] = 255   # a block at a digit-dependent place
    pairs = ColoredMNISTPairs(img, lab, seed=0)
    cfg = ColoredMNISTModelConfig(channels=(8, 16, 16), shared_dim=16, exclusive_dim=4, global_convs=(8, 8), critic_hidden=32,
                                  disc_hidden=(32, 16))
    tr, te = np.arange(1000), np.arange(1000, n)
    bf = pair_batches(pairs, tr, 32, seed=0)
    bfn = lambda t: tuple(to_float(v) for v in bf(t))
    torch.manual_seed(0); st1 = TwoDomainSharedStage(cfg); st2 = TwoDomainExclusiveStage(st1.encoder, st1.encoder_y, cfg)
    code_of = lambda m, x: m(x)[1]
    def table():
        z, labs = {}, {}
        for name, rows in (("tr", tr), ("te", te)):
            x, y, l = pairs.batch(rows)
            z[name] = {"S_X": encode(st1.encoder, x, code_of), "E_X": encode(st2.encoder, x, code_of)}; labs[name] = l.numpy()
        return cmnist_probe_table(z["tr"], labs["tr"], z["te"], labs["te"], epochs=30, lr=3e-3)[0]
    before = table()
    torch.manual_seed(0); st1 = TwoDomainSharedStage(cfg)
    stage_trainer(st1, bfn, 150, lr=2e-3, show_progress=False).fit()
    torch.manual_seed(1); st2 = TwoDomainExclusiveStage(st1.encoder, st1.encoder_y, cfg)
    stage_trainer(st2, bfn, 150, lr=2e-3, disc_lr=2e-3, show_progress=False).fit()
    after = table()
    msg = f"before training:\n{before}\nafter:\n{after}"
    assert after.loc["S_X", "digit"] > 80, msg
    assert after.loc["E_X", "background"] > 3 * 100 / 12, msg                                  # three times chance
    assert after.loc["S_X", "background"] < before.loc["S_X", "background"] - 30, msg          # colour out of S_X
    assert after.loc["E_X", "digit"] < before.loc["E_X", "digit"] - 30, msg                    # digit out of E_X
    assert after.loc["E_X", "digit"] < 30 and after.loc["S_X", "background"] < after.loc["E_X", "background"], msg
