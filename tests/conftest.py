"""Shared pytest helpers: run an experiment notebook (in this process, or through papermill), locate real data sets."""
import os
from pathlib import Path

import pytest

from misrep.cli import NotebookError, exec_notebook  # noqa: F401 (NotebookError: for the tests)

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
# Real data sets live in ../shared/data on the project's machines; elsewhere set MISREP_TEST_DATA.
SHARED_DATA = Path(os.environ.get("MISREP_TEST_DATA") or REPO.parent / "shared" / "data")


def run_notebook(name, out_dir, kernel=False, **parameters):
    """Execute nbs/{name} into out_dir (created), `out_dir` and `parameters` injected, from the repository root.

    By default in this process (`misrep.cli.exec_notebook`: torch and misrep are imported already, no kernel starts; a
    failing cell raises `NotebookError`). `kernel=True` runs it as `misrep run` does, through papermill in a Jupyter
    kernel, and writes the executed notebook (a failing cell raises `PapermillExecutionError`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"out_dir": str(out_dir), **parameters}
    if not kernel:
        return exec_notebook(NBS / name, params, cwd=REPO)
    import papermill as pm
    pm.execute_notebook(str(NBS / name), str(out_dir / name), parameters=params, cwd=str(REPO), kernel_name="python3",
                        progress_bar=False)
    return out_dir / name


@pytest.fixture
def mnist_root():
    """The real MNIST root (torchvision layout), or skip with the reason."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not found under {SHARED_DATA}/MNIST/raw (set MISREP_TEST_DATA to a folder holding MNIST/raw)")
    return SHARED_DATA


def write_fake_mnist(root, n_train=6, n_test=4, seed=0):
    """Write a small random MNIST in torchvision's raw idx layout under root/MNIST/raw; return the train (images, labels).

    idx files: big-endian header (magic 2051 for images, 2049 for labels, then the sizes), then the uint8 data.
    """
    import struct

    import numpy as np
    import torch

    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    out = None
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = g.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = g.integers(0, 10, n, dtype=np.uint8)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + x.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + y.tobytes())
        if out is None:
            out = (torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long())
    return out


def check_two_stage_resume(both_stages, tmp_path, stop1, stop2, n_rows=12):
    """Run `both_stages(path, stop1=, stop2=)` uninterrupted, then interrupted in one stage and resumed with fresh objects
    from the checkpoints: the final weights must be equal and metrics.csv identical, rows at steps 1..n_rows."""
    import torch
    a, ra = both_stages(tmp_path / "a")
    both_stages(tmp_path / "b", stop1=stop1, stop2=stop2)              # interrupted half-way through one stage
    b, rb = both_stages(tmp_path / "b")                                # fresh objects, resumed from the checkpoints
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()): assert torch.equal(va, vb), k
    ma, mb = ra.metrics(), rb.metrics()
    assert len(ma) == n_rows and ma.step.tolist() == list(range(1, n_rows + 1))
    assert ma.equals(mb), mb.step.tolist()
