#!/usr/bin/env python3
"""One GPU check of misrep, within 10 minutes of wall time on one GPU, everything written under --out (results/gpu):

  machine     nvidia-smi, torch/CUDA/cuDNN versions, Python, CPUs, commit             -> machine.json, nvidia-smi.txt
  render      the full Shapes3D grid (480,000 images, the builder's 4 x 4 rays per pixel) rendered on the device, then written by
              `python -m misrep.shapes3d_fidelity build` (the misrep-shapes3d CLI; gzip HDF5), checked (its `check`
              command, in this process), read back
                                                                                       -> render.json
  steps       it/s and peak memory of every experiment's `paper` profile (tests/bench_steps.py: each case's own
              model and step on random data of its shapes), fp32, bf16 autocast, channels-last, and each critic's
              `negatives` setting where the code has one                               -> steps_paper.csv/.md
  infogan     the InfoGAN `paper` profile (nbs/31_mnist.ipynb: 5,000 steps, batch 128, full networks, evaluation)
              to completion for 5 seeds, one process per seed on the one GPU, run while the build writes its file
                                                                                       -> infogan_paper/
  summary     what each phase did, its wall time, its errors                           -> summary.json, report.md

Nothing needs the internet: MNIST comes from --mnist-root (a folder holding MNIST/raw with the four idx files, or
their .gz, which are decompressed in place). No Jupyter either: the notebook is executed cell by cell in a plain
Python process (`misrep.cli.exec_notebook`), its parameters set as papermill would.

    python3 tools/gpu_check.py [--out results/gpu] [--mnist-root DIR] [--device cuda] [--budget 570]
    python3 tools/gpu_check.py --dry --out /tmp/x --mnist-root DIR   # the same script on the CPU, tiny settings (tests)

On the device machine (no .venv there; its python3 has torch): `python3 tools/gpu_check.py --mnist-root .gpu_data`.
"""
import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO / "tests", REPO):
    if str(p) not in sys.path: sys.path.insert(0, str(p))
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def log(msg):
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


DRY_IMAGES = 240   # --dry: images rendered in memory and built into a file (the GPU run: the full grid)
DRY_SUPERSAMPLE = 1   # --dry: rays per pixel along each axis (the GPU run: the builder's default, DEFAULT_SUPERSAMPLE)


# ---------------------------------------------------------------- phases
def machine_info(out: Path, device: str) -> dict:
    import torch
    info = dict(python=sys.version.split()[0], platform=platform.platform(), cpus=os.cpu_count(), torch=torch.__version__,
                cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                device=device, gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                cpu_capability=torch.backends.cpu.get_cpu_capability(), load_average=list(os.getloadavg()))
    try: info["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError: info["commit"] = None
    smi = shutil.which("nvidia-smi")
    text = subprocess.run([smi], capture_output=True, text=True).stdout if smi else "nvidia-smi not found\n"
    (out / "nvidia-smi.txt").write_text(text)
    if smi:
        q = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv,noheader"],
                           capture_output=True, text=True).stdout.strip()
        info["nvidia_smi"] = q
    (out / "machine.json").write_text(json.dumps(info, indent=2))
    return info


def render_in_memory(device: str, n: int | None, supersample: int | None = None, chunk: int = 24_000) -> dict:
    "Render `n` grid images (None: all 480,000) on the device at `supersample` (None: the builder's `DEFAULT_SUPERSAMPLE`), nothing written: seconds and img/s."
    import numpy as np
    import torch
    from misrep.shapes3d import DEFAULT_SUPERSAMPLE, N_GEOMETRIES, N_IMAGES, grid_classes, render_geometry, render_shapes3d
    SS = supersample or DEFAULT_SUPERSAMPLE
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    n = n or N_IMAGES
    render_shapes3d(torch.from_numpy(grid_classes(np.arange(8))).to(dev), SS)   # warm-up
    sync(); t0 = time.perf_counter()
    cells = torch.arange(min(n, N_GEOMETRIES), device=dev)     # the cells rows 0..n-1 use (all 480 for the full grid)
    W, C = render_geometry(cells, SS)
    table = (torch.cat([W, W.new_zeros(N_GEOMETRIES - len(W), *W.shape[1:])]),
             torch.cat([C, C.new_zeros(N_GEOMETRIES - len(C), *C.shape[1:])]))
    sync(); t_cells = time.perf_counter() - t0
    total = 0
    for s in range(0, n, chunk):
        f = torch.from_numpy(grid_classes(np.arange(s, min(n, s + chunk)))).to(dev)
        total += int(render_shapes3d(f, SS, geometry=table).shape[0])
    sync(); dt = time.perf_counter() - t0
    return dict(images=total, supersample=SS, seconds=dt, cells=len(cells), cells_seconds=t_cells, img_per_s=total / dt)


