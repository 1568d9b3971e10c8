"""`misrep run`: the registry names run folders as the notebooks do, mistakes stop before a kernel starts, and a smoke
run of the MI staircase streams its progress, writes its run folder and resumes without retraining."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from misrep import cli
from misrep.core import resolve_run_config

MISREP = Path(sys.executable).parent / "misrep"   # the console script, next to the interpreter running the tests


def test_registry_names_the_staircase_run_as_its_notebook_does():
    from misrep.staircase import PROFILES, StaircaseConfig
    plan = cli.plan_run("mi_bounds", [("profile", "smoke"), ("seed", "3"), ("dim", "6")])
    expected = resolve_run_config(StaircaseConfig, "smoke", PROFILES, seed=3, dim=6)
    assert plan.run_dir == Path(expected.out_dir) == Path("runs/mi_bounds__critics__gaussian6d__smoke__seed3")
    assert plan.config == expected and plan.params == {"profile": "smoke", "seed": 3, "dim": 6}
    assert plan.notebook.name == "33_mi_bounds.ipynb" and StaircaseConfig.EXPERIMENT == "mi_bounds"


@pytest.mark.parametrize("name", list(cli.EXPERIMENTS))
def test_every_entry_resolves_its_notebook_defaults_or_says_it_is_not_ready(name):
    "Every registered experiment either names a folder of its own experiment, or stops with the clear 'not there' error."
    exp = cli.EXPERIMENTS[name]
    try: plan = cli.plan_run(name)
    except cli.ExperimentNotReady as e:
        assert "not there" in str(e) or "not a misrep.core.RunConfig" in str(e)
        pytest.skip(f"{name}: {e}")
    defaults = cli.notebook_parameters(plan.notebook)
    if exp.config or exp.resolver:
        assert plan.config.EXPERIMENT == name and plan.run_dir.parts[0] == "runs"
        assert plan.run_dir.name.startswith(f"{name}__") and f"__{defaults['profile']}__seed0" in plan.run_dir.name
    else:
        assert plan.run_dir == Path(defaults["out_dir"])


@pytest.fixture
def no_kernel(monkeypatch):
    "Fail the test if anything tries to start a kernel or execute a notebook."
    import papermill
    def boom(*a, **k): raise AssertionError("a kernel was started")
    monkeypatch.setattr(cli, "find_kernel", boom)
    monkeypatch.setattr(papermill, "execute_notebook", boom)


@pytest.mark.parametrize("argv, message", [
    (["run", "mi_bound"], "misrep run: unknown experiment 'mi_bound' (did you mean 'mi_bounds'?); experiments: shapes3d,"),
    (["run", "mi_bounds", "-p", "stesp_per_level", "4"],
     "misrep run: unknown parameter 'stesp_per_level' (did you mean 'steps_per_level'?) for mi_bounds (33_mi_bounds.ipynb); "
     "its parameters: profile, out_dir, device, seed,"),
    (["run", "mi_bounds", "--profile", "huge"], "unknown profile 'huge'"),
])
def test_mistakes_stop_with_one_line_before_any_kernel(argv, message, no_kernel, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err and out == ""
    assert list(tmp_path.iterdir()) == []                       # no run folder either


def test_a_missing_kernel_says_how_to_install_one():
    with pytest.raises(cli.RunCommandError, match=r"no Jupyter kernel named 'misrep-nope': `make venv` installs one"):
        cli.find_kernel("misrep-nope")


def _misrep(*args, cwd):
    assert MISREP.exists(), f"{MISREP} is missing: the console script is installed by `make venv` (pip install -e .)"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MISREP_PROGRESS", None); env.pop("MISREP_PROGRESS_FILE", None)
    return subprocess.run([str(MISREP), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_smoke_run_streams_progress_writes_the_run_folder_and_resumes(tmp_path):
    res = _misrep("run", "mi_bounds", "--profile", "smoke", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    run = tmp_path / "runs" / "mi_bounds__critics__gaussian4d__smoke__seed0"   # derived by the notebook, as planned
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["out_dir"] == "runs/mi_bounds__critics__gaussian4d__smoke__seed0" and cfg["profile"] == "smoke"
    steps = cfg["steps_per_level"] * len(cfg["mi_levels"])
    out = res.stdout
    # the terminal: the stage, step / total, elapsed < ETA, it/s and the latest metrics
    assert re.search(rf"^staircase: 100%\|#+\| {steps}/{steps} \[\d\d:\d\d<00:00, +[\d.]+it/s, true_mi=4, separable_dv=",
                     out, flags=re.M), out
    assert "] Training every critic on the staircase  (cell " in out and "(new run)" in out
    assert "| critic | bound | MI=2 | MI=4 |" in out and str(Path("runs") / run.name / "figures" / "staircase.png") in out
    assert out.rstrip().endswith("misrep run mi_bounds -p profile smoke")
    # the run folder: the executed notebook keeps one line of the bar; the log has one per refresh and ends the bar
    nb = json.loads((run / "33_mi_bounds.ipynb").read_text())
    texts = ["".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", [])]
    assert sum(t.count("staircase:") for t in texts) == 1 and not any("\r" in t for t in texts)
    log = (run / "progress.log").read_text()
    lines = log.split("\n")
    assert lines[0].startswith(f"staircase:   0%|") and f" 0/{steps} [" in lines[0] and log.endswith("\n\n")
    assert f" {steps}/{steps} [" in lines[-3] and len(lines) >= 4
    ck, metrics = run / "checkpoints" / "staircase.pt", (run / "metrics.csv").read_bytes()
    stamp = ck.stat().st_mtime_ns
    # the same command again resumes: nothing is retrained, the checkpoint and the metrics are untouched
    again = _misrep("run", "mi_bounds", "--profile", "smoke", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(resuming from staircase.pt)" in again.stdout
    assert ck.stat().st_mtime_ns == stamp and (run / "metrics.csv").read_bytes() == metrics
    # each start recorded what else decides the floats (PyTorch's CPU kernels, versions, OMP_NUM_THREADS as set above)
    env = json.loads((run / "environment.json").read_text())
    assert [e["state"] for e in env] == ["new run", "resuming from staircase.pt"], env
    assert env[0]["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env[0]["torch"] == torch.__version__
    assert env[1]["variables"]["OMP_NUM_THREADS"] == "1" and f"CPU kernels {env[0]['cpu_capability']}" in out
