"""tools/dim_cifar10_quick.py: the driver of the Deep InfoMax CIFAR-10 set (two workers sharing a job list)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import dim_cifar10_quick as drv  # noqa: E402


def test_run_folder_of_a_new_and_of_a_resumed_run():
    new = "misrep run dim -p seed 1\n  notebook nbs/32_dim.ipynb\n  run folder runs/dim__local_jsd_dot__cifar10-jpeg__quick__seed1\n"
    assert drv.run_folder(new) == "runs/dim__local_jsd_dot__cifar10-jpeg__quick__seed1"
    resumed = new.replace("seed1\n", "seed1 (resumes from dim.pt)\n")   # the case the first version misread as 'dim.pt)'
    assert drv.run_folder(resumed) == "runs/dim__local_jsd_dot__cifar10-jpeg__quick__seed1"
    with pytest.raises(SystemExit, match="could not read the run folder"):
        drv.run_folder("misrep run: unknown parameter")


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
