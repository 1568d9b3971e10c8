"""tools/dim_cifar10_quick.py: the driver of the Deep InfoMax CIFAR-10 set (two workers sharing a job list)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import dim_cifar10_quick as drv  # noqa: E402


def test_job_folder_is_the_one_misrep_run_derives(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # no run folders here
    p = dict(drv.ROWS["local_jsd"], dataset="cifar10", seed=1)
    assert drv.job_folder(p, "quick") == "runs/dim__local_jsd_dot__cifar10__quick__seed1"
    assert drv.job_folder(dict(drv.ROWS["supervised"], dataset="cifar10", seed=0), "quick") == "runs/dim__supervised__cifar10__quick__seed0"


def test_a_claim_is_held_while_its_process_lives_and_taken_over_after(tmp_path):
    assert drv.claim(tmp_path, "job")                                   # first claim: ours
    assert (tmp_path / "job" / "pid").read_text() == str(os.getpid())
    assert not drv.claim(tmp_path, "job")                               # held by a live process (this one)
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()
    (tmp_path / "job" / "pid").write_text(str(dead.pid))                # its owner has exited
    assert drv.claim(tmp_path, "job") and (tmp_path / "job" / "pid").read_text() == str(os.getpid())


def test_unknown_rows_are_refused(capsys):
    with pytest.raises(SystemExit):
        drv.main(["--only", "local_mine"])
    assert "unknown rows ['local_mine']" in capsys.readouterr().err