def start_build(device: str, path: Path, subset: int | None, log_path: Path, supersample: int | None = None) -> tuple:
    "Start `misrep-shapes3d build` (python -m misrep.shapes3d_fidelity build) in the background."
    cmd = [sys.executable, "-m", "misrep.shapes3d_fidelity", "build", "--path", str(path), "--device", device, "--overwrite"]
    if subset: cmd += ["--subset", str(subset)]
    if supersample: cmd += ["--supersample", str(supersample)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "MISREP_PROGRESS": "0"}
    proc, t0, ended = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env, cwd=REPO), time.time(), {}
    threading.Thread(target=lambda: (proc.wait(), ended.setdefault("t", time.time())), daemon=True).start()
    return proc, t0, ended


def finish_build(proc, t0: float, ended: dict, path: Path, timeout: float, log_path: Path) -> dict:
    "Wait for the build (its own wall time, start to exit); check the file; time reading every image back."
    try: rc = proc.wait(timeout=max(1, timeout))
    except subprocess.TimeoutExpired:
        proc.kill(); return dict(ok=False, error=f"build still running after its {timeout:.0f} s share of the budget")
    time.sleep(0.1)
    seconds = ended.get("t", time.time()) - t0
    if rc != 0: return dict(ok=False, rc=rc, seconds=seconds, error=log_path.read_text()[-2000:])
    import contextlib
    import io
    import numpy as np
    from misrep.shapes3d import Shapes3D
    from misrep.shapes3d_fidelity import main as shapes3d_cli
    said = io.StringIO()                                  # `misrep-shapes3d check PATH`, in this process
    try:
        with contextlib.redirect_stdout(said): rc_check = shapes3d_cli(["check", str(path)])
    except Exception as e: rc_check, said = 1, io.StringIO(f"{type(e).__name__}: {e}")
    ds = Shapes3D(path)
    t1 = time.perf_counter(); imgs = ds.images(np.arange(len(ds))); t_read = time.perf_counter() - t1
    return dict(ok=rc_check == 0, seconds=seconds, images=len(ds), file_gb=path.stat().st_size / 1e9,
                check=said.getvalue().strip()[-500:], read_all_seconds=t_read, read_gb=imgs.nbytes / 1e9)


def measure_steps(out: Path, device: str, dry: bool, deadline: float) -> dict:
    "Every case of tests/bench_steps.py at the paper profile (dry: smoke), per variant and negatives setting."
    import bench_steps as B
    profile, steps, warmup = ("smoke", 1, 1) if dry else ("paper", 20, 3)
    variants = ["fp32"] if dry else ["fp32", "bf16", "channels_last"]
    rows, skipped = [], []
    for case in B.CASES:
        for neg in ("all", 1):
            for variant in variants:
                if time.time() > deadline: skipped.append((case, neg, variant)); continue
                try: r = B.measure(case, profile, device, neg, variant, steps, warmup)
                except Exception as e: r = dict(case=case, device=device, negatives=str(neg), variant=variant, error=repr(e)[:300])
                if "note" in r and variant != variants[0]: continue          # one "no such setting" row per case
                rows.append(r); log({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})
    B.save(rows, out, profile)
    return dict(cases=len(B.CASES), rows=len(rows), errors=[r for r in rows if "error" in r], skipped=skipped,
                table=f"steps_{profile}.md")


