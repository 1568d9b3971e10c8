"""The `negatives` setting of the pair-scoring critics (misrep issue 11, item 1): "all" is bit-identical to the code
before the setting existed; K drawn negatives never include the positive, match "all" in expectation, resume exactly,
and bad settings stop with a ValueError."""
import dataclasses
import math
import subprocess
import sys
import tarfile
import io
from pathlib import Path

import pytest
import torch

from misrep.blocks import score_pairs
from misrep.core import RunDir, resolve_run_config
from misrep.dim import DIM_PROFILES, DIMConfig, DIMRunConfig, DeepInfoMax, dim_optimizers, dim_update, make_prior_discriminator
from misrep.estimators import check_negatives, jsd_bound, sample_negatives
from misrep.shared_exclusive import (SHAPES3D_PROFILES, ExclusiveStage, SharedExclusiveConfig, SharedStage,
                                     Shapes3DRunConfig, stage_trainer)
from misrep.train import Trainer

REPO = Path(__file__).resolve().parents[1]
BASE = "ede4a17"  # the last commit before the negatives setting: its all-pairs code is the reference

TINY = dict(channels=(4, 8, 8, 16), shared_dim=8, exclusive_dim=4, global_convs=(4, 4), critic_hidden=16, disc_hidden=(16, 8))

# The same few training steps, run by the code under test and by BASE's code (in a subprocess): every weight, and
# every statistic of the last step, must be equal to the bit.
STEPS_SCRIPT = r'''
import sys, torch, misrep
torch.set_num_threads(1)
assert misrep.__file__.startswith(sys.argv[2]), (misrep.__file__, sys.argv[2])   # the checkout asked for
from misrep.shared_exclusive import SharedExclusiveConfig, SharedStage, ExclusiveStage, stage_trainer
from misrep.dim import DIMConfig, DeepInfoMax, dim_optimizers, dim_update, make_prior_discriminator
from misrep.colored_mnist_model import ColoredMNISTModelConfig, TwoDomainSharedStage, TwoDomainExclusiveStage
out = {}
imgs = torch.rand(32, 3, 64, 64, generator=torch.Generator().manual_seed(0))
def batch_fn(t):
    i, j = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(t)); return imgs[i], imgs[j]
def cm_batch(t):
    x, y = batch_fn(t); return x[:, :, :28, :28], y[:, :, 30:58, 30:58]
cfg = SharedExclusiveConfig(channels=(4, 8, 8, 16), shared_dim=8, exclusive_dim=4, global_convs=(4, 4), critic_hidden=16, disc_hidden=(16, 8))
cm = ColoredMNISTModelConfig(channels=(4, 8, 8), shared_dim=8, global_convs=(4, 4), critic_hidden=16, disc_hidden=(16, 8))
for name, S1, S2, c, bf in [("se", SharedStage, ExclusiveStage, cfg, batch_fn), ("cm", TwoDomainSharedStage, TwoDomainExclusiveStage, cm, cm_batch)]:
    torch.manual_seed(0); s1 = S1(c)
    stage_trainer(s1, bf, 3, None, lr=1e-3, log_every=1, show_progress=False).fit()
    torch.manual_seed(1); s2 = S2(s1.encoder, c) if name == "se" else S2(s1.encoder, s1.encoder_y, c)
    stage_trainer(s2, bf, 3, None, lr=1e-3, disc_lr=1e-3, log_every=1, show_progress=False).fit()
    out[name + "1"], out[name + "2"] = s1.state_dict(), s2.state_dict()
for est, critic in [("jsd", "concat"), ("infonce", "dot"), ("dv", "concat")]:
    torch.manual_seed(0)
    m = DeepInfoMax(DIMConfig("local+global", est, critic, embed_dim=16, critic_hidden=8, prior_hidden=(8, 4)))
    d = make_prior_discriminator(m.cfg); opts = dim_optimizers(m, d)
    for t in range(3):
        st = dim_update(m, d, opts, imgs[t * 8:(t + 1) * 8, :, 16:48, 16:48], generator=torch.Generator().manual_seed(t))
    out["dim_" + est] = {**m.state_dict(), **{"d." + k: v for k, v in d.state_dict().items()}, **{"stat." + k: v for k, v in st.items()}}
torch.save(out, sys.argv[1])
'''


