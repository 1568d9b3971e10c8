"""End-to-end smoke run of nbs/33_mi_bounds.ipynb, and its refusal of bad parameters."""
import json
import math

import pandas as pd
import pytest
from papermill.exceptions import PapermillExecutionError

from conftest import run_notebook

BOUNDS = ["dv", "nwj", "infonce", "jsd"]


def test_smoke_run_writes_well_formed_outputs(tmp_path):
    out = tmp_path / "mi"
    run_notebook("33_mi_bounds.ipynb", out, profile="smoke", seed=1)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["profile"] == "smoke" and cfg["seed"] == 1 and cfg["mi_levels"] == [2, 4]
    m = pd.read_csv(out / "metrics.csv")
    assert len(m) == cfg["steps_per_level"] * len(cfg["mi_levels"])
    assert sorted(m.true_mi.unique()) == [2, 4]
    for c in ("separable", "concat"):
        for b in BOUNDS:
            col = m[f"{c}_{b}"]
            assert col.notna().all() and col.abs().lt(1e3).all()
        # infoNCE can never exceed log B, whatever the critic
        assert (m[f"{c}_infonce"] <= math.log(cfg["batch_size"]) + 1e-5).all()
    t = pd.read_csv(out / "tables" / "bias_variance.csv")
    assert set(t.bound) == set(BOUNDS) and set(t.true_mi) == {2, 4}
    assert ((t["mean"] - t["true_mi"] - t["bias"]).abs() < 1e-4).all()
    assert (t.variance >= 0).all()
    png = out / "figures" / "staircase.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_unknown_profile_stops_at_once(tmp_path):
    with pytest.raises(PapermillExecutionError, match="profile must be one of"):
        run_notebook("33_mi_bounds.ipynb", tmp_path / "bad", profile="huge")
    assert not (tmp_path / "bad" / "metrics.csv").exists()


def test_unknown_bound_is_refused(tmp_path):
    with pytest.raises(PapermillExecutionError, match="unknown bound"):
        run_notebook("33_mi_bounds.ipynb", tmp_path / "bad", profile="smoke", bounds=["dv", "mine2"])
