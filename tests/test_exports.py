"""Every exported function and class of every misrep module is called, from a fresh interpreter, by its notebook's
tests run against the *exported* module.

`nbdev_test` runs a library notebook as a notebook: its test cells see the definitions of the notebook's own cells,
and the imports of every cell, exported or not. A module can therefore miss an import that only an unexported cell
made, and pass (`write_fake_mnist` once raised `NameError: struct` that way). Here each library notebook's test cells
run in a new Python process in which every exported cell is replaced by the module that nbdev exported from it
(`import misrep.<module>`, its names put in scope). A trace function records which of the module's functions ran; every name
in the module's `__all__` must have run at least once (a class: one of its methods, or its construction).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NBS = REPO / "nbs"
SKIP_FLAGS = ("slow",)  # settings.ini tst_flags: skipped unless asked for, as nbdev_test does

RUNNER = r'''
import sys, importlib, inspect, json, dataclasses
import matplotlib; matplotlib.use("Agg")
MOD = sys.argv[1]
cells = json.loads(sys.stdin.read())
mod = importlib.import_module("misrep." + MOD)
path = mod.__file__
called = set()
def trace(frame, event, arg):   # a global trace function sees each new Python frame ("call") and nothing else
    if frame.f_code.co_filename == path: called.add(frame.f_code)
    return None                   # no line tracing inside the frame
ns = {"__name__": "__main__"}
sys.settrace(trace)
try:
    for kind, src in cells:
        if kind == "export": ns.update({k: v for k, v in vars(mod).items() if not k.startswith("__")})
        else: exec(compile(src, f"<{MOD} test cell>", "exec"), ns)
finally:
    sys.settrace(None)
names = getattr(mod, "__all__", [])
def own_functions(cls):
    for v in vars(cls).values():
        if isinstance(v, (staticmethod, classmethod)): v = v.__func__
        if isinstance(v, property): v = v.fget
        if inspect.isfunction(v): yield inspect.unwrap(v)
missing = []
for n in names:
    obj = getattr(mod, n)
    if inspect.isfunction(obj):
        if inspect.unwrap(obj).__code__ not in called: missing.append(n)
    elif inspect.isclass(obj) and getattr(obj, "__module__", "") == mod.__name__:
        own = any(f.__code__ in called for f in own_functions(obj))
        data = dataclasses.is_dataclass(obj) or issubclass(obj, (tuple, Exception))
        if not own and not data: missing.append(n)
print(json.dumps({"missing": missing, "n_exported": len(names)}))
'''


def _library_notebooks():
    return sorted(p for p in NBS.glob("*.ipynb") if re.match(r"^[0-2][0-9][a-z]?_", p.name))


def _cells(nb_path):
    "The module name and the notebook's code cells as (kind, source): 'export' for exported cells, else 'test'."
    nb = json.loads(nb_path.read_text())
    module, cells = None, []
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        src = "".join(c["source"])
        directives = re.findall(r"^#\|\s*(.*)$", src, flags=re.M)
        words = " ".join(directives).split()
        if "default_exp" in words:
            module = words[words.index("default_exp") + 1]; continue
        if any(w in ("export", "exports") for w in words): cells.append(("export", src)); continue
        if any(w in SKIP_FLAGS for w in words) or re.search(r"eval:\s*false", " ".join(directives)): continue
        if re.search(r"^\s*[%!]", src, flags=re.M): continue           # magics and shell escapes do not run here
        cells.append(("test", src))
    return module, cells


NOTEBOOKS = _library_notebooks()
# Names a notebook can only call on real data that this repository may not have (tests must not need ../shared): where
# that data is absent, their absence from the profile is a skip with the reason, not a failure.
REAL_DATA = {"02a_shapes3d_fidelity": REPO.parent / "shared" / "data" / "shapes3d-reference"}


def _run(nb):
    "Run one notebook's test cells against its exported module in a new process; (returncode, stdout, stderr)."
    module, cells = _cells(nb)
    if not module or not any(k == "export" for k, _ in cells): return None, module, "", ""
    # cwd nbs/, as nbdev_test: a notebook's relative paths (../../shared/...) mean the same in both
    res = subprocess.run([sys.executable, "-c", RUNNER, module], input=json.dumps(cells), capture_output=True, text=True,
                         cwd=NBS, timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1", "MISREP_PROGRESS": "0"})
    return res.returncode, module, res.stdout, res.stderr


def _check(nb):
    rc, module, out, err = _run(nb)
    assert rc is not None, f"{nb.name} has no '#| default_exp' cell or exports nothing"
    assert rc == 0, f"{nb.name}'s tests fail against the exported misrep.{module}:\n{err[-3000:]}"
    res = json.loads(out.strip().splitlines()[-1])
    data = REAL_DATA.get(nb.stem)
    if res["missing"] and data is not None and not data.is_dir():
        pytest.skip(f"{nb.name} calls {res['missing']} only on the real images under {data}, absent here")
    assert not res["missing"], (f"exported by misrep.{module} but never called by {nb.name}'s tests: {res['missing']}; "
                                "add a test that calls each (or stop exporting it)")


# One class per notebook, each test running only its own notebook (`-k 04_train` runs one): `make test`'s
# `--dist loadscope` keeps each other test file whole on one worker (its fixtures built once) but sends each class on
# its own, so the notebooks spread over both workers.
for _nb in NOTEBOOKS:
    _cls = "TestExports_" + re.sub(r"\W", "_", _nb.stem)
    globals()[_cls] = type(_cls, (), {"__doc__": f"{_nb.name}'s test cells against the exported module.",
                                      "test_every_export_runs_from_a_fresh_interpreter": lambda self, nb=_nb: _check(nb)})


def test_the_runner_catches_a_module_that_misses_an_import(tmp_path, monkeypatch):
    "The failure this test exists for: an exported cell that relies on an import made in an unexported cell."
    # a throwaway module on the path; its test cell imports struct, the module itself does not
    mod_src = "import os\n__all__ = ['pack']\ndef pack(n):\n    return struct.pack('>I', n)\n"
    (tmp_path / "fake_mod.py").write_text(mod_src)
    cells = [("test", "import struct"), ("export", ""), ("test", "assert pack(1) == b'\\x00\\x00\\x00\\x01'")]
    runner = RUNNER.replace('importlib.import_module("misrep." + MOD)', "importlib.import_module(MOD)")
    res = subprocess.run([sys.executable, "-c", runner, "fake_mod"], input=json.dumps(cells), capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert res.returncode != 0 and "NameError" in res.stderr and "struct" in res.stderr
