"""Every exported function and class of every misrep module is called, from a fresh interpreter, by its notebook's
tests run against the *exported* module.

`nbdev_test` runs a library notebook as a notebook: its test cells see the definitions of the notebook's own cells,
and the imports of every cell, exported or not. A module can therefore miss an import that only an unexported cell
made, and pass (`write_fake_mnist` once raised `NameError: struct` that way). Here each library notebook's test cells
run in a new Python process in which every exported cell is replaced by the module that nbdev exported from it
(`import misrep.<module>`, its names put in scope). A trace function records which of the module's functions ran; every name
in the module's `__all__` must have run at least once (a class: one of its methods, or its construction).

"A new Python process": forked, where the OS can, from a server process that has imported third-party libraries
(torch, numpy, pandas, matplotlib with pyplot, scipy.optimize, the scikit-learn modules misrep uses, h5py) and nothing
of misrep (importing torch takes about 4 s here, a third of a notebook's check); a missing import in a misrep module
still fails there, since a module's names resolve in its own globals. Elsewhere, `python -c`.
"""
import atexit
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
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


# The fork server: reads one request per line (a script, its argv, the files for stdin, stdout and stderr, the folder),
# forks, runs the script in the child as `python -c` would, and answers the child's pid, then its exit code.
FORK_SERVER = r'''
import json, os, sys, traceback
import matplotlib; matplotlib.use("Agg")
import numpy, pandas, torch                  # third-party only: nothing of misrep is imported in the server
import h5py, matplotlib.pyplot, scipy.optimize, sklearn.ensemble, sklearn.linear_model, sklearn.metrics, sklearn.svm
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(req["cwd"])
            for fd, path, mode in ((0, req["stdin"], os.O_RDONLY), (1, req["stdout"], os.O_WRONLY | os.O_CREAT),
                                   (2, req["stderr"], os.O_WRONLY | os.O_CREAT)):
                os.dup2(os.open(path, mode), fd)
            sys.stdin = open(0, closefd=False); sys.argv = ["-c", *req["argv"]]
            exec(compile(req["script"], "<string>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException: traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush(); os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), flush=True)
'''
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MISREP_PROGRESS": "0"}
_server, _pending = None, b""


def _answer(timeout):
    "The server's next line, read from its pipe without Python's buffering (both lines may arrive in one read)."
    global _pending
    deadline = time.monotonic() + timeout
    while b"\n" not in _pending:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([_server.stdout], [], [], left)[0]: raise TimeoutError(f"no answer in {timeout} s")
        chunk = os.read(_server.stdout.fileno(), 65536)
        if not chunk: raise RuntimeError(f"the fork server died: {_server.stderr.read()[-2000:].decode(errors='replace')}")
        _pending += chunk
    line, _pending = _pending.split(b"\n", 1)
    return json.loads(line)


def run_script(script, argv, stdin="", cwd=NBS, timeout=1200):
    "`python -c script *argv` with `stdin`, in a process forked from the server where the OS can; (returncode, stdout, stderr)."
    global _server, _pending
    if not hasattr(os, "fork"):
        r = subprocess.run([sys.executable, "-c", script, *argv], input=stdin, capture_output=True, text=True, cwd=cwd,
                           timeout=timeout, env=ENV)
        return r.returncode, r.stdout, r.stderr
    if _server is None or _server.poll() is not None:
        _server, _pending = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, env=ENV), b""
        atexit.register(_server.kill)
    with tempfile.TemporaryDirectory() as d:
        files = {k: os.path.join(d, k) for k in ("stdin", "stdout", "stderr")}
        Path(files["stdin"]).write_text(stdin)
        _server.stdin.write((json.dumps({"script": script, "argv": list(argv), "cwd": str(cwd), **files}) + "\n").encode())
        _server.stdin.flush()
        pid = _answer(120)["pid"]
        try: rc = _answer(timeout)["rc"]
        except TimeoutError:
            os.kill(pid, 9); _answer(60); raise
        return rc, Path(files["stdout"]).read_text(), Path(files["stderr"]).read_text()


def _run(nb):
    "Run one notebook's test cells against its exported module in a new process; (returncode, stdout, stderr)."
    module, cells = _cells(nb)
    if not module or not any(k == "export" for k, _ in cells): return None, module, "", ""
    # cwd nbs/, as nbdev_test: a notebook's relative paths (../../shared/...) mean the same in both
    rc, out, err = run_script(RUNNER, [module], json.dumps(cells), cwd=NBS)
    return rc, module, out, err


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
    runner = RUNNER.replace('importlib.import_module("misrep." + MOD)', "importlib.import_module(MOD)")  # found in cwd
    rc, out, err = run_script(runner, ["fake_mod"], json.dumps(cells), cwd=tmp_path)   # as the notebooks' checks run
    assert rc != 0 and "NameError" in err and "struct" in err, (rc, err[-2000:])


def test_the_runner_process_is_fresh_and_returns_its_exit_code():
    "Each check's process holds no misrep module before its own import; exit codes and output come back; it runs in nbs/."
    script = "import sys, os; print(sorted(m for m in sys.modules if m.startswith('misrep')), os.getcwd()); sys.exit(3)"
    for _ in range(5):      # each request a new, equally fresh process; a quick exit's two answer lines may come at once
        rc, out, err = run_script(script, [], timeout=30)
        assert (rc, out.strip()) == (3, f"[] {NBS}"), (rc, out, err)
    rc, out, err = run_script("import misrep.core; raise ValueError('boom')", [])
    assert rc == 1 and "ValueError: boom" in err and out == ""
