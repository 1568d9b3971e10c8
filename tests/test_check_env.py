"""tools/check_env: the machine checks `make venv` runs first, fed fake facts (no broken machine needed)."""
import importlib.util
import os
import shutil
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "check_env"
GB = 10 ** 9


def load_check_env():
    """Import tools/check_env (a script without .py) as a module."""
    loader = SourceFileLoader("check_env", str(SCRIPT))
    spec = importlib.util.spec_from_loader("check_env", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


ce = load_check_env()
OK = dict(version=(3, 11, 7), has_venv=True, has_ensurepip=True, free=100 * GB, where="/x")


def problems(**changes):
    return ce.problems(**{**OK, **changes})


def test_all_there():
    assert problems() == []


@pytest.mark.parametrize("version,bad", [((3, 8, 18), True), ((3, 9, 0), False), ((2, 7, 18), True),
                                         ((3, 10, 1), False), ((4, 0, 0), False)])
def test_python_version(version, bad):
    out = problems(version=version)
    assert len(out) == bad
    if bad:
        assert "Python %d.%d.%d found" % version in out[0] and ">= 3.9" in out[0]


def test_min_version_is_a_parameter():
    assert problems(version=(3, 11, 7), min_version=(3, 12)) != []
    assert problems(version=(3, 12, 0), min_version=(3, 12)) == []


def test_venv_and_ensurepip():
    (m,) = problems(has_ensurepip=False)
    assert "ensurepip module is missing" in m and "python3-venv" in m and "python3.11-venv" in m
    (m,) = problems(has_venv=False, has_ensurepip=False)
    assert "venv and ensurepip modules are missing" in m
    # An existing .venv needs neither module.
    assert problems(has_venv=False, has_ensurepip=False, venv_exists=True) == []


@pytest.mark.parametrize("free_gb,need_gb,bad", [(7.9, 8, True), (8.0, 8, False), (0.5, 8, True), (20, 8, False),
                                                  (20, 30, True)])
def test_disk_space_fresh_install(free_gb, need_gb, bad):
    out = problems(free=free_gb * GB, need_gb=need_gb)
    assert len(out) == bad
    if bad:
        assert "%.1f GB needed, %.1f GB free" % (need_gb, free_gb) in out[0] and "/x" in out[0]


def test_disk_space_update_needs_less():
    # torch already in .venv: only the update threshold applies.
    assert problems(free=2 * GB, torch_present=True, update_gb=1) == []
    (m,) = problems(free=0.4 * GB, torch_present=True, update_gb=1)
    assert "1.0 GB needed, 0.4 GB free" in m


def test_every_problem_reported_at_once():
    out = problems(version=(3, 8, 0), has_venv=False, free=1 * GB)
    assert len(out) == 3


def test_existing_parent(tmp_path):
    assert ce.existing_parent(str(tmp_path / "a" / "b" / ".venv")) == str(tmp_path)
    assert ce.existing_parent(str(tmp_path)) == str(tmp_path)


def test_torch_installed(tmp_path):
    assert not ce.torch_installed(str(tmp_path))
    (tmp_path / "lib" / "python3.11" / "site-packages" / "torch").mkdir(parents=True)
    assert ce.torch_installed(str(tmp_path))


def run_script(*args, python=sys.executable):
    return subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_script_message_not_traceback(tmp_path):
    r = run_script("--venv", str(tmp_path / "v"), "--need-gb", "1e9")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "GB needed" in r.stderr and str(tmp_path) in r.stderr
    r = run_script("--venv", str(tmp_path / "v"), "--need-gb", "0")
    assert r.returncode == 0, r.stderr


def test_script_rejects_bad_min_python(tmp_path):
    r = run_script("--min-python", "three", "--venv", str(tmp_path / "v"))
    assert r.returncode == 2 and "--min-python expects a version" in r.stderr


def old_pythons():
    """Pythons older than 3.9 found on PATH (or $MISREP_OLD_PYTHON) that actually run (pyenv shims may not)."""
    found = []
    for name in [os.environ.get("MISREP_OLD_PYTHON", ""), "python3.8", "python3.7", "python3.6", "python2.7"]:
        exe = name and shutil.which(name)
        if not exe:
            continue
        try:
            r = subprocess.run([exe, "-c", "import sys; print(sys.version_info[0] * 100 + sys.version_info[1])"],
                               capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if r.returncode == 0 and r.stdout.strip().isdigit() and int(r.stdout) < 309:
            found.append(exe)
    return found


OLD = old_pythons()


@pytest.mark.parametrize("python", OLD or [pytest.param("", marks=pytest.mark.skip(
    reason="no old Python (< 3.9) on this machine; set MISREP_OLD_PYTHON to one"))])
def test_old_python_gets_the_message(python, tmp_path):
    r = run_script("--venv", str(tmp_path / "v"), python=python)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "SyntaxError" not in r.stderr
    assert "but misrep needs Python >= 3.9" in r.stderr