def _run_steps(pythonpath: Path, out: Path) -> dict:
    env = {"PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", STEPS_SCRIPT, str(out), str(pythonpath)], check=True, env=env, cwd=out.parent)
    return torch.load(out, weights_only=True)


@pytest.mark.slow   # a guard of one landed change (two processes, ~25 s); the expectation test below runs every time
def test_all_is_bit_identical_to_the_code_before_the_setting(tmp_path):
    try:
        blob = subprocess.run(["git", "-C", str(REPO), "archive", BASE, "misrep"], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"commit {BASE} not available through git ({e})")
    (tmp_path / "base").mkdir(); (tmp_path / "new").mkdir()
    tarfile.open(fileobj=io.BytesIO(blob)).extractall(tmp_path / "base")
    old = _run_steps(tmp_path / "base", tmp_path / "base" / "out.pt")
    new = _run_steps(REPO, tmp_path / "new" / "out.pt")
    assert sorted(old) == sorted(new)
    for part in old:
        assert sorted(old[part]) == sorted(new[part]), part
        for k in old[part]:
            assert torch.equal(old[part][k], new[part][k]), f"{part}: {k} differs from {BASE}'s"


def test_negatives_never_the_positive_and_distinct():
    g = torch.Generator().manual_seed(0)
    for B in (2, 3, 8, 64):
        for K in sorted({1, B // 2 or 1, B - 1}):
            for _ in range(50):
                idx = sample_negatives(B, K, g)
                assert idx.shape == (B, K)
                assert (idx != torch.arange(B)[:, None]).all()
                assert (idx.sort(1).values.diff(1) > 0).all() if K > 1 else True   # distinct within a row


def _stage_mi(model, x, y, g=None):
    with torch.no_grad():
        _, t = model(x, y, g)
    return torch.stack([t["mi_global"], t["mi_local"]])


def test_sampled_negatives_match_all_in_expectation():
    """Stage 1 of a tiny shared/exclusive model: with K = B - 1 the terms equal "all"'s (up to summation order); with
    K = 2 of B = 8 the JSD terms average to "all"'s over 400 draws (within 4 standard errors)."""
    torch.manual_seed(0)
    cfg = SharedExclusiveConfig(**TINY)
    full = SharedStage(cfg).eval()
    x, y = torch.rand(8, 3, 64, 64), torch.rand(8, 3, 64, 64)
    want = _stage_mi(full, x, y)
    for K in (7, 2):
        mk = SharedStage(dataclasses.replace(cfg, negatives=K)).eval(); mk.load_state_dict(full.state_dict())
        g = torch.Generator().manual_seed(1)
        if K == 7:
            torch.testing.assert_close(_stage_mi(mk, x, y, g), want, rtol=0, atol=1e-6)
            continue
        draws = torch.stack([_stage_mi(mk, x, y, g) for _ in range(400)])
        se = draws.std(0) / math.sqrt(len(draws))
        assert (draws.std(0) > 0).all()                       # the draws do vary
        assert ((draws.mean(0) - want).abs() < 4 * se + 1e-6).all(), (draws.mean(0), want, se)


def test_dim_k_equal_b_minus_1_is_all():
    x = torch.rand(6, 3, 32, 32)
    for est in ("jsd", "infonce", "dv"):
        torch.manual_seed(0)
        cfg = DIMConfig("local+global", est, "concat", gamma=0., critic_hidden=8)
        ma = DeepInfoMax(cfg).eval(); mk = DeepInfoMax(dataclasses.replace(cfg, negatives=5)).eval()
        mk.load_state_dict(ma.state_dict())
        from misrep.dim import dim_loss
        with torch.no_grad():
            _, sa, _ = dim_loss(ma, None, x); _, sk, _ = dim_loss(mk, None, x, generator=torch.Generator().manual_seed(0))
        for k in ("mi_global", "mi_local"): torch.testing.assert_close(sk[k], sa[k], rtol=0, atol=1e-5)


def _images(t):
    imgs = torch.rand(24, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    i, j = torch.randint(0, 24, (2, 8), generator=torch.Generator().manual_seed(t))
    return imgs[i], imgs[j]


def _fit_stages(path: Path, negatives, stop1=None, stop2=None, stage2=True):
    cfg = SharedExclusiveConfig(**TINY, negatives=negatives)
    torch.manual_seed(0); s1 = SharedStage(cfg)
    r1, r2 = RunDir(path / "s"), RunDir(path / "e")
    stage_trainer(s1, _images, 4, r1, lr=1e-3, log_every=1, ckpt_every=2, show_progress=False).fit(stop_at=stop1)
    if not stage2: return s1, None, r1, None
    torch.manual_seed(1); s2 = ExclusiveStage(s1.encoder, cfg)
    stage_trainer(s2, _images, 4, r2, lr=1e-3, disc_lr=1e-3, log_every=1, ckpt_every=2, show_progress=False).fit(stop_at=stop2)
    return s1, s2, r1, r2


def test_exact_resume_with_one_negative(tmp_path):
    """K = 1: 4 steps of each stage straight, against 2 steps, fresh objects, and a resume to 4: equal to the bit."""
    a1, a2, ra1, ra2 = _fit_stages(tmp_path / "a", 1)
    _fit_stages(tmp_path / "b", 1, stop1=2, stage2=False)          # interrupted in stage 1
    _fit_stages(tmp_path / "b", 1, stop2=2)                         # resumed, then interrupted in stage 2
    b1, b2, rb1, rb2 = _fit_stages(tmp_path / "b", 1)               # resumed to the end
    for a, b in ((a1, b1), (a2, b2)):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()): assert torch.equal(va, vb), k
    for ra, rb in ((ra1, rb1), (ra2, rb2)): assert ra.metrics().values.tolist() == rb.metrics().values.tolist()
    # the negatives are drawn: K = 1 trains differently from "all"
    c1, *_ = _fit_stages(tmp_path / "c", "all", stage2=False)
    assert any(not torch.equal(v, c1.state_dict()[k]) for k, v in a1.state_dict().items() if v.is_floating_point())


def test_exact_resume_dim_with_one_negative(tmp_path):
    imgs = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    def fit(path, stop_at=None):
        torch.manual_seed(0)
        m = DeepInfoMax(DIMConfig("local+global", "infonce", "concat", critic_hidden=8, prior_hidden=(8, 4), negatives=1))
        d = make_prior_discriminator(m.cfg); opts = dim_optimizers(m, d)
        step = lambda t, g: dim_update(m, d, opts, imgs[t * 8:(t + 1) * 8], generator=g)
        Trainer(step, {"model": m, "disc": d}, opts, 4, RunDir(path), tag="dim", log_every=1, ckpt_every=2,
                show_progress=False).fit(stop_at=stop_at)
        return m
    a = fit(tmp_path / "a"); fit(tmp_path / "b", stop_at=2); b = fit(tmp_path / "b")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()): assert torch.equal(va, vb), k


def test_bad_settings_are_refused():
    for bad, msg in [(0, "K >= 1"), (-2, "K >= 1"), ("some", "'all' or an integer"), ("1", "'all' or an integer"),
                     (2.0, "'all' or an integer"), (True, "'all' or an integer")]:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(")): check_negatives(bad)
        with pytest.raises(ValueError): SharedExclusiveConfig(negatives=bad)
        with pytest.raises(ValueError): DIMConfig(negatives=bad)
    with pytest.raises(ValueError, match=r"K <= B - 1 = 7"):
        resolve_run_config(Shapes3DRunConfig, "smoke", SHAPES3D_PROFILES, negatives=8)
    with pytest.raises(ValueError, match=r"K <= B - 1 = 15"):
        resolve_run_config(DIMRunConfig, "smoke", DIM_PROFILES, negatives=16)
    # a batch smaller than the configured K stops at the step, with the same message
    st = SharedStage(SharedExclusiveConfig(**TINY, negatives=4))
    with pytest.raises(ValueError, match=r"K <= B - 1 = 3"): st(torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64))
    # defaults: "all" everywhere, and run names change only for a non-default setting
    for prof in SHAPES3D_PROFILES: assert resolve_run_config(Shapes3DRunConfig, prof, SHAPES3D_PROFILES).model.negatives == "all"
    for prof in DIM_PROFILES: assert resolve_run_config(DIMRunConfig, prof, DIM_PROFILES).model.negatives == "all"
    assert "_neg" not in resolve_run_config(DIMRunConfig, "smoke", DIM_PROFILES).out_dir
    assert "local_infonce_dot_neg1" in resolve_run_config(DIMRunConfig, "smoke", DIM_PROFILES, negatives=1).out_dir
