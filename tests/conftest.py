"""Shared pytest helpers: run an experiment notebook through papermill, locate real data sets."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
# Real data sets live in ../shared/data on the project's machines; elsewhere set MISREP_TEST_DATA.
SHARED_DATA = Path(os.environ.get("MISREP_TEST_DATA") or REPO.parent / "shared" / "data")


def run_notebook(name, out_dir, **parameters):
    """Execute nbs/{name} with papermill into out_dir (created) and return the executed notebook's path."""
    import papermill as pm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / name
    pm.execute_notebook(str(NBS / name), str(output), parameters={"out_dir": str(out_dir), **parameters},
                        cwd=str(REPO), kernel_name="python3", progress_bar=False)
    return output


@pytest.fixture
def mnist_root():
    """The real MNIST root (torchvision layout), or skip with the reason."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not found under {SHARED_DATA}/MNIST/raw (set MISREP_TEST_DATA to a folder holding MNIST/raw)")
    return SHARED_DATA
