"""Shapes3D shared/exclusive experiment: papermill smoke run of nbs/30_shapes3d.ipynb, bad-parameter errors, and the
unit tests that do not fit in nbs/21_shared_exclusive.ipynb (switch, shuffling, split disjointness, training direction,
exact resume)."""
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from conftest import NotebookError, check_two_stage_resume, run_notebook
from misrep.core import RunDir
from misrep.evaluation import probe_table
from misrep.shapes3d import PairSampler, split_by_image
from misrep.shared_exclusive import (PAPER_FACTORS, ExclusiveStage, SEDiscriminator, SharedExclusiveConfig, SharedStage,
                                     adversarial_term, pairing_sensitivity, shuffle_rows, stage_trainer)

TINY = SharedExclusiveConfig(channels=(4, 8, 8, 16), shared_dim=8, exclusive_dim=4, global_convs=(4, 4),
                             critic_hidden=16, disc_hidden=(16, 8))
NB = "30_shapes3d.ipynb"
N_CLASSES = dict(zip(PAPER_FACTORS, (10, 10, 10, 8, 4, 15)))
SHARED = ("scale", "shape", "orientation")


def _fails(tmp_path, match, **params):
    with pytest.raises(NotebookError) as e: run_notebook(NB, tmp_path / "run", device="cpu", **params)
    assert match in str(e.value), str(e.value)[-2000:]
    return e.value


