"""Deep InfoMax (misrep.dim, nbs/32_dim.ipynb, nbs/32a_dim_table.ipynb): the critics' score layout, the bounds on them,
the adversarial prior, the trainer (exact resume, the paper profile for 2 steps), probes on held-out images only,
the validation split, and smoke runs of the experiment notebooks."""
import copy
import dataclasses
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_DATA, NotebookError, run_notebook, write_fake_mnist
from misrep import evaluation
from misrep.core import DataNotFoundError, RunDir, resolve_run_config
from misrep.dim import (DIM_PROFILES, DIMConfig, DIMRunConfig, DeepInfoMax, dim_features, dim_loss, dim_optimizers,
                        dim_probes, dim_splits, dim_trainer, dim_update, discriminator_loss, encoder_prior_loss,
                        make_prior_discriminator, sample_prior, validation_split)
from misrep.estimators import dv_bound, infonce_bound, jsd_bound

HAS_MNIST = (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


@pytest.fixture(autouse=True)
def _one_thread():
    "Small tensors: one thread is much faster than two on the shared CPU."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(objective="local", **kw):
    kw = {"estimator": "jsd", "critic": "dot", "in_channels": 1, "embed_dim": 32, "critic_hidden": 16, "prior_hidden": (16, 8), **kw}
    return DIMConfig(objective, **kw)


# ---------------------------------------------------------------- positives on the diagonal only

@pytest.mark.parametrize("critic", ["dot", "concat"])
def test_local_scores_positives_on_diagonal(critic):
    torch.manual_seed(0)
    m = DeepInfoMax(_tiny("local+global", critic=critic)).eval()
    x = torch.rand(5, 1, 32, 32)
    with torch.no_grad():
        f = m(x)
        # scores[i, j, l] pairs location l of image i with the code of image j: permuting the codes permutes axis 1
        perm = torch.tensor([3, 0, 4, 1, 2])
        loc_p = m.local_critic(f["local"], f["y"][perm]); glob_p = m.global_critic(f["conv"], f["y"][perm])
        # the diagonal holds the same-image pairs, computed for aligned pairs only
        glob_pair, loc_pair = m.global_critic.pair(f["conv"], f["y"]), m.local_critic.pair(f["local"], f["y"])
    torch.testing.assert_close(loc_p, f["local_scores"][:, perm], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(glob_p, f["global_scores"][:, perm], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f["global_scores"].diagonal(), glob_pair, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f["local_scores"].diagonal().T, loc_pair, rtol=1e-4, atol=1e-5)


def test_dim_loss_is_the_bound_on_the_critics_scores():
    torch.manual_seed(0)
    for est, bound in [("jsd", jsd_bound), ("dv", dv_bound), ("infonce", infonce_bound)]:
        m = DeepInfoMax(_tiny("local+global", estimator=est)); d = make_prior_discriminator(m.cfg)
        x = torch.rand(6, 1, 32, 32)
        m.eval()  # same BN statistics in both passes
        loss, stats, f = dim_loss(m, d, x)
        torch.testing.assert_close(stats["mi_local"], bound(f["local_scores"]))
        torch.testing.assert_close(stats["mi_global"], bound(f["global_scores"]))
        want = -0.5 * bound(f["global_scores"]) - bound(f["local_scores"]) + 0.1 * encoder_prior_loss(d, f["y"])
        torch.testing.assert_close(loss, want)


@pytest.mark.parametrize("shape", [(5, 5), (5, 5, 7)])
def test_jsd_excludes_positives_from_negatives(shape):
    a, b = 2.0, -0.5
    S = torch.full(shape, b); S[torch.arange(5), torch.arange(5)] = a
    want = -F.softplus(torch.tensor(-a)) - F.softplus(torch.tensor(b))
    torch.testing.assert_close(jsd_bound(S), want)  # with positives among the negatives it would be lower
    included = -F.softplus(torch.tensor(-a)) - (F.softplus(torch.tensor(a)) + 4 * F.softplus(torch.tensor(b))) / 5
    assert abs(float(jsd_bound(S) - included)) > 0.1


@pytest.mark.parametrize("shape", [(5, 5), (5, 5, 7)])
def test_dv_uses_the_diagonal_only(shape):
    a, b = 3.0, 1.0
    S = torch.full(shape, b); S[torch.arange(5), torch.arange(5)] = a
    torch.testing.assert_close(dv_bound(S), torch.tensor(a - b))  # the broadcasting bug averages all pairs: (a+4b)/5 - b


def test_infonce_masks_same_image_pairs_with_minus_inf():
    B, L = 4, 6
    torch.manual_seed(0)
    S = torch.randn(B, B, L)
    # a common shift leaves a softmax unchanged only if masked entries are -inf, not a finite constant
    torch.testing.assert_close(infonce_bound(S - 1e4), infonce_bound(S), rtol=0, atol=1e-3)
    torch.testing.assert_close(infonce_bound(S + 1e4), infonce_bound(S), rtol=0, atol=1e-3)
    # candidates per (code, location): its positive and the (B-1) L locations of the other images, never its own
    flat, top = torch.zeros(B, B, L), torch.zeros(B, B, L)
    top[torch.arange(B), torch.arange(B)] = 60.0
    torch.testing.assert_close(infonce_bound(top) - infonce_bound(flat), torch.tensor(math.log(1 + (B - 1) * L)))
    # raising a same-image score at another location must not lower the bound (it is not a negative)
    S2 = S.clone(); S2[0, 0, 1] += 5.0
    assert infonce_bound(S2) > infonce_bound(S)


# ---------------------------------------------------------------- the adversarial prior

def test_prior_discriminator_has_its_own_optimiser_and_pulls_against_the_encoder():
    torch.manual_seed(0)
    m = DeepInfoMax(_tiny("global", gamma=1.0, lr=1e-3, disc_lr=1e-3)); d = make_prior_discriminator(m.cfg)
    opts = dim_optimizers(m, d)
    ids = lambda o: {id(p) for g in o.param_groups for p in g["params"]}
    assert ids(opts["model"]).isdisjoint({id(p) for p in d.parameters()})
    assert ids(opts["disc"]) == {id(p) for p in d.parameters()} and opts["disc"].param_groups[0]["lr"] == 1e-3
    # with the encoder fixed, D's own steps lower D's loss ...
    x = torch.rand(16, 1, 32, 32); m.eval()
    with torch.no_grad(): yfix = m.encoder(x)["y"]
    z = sample_prior(16, 64, generator=torch.Generator().manual_seed(0))
    l0 = discriminator_loss(d, yfix, z).item()
    for _ in range(20):
        l = discriminator_loss(d, yfix, z); opts["disc"].zero_grad(); l.backward(); opts["disc"].step()
    assert discriminator_loss(d, yfix, z).item() < l0
    # ... and the encoder's steps on the prior term raise D's logit on its codes (fool D)
    opt_e = torch.optim.Adam(m.encoder.parameters(), lr=1e-3)
    with torch.no_grad(): before = float(d(torch.sigmoid(m.encoder(x)["y"])).mean())
    for _ in range(5):
        l = encoder_prior_loss(d, m.encoder(x)["y"]); opt_e.zero_grad(); l.backward(); opt_e.step()
    with torch.no_grad(): after = float(d(torch.sigmoid(m.encoder(x)["y"])).mean())
    assert after > before


def test_update_discriminator_ignores_the_encoders_gradients():
    torch.manual_seed(0)
    m = DeepInfoMax(_tiny("local", gamma=1.0, lr=1e-3, disc_lr=1e-3)); d = make_prior_discriminator(m.cfg)
    m2, d2 = copy.deepcopy(m), copy.deepcopy(d)
    opts, opts2 = dim_optimizers(m, d), dim_optimizers(m2, d2)
    x = torch.rand(8, 1, 32, 32)
    out = dim_update(m, d, opts, x, generator=torch.Generator().manual_seed(5))
    # by hand: encoder step, then a D step from D's loss alone on the detached codes
    loss, _, f = dim_loss(m2, d2, x)
    opts2["model"].zero_grad(); loss.backward(); opts2["model"].step()
    prior = sample_prior(8, 64, generator=torch.Generator().manual_seed(5))
    d2.zero_grad(set_to_none=True)
    dl = discriminator_loss(d2, f["y"], prior); dl.backward(); opts2["disc"].step()
    for p, q in zip([*d.parameters(), *m.parameters()], [*d2.parameters(), *m2.parameters()]): torch.testing.assert_close(p, q)
    torch.testing.assert_close(out["disc_loss"], dl.detach())


@pytest.mark.parametrize("objective", ["global", "local", "local+global"])
@pytest.mark.parametrize("estimator", ["jsd", "dv", "infonce"])
@pytest.mark.parametrize("critic", ["dot", "concat"])
def test_every_configuration_trains(objective, estimator, critic):
    torch.manual_seed(0)
    m = DeepInfoMax(_tiny(objective, estimator=estimator, critic=critic)); d = make_prior_discriminator(m.cfg)
    before = copy.deepcopy(m.state_dict())
    out = dim_update(m, d, dim_optimizers(m, d), torch.rand(4, 1, 32, 32))
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    a, b, _ = m.cfg.weights()
    assert ("mi_global" in out) == (a > 0) and ("mi_local" in out) == (b > 0)
    assert not torch.equal(before["encoder.code.weight"], m.state_dict()["encoder.code.weight"])  # the encoder moved


def test_supervised_objective_learns_a_separable_task():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    x = 0.3 * torch.rand(64, 1, 32, 32, generator=g) + 0.6 * labels.view(-1, 1, 1, 1)  # dark vs bright images
    m = DeepInfoMax(_tiny("supervised", lr=1e-3, n_classes=2)); opts = dim_optimizers(m, None)
    assert set(opts) == {"model"} and make_prior_discriminator(m.cfg) is None
    first = dim_update(m, None, opts, x, labels)
    for _ in range(15): last = dim_update(m, None, opts, x, labels)
    assert last["xent"] < 0.5 * first["xent"] and last["batch_acc"] == 1.0


# ---------------------------------------------------------------- the trainer

def _images(n=48, c=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10


@pytest.mark.parametrize("objective", ["local", "supervised"])
def test_dim_trainer_resumes_exactly(tmp_path, objective):
    imgs, labs = _images()
    cfg = DIMRunConfig(dataset="mnist", epochs=2, batch_size=8, log_every=2, ckpt_every=100, device="cpu",
                       model=_tiny(objective, estimator="infonce", gamma=None))
    whole = dim_trainer(cfg, imgs, labs, show_progress=False); assert whole.fit() == 12
    first = dim_trainer(cfg, imgs, labs, RunDir(tmp_path), show_progress=False); assert first.fit(stop_at=7) == 7
    second = dim_trainer(cfg, imgs, labs, RunDir(tmp_path), show_progress=False); assert second.fit() == 12
    for name in whole.modules:
        a, b = whole.modules[name].state_dict(), second.modules[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert whole.history[-1] == second.history[-1]
    assert RunDir(tmp_path).metrics()["step"].tolist() == [2, 4, 6, 8, 10, 12]
    # a resume with another learning rate stops, listing the difference
    other_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, lr=1e-3))
    other = dim_trainer(other_cfg, imgs, labs, RunDir(tmp_path), show_progress=False)
    with pytest.raises(ValueError, match=r"model.lr: 0.0001 -> 0.001"):
        other.fit()


def test_paper_profile_two_iterations_on_cpu(tmp_path):
    cfg = resolve_run_config(DIMRunConfig, "paper", DIM_PROFILES, dataset="cifar10", device="cpu", max_steps=2,
                             out_dir=str(tmp_path))
    assert (cfg.epochs, cfg.batch_size, cfg.model.lr, cfg.model.disc_lr, cfg.model.embed_dim) == (1000, 64, 1e-4, 1e-4, 2048)
    assert cfg.model.weights() == (0.0, 1.0, 0.1) and cfg.model.in_channels == 3 and cfg.val_size == 0
    imgs, labs = _images(128, 3)
    tr = dim_trainer(cfg, imgs, labs, RunDir(tmp_path), show_progress=False)
    assert tr.steps == 2 and tr.modules["model"].local_critic.embed_x.norm.normalized_shape == (2048,)
    before = copy.deepcopy(tr.modules["model"].state_dict())
    assert tr.fit() == 2
    row = RunDir(tmp_path).metrics().iloc[-1]
    assert row["step"] == 2 and all(math.isfinite(row[k]) for k in ("loss", "mi_local", "prior_encoder", "disc_loss"))
    assert row["mi_local"] <= math.log(1 + 63 * 64)  # infoNCE's local ceiling at B = 64
    after = tr.modules["model"].state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight") and "norm" not in k)
    ck = torch.load(tmp_path / "checkpoints" / "dim.pt", weights_only=True)
    assert ck["step"] == 2 and json.loads(ck["config"])["model"]["embed_dim"] == 2048


# ---------------------------------------------------------------- probing the frozen encoder

def test_probes_never_see_held_out_images_in_training(monkeypatch):
    torch.manual_seed(0)
    enc = DeepInfoMax(_tiny()).encoder
    x_tr = torch.randint(0, 128, (12, 1, 32, 32), dtype=torch.uint8)     # dark training images
    x_te = torch.randint(128, 256, (7, 1, 32, 32), dtype=torch.uint8)    # bright held-out images
    y_tr, y_te = torch.arange(12) % 3, torch.arange(7) % 3
    f_tr, f_te = dim_features(enc, x_tr), dim_features(enc, x_te)
    calls = []

    def spy(train_x, train_y, test_x, test_y, kind="linear", **kw):
        calls.append((train_x, train_y, test_x, test_y, kind, kw))
        return type("R", (), {"train_acc": 0.5, "test_acc": 0.25})()

    monkeypatch.setattr(evaluation, "fit_probe", spy)
    test, train = dim_probes(f_tr, y_tr, f_te, y_te, DIMRunConfig(probe_epochs=3, seed=4, device="cpu"))
    assert len(calls) == 6 and {c[4] for c in calls} == {"linear", "mlp"}
    for train_x, train_y, test_x, test_y, _, kw in calls:
        assert len(train_x) == 12 and len(test_x) == 7 and torch.equal(train_y, y_tr) and torch.equal(test_y, y_te)
        assert any(torch.equal(train_x, f_tr[k]) for k in f_tr) and any(torch.equal(test_x, f_te[k]) for k in f_te)
        assert not (torch.cdist(train_x, test_x) == 0).any()  # no held-out image among the training rows
        assert kw["epochs"] == 3 and kw["seed"] == 4
    assert list(test.index) == ["conv", "fc", "Y"] and (test == 25.0).all().all() and (train == 50.0).all().all()


def test_batch_norm_in_eval_mode_when_probing():
    torch.manual_seed(0)
    m = DeepInfoMax(_tiny()); m.train()
    x = torch.randint(0, 256, (10, 1, 32, 32), dtype=torch.uint8)
    running = [b.running_mean.clone() for b in m.encoder.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    seen = []
    hook = m.encoder.register_forward_pre_hook(lambda mod, inp: seen.append(mod.training))
    full, single = dim_features(m.encoder, x, batch_size=10), dim_features(m.encoder, x[:1], batch_size=1)
    hook.remove()
    assert seen and not any(seen)  # every forward pass ran in eval mode
    for k in full: torch.testing.assert_close(full[k][:1], single[k], rtol=1e-4, atol=1e-5)  # batch-independent
    after = [b.running_mean for b in m.encoder.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(torch.equal(a, b) for a, b in zip(running, after)) and m.encoder.training  # stats untouched, mode restored


def test_probe_on_separable_features_scores_the_held_out_split():
    g = torch.Generator().manual_seed(0)
    def feats(n):
        y = torch.randint(0, 2, (n,), generator=g)
        f = torch.randn(n, 5, generator=g); f[:, 0] += 4 * (2 * y - 1)
        return {"Y": f}, y
    (ftr, ytr), (fte, yte) = feats(200), feats(100)
    cfg = DIMRunConfig(probe_epochs=500, device="cpu")  # 200 images: one step per epoch
    good, train = dim_probes(ftr, ytr, fte, yte, cfg)
    bad, _ = dim_probes(ftr, ytr, fte, 1 - yte, cfg)  # flipped held-out labels: held-out accuracy must drop
    assert (train > 95).all().all() and (good > 95).all().all()
    np.testing.assert_allclose(bad.values, 100 - good.values)  # the same probes, scored on the other labels


# ---------------------------------------------------------------- data

def test_validation_split_is_shared_by_every_run_and_disjoint():
    tr0, va0 = validation_split(1000, 100, seed=0)
    assert len(va0) == 100 and len(set(tr0.tolist()) | set(va0.tolist())) == 1000
    assert not set(tr0.tolist()) & set(va0.tolist()) and bool((tr0.diff() > 0).all())  # disjoint, order kept
    assert torch.equal(validation_split(1000, 100, seed=0)[1], va0)  # a function of val_seed only
    assert not torch.equal(validation_split(1000, 100, seed=1)[1], va0)
    with pytest.raises(ValueError, match="val_size must be in"): validation_split(10, -1)


def test_dim_splits_on_fake_mnist_hold_out_validation_images(tmp_path):
    x, y = write_fake_mnist(tmp_path, n_train=30, n_test=5)
    cfg = DIMRunConfig(dataset="mnist", data_root=str(tmp_path), download=False, val_size=6, batch_size=4)
    s = dim_splits(cfg)
    (xt, yt), (xv, yv), (xe, ye) = s["train"], s["val"], s["test"]
    assert (xt.shape, xv.shape, xe.shape, s["n_classes"]) == ((24, 1, 32, 32), (6, 1, 32, 32), (5, 1, 32, 32), 10)
    tr, va = validation_split(30, 6, 0)
    assert torch.equal(xt[:, :, 2:30, 2:30], x[tr]) and torch.equal(yv, y[va])  # zero-padded 28 -> 32, rows kept
    assert cfg.model.in_channels == 1 and cfg.data_root == str(tmp_path)  # the root recorded as given
    with pytest.raises(ValueError, match="batch_size=64 is larger than the training split"):
        dim_splits(DIMRunConfig(dataset="mnist", data_root=str(tmp_path), download=False, val_size=6))


def test_missing_data_names_the_root(tmp_path):
    for name in ["cifar10", "mnist", str(tmp_path / "no_folder")]:
        with pytest.raises(DataNotFoundError, match=str(tmp_path)):
            dim_splits(DIMRunConfig(dataset=name, data_root=str(tmp_path), download=False))


@pytest.mark.skipif(not HAS_MNIST, reason=f"real MNIST not found under {SHARED_DATA}/MNIST/raw")
def test_real_mnist_splits():
    s = dim_splits(DIMRunConfig(dataset="mnist", data_root=str(SHARED_DATA), download=False, val_size=5000))
    assert s["train"][0].shape == (55000, 1, 32, 32) and s["val"][0].shape == (5000, 1, 32, 32)
    assert sorted(s["test"][1].unique().tolist()) == list(range(10))


# ---------------------------------------------------------------- the experiment notebooks (smoke, in this process)

def _image_folder(root):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in [("train", 40), ("test", 10)]:
        for c, lo in [("dark", 0), ("bright", 128)]:
            (root / split / c).mkdir(parents=True)
            for i in range(n): Image.fromarray(rng.integers(lo, lo + 128, (20, 20, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


SMOKE_RUNS = {"global_dv_0": dict(objective="global", estimator="dv", seed=0),
              "supervised_0": dict(objective="supervised", seed=0),
              "local_infonce_1": dict(objective="local", estimator="infonce", seed=1)}


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    "Three smoke runs of nbs/32_dim.ipynb on a small image folder (80 training images, 40 of them held out)."
    root = tmp_path_factory.mktemp("dim")
    data = _image_folder(root / "folder")
    for name, params in SMOKE_RUNS.items():
        run_notebook("32_dim.ipynb", root / "runs" / name, dataset=str(data), profile="smoke", epochs=2, **params)
    return data, root / "runs"


def _check_outputs(out, steps, suffix=""):
    cfg = json.loads((out / "config.json").read_text())
    m = pd.read_csv(out / "metrics.csv")
    assert m["step"].tolist() == list(range(1, steps + 1)) and m["loss"].notna().all()
    t = pd.read_csv(out / "tables" / f"probe_accuracy{suffix}.csv", index_col=0)
    assert list(t.index) == ["conv", "fc", "Y"]
    assert list(t.columns) == ["linear", "mlp", "random_linear", "random_mlp", "paper_mlp"]
    assert t[["linear", "mlp", "random_linear", "random_mlp"]].stack().between(0, 100).all()
    for f in ["learning_curves", "nearest_neighbours"]:
        assert (out / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(out / "tables" / f"ndm{suffix}.csv", index_col=0).index.tolist() == ["trained", "random"]
    assert (out / "checkpoints" / "dim.pt").exists()
    return cfg, m, t


def test_smoke_image_folder_resume_and_refusal(smoke_runs, tmp_path):
    data, runs = smoke_runs
    out = tmp_path / "run"
    shutil.copytree(runs / "global_dv_0", out)
    params = dict(dataset=str(data), profile="smoke", epochs=2, **SMOKE_RUNS["global_dv_0"])
    cfg, m, t = _check_outputs(out, 4)
    s = json.loads((out / "summary.json").read_text())
    # 80 training images less the smoke profile's 40 validation images: 2 steps of 16 per epoch; all 20 test images
    assert (s["n_train"], s["n_probe_train"], s["n_held_out"], s["steps"]) == (40, 40, 20, 4)
    assert cfg["model"]["in_channels"] == 3 and cfg["dataset"] == str(data) and cfg["val_size"] == 40
    # running it again resumes from the finished checkpoint: nothing is retrained, the metrics are unchanged
    run_notebook("32_dim.ipynb", out, **params)
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), m)
    pd.testing.assert_frame_equal(pd.read_csv(out / "tables" / "probe_accuracy.csv", index_col=0), t)
    # an evaluation-only change re-probes the same encoder, on the 40 validation images, into *_val tables
    run_notebook("32_dim.ipynb", out, **params, eval_split="val")
    _, m_val, _ = _check_outputs(out, 4, "_val")
    pd.testing.assert_frame_equal(m_val, m)
    assert json.loads((out / "summary_val.json").read_text())["n_held_out"] == 40
    # a training setting changed on resume stops, listing the difference, and leaves config.json as it was
    before = (out / "config.json").read_text()
    with pytest.raises(NotebookError, match=r"model.estimator: 'dv' -> 'jsd'"):
        run_notebook("32_dim.ipynb", out, **{**params, "estimator": "jsd"})
    assert (out / "config.json").read_text() == before


@pytest.mark.skipif(not HAS_MNIST, reason=f"real MNIST not found under {SHARED_DATA}/MNIST/raw")
def test_smoke_mnist_local_global_concat(tmp_path):
    out = tmp_path / "run"
    run_notebook("32_dim.ipynb", out, dataset="mnist", data_root=str(SHARED_DATA), objective="local+global",
                 estimator="infonce", critic="concat", profile="smoke")
    cfg, m, t = _check_outputs(out, 4)
    assert cfg["model"]["in_channels"] == 1 and {"mi_local", "mi_global", "disc_loss"} <= set(m)
    # infoNCE never exceeds its ceilings, log(1 + (B - 1) M^2) locally and log B globally
    assert (m.mi_local <= math.log(1 + 15 * 64) + 1e-4).all() and (m.mi_global <= math.log(16) + 1e-4).all()


def test_smoke_supervised_run_and_table_notebook(smoke_runs, tmp_path):
    _, runs = smoke_runs
    s = json.loads((runs / "supervised_0" / "summary.json").read_text())
    assert 0 <= s["head_accuracy"] <= 100 and "xent" in pd.read_csv(runs / "supervised_0" / "metrics.csv")
    acc = lambda name: pd.read_csv(runs / name / "tables" / "probe_accuracy.csv", index_col=0)
    # the same seed builds the same initial encoder whatever the objective: identical random-encoder probes
    pd.testing.assert_frame_equal(acc("supervised_0")[["random_linear", "random_mlp"]], acc("global_dv_0")[["random_linear", "random_mlp"]])
    out = tmp_path / "table"
    run_notebook("32a_dim_table.ipynb", out, runs=str(runs / "*"), dataset="cifar10")
    t = pd.read_csv(out / "tables" / "comparison.csv")
    assert t.label.unique().tolist() == ["DIM(L) infoNCE", "supervised", "random", "DIM(G) DV"]
    row = t[(t.label == "random") & (t.feature == "Y")].iloc[0]  # seeds 0 (probed twice, counted once) and 1
    want = [acc(n).loc["Y", "random_mlp"] for n in ("global_dv_0", "local_infonce_1")]
    assert row["seeds"] == 2 and abs(row["mlp_mean"] - np.mean(want)) < 0.01 and abs(row["mlp_sd"] - np.std(want, ddof=1)) < 0.01
    row = t[(t.label == "DIM(L) infoNCE") & (t.feature == "Y")].iloc[0]
    assert row["paper_mlp"] == 69.13 and abs(row["mlp_minus_paper"] - (acc("local_infonce_1").loc["Y", "mlp"] - 69.13)) < 0.01
    assert t[t.label == "supervised"].paper_mlp.eq(75.39).all() and t[t.label == "DIM(G) DV"].paper_mlp.isna().all()
    runs_t = pd.read_csv(out / "tables" / "runs.csv")
    assert len(runs_t) == 3 and (runs_t.epochs_over_paper == 2 / 1000).all()
    for f in ("probe_accuracy", "learning_curves"): assert (out / "figures" / f"{f}.png").stat().st_size > 5000


def test_unknown_profile_fails_at_once(tmp_path):
    with pytest.raises(NotebookError, match="unknown profile"):
        run_notebook("32_dim.ipynb", tmp_path / "run", profile="huge")
    assert not (tmp_path / "run" / "metrics.csv").exists()
