"""The one trainer (misrep.train.Trainer) on misrep's real models: N steps give exactly what N/2 steps, a checkpoint and
N/2 resumed steps in a fresh model give, for a GAN, Deep InfoMax and both shared/exclusive stages; checkpoints whose RNG
tensors were mapped off the CPU still resume; a resume with other settings stops before writing anything; a checkpoint
holding a foreign pickled object is refused."""
import dataclasses
import json

import pytest
import torch

from misrep.core import RunDir, load_checkpoint, open_run, resolve_run_config, save_checkpoint
from misrep.train import Trainer


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k


def _resume_matches(build, tmp_path, steps=6, **kw):
    """Train `steps` steps in one go and `steps // 2` + resume (from a freshly built model); compare everything.
    `build(seed)` returns (model, trainer_factory) where trainer_factory(run) -> Trainer."""
    m1, make1 = build(0)
    make1(RunDir(tmp_path / "full")).fit()
    m2, make2 = build(0)
    assert make2(RunDir(tmp_path / "half")).fit(stop_at=steps // 2) == steps // 2
    m3, make3 = build(123)                       # other initial weights: only the checkpoint can make it equal
    assert make3(RunDir(tmp_path / "half")).fit() == steps
    _assert_same(_params(m1), _params(m3))
    full, half = RunDir(tmp_path / "full").metrics(), RunDir(tmp_path / "half").metrics()
    assert full.equals(half), (full, half)
    assert full.step.tolist() == list(range(1, steps + 1))


# ---------------------------------------------------------------- a GAN (with Bi-InfoGAN's noise layers: global RNG)
def _mnist_like(n=64, seed=0):
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["infogan", "bi_infogan"])
def test_gan_resume_is_exact(tmp_path, family):
    from misrep.infogan import InfoGAN, InfoGANArch, InfoGANConfig, gan_trainer
    from misrep.bi_infogan import BiArch, BiInfoGAN, BiInfoGANConfig
    x = _mnist_like()
    def build(init_seed):
        torch.manual_seed(init_seed)
        m = (InfoGAN(InfoGANConfig(arch=InfoGANArch.small(16))) if family == "infogan"
             else BiInfoGAN(BiInfoGANConfig(arch=BiArch.small(16))))
        return m, lambda run: gan_trainer(m, x, 6, 8, run, seed=5, log_every=1, ckpt_every=100, show_progress=False)
    _resume_matches(build, tmp_path)


# ---------------------------------------------------------------- both shared/exclusive stages
def test_shared_exclusive_stages_resume_exactly(tmp_path):
    from misrep.shared_exclusive import ExclusiveStage, SharedExclusiveConfig, SharedStage, stage_trainer
    cfg = SharedExclusiveConfig(channels=(4, 8, 8, 8), shared_dim=4, exclusive_dim=4, global_convs=(4, 4),
                                critic_hidden=8, disc_hidden=(8, 4))
    imgs = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    def batch_fn(t):
        g = torch.Generator().manual_seed(t)
        return imgs[torch.randint(0, 16, (4,), generator=g)], imgs[torch.randint(0, 16, (4,), generator=g)]
    def build1(init_seed):
        torch.manual_seed(init_seed); m = SharedStage(cfg)
        return m, lambda run: stage_trainer(m, batch_fn, 4, run, lr=1e-3, seed=1, log_every=1, show_progress=False)
    _resume_matches(build1, tmp_path / "s1", steps=4)
    torch.manual_seed(0); enc = SharedStage(cfg).encoder
    def build2(init_seed):
        torch.manual_seed(init_seed); m = ExclusiveStage(enc, cfg)
        return m, lambda run: stage_trainer(m, batch_fn, 4, run, lr=1e-3, seed=1, log_every=1, show_progress=False)
    _resume_matches(build2, tmp_path / "s2", steps=4)


# ---------------------------------------------------------------- Deep InfoMax
def test_dim_resume_is_exact(tmp_path):
    from misrep.dim import DIM_PROFILES, DIMRunConfig, dim_trainer
    cfg = resolve_run_config(DIMRunConfig, "smoke", DIM_PROFILES, max_steps=6, batch_size=8, embed_dim=16, fc_dim=32,
                             code_dim=8, objective="local", estimator="infonce", out_dir=str(tmp_path / "unused"))
    x = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (48,), generator=torch.Generator().manual_seed(1))
    def build(init_seed):
        holder = {}
        def make(run):
            tr = dim_trainer(cfg, x, y, run, device="cpu", show_progress=False)
            if init_seed:                          # other initial weights: only the checkpoint can make it equal
                with torch.no_grad():
                    for p in tr.modules["model"].parameters(): p.normal_()
            holder["model"] = tr.modules["model"]
            return tr
        return holder, make
    h1, make1 = build(0); make1(RunDir(tmp_path / "full")).fit()
    h2, make2 = build(0); assert make2(RunDir(tmp_path / "half")).fit(stop_at=3) == 3
    h3, make3 = build(1); assert make3(RunDir(tmp_path / "half")).fit() == 6
    _assert_same(_params(h1["model"]), _params(h3["model"]))
    assert RunDir(tmp_path / "full").metrics().equals(RunDir(tmp_path / "half").metrics())


