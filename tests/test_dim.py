"""Deep InfoMax (misrep.dim, nbs/32_dim.ipynb): loss wiring, adversarial prior, probes, data loading, smoke runs."""
import copy
import json
import math
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from misrep import dim
from misrep.dim import (DeepInfoMax, dim_config, discriminator_loss, encode_images, encoder_prior_loss,
                        make_optimizers, make_prior_discriminator, probe_accuracy, sample_prior, train_step)
from misrep.images import load_images
from misrep.estimators import dv_bound, infonce_bound, jsd_bound

REPO = Path(__file__).parents[1]
SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"
HAS_MNIST = (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


@pytest.fixture(autouse=True)
def _one_thread():
    "Small tensors: one thread is much faster than two on the shared CPU."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(objective="local", **kw):
    kw = {"estimator": "jsd", "critic": "dot", "in_channels": 1, "embed_dim": 32, "critic_hidden": 16, "prior_hidden": (16, 8), **kw}
    return dim_config(objective, **kw)


# ---------------------------------------------------------------- positives on the diagonal only

@pytest.mark.parametrize("critic", ["dot", "concat"])
def test_local_scores_positives_on_diagonal(critic):
    torch.manual_seed(0)
    m = DeepInfoMax(_tiny("local+global", critic=critic)).eval()
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        f = m(x)
        # scores[i, j, l] pairs location l of image i with the code of image j: permuting the codes permutes axis 1
        perm = torch.tensor([3, 0, 4, 1, 2])
        loc_p = m.local_critic(f["local"], f["y"][perm]); glob_p = m.global_critic(f["conv"], f["y"][perm])
    torch.testing.assert_close(loc_p, f["local_scores"][:, perm], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(glob_p, f["global_scores"][:, perm], rtol=1e-4, atol=1e-5)
    # the diagonal holds the same-image pairs, computed literally
    torch.testing.assert_close(f["global_scores"].diagonal(), m.global_critic.pair(f["conv"], f["y"]), rtol=1e-4, atol=1e-5)
    if critic == "concat":
        torch.testing.assert_close(f["local_scores"].diagonal().T, m.local_critic.pair(f["local"], f["y"]), rtol=1e-4, atol=1e-5)


def test_dim_loss_is_the_bound_on_the_critics_scores():
    torch.manual_seed(0)
    for est, bound in [("jsd", jsd_bound), ("dv", dv_bound), ("infonce", infonce_bound)]:
        m = DeepInfoMax(_tiny("local+global", estimator=est)); d = make_prior_discriminator(m.cfg)
        x = torch.randn(6, 1, 32, 32)
        m.eval()  # same BN statistics in both passes
        loss, stats, f = dim.dim_loss(m, d, x)
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
    cfg = _tiny("global", gamma=1.0, lr=1e-3, disc_lr=1e-3)
    m, d = DeepInfoMax(cfg), make_prior_discriminator(cfg)
    opt, opt_d = make_optimizers(m, d, cfg)
    ids = lambda o: {id(p) for g in o.param_groups for p in g["params"]}
    assert ids(opt).isdisjoint({id(p) for p in d.parameters()})
    assert ids(opt_d) == {id(p) for p in d.parameters()}
    # gradient of each loss with respect to D's logit on the codes: opposite signs
    y = torch.randn(8, 64)
    logit = d(torch.sigmoid(y)).detach().requires_grad_()
    g_d, = torch.autograd.grad(F.softplus(logit).mean(), logit)   # D's term on codes (label 0)
    g_e, = torch.autograd.grad(F.softplus(-logit).mean(), logit)  # encoder's term (wants label 1)
    assert (g_d > 0).all() and (g_e < 0).all()
    # with the encoder fixed, D's own steps lower D's loss ...
    x = torch.randn(16, 1, 32, 32); m.eval()
    with torch.no_grad(): yfix = m.encoder(x)["y"]
    z = sample_prior(16, 64, generator=torch.Generator().manual_seed(0))
    l0 = discriminator_loss(d, yfix, z).item()
    for _ in range(20):
        l = discriminator_loss(d, yfix, z); opt_d.zero_grad(); l.backward(); opt_d.step()
    assert discriminator_loss(d, yfix, z).item() < l0
    # ... and the encoder's steps on the prior term raise D's logit on its codes (fool D)
    opt_e = torch.optim.Adam(m.encoder.parameters(), lr=1e-3)
    with torch.no_grad(): before = float(d(torch.sigmoid(m.encoder(x)["y"])).mean())
    for _ in range(5):
        l = encoder_prior_loss(d, m.encoder(x)["y"]); opt_e.zero_grad(); l.backward(); opt_e.step()
    with torch.no_grad(): after = float(d(torch.sigmoid(m.encoder(x)["y"])).mean())
    assert after > before


def test_train_step_discriminator_update_ignores_the_encoders_gradients():
    torch.manual_seed(0)
    cfg = _tiny("local", gamma=1.0, lr=1e-3, disc_lr=1e-3)
    m, d = DeepInfoMax(cfg), make_prior_discriminator(cfg)
    opt, opt_d = make_optimizers(m, d, cfg)
    m2, d2 = copy.deepcopy(m), copy.deepcopy(d)
    opt2, opt_d2 = make_optimizers(m2, d2, cfg)
    x = torch.randn(8, 1, 32, 32)
    train_step(m, d, opt, opt_d, x, generator=torch.Generator().manual_seed(5))
    # by hand: encoder step, then a D step from D's loss alone on the detached codes
    loss, _, f = dim.dim_loss(m2, d2, x)
    opt2.zero_grad(); loss.backward(); opt2.step()
    prior = sample_prior(8, 64, generator=torch.Generator().manual_seed(5))
    d2.zero_grad(set_to_none=True)
    discriminator_loss(d2, f["y"], prior).backward(); opt_d2.step()
    for p, q in zip(d.parameters(), d2.parameters()): torch.testing.assert_close(p, q)
    for p, q in zip(m.parameters(), m2.parameters()): torch.testing.assert_close(p, q)


@pytest.mark.parametrize("objective", ["global", "local", "local+global"])
@pytest.mark.parametrize("estimator", ["jsd", "dv", "infonce"])
@pytest.mark.parametrize("critic", ["dot", "concat"])
def test_every_configuration_trains(objective, estimator, critic):
    torch.manual_seed(0)
    cfg = _tiny(objective, estimator=estimator, critic=critic)
    m, d = DeepInfoMax(cfg), make_prior_discriminator(cfg)
    out = train_step(m, d, *make_optimizers(m, d, cfg), torch.randn(4, 1, 32, 32))
    assert all(math.isfinite(v) for v in out.values())
    assert ("mi_global" in out) == (cfg.alpha > 0) and ("mi_local" in out) == (cfg.beta > 0)


# ---------------------------------------------------------------- probing the frozen encoder

def test_probes_never_see_test_images_in_training(monkeypatch):
    torch.manual_seed(0)
    enc = DeepInfoMax(_tiny()).encoder
    x_tr = torch.randint(0, 128, (12, 1, 32, 32), dtype=torch.uint8)     # dark training images
    x_te = torch.randint(128, 256, (7, 1, 32, 32), dtype=torch.uint8)    # bright test images
    y_tr, y_te = torch.arange(12) % 3, torch.arange(7) % 3
    f_tr, f_te = encode_images(enc, x_tr), encode_images(enc, x_te)
    calls = []

    def spy(train_x, train_y, test_x, test_y, kind="linear", **kw):
        calls.append((train_x, train_y, test_x, test_y, kind))
        return type("R", (), {"train_acc": 0.5, "test_acc": 0.25})()

    monkeypatch.setattr(dim, "fit_probe", spy)
    table = probe_accuracy(f_tr, y_tr, f_te, y_te, epochs=1)
    assert len(calls) == 6 and {c[4] for c in calls} == {"linear", "mlp"}
    for train_x, train_y, test_x, test_y, _ in calls:
        assert len(train_x) == 12 and len(test_x) == 7 and torch.equal(train_y, y_tr) and torch.equal(test_y, y_te)
        assert any(torch.equal(train_x, f_tr[k]) for k in f_tr) and any(torch.equal(test_x, f_te[k]) for k in f_te)
        assert not (torch.cdist(train_x, test_x) == 0).any()  # no test image among the training rows
    assert list(table.index) == ["conv", "fc", "Y"] and (table["linear"] == 25.0).all() and (table["train_mlp"] == 50.0).all()


def test_batch_norm_in_eval_mode_when_probing():
    torch.manual_seed(0)
    m = DeepInfoMax(_tiny()); m.train()
    x = torch.randint(0, 256, (10, 1, 32, 32), dtype=torch.uint8)
    running = [b.running_mean.clone() for b in m.encoder.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    seen = []
    hook = m.encoder.register_forward_pre_hook(lambda mod, inp: seen.append(mod.training))
    full, single = encode_images(m.encoder, x, batch_size=10), encode_images(m.encoder, x[:1], batch_size=1)
    hook.remove()
    assert seen and not any(seen)  # every forward pass ran in eval mode
    for k in full: torch.testing.assert_close(full[k][:1], single[k], rtol=1e-4, atol=1e-5)  # batch-independent
    after = [b.running_mean for b in m.encoder.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(torch.equal(a, b) for a, b in zip(running, after)) and m.encoder.training  # stats untouched, mode restored


def test_probe_on_separable_features_scores_the_test_split():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    def feats(n):
        y = torch.randint(0, 2, (n,), generator=g)
        f = torch.randn(n, 5, generator=g); f[:, 0] += 4 * (2 * y - 1)
        return {"y": f}, y
    (ftr, ytr), (fte, yte) = feats(200), feats(100)
    t = probe_accuracy(ftr, ytr, fte, 1 - yte, kinds=("linear",), epochs=30, lr=1e-2, batch_size=32)  # flipped test labels: test acc must drop
    assert t.loc["Y", "train_linear"] > 95 and t.loc["Y", "linear"] < 5


# ---------------------------------------------------------------- data

def _write_idx(path, arr, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.astype(np.uint8).tobytes())


def test_load_mnist_from_files_it_writes(tmp_path):
    raw = tmp_path / "MNIST" / "raw"; raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    imgs = {"train": rng.integers(1, 256, (6, 28, 28)), "t10k": rng.integers(1, 256, (3, 28, 28))}
    for split, n in [("train", 6), ("t10k", 3)]:
        _write_idx(raw / f"{split}-images-idx3-ubyte", imgs[split], 2051)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    x, y, k = load_images("mnist", tmp_path, train=True, download=False)
    assert x.shape == (6, 1, 32, 32) and x.dtype == torch.uint8 and k == 10 and y.tolist() == [0, 1, 2, 3, 4, 5]
    assert torch.equal(x[:, 0, 2:30, 2:30], torch.from_numpy(imgs["train"].astype(np.uint8)))  # centred, zero-padded
    assert x[:, :, :2].sum() == 0 and x[:, :, :, 30:].sum() == 0
    xt, _, _ = load_images("mnist", tmp_path, train=False, download=False)
    assert xt.shape == (3, 1, 32, 32)


def test_missing_cifar_names_the_root(tmp_path):
    for name in ["cifar10", "cifar100"]:
        with pytest.raises(FileNotFoundError, match=str(tmp_path)):
            load_images(name, tmp_path, download=False)


@pytest.mark.skipif(not HAS_MNIST, reason=f"real MNIST not found under {SHARED_DATA}/MNIST/raw")
def test_real_mnist_in_memory():
    x, y, k = load_images("mnist", SHARED_DATA, train=False, download=False)
    assert x.shape == (10000, 1, 32, 32) and k == 10 and sorted(y.unique().tolist()) == list(range(10))


# ---------------------------------------------------------------- the experiment notebook (papermill, smoke)

def _image_folder(root: Path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in [("train", 24), ("test", 10)]:
        for c, lo in [("dark", 0), ("bright", 128)]:
            (root / split / c).mkdir(parents=True)
            for i in range(n): Image.fromarray(rng.integers(lo, lo + 128, (20, 20, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def _run(out: Path, **params):
    pm = pytest.importorskip("papermill")
    out.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(REPO / "nbs" / "32_dim.ipynb"), str(out / "32_dim.ipynb"), cwd=str(REPO), kernel_name="python3",
                        parameters={"profile": "smoke", "out_dir": str(out), **params}, progress_bar=False)


def _check_outputs(out: Path, steps):
    cfg = json.loads((out / "config.json").read_text())
    m = pd.read_csv(out / "metrics.csv")
    assert m["step"].tolist() == list(range(1, steps + 1)) and m["loss"].notna().all()
    t = pd.read_csv(out / "tables" / "probe_accuracy.csv", index_col=0)
    assert list(t.index) == ["conv", "fc", "Y"]
    assert list(t.columns) == ["linear", "mlp", "random_linear", "random_mlp", "paper_mlp"]
    assert t[["linear", "mlp", "random_linear", "random_mlp"]].stack().between(0, 100).all()
    for f in ["learning_curves", "nearest_neighbours"]:
        assert (out / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(out / "tables" / "ndm.csv", index_col=0).index.tolist() == ["trained", "random"]
    assert (out / "checkpoints" / "last.pt").exists() and (out / "checkpoints" / "init.pt").exists()
    return cfg, m, t


def test_smoke_image_folder_and_resume(tmp_path):
    data = _image_folder(tmp_path / "folder")
    out = tmp_path / "run"
    _run(out, dataset=str(data), objective="global", estimator="dv", epochs=3)
    cfg, m, t = _check_outputs(out, 4)
    assert cfg["n_train"] == 48 and cfg["n_test"] == 20 and cfg["model"]["in_channels"] == 3 and cfg["name"] == "DIM(G)"
    # resume: two more steps continue the same metrics file
    _run(out, dataset=str(data), objective="global", estimator="dv", epochs=3, max_steps=6)
    cfg, m2, _ = _check_outputs(out, 6)
    pd.testing.assert_frame_equal(m2.iloc[:4, :3], m.iloc[:4, :3])
    # a checkpoint from other settings is refused
    with pytest.raises(Exception, match="other settings"):
        _run(out, dataset=str(data), objective="global", estimator="jsd", epochs=3, max_steps=6)


@pytest.mark.skipif(not HAS_MNIST, reason=f"real MNIST not found under {SHARED_DATA}/MNIST/raw")
def test_smoke_mnist(tmp_path):
    out = tmp_path / "run"
    _run(out, dataset="mnist", data_root=str(SHARED_DATA), objective="local+global", estimator="infonce", critic="concat")
    cfg, m, t = _check_outputs(out, 4)
    assert cfg["model"]["in_channels"] == 1 and cfg["name"] == "DIM(L+G)" and {"mi_local", "mi_global", "disc_loss"} <= set(m)


def test_unknown_profile_fails_at_once(tmp_path):
    with pytest.raises(Exception, match="profile must be one of"):
        _run(tmp_path / "run", profile="huge")