# --- the smoke run -------------------------------------------------------------------------------------------------
def test_smoke_run_outputs(tmp_path):
    out = tmp_path / "run"
    run_notebook(NB, out, profile="smoke", device="cpu")
    cfg = json.loads((out / "config.json").read_text())
    model = cfg["model"]
    assert cfg["profile"] == "smoke" and cfg["steps1"] == 4 and cfg["steps2"] == 4 and cfg["seed"] == 0
    m = pd.read_csv(out / "metrics.csv")
    assert m.step.tolist() == list(range(1, 9))                      # log_every=1: every step, steps completed
    assert m.stage.tolist() == [1] * 4 + [2] * 4
    s1, s2 = m[m.stage == 1], m[m.stage == 2]
    for c in ["s1_loss", "s1_mi_global", "s1_mi_local", "s1_l1"]: assert np.isfinite(s1[c]).all()
    for c in ["s2_loss", "s2_mi_global", "s2_mi_local", "s2_adv", "s2_d_loss", "s2_d_acc"]: assert np.isfinite(s2[c]).all()
    # the JSD bound E_pos[-sp(-T)] - E_neg[sp(T)] is <= 0 whatever the critic, and -log 4 where the critic is ~0 (at
    # initialisation): a sign flip would read +log 4, a bound shifted by log 4 would read 0
    mi = m[["s1_mi_global", "s1_mi_local", "s2_mi_global", "s2_mi_local"]]
    assert np.nanmax(mi.to_numpy()) <= 0
    assert np.allclose(mi.iloc[0, :2], -math.log(4), atol=0.02) and np.allclose(mi.iloc[4, 2:], -math.log(4), atol=0.05)
    # each logged loss is the weighted sum of its logged terms (each MI column is the mean of the two directions)
    np.testing.assert_allclose(s1.s1_loss, -(model["alpha_sh"] * 2 * s1.s1_mi_global + model["beta_sh"] * 2 * s1.s1_mi_local)
                               + model["gamma"] * s1.s1_l1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s2.s2_loss, -(model["alpha_ex"] * 2 * s2.s2_mi_global + model["beta_ex"] * 2 * s2.s2_mi_local)
                               + model["lambda_adv"] * 2 * s2.s2_adv, rtol=1e-5, atol=1e-5)
    # L_adv of a (S, E) pair is E log D + E log(1 - D) <= 0, and 2 log(1/2) for an undecided D
    assert (s2.s2_adv <= 0).all() and np.allclose(s2.s2_adv, 2 * math.log(0.5), atol=0.1)
    assert s2.s2_d_acc.between(0, 1).all()
    t = pd.read_csv(out / "tables" / "probe_accuracy.csv", index_col=0)
    assert list(t.columns) == list(PAPER_FACTORS) + ["distance_to_ideal"]
    for r in ["S_X", "E_X", "S_X (paper)", "E_X (paper)", "S_X - paper", "E_X - paper"]: assert r in t.index
    assert t.loc[["S_X", "E_X"], list(PAPER_FACTORS)].stack().between(0, 100).all()
    assert np.isclose(t.loc["S_X - paper", "shape"], t.loc["S_X", "shape"] - 99.99, atol=0.02)
    # the distance to the ideal table, recomputed from the cells: 100 % where the code must hold the factor, chance
    # where it must not (the cells are rounded to 0.01 %, the distance to 0.01)
    for code in ("S_X", "E_X"):
        ideal = {f: 100.0 if (f in SHARED) == (code == "S_X") else 100.0 / n for f, n in N_CLASSES.items()}
        assert abs(t.loc[code, "distance_to_ideal"] - sum(abs(t.loc[code, f] - ideal[f]) for f in ideal) / 100) < 0.006
    assert (out / "tables" / "probe_accuracy.md").read_text().startswith("|")
    for extra in ("mlp200", "linear"):                                # the same table with the other probes
        e = pd.read_csv(out / "tables" / f"probe_accuracy_{extra}.csv", index_col=0)
        assert list(e.index) == list(t.index) and list(e.columns) == list(t.columns)
        assert e.loc[["S_X", "E_X"], list(PAPER_FACTORS)].stack().between(0, 100).all()
        assert e.loc["S_X (paper)"].equals(t.loc["S_X (paper)"])
    tr = pd.read_csv(out / "tables" / "probe_train_accuracy.csv", index_col=[0, 1])
    assert sorted(tr.index) == sorted((p, c) for p in ("student-size", "mlp200", "linear") for c in ("S_X", "E_X"))
    r = pd.read_csv(out / "tables" / "retrieval.csv", index_col=0)
    assert list(r.index) == ["S_X", "E_X", "random"] and r.stack().between(0, 1).all()
    for f in ["learning_curves", "retrieval"]:
        assert (out / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    for s in (1, 2):
        ck = torch.load(out / "checkpoints" / f"{s}.pt", weights_only=True)
        assert ck["step"] == 4 and ck["total_steps"] == 4 and json.loads(ck["config"])["model"]["gamma"] == model["gamma"]
    assert not any(p.suffix == ".png" for p in (Path(__file__).resolve().parents[1] / "nbs").iterdir())
    # a resume with another setting stops before anything is written, listing the difference
    before = (out / "config.json").read_text()
    _fails(tmp_path, "model.gamma: 0.1 -> 0.3", profile="smoke", gamma=0.3)
    assert (out / "config.json").read_text() == before


# --- bad parameters stop at once with a clear message ----------------------------------------------------------------
def test_unknown_profile(tmp_path):
    _fails(tmp_path, "unknown profile", profile="fast")

def test_missing_data_file(tmp_path):
    _fails(tmp_path, "no such file", profile="smoke", data=str(tmp_path / "3dshapes.h5"))
    assert not (tmp_path / "run" / "config.json").exists()

def test_wrong_layout_file(tmp_path):
    bad = tmp_path / "wrong.h5"
    with h5py.File(bad, "w") as h5: h5["images"] = np.zeros((10, 32, 32, 3), np.uint8); h5["labels"] = np.zeros((10, 6))
    err = _fails(tmp_path, "Shapes3DFormatError", profile="smoke", data=str(bad))
    assert "(N, 64, 64, 3)" in str(err)


# --- the switch of stage 1 -------------------------------------------------------------------------------------------
class BilinearCritic(nn.Module):
    "T(M_i, c_j) = 1e4 <P mean(M_i), c_j>: a critic whose scores depend on both arguments."
    def __init__(self, C, D, local=False):
        super().__init__(); self.P, self.local = torch.randn(D, C, generator=torch.Generator().manual_seed(0)), local
    def forward(self, fmap, code):
        if self.local: return 1e4 * torch.einsum("dc,icl,jd->ijl", self.P, fmap.flatten(2), code)
        return 1e4 * (fmap.mean((2, 3)) @ self.P.T) @ code.T

class SwitchLost(SharedStage):
    "The public-code bug: X's map scored against X's own shared code."
    def scores(self, x, y):
        m_x, s_x = self.encoder(x); m_y, s_y = self.encoder(y)
        return dict(global_xy=self.global_critic(m_x, s_x), global_yx=self.global_critic(m_y, s_y),
                    local_xy=self.local_critic(m_x, s_x), local_yx=self.local_critic(m_y, s_y), s_x=s_x, s_y=s_y)

def _with_bilinear_critics(model):
    C = model.encoder.map_channels
    model.global_critic, model.local_critic = BilinearCritic(C, TINY.shared_dim), BilinearCritic(C, TINY.shared_dim, local=True)
    return model.eval()

def test_switch_pairs_x_map_with_y_code():
    torch.manual_seed(0); x, y = torch.rand(6, 3, 64, 64), torch.rand(6, 3, 64, 64)
    torch.manual_seed(0); good = _with_bilinear_critics(SharedStage(TINY))
    torch.manual_seed(0); bad = _with_bilinear_critics(SwitchLost(TINY))
    # with the switch the MI terms depend on which Y goes with which X; without it they cannot
    assert pairing_sensitivity(good, x, y) > 0.01
    assert pairing_sensitivity(bad, x, y) < 1e-4
    # and the scores are exactly T(M_X, S_Y)
    with torch.no_grad():
        sc = good.scores(x, y); m_x, _ = good.encoder(x); _, s_y = good.encoder(y)
        assert torch.allclose(sc["global_xy"], good.global_critic(m_x, s_y))


# --- training raises the MI estimates (and a sign-flipped objective does not) ------------------------------------------
class SignFlipped(SharedStage):
    "The objective with its sign flipped: minimises the MI terms."
    def forward(self, x, y):
        loss, terms = super().forward(x, y)
        return -loss, terms

def _mi_curve(cls, steps=40):
    "Stage 1 on pairs of images that share a group pattern (visible in the pixels): mean MI estimate per step."
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(8, 3, 64, 64, generator=g)
    group = torch.arange(64) % 8
    imgs = (0.7 * patterns[group] + 0.3 * torch.rand(64, 3, 64, 64, generator=g)).clamp(0, 1)
    cls_ = np.zeros((64, 6), int); cls_[:, 5] = group.numpy()
    sampler = PairSampler(cls_, np.arange(64), seed=0)
    def bfn(step):
        i, j = sampler.batch(step, 16); return imgs[i], imgs[j]
    torch.manual_seed(0); model = cls(TINY)
    tr = stage_trainer(model, bfn, steps, lr=1e-3, log_every=1, show_progress=False)
    tr.fit()
    return np.array([r["s1_mi_global"] + r["s1_mi_local"] for r in tr.history])

def test_training_raises_the_mi_estimates():
    up, down = _mi_curve(SharedStage), _mi_curve(SignFlipped)
    assert abs(up[0] - down[0]) < 1e-6                                   # same start
    assert up[-5:].mean() > up[0] + 0.1, up                               # the estimates rise ...
    assert down[-5:].mean() < down[0], down                               # ... and fall when the sign is flipped


# --- the shuffling in the discriminator --------------------------------------------------------------------------------
def test_discriminator_sees_shuffled_exclusive_codes():
    torch.manual_seed(0); st1 = SharedStage(TINY); st2 = ExclusiveStage(st1.encoder, TINY)
    seen = []
    orig = st2.discriminator.forward
    st2.discriminator.forward = lambda s, e: (seen.append((s.clone(), e.clone())), orig(s, e))[1]
    x, y = torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64)
    _, _, codes = st2(x, y, torch.Generator().manual_seed(0))
    (s_real, e_real), (s_fake, e_fake) = seen[0], seen[1]
    assert torch.equal(s_real, s_fake) and torch.equal(s_real, codes[0])       # S kept in place
    assert torch.equal(e_real, codes[1])
    match = (e_fake[:, None] == e_real[None]).all(-1)                             # (8, 8): which real row each fake row is
    assert match.sum(1).eq(1).all() and match.sum(0).eq(1).all()                 # a permutation of the rows ...
    assert not match.diagonal().any()                                            # ... with no row left in place