# ---------------------------------------------------------------- RNG states mapped off the CPU
class _OffCPU:
    "Stands for a tensor that a map_location moved off the CPU: only .cpu() gives a tensor the RNG setters accept."
    def __init__(self, t): self.t = t
    def cpu(self): return self.t


def _toy(seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(net.parameters(), 0.1)
    def step(t, g):
        x = torch.randn(8, 3, generator=g); loss = net(x).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step(); return {"loss": loss.detach()}
    return net, opt, step


def test_checkpoint_with_rng_tensors_off_the_cpu_still_resumes(tmp_path, monkeypatch):
    net, opt, step = _toy(0)
    Trainer(step, {"net": net}, {"opt": opt}, 4, RunDir(tmp_path / "a"), tag="t", log_every=1, show_progress=False).fit()
    net2, opt2, step2 = _toy(0)
    run = RunDir(tmp_path / "b")
    Trainer(step2, {"net": net2}, {"opt": opt2}, 4, run, tag="t", log_every=1, show_progress=False).fit(stop_at=2)
    import misrep.train as mt
    real_load = mt.load_checkpoint
    def load_off_cpu(path, map_location="cpu"):
        ck = real_load(path, map_location)
        ck["rng"]["torch"] = _OffCPU(ck["rng"]["torch"])
        ck["rng"]["numpy"] = (ck["rng"]["numpy"][0], _OffCPU(ck["rng"]["numpy"][1]), *ck["rng"]["numpy"][2:])
        ck["rng"]["cuda"] = [_OffCPU(s) for s in ck["rng"]["cuda"]]
        return ck
    monkeypatch.setattr(mt, "load_checkpoint", load_off_cpu)
    net3, opt3, step3 = _toy(7)
    Trainer(step3, {"net": net3}, {"opt": opt3}, 4, run, tag="t", log_every=1, show_progress=False).fit()
    _assert_same(_params(net), _params(net3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to map a checkpoint onto")
def test_checkpoint_loaded_onto_cuda_resumes(tmp_path):
    net, opt, step = _toy(0)
    run = RunDir(tmp_path / "c")
    tr = Trainer(step, {"net": net}, {"opt": opt}, 4, run, tag="t", show_progress=False); tr.fit(stop_at=2)
    net2, opt2, step2 = _toy(1)
    tr2 = Trainer(step2, {"net": net2}, {"opt": opt2}, 4, run, tag="t", show_progress=False)
    assert tr2.load(map_location="cuda") and tr2.step == 2


# ---------------------------------------------------------------- settings and foreign checkpoints
def test_resume_with_a_changed_setting_lists_it_and_writes_nothing(tmp_path):
    from misrep.staircase import PROFILES, StaircaseConfig
    cfg = resolve_run_config(StaircaseConfig, "smoke", PROFILES, out_dir=str(tmp_path / "r"))
    run = open_run(cfg)
    save_checkpoint({"step": 1}, run.checkpoint("staircase"))
    before = (run.path / "config.json").read_bytes()
    changed = resolve_run_config(StaircaseConfig, "smoke", PROFILES, out_dir=str(tmp_path / "r"), lr=0.5, hidden=3)
    with pytest.raises(ValueError) as e: open_run(changed)
    assert "lr: 0.001 -> 0.5" in str(e.value) and "hidden: 16 -> 3" in str(e.value)
    assert (run.path / "config.json").read_bytes() == before
    # the trainer checks the checkpoint's own copy of the config too (a config.json overwritten by hand)
    net, opt, step = _toy(0)
    Trainer(step, {"net": net}, {"opt": opt}, 2, run, tag="t", config=cfg, show_progress=False).fit()
    t = Trainer(step, {"net": net}, {"opt": opt}, 2, run, tag="t", config=changed, show_progress=False)
    with pytest.raises(ValueError, match="lr: 0.001 -> 0.5"): t.fit()


def test_a_checkpoint_holding_a_foreign_pickled_object_is_refused(tmp_path):
    class Foreign:
        def __reduce__(self): return (exec, ("raise SystemExit('this would have run')",))
    run = RunDir(tmp_path)
    torch.save({"format": "misrep-trainer-1", "payload": Foreign()}, run.checkpoint("t"))
    net, opt, step = _toy(0)
    t = Trainer(step, {"net": net}, {"opt": opt}, 2, run, tag="t", show_progress=False)
    with pytest.raises(RuntimeError, match="Refused to open"): t.fit()
