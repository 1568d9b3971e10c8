"""Tests of misrep.images: one loader per data set (MNIST, CIFAR-10/100, image folders), uint8 (N, C, H, W) images and
int64 labels from a local root, one exception type (misrep.core.DataNotFoundError) naming where it looked.

Loading code is tested on small files written here; the real MNIST and the CIFAR-10 JPEG folder are used where present.
"""
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from conftest import SHARED_DATA, write_fake_mnist
from misrep.core import DataNotFoundError
from misrep.images import (MNIST_FILES, image_folder_classes, load_cifar10, load_cifar100, load_image_folder, load_images,
                           load_mnist)


# ---------------------------------------------------------------- not found

@pytest.mark.parametrize("loader,folder", [(load_mnist, "MNIST/raw"), (load_cifar10, "cifar-10-batches-py"),
                                           (load_cifar100, "cifar-100-python")])
def test_missing_data_set_names_the_folder(tmp_path, loader, folder):
    with pytest.raises(DataNotFoundError) as e:
        loader(tmp_path, download=False)
    assert str(tmp_path / folder) in str(e.value)
    assert isinstance(e.value, FileNotFoundError)  # callers catching FileNotFoundError keep working


def test_missing_by_name_and_folder(tmp_path):
    for name in ("mnist", "cifar10", "cifar100"):
        with pytest.raises(DataNotFoundError, match=f"data root {tmp_path}"):
            load_images(name, tmp_path, download=False)
    with pytest.raises(DataNotFoundError, match="ImageFolder"): load_image_folder(tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="ImageFolder"): load_images(str(tmp_path / "nowhere"))


def test_default_root_is_misrep_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MISREP_DATA", str(tmp_path / "env_root"))
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "env_root" / "MNIST" / "raw")):
        load_mnist(download=False)
    write_fake_mnist(tmp_path / "env_root", n_train=3)
    assert load_mnist(download=False)[0].shape == (3, 1, 28, 28)


# ---------------------------------------------------------------- MNIST

def test_fake_mnist_shapes_and_values(tmp_path):
    xw, yw = write_fake_mnist(tmp_path, n_train=7, n_test=5, seed=3)
    x, y = load_mnist(tmp_path, download=False)
    assert x.shape == (7, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x, xw) and torch.equal(y, yw)
    xt, yt = load_mnist(tmp_path, train=False, download=False)
    assert xt.shape == (5, 1, 28, 28) and not torch.equal(xt[:5], x[:5])
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_FILES)


def test_mnist_by_name_is_zero_padded_to_32(tmp_path):
    xw, yw = write_fake_mnist(tmp_path, n_train=4, seed=1)
    x, y, k = load_images("mnist", tmp_path, download=False)
    assert x.shape == (4, 1, 32, 32) and k == 10 and torch.equal(y, yw)
    assert torch.equal(x[:, :, 2:30, 2:30], xw)
    border = torch.ones(32, 32, dtype=torch.bool); border[2:30, 2:30] = False
    assert x[:, :, border].sum() == 0


def test_real_mnist(mnist_root):
    x, y = load_mnist(mnist_root, train=False, download=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # MNIST's test counts
    assert x.float().mean().item() == pytest.approx(0.1325 * 255, abs=0.5)  # the usual normalisation mean 0.1325 (test)


# ---------------------------------------------------------------- CIFAR

def _fake_cifar10(root: Path, monkeypatch, n_per_batch=2, n_test=3, seed=0):
    "A tiny CIFAR-10 in torchvision's pickled layout; torchvision's md5 list is patched to the fake files' sums."
    base = root / "cifar-10-batches-py"; base.mkdir(parents=True)
    g = np.random.default_rng(seed); sums, data = {}, {}

    def put(name, obj):
        (base / name).write_bytes(pickle.dumps(obj)); sums[name] = hashlib.md5((base / name).read_bytes()).hexdigest()

    for k in range(1, 6):
        data[f"data_batch_{k}"] = (g.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8), list(g.integers(0, 10, n_per_batch)))
    data["test_batch"] = (g.integers(0, 256, (n_test, 3072), dtype=np.uint8), list(g.integers(0, 10, n_test)))
    for name, (x, y) in data.items(): put(name, {"data": x, "labels": [int(v) for v in y]})
    put("batches.meta", {"label_names": [f"c{k}" for k in range(10)]})
    C = torchvision.datasets.CIFAR10
    monkeypatch.setattr(C, "train_list", [[f"data_batch_{k}", sums[f"data_batch_{k}"]] for k in range(1, 6)])
    monkeypatch.setattr(C, "test_list", [["test_batch", sums["test_batch"]]])
    monkeypatch.setattr(C, "meta", dict(C.meta, md5=sums["batches.meta"]))
    return data


