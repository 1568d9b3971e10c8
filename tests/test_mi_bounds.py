"""End-to-end smoke run of nbs/33_mi_bounds.ipynb (the MI staircase), its resume, and its refusal of bad parameters."""
import json
import math

import pandas as pd
import pytest
import torch

from conftest import NotebookError, run_notebook

BOUNDS = ["dv", "nwj", "infonce", "jsd", "mine", "smile", "alpha"]


def test_smoke_run_writes_well_formed_outputs_and_resumes(tmp_path):
    out = tmp_path / "mi"
    run_notebook("33_mi_bounds.ipynb", out, profile="smoke", seed=1)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["profile"] == "smoke" and cfg["seed"] == 1 and cfg["mi_levels"] == [2, 4]
    m = pd.read_csv(out / "metrics.csv")
    n = cfg["steps_per_level"] * len(cfg["mi_levels"])
    assert m.step.tolist() == list(range(1, n + 1))            # one row per step, steps completed
    assert m.true_mi.tolist() == [2] * cfg["steps_per_level"] + [4] * cfg["steps_per_level"]
    for c in ("separable", "concat"):
        for b in BOUNDS:
            col = m[f"{c}_{b}"]
            assert col.notna().all() and col.abs().lt(1e3).all()
        # infoNCE can never exceed log B, I_alpha never log((B - 1) / alpha), whatever the critic
        assert (m[f"{c}_infonce"] <= math.log(cfg["batch_size"]) + 1e-5).all()
        assert (m[f"{c}_alpha"] <= math.log((cfg["batch_size"] - 1) / cfg["alpha"]) + 1e-5).all()
    t = pd.read_csv(out / "tables" / "bias_variance.csv")
    assert set(t.bound) == set(BOUNDS) and set(t.true_mi) == {2, 4}
    # the table is computed from the second half of each level: recompute one cell from metrics.csv
    half = m[(m.step > cfg["steps_per_level"] // 2) & (m.step <= cfg["steps_per_level"])]
    row = t[(t.critic == "concat") & (t.bound == "nwj") & (t.true_mi == 2)].iloc[0]
    assert abs(row["mean"] - half.concat_nwj.mean()) < 1e-6 and abs(row["variance"] - half.concat_nwj.var()) < 1e-6
    assert ((t["mean"] - t["true_mi"] - t["bias"]).abs() < 1e-4).all()
    # MINE's moving average and I_alpha's baseline are part of the checkpointed critics
    ck = torch.load(out / "checkpoints" / "staircase.pt", weights_only=True)
    for c in ("separable", "concat"):
        assert torch.isfinite(ck["modules"][f"{c}_mine"]["mine.log_ma"])
        assert any(k.startswith("baseline.") for k in ck["modules"][f"{c}_alpha"])
    png = out / "figures" / "staircase.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    # running it again resumes from the finished checkpoint: nothing is retrained, the metrics are unchanged
    run_notebook("33_mi_bounds.ipynb", out, profile="smoke", seed=1)
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), m)
    # ... and a resume with another setting stops, listing the difference, leaving config.json as it was
    before = (out / "config.json").read_text()
    with pytest.raises(NotebookError, match=r"lr: 0.001 -> 0.01"):
        run_notebook("33_mi_bounds.ipynb", out, profile="smoke", seed=1, lr=0.01)
    assert (out / "config.json").read_text() == before


def test_unknown_profile_stops_at_once(tmp_path):
    with pytest.raises(NotebookError, match="unknown profile"):
        run_notebook("33_mi_bounds.ipynb", tmp_path / "bad", profile="huge")
    assert not (tmp_path / "bad" / "metrics.csv").exists()


def test_unknown_bound_is_refused(tmp_path):
    with pytest.raises(NotebookError, match="unknown bound"):
        run_notebook("33_mi_bounds.ipynb", tmp_path / "bad", profile="smoke", bounds=["dv", "mine2"])
