"""Tests of misrep.shapes3d and misrep.shapes3d_fidelity: renderer, official-layout reader/validator, atomic builder,
pairs (the one definition: PairSampler), the DataLoader view of pairs, CLI.

All data are made here: a few hundred rendered images in tiny HDF5 files, and a fake full-grid label file
(480,000 rows, images left as unwritten chunks) for the full-grid order check. Nothing renders the full grid.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import misrep.shapes3d as D
from misrep.core import DataNotFoundError
from misrep.shapes3d import (FACTOR_SIZES, FACTOR_VALUES, N_IMAGES, SHARED_FACTORS, PairSampler, Shapes3D,
                             Shapes3DFormatError, Shapes3DPairs, build_shapes3d, check_shapes3d_file, grid_classes,
                             grid_index, group_keys, render_shapes3d, split_by_image)
from misrep.shapes3d_fidelity import main


def _pair_friendly_indices(n_cells=6, per_cell=40, seed=0):
    "Grid indices: a few (scale, shape, orientation) cells, each with many random hue triples (so pairs have partners)."
    rng = np.random.default_rng(seed)
    cells = rng.choice(480, n_cells, replace=False)
    hues = np.stack([rng.choice(1000, per_cell, replace=False) for _ in cells])
    return np.sort((hues * 480 + cells[:, None]).reshape(-1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "A 240-image subset file in the official layout (plus grid_indices)."
    d = tmp_path_factory.mktemp("s3d")
    idx = _pair_friendly_indices()
    path = build_shapes3d(d / "tiny.h5", indices=idx, supersample=1, device="cpu", chunk_size=100, progress_bar=False)
    return path, idx


def _copy_with(src, dst, **changes):
    "Copy an HDF5 file's datasets and attrs, replacing or dropping (value None) some datasets."
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        for k in a.keys():
            if k in changes:
                if changes[k] is not None: b[k] = changes[k]
            else: b[k] = a[k][:]
        for k, v in changes.items():
            if k not in a and v is not None: b[k] = v
        for k, v in a.attrs.items(): b.attrs[k] = v
    return dst


# ---------------------------------------------------------------- grid and renderer

def test_grid_index_order():
    assert grid_index([0, 0, 0, 0, 0, 1]) == 1
    assert grid_index([0, 0, 0, 0, 1, 0]) == 15
    assert grid_index([0, 0, 0, 1, 0, 0]) == 60
    assert grid_index([0, 0, 1, 0, 0, 0]) == 480
    assert grid_index([1, 0, 0, 0, 0, 0]) == 48000
    # the documented formula, for every class combination of a random sample
    c = grid_classes(np.random.default_rng(1).integers(0, N_IMAGES, 5000))
    f, w, o, s, k, a = c.T
    np.testing.assert_array_equal(grid_index(c), ((((f * 10 + w) * 10 + o) * 8 + s) * 4 + k) * 15 + a)
    all_c = grid_classes(np.arange(N_IMAGES))
    assert (np.diff(all_c[:, 5])[:14] == 1).all() and all_c[15, 4] == 1  # orientation fastest, then shape


def test_render_shapes_dtype_range():
    f = torch.tensor([[0, 0, 0, 0, 0, 0], [9, 9, 9, 7, 3, 14], [3, 5, 7, 2, 1, 9]])
    x = render_shapes3d(f)
    assert x.shape == (3, 64, 64, 3) and x.dtype == torch.uint8
    x2 = render_shapes3d(f.numpy(), supersample=2)
    assert x2.shape == (3, 64, 64, 3) and x2.dtype == torch.uint8
    # supersampling only smooths: the images stay close
    assert (x.float() - x2.float()).abs().mean() < 6


def test_render_factors_move_the_right_pixels():
    base = torch.tensor([[2, 5, 8, 3, 0, 7]])
    x0 = render_shapes3d(base)[0].float()
    for j in range(6):
        f = base.clone(); f[0, j] = (f[0, j] + 1) % FACTOR_SIZES[j]
        assert (render_shapes3d(f)[0].float() - x0).abs().mean() > 0.3, D.FACTOR_NAMES[j]
    # the floor hue changes only floor pixels: the sky band (top rows) stays
    f = base.clone(); f[0, 0] = 0
    x1 = render_shapes3d(f)[0].float()
    assert (x1[:8] - x0[:8]).abs().max() == 0 and (x1[-8:] - x0[-8:]).abs().mean() > 50


def test_sphere_differs_across_orientations():
    f = torch.tensor([[1, 4, 7, 3, 2, a] for a in range(15)])
    x = render_shapes3d(f).float()
    d = (x[:, None] - x[None]).abs().mean((2, 3, 4))
    off = d[~torch.eye(15, dtype=bool)]
    assert off.min() > 0.5  # every pair of orientations differs
    adj = torch.stack([d[i, i + 1] for i in range(14)])
    assert 0.5 < adj.mean() < 8  # small steps, like the real data (cube: about 2.6/255)


def test_shapes_and_hues_are_what_they_say():
    # the object pixel at the image centre-bottom area has the object hue (fully saturated)
    for hue in range(10):
        x = render_shapes3d(torch.tensor([[0, 5, hue, 7, 0, 7]]))[0].float() / 255
        rgb = D.hsv_to_rgb(torch.tensor(hue / 10.))
        pix = x[44, 32]
        assert torch.allclose(pix / pix.max(), rgb, atol=0.12), (hue, pix, rgb)
    # the four shapes are different silhouettes
    xs = render_shapes3d(torch.tensor([[0, 5, 3, 4, k, 7] for k in range(4)])).float()
    for i in range(4):
        for j in range(i + 1, 4): assert (xs[i] - xs[j]).abs().mean() > 1


def test_geometry_table_equals_direct():
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 1000, 64) * 480 + rng.choice(480, 64)  # random hues, 64 random cells
    f = torch.from_numpy(grid_classes(rows))
    keys = torch.unique(group_keys(f, SHARED_FACTORS, FACTOR_SIZES[3:]))
    W, C = torch.zeros(480, 3, 64, 64), torch.zeros(480, 3, 64, 64)
    W[keys], C[keys] = D.render_geometry(keys)
    assert torch.equal(render_shapes3d(f, geometry=(W, C)), render_shapes3d(f))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_render_cuda_matches_cpu():
    f = torch.from_numpy(grid_classes(np.arange(0, N_IMAGES, 997)))
    a, b = render_shapes3d(f), render_shapes3d(f, device="cuda").cpu()
    assert (a.float() - b.float()).abs().mean() < 0.5


def test_bad_factors():
    with pytest.raises(ValueError, match="shape"): render_shapes3d(torch.tensor([[0, 0, 0, 0, 4, 0]]))
    with pytest.raises(ValueError, match=r"\(N, 6\)"): render_shapes3d(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="class indices"): render_shapes3d(torch.zeros(1, 6))


# ---------------------------------------------------------------- files and the reader

def test_dataset_shapes_values(tiny):
    path, idx = tiny
    ds = Shapes3D(path)
    assert len(ds) == len(idx) and ds.subset
    x, c = ds[3]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert c.shape == (6,) and c.dtype == torch.int64
    np.testing.assert_array_equal(ds.classes, grid_classes(idx))
    np.testing.assert_array_equal(ds.grid_indices, idx)
    for j in range(6): np.testing.assert_allclose(ds.values[:, j], np.asarray(FACTOR_VALUES[j])[ds.classes[:, j]])
    # the stored pixels are the renderer's
    np.testing.assert_array_equal((x.permute(1, 2, 0) * 255).round().byte().numpy(),
                                  render_shapes3d(grid_classes(idx[3:4]))[0].numpy())
    with h5py.File(path) as h5:
        assert h5["labels"].dtype == np.float64 and h5["images"].dtype == np.uint8
        assert h5["images"].compression == "gzip"
    mem = Shapes3D(path, in_memory=True)
    assert torch.equal(mem[10][0], ds[10][0])
    with pytest.raises(IndexError): ds[len(ds)]


def test_fast_reader_returns_hdf5_bytes(tiny, tmp_path):
    path, idx = tiny
    with h5py.File(path) as h5: ref = h5["images"][:]
    rows = np.random.default_rng(0).integers(0, len(idx), 1000)  # any order, with repeats
    for threads in (1, 3):
        ds = Shapes3D(path, threads=threads)
        np.testing.assert_array_equal(ds.images(rows), ref[rows])
        np.testing.assert_array_equal(ds.images(np.arange(len(idx))), ref)
        assert ds._raw is not None  # misrep's own files take the direct path
    # the same file rewritten with shuffle + gzip (a layout the direct path does not read) goes through h5py slabs
    other = tmp_path / "shuffled.h5"
    with h5py.File(path) as a, h5py.File(other, "w") as b:
        b.create_dataset("images", data=ref, chunks=(7, 64, 64, 3), compression="gzip", shuffle=True)
        for k in a.keys():
            if k != "images": b[k] = a[k][:]
        for k, v in a.attrs.items(): b.attrs[k] = v
    ds = Shapes3D(other)
    np.testing.assert_array_equal(ds.images(rows), ref[rows])
    assert ds._raw is None
    with pytest.raises(IndexError, match="rows must lie"): ds.images([len(idx)])


def test_full_grid_file_accepted_and_wrong_order_rejected(tmp_path):
    # a fake full-grid file: real label layout for all 480,000 rows, images never written (zero chunks, no disk)
    values = np.stack([np.asarray(FACTOR_VALUES[j])[grid_classes(np.arange(N_IMAGES))[:, j]] for j in range(6)], 1)
    p = tmp_path / "full.h5"
    with h5py.File(p, "w") as h5:
        h5.create_dataset("images", (N_IMAGES, 64, 64, 3), np.uint8, chunks=(100, 64, 64, 3), compression="gzip")
        h5["labels"] = values
    info = check_shapes3d_file(p)
    assert not info["subset"] and (info["grid_indices"] == np.arange(N_IMAGES)).all()
    np.testing.assert_array_equal(info["classes"][[0, 1, 15, 479999]],
                                  [[0] * 6, [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0], [9, 9, 9, 7, 3, 14]])
    # classes come from np.unique, not assumed ranges: other values in the same order still read
    shifted = values.copy(); shifted[:, 3] = shifted[:, 3] * 10
    with h5py.File(p, "r+") as h5: h5["labels"][:] = shifted
    np.testing.assert_array_equal(check_shapes3d_file(p)["classes"], info["classes"])
    # shape varying fastest instead of orientation: wrong order, clear message
    c = grid_classes(np.arange(N_IMAGES))
    perm = np.lexsort((c[:, 4], c[:, 5], c[:, 3], c[:, 2], c[:, 1], c[:, 0]))
    with h5py.File(p, "r+") as h5: h5["labels"][:] = values[perm]
    with pytest.raises(Shapes3DFormatError, match="not in the official order"): Shapes3D(p)


def test_wrong_files_get_clear_errors(tiny, tmp_path):
    path, idx = tiny
    with pytest.raises(DataNotFoundError, match="build"): Shapes3D(tmp_path / "absent.h5")
    # corrupt: a truncated copy
    data = path.read_bytes(); (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(Shapes3DFormatError, match="not a readable HDF5"): Shapes3D(tmp_path / "trunc.h5")
    (tmp_path / "junk.h5").write_bytes(b"\x00" * 1000)
    with pytest.raises(Shapes3DFormatError, match="not a readable HDF5"): Shapes3D(tmp_path / "junk.h5")
    with h5py.File(path) as h5: im, lb = h5["images"][:], h5["labels"][:]
    cases = {
        "missing labels": (dict(labels=None), r"lacks dataset\(s\) \['labels'\]"),
        "float images": (dict(images=im.astype(np.float32)), "must be uint8"),
        "63 pixels": (dict(images=im[:, :63]), r"\(N, 64, 64, 3\)"),
        "int labels": (dict(labels=lb.astype(np.int64)), "'labels' must be float"),
        "5 factors": (dict(labels=lb[:, :5]), r"shape \(N, 6\)"),
        "row count": (dict(labels=lb[:-1]), "images but"),
        "unmarked subset": (dict(grid_indices=None), "neither the full grid"),
        "rows swapped": (dict(labels=lb[[1, 0] + list(range(2, len(lb)))]), "not in the official order"),
        "extra value": (dict(labels=np.where((np.arange(len(lb))[:, None] == 0) & (np.arange(6) == 0), lb + 0.05, lb)),
                        "distinct values"),
        "NaN": (dict(labels=np.where(np.arange(len(lb))[:, None] == 3, np.nan, lb)), "NaN"),
    }
    for name, (change, msg) in cases.items():
        bad = _copy_with(path, tmp_path / f"{name}.h5", **change)
        with pytest.raises(Shapes3DFormatError, match=msg): Shapes3D(bad)
    # a misrep file whose build never finished (complete=False) is refused
    bad = _copy_with(path, tmp_path / "unfinished.h5")
    with h5py.File(bad, "r+") as h5: h5.attrs["complete"] = False
    with pytest.raises(Shapes3DFormatError, match="not finished"): Shapes3D(bad)


def test_interrupted_build_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = D.render_shapes3d

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2: raise KeyboardInterrupt("simulated interrupt")
        return real(*a, **k)

    monkeypatch.setattr(D, "render_shapes3d", dying)
    target = tmp_path / "out.h5"
    few_cells = np.arange(300) * 480 + 7  # 300 images of one (scale, shape, orientation) cell
    with pytest.raises(KeyboardInterrupt):
        build_shapes3d(target, indices=few_cells, supersample=1, device="cpu", chunk_size=100, progress_bar=False)
    assert calls["n"] == 2
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing left, not even the partial file
    monkeypatch.setattr(D, "render_shapes3d", real)
    # a build killed hard leaves only NAME.partial-PID: never read as the file, never reused
    (tmp_path / "out.h5.partial-99999").write_bytes(b"half a file")
    with pytest.raises(FileNotFoundError): Shapes3D(target)
    p = build_shapes3d(target, indices=few_cells, supersample=1, device="cpu", chunk_size=100, progress_bar=False)
    assert len(Shapes3D(p)) == 300


def test_build_reuses_and_refuses(tiny, tmp_path, monkeypatch):
    path, idx = tiny
    mtime = path.stat().st_mtime_ns
    assert build_shapes3d(path, indices=idx, supersample=1, device="cpu", progress_bar=False) == path
    assert path.stat().st_mtime_ns == mtime  # reused, not rewritten
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_shapes3d(path, indices=idx[:5], device="cpu", progress_bar=False)
    monkeypatch.setenv("MISREP_CACHE", str(tmp_path / "cache"))
    p = build_shapes3d(indices=idx[:20], device="cpu", progress_bar=False)
    assert p.parent == tmp_path / "cache" / "shapes3d" and p.exists()
    assert D.default_shapes3d_path(idx[:20]) == p and D.default_shapes3d_path(idx[:21]) != p


# ---------------------------------------------------------------- pairs

def test_pairs_share_exactly_the_shared_factors(tiny):
    ds = Shapes3D(tiny[0])
    tr, te = split_by_image(ds.classes, 0.2, SHARED_FACTORS, seed=1)
    for rows in (tr, te):
        i, j = PairSampler(ds.classes, rows, seed=1).batch(0, 2000)
        cx, cy = ds.classes[i], ds.classes[j]
        np.testing.assert_array_equal(cx[:, 3:], cy[:, 3:])
        assert (i != j).all()
        # hues are drawn independently: most pairs differ in each hue
        assert ((cx[:, :3] != cy[:, :3]).mean(0) > 0.7).all()


def test_never_an_image_with_itself_groups_of_two(tiny, tmp_path):
    # a file whose (scale, shape, orientation) groups hold exactly two images each
    rng = np.random.default_rng(4)
    cells = rng.choice(480, 30, replace=False)
    hues = np.stack([rng.choice(1000, 2, replace=False) for _ in cells])
    idx = np.sort((hues * 480 + cells[:, None]).reshape(-1))
    ds = Shapes3D(build_shapes3d(tmp_path / "two.h5", indices=idx, supersample=1, device="cpu", progress_bar=False))
    keys = group_keys(ds.classes, SHARED_FACTORS)
    assert (np.bincount(np.unique(keys, return_inverse=True)[1]) == 2).all()
    partner = np.empty(len(ds), np.int64)
    for k in np.unique(keys):
        a, b = np.nonzero(keys == k)[0]; partner[a], partner[b] = b, a
    sampler = PairSampler(ds.classes, np.arange(len(ds)), seed=0)
    for step in range(5):
        i, j = sampler.batch(step, 256)
        np.testing.assert_array_equal(j, partner[i])  # always the group's other image, never i itself
    # drop one image of five groups: the five left alone are never drawn, as anchor or as partner
    alone = np.unique(keys)[:5]
    dropped = np.array([np.nonzero(keys == k)[0][0] for k in alone]); single = partner[dropped]
    i, j = PairSampler(ds.classes, np.setdiff1d(np.arange(len(ds)), dropped), seed=0).batch(0, 2000)
    assert (i != j).all() and not np.isin(np.r_[i, j], np.r_[dropped, single]).any()
    np.testing.assert_array_equal(j, partner[i])


def test_split_disjoint_and_reproducible(tiny):
    ds = Shapes3D(tiny[0])
    tr, te = split_by_image(ds.classes, 0.25, SHARED_FACTORS, seed=5)
    assert set(tr).isdisjoint(te) and len(tr) + len(te) == len(ds)
    assert len(te) == 60  # 6 groups of 40: 10 held out in each
    assert set(group_keys(ds.classes[te])) == set(group_keys(ds.classes))  # every group in both splits
    for rows in (tr, te):
        i, j = PairSampler(ds.classes, rows, seed=5).batch(3, 500)
        assert np.isin(np.r_[i, j], rows).all()  # both members from the same split
    tr2, te2 = split_by_image(ds.classes, 0.25, SHARED_FACTORS, seed=5)
    assert (tr2 == tr).all() and (te2 == te).all()
    assert not np.array_equal(split_by_image(ds.classes, 0.25, SHARED_FACTORS, seed=6)[1], te)
    s = PairSampler(ds.classes, tr, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(s.batch(7, 64), PairSampler(ds.classes, tr, seed=5).batch(7, 64)))
    assert not np.array_equal(s.batch(7, 64)[0], s.batch(8, 64)[0])
    with pytest.raises(ValueError, match="test_fraction"): split_by_image(ds.classes, 1.5)


def test_pairs_with_dataloader_workers(tiny):
    ds = Shapes3D(tiny[0])
    tr, _ = split_by_image(ds.classes, 0.2, SHARED_FACTORS, seed=2)
    sampler = PairSampler(ds.classes, tr, seed=2)
    pairs = Shapes3DPairs(ds, sampler, batch_size=32, steps=5)
    got = list(torch.utils.data.DataLoader(pairs, batch_size=None, num_workers=2, shuffle=False))
    assert len(got) == 5
    for step in (0, 4):
        x, y, xc, yc = got[step]
        i, j = sampler.batch(step, 32)
        assert x.shape == (32, 3, 64, 64) and x.dtype == torch.uint8
        np.testing.assert_array_equal(x.permute(0, 2, 3, 1).numpy(), ds.images(i))
        np.testing.assert_array_equal(y.permute(0, 2, 3, 1).numpy(), ds.images(j))
        np.testing.assert_array_equal(yc.numpy(), ds.classes[j])
        assert torch.equal(xc[:, 3:], yc[:, 3:])
    with pytest.raises(IndexError): pairs[5]
    with pytest.raises(ValueError, match="dataset has"):
        Shapes3DPairs(ds, PairSampler(np.r_[ds.classes, ds.classes], np.arange(2 * len(ds)), seed=0))


# ---------------------------------------------------------------- command line

def test_cli_build_and_check(tmp_path):
    out = tmp_path / "cli.h5"
    assert main(["build", "--path", str(out), "--subset", "40", "--seed", "3", "--device", "cpu", "--supersample", "1"]) == 0
    assert len(Shapes3D(out)) == 40
    np.testing.assert_array_equal(Shapes3D(out).grid_indices, D.subset_indices(40, 3))
    r = subprocess.run([sys.executable, "-m", "misrep.shapes3d_fidelity", "check", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and "OK, 40 images" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "misrep.shapes3d_fidelity", "check", str(tmp_path / "nope.h5")], capture_output=True, text=True)
    assert r.returncode != 0 and "No Shapes3D file" in r.stderr