def test_fake_cifar10_shapes_and_values(tmp_path, monkeypatch):
    data = _fake_cifar10(tmp_path, monkeypatch)
    x, y = load_cifar10(tmp_path, download=False)
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    want = np.concatenate([data[f"data_batch_{k}"][0] for k in range(1, 6)]).reshape(10, 3, 32, 32)  # CHW planes
    np.testing.assert_array_equal(x.numpy(), want)
    assert y.tolist() == sum((data[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    xt, yt = load_cifar10(tmp_path, train=False, download=False)
    np.testing.assert_array_equal(xt.numpy(), data["test_batch"][0].reshape(3, 3, 32, 32))
    x2, y2, k = load_images("cifar10", tmp_path, download=False)
    assert torch.equal(x2, x) and torch.equal(y2, y) and k == 10


# ---------------------------------------------------------------- image folders

def _folder(root: Path, split: bool, n=6, size=(20, 24)):
    from PIL import Image
    rng = np.random.default_rng(0); pix = {}
    for s in (("train", "test") if split else ("",)):
        for c in ("cat", "ant", "bee"):
            d = root / s / c; d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 256, (*size, 3), dtype=np.uint8); Image.fromarray(a).save(d / f"{i}.png")
                pix[(s, c, i)] = a
    return pix


def test_image_folder_unsplit(tmp_path):
    pix = _folder(tmp_path, split=False, size=(32, 32))
    xtr, ytr = load_image_folder(tmp_path, train=True); xte, yte = load_image_folder(tmp_path, train=False)
    assert xtr.shape == (14, 3, 32, 32) and xte.shape == (4, 3, 32, 32) and xtr.dtype == torch.uint8
    assert image_folder_classes(tmp_path) == ["ant", "bee", "cat"]  # labels in sorted class order
    seen = {}
    for x, y in ((xtr, ytr), (xte, yte)):
        for a, lab in zip(x, y): seen[a.permute(1, 2, 0).numpy().tobytes()] = int(lab)
    assert len(seen) == 18  # disjoint splits holding every image, pixels unchanged at the native size
    for (_, c, _), a in pix.items(): assert seen[a.tobytes()] == ["ant", "bee", "cat"].index(c)
    assert torch.equal(load_image_folder(tmp_path, train=False)[0], xte)  # a fixed permutation
    assert not torch.equal(load_image_folder(tmp_path, train=False, split_seed=1)[0], xte)


def test_image_folder_with_train_test_and_resize(tmp_path):
    _folder(tmp_path, split=True, n=4)
    x, y = load_image_folder(tmp_path, train=True, size=16)
    assert x.shape == (12, 3, 16, 16) and sorted(y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    x, y, k = load_images(str(tmp_path), train=False)
    assert x.shape == (12, 3, 32, 32) and k == 3


def test_cifar10_jpeg_folder_classes():
    root = SHARED_DATA / "cifar10-jpeg"
    if not (root / "test").is_dir(): pytest.skip(f"no CIFAR-10 JPEG folder under {root}")
    assert image_folder_classes(root) == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