def _train_disc(s, e, steps=300):
    torch.manual_seed(0); d = SEDiscriminator(s.shape[1] + e.shape[1], (32, 16)); opt = torch.optim.Adam(d.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = -adversarial_term(d, s, e, g); opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        return ((d(s, e) > 0).float().mean() + (d(s, shuffle_rows(e, g)) < 0).float().mean()).item() / 2

def test_discriminator_detects_dependence_only():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(256, 2, generator=g)
    assert _train_disc(s, s.clone()) > 0.85                                 # E = S: joint vs shuffled is easy
    assert _train_disc(s, torch.randn(256, 2, generator=g)) < 0.7           # E independent of S: near chance


# --- probes: train and test images disjoint ---------------------------------------------------------------------------
def test_split_pairs_and_probes_are_disjoint():
    rng = np.random.default_rng(0)
    cls = np.stack([rng.integers(0, n, 3000) for n in (10, 10, 10, 8, 4, 15)], 1)
    tr, te = split_by_image(cls, 0.2, seed=0)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 3000
    i, j = PairSampler(cls, tr, seed=0).batch(0, 5000)
    assert np.isin(i, tr).all() and np.isin(j, tr).all() and not np.isin(np.r_[i, j], te).any()
    z = torch.randn(3000, 4)
    with pytest.raises(ValueError, match="both"):
        probe_table({"z": z[tr]}, cls[tr], {"z": z[tr[:50]]}, cls[tr[:50]], PAPER_FACTORS, train_ids=tr, test_ids=tr[:50], epochs=1)


# --- exact resume: N steps vs N/2 + resume, both stages, CPU -----------------------------------------------------------
def _both_stages(path, stop1=None, stop2=None, n=6):
    imgs = torch.rand(48, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cls = np.stack([np.arange(48) % 10, np.arange(48) % 7, np.arange(48) % 3, np.arange(48) % 2, np.zeros(48, int), np.zeros(48, int)], 1)
    sampler = PairSampler(cls, np.arange(48), seed=0)
    def bfn(step):
        i, j = sampler.batch(step, 8); return imgs[i], imgs[j]
    run, kw = RunDir(path), dict(log_every=1, ckpt_every=2, show_progress=False)
    torch.manual_seed(0); st1 = SharedStage(TINY)
    if stage_trainer(st1, bfn, n, run, lr=1e-3, **kw).fit(stop_at=stop1) < n: return None, run
    torch.manual_seed(1); st2 = ExclusiveStage(st1.encoder, TINY)
    stage_trainer(st2, bfn, n, run, lr=1e-3, disc_lr=1e-3, step_offset=n, **kw).fit(stop_at=stop2)
    return st2, run

# (None, 3): stage 1 finished, stage 2 interrupted; resuming stage 1 must keep the rows stage 2 logged
@pytest.mark.parametrize("stop1,stop2", [(3, None), (None, 3)])
def test_resume_is_exact(tmp_path, stop1, stop2):
    check_two_stage_resume(_both_stages, tmp_path, stop1, stop2)

def test_resume_in_stage2_gives_the_same_weights(tmp_path):
    a, _ = _both_stages(tmp_path / "a")
    _both_stages(tmp_path / "b", stop2=3); b, _ = _both_stages(tmp_path / "b")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()): assert torch.equal(va, vb), k