def prepare_mnist(root: Path) -> Path:
    "Decompress MNIST/raw/*.gz where the idx file is missing; the root, or DataNotFoundError-like SystemExit."
    raw = root / "MNIST" / "raw"
    for f in MNIST_FILES:
        if not (raw / f).exists() and (raw / f"{f}.gz").exists():
            with gzip.open(raw / f"{f}.gz") as src, open(raw / f, "wb") as dst: shutil.copyfileobj(src, dst)
    missing = [f for f in MNIST_FILES if not (raw / f).exists()]
    if missing: raise FileNotFoundError(f"MNIST not found: {missing} missing under {raw} (pass --mnist-root, a folder "
                                        "holding MNIST/raw with the idx files or their .gz)")
    return root


def infogan_seeds(out: Path, device: str, dry: bool, mnist_root: Path, seeds: list, work: Path, timeout: float) -> dict:
    "nbs/31_mnist.ipynb, InfoGAN paper profile, one process per seed at once; tables gathered into out/infogan_paper."
    from misrep.mnist_eval import gather_seed_runs, get_classifier
    base = dict(model="infogan", profile="paper", device=device, data_root=str(mnist_root), download=False, n_seeds=1,
                resume=True)
    if dry: base.update(profile="smoke", steps=4, clf_n_train=256, n_test=128, n_per_code=5, threads=1)
    clf_epochs = 1 if dry else 2
    get_classifier(mnist_root, epochs=clf_epochs, n_train=base.get("clf_n_train", 0), download=False, device=device)  # once, cached
    procs = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "MISREP_PROGRESS": "0",
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1" if dry else "2"}
    for s in seeds:
        params = {**base, "seed": s, "out_dir": str(work / f"infogan_seed{s}")}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--exec-notebook", str(REPO / "nbs" / "31_mnist.ipynb"),
               "--params", json.dumps(params)]
        procs[s] = subprocess.Popen(cmd, stdout=open(work / f"infogan_seed{s}.log", "w"), stderr=subprocess.STDOUT,
                                    env=env, cwd=REPO)
    t0, res = time.time(), {}
    for s, p in procs.items():
        try: res[s] = p.wait(timeout=max(1, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired: p.kill(); res[s] = "timeout"
    wall = time.time() - t0
    failed = {s: f"rc={res[s]}: " + (work / f"infogan_seed{s}.log").read_text()[-1500:] for s in seeds if res[s] != 0}
    done = [work / f"infogan_seed{s}" for s in seeds if res[s] == 0]
    table = gather_seed_runs(done, out / "infogan_paper") if done else None   # seed{s}/ and tables/accuracy.csv
    error = f"{len(failed)} of {len(seeds)} seeds failed: " + "; ".join(f"seed {s}: {m[-300:]}" for s, m in failed.items())
    return dict(ok=not failed, error=error if failed else None, profile=base["profile"], seeds=seeds, wall_seconds=wall,
                processes=len(seeds), failed=failed,
                acc_generator_mean=None if table is None else float(table.loc["mean", "acc_generator"]),
                acc_encoder_mean=None if table is None else float(table.loc["mean", "acc_encoder"]),
                acc_generator_std=None if table is None or len(done) < 2 else float(table.loc["std", "acc_generator"]))


# ---------------------------------------------------------------- the check
def phase(summary: dict, name: str, fn, *args):
    log(f"{name} ...")
    t0 = time.time()
    try: summary[name] = {"ok": True, **(fn(*args) or {})}
    except Exception as e:
        summary[name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    summary[name]["phase_seconds"] = round(time.time() - t0, 1)
    log(f"{name}: {json.dumps({k: v for k, v in summary[name].items() if k != 'traceback'}, default=str)[:800]}")
    return summary[name]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "results" / "gpu"))
    ap.add_argument("--device", default=None, help="default: cuda (--dry: cpu)")
    ap.add_argument("--mnist-root", default=os.environ.get("MISREP_DATA") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--seeds", type=int, default=None, help="InfoGAN seeds (default 5; --dry 2)")
    ap.add_argument("--budget", type=float, default=570, help="seconds for the whole check (phases shrink to fit)")
    ap.add_argument("--dry", action="store_true", help="the same script on the CPU with tiny settings (tests)")
    ap.add_argument("--exec-notebook", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.exec_notebook:                                             # a child process: one notebook run
        from misrep.cli import exec_notebook
        exec_notebook(a.exec_notebook, json.loads(a.params)); return {}
    t_start = time.time()
    deadline = lambda share: t_start + share * a.budget
    device = a.device or ("cpu" if a.dry else "cuda")
    seeds = list(range(a.seeds if a.seeds is not None else (2 if a.dry else 5)))
    out = Path(a.out).resolve(); out.mkdir(parents=True, exist_ok=True)
    mnist_root = Path(a.mnist_root).resolve()                     # the seeds' processes run in the repository
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    os.environ.setdefault("MISREP_CACHE", str(work / "cache"))     # a fresh cache: the classifier is trained here
    os.environ["MISREP_PROGRESS"] = "0"
    import torch
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or --dry for the CPU version with tiny settings")
    if a.dry: torch.set_num_threads(1)
    summary = {"dry": a.dry, "device": device, "budget_seconds": a.budget}
    phase(summary, "machine", machine_info, out, device)
    phase(summary, "render_in_memory", render_in_memory, device, DRY_IMAGES if a.dry else None, DRY_SUPERSAMPLE if a.dry else None)
    phase(summary, "steps", measure_steps, out, device, a.dry, deadline(0.45))
    build_path, build_log = work / "3dshapes.h5", work / "build.log"
    proc, t_build, ended = start_build(device, build_path, DRY_IMAGES if a.dry else None, build_log, DRY_SUPERSAMPLE if a.dry else None)
    try:
        phase(summary, "infogan", lambda: infogan_seeds(out, device, a.dry, prepare_mnist(mnist_root), seeds, work,
                                                         deadline(0.95) - time.time()))
    finally:
        phase(summary, "build", finish_build, proc, t_build, ended, build_path, deadline(0.97) - time.time(), build_log)
    summary["wall_seconds"] = round(time.time() - t_start, 1)
    summary["ok"] = all(v.get("ok", True) for v in summary.values() if isinstance(v, dict))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "report.md").write_text(report(summary, out))
    shutil.rmtree(work, ignore_errors=True)
    log(f"done in {summary['wall_seconds']} s; ok={summary['ok']}; everything under {out}")
    return summary


def report(s: dict, out: Path) -> str:
    "A short human summary of summary.json."
    m, r, b, g = s.get("machine", {}), s.get("render_in_memory", {}), s.get("build", {}), s.get("infogan", {})
    lines = [f"# misrep GPU check{' (dry run on the CPU)' if s['dry'] else ''}", "",
             f"Machine: {m.get('gpus') or 'no GPU'}; {m.get('nvidia_smi', '')}; torch {m.get('torch')} (CUDA {m.get('cuda')}), "
             f"{m.get('cpus')} CPUs; commit {m.get('commit')}. Wall time {s['wall_seconds']} s (budget {s['budget_seconds']} s).", "",
             f"- Render on {s['device']}: {r.get('images')} images in {r.get('seconds', float('nan')):.1f} s "
             f"({r.get('img_per_s', float('nan')):,.0f} img/s; its {r.get('cells')} geometry cells {r.get('cells_seconds', float('nan')):.1f} s).",
             f"- Build (render + gzip HDF5): {b.get('images')} images in {b.get('seconds', float('nan')):.0f} s, "
             f"{b.get('file_gb', float('nan')):.2f} GB; every image read back in {b.get('read_all_seconds', float('nan')):.1f} s.",
             f"- Steps: `{s.get('steps', {}).get('table')}` ({s.get('steps', {}).get('rows')} rows).",
             f"- InfoGAN {g.get('profile')} profile, {len(g.get('seeds', []))} seeds in parallel: {g.get('wall_seconds', float('nan')):.0f} s; "
             f"generator-side accuracy mean {g.get('acc_generator_mean')}, encoder-side {g.get('acc_encoder_mean')} "
             f"(`infogan_paper/tables/accuracy.md`).", ""]
    for k, v in s.items():
        if isinstance(v, dict) and not v.get("ok", True): lines.append(f"- **{k} failed**: {v.get('error')}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
