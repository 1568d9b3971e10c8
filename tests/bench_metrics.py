"""Benchmark of misrep.metrics: the wall time of every metric on Shapes3D-like codes, one thread.

    .venv/bin/python tests/bench_metrics.py                       # 10,000 training + 5,000 test rows x 64 dims
    .venv/bin/python tests/bench_metrics.py --skip-reference      # without scikit-learn's GradientBoostingClassifier
    .venv/bin/python tests/bench_metrics.py --only dci --skip-reference
    .venv/bin/python tests/bench_metrics.py --n-train 2000 --n-test 1000 --reference-sizes 250 500

Codes: 15,000 distinct rows of the Shapes3D grid (factor classes 10, 10, 10, 8, 4, 15), 64 dims: one noisy dim per
factor, 10 dims mixing several factors, 2 collapsed dims (std 0.01), the rest noise. Each metric runs with
disentanglement_lib's sample counts (fit on --n-train rows or votes, score on --n-test).

disentanglement_lib's DCI reference (GradientBoostingClassifier, 100 stages of depth-3 trees, one tree per class per
stage) is far too slow to run at full size here, so it is timed on the 4-class factor (shape) at a few training sizes,
a power law t = a n^b is fitted, and the full cost is extrapolated to --n-train rows and every factor (scaled by the
number of trees per stage: K for K > 2 classes, 1 for 2).

Every time is printed twice: wall seconds, and CPU seconds of the process (with one thread, what the wall time would
be on an idle core; on a shared machine the wall time grows with the load, which is printed before and after).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and scikit-learn load their thread pools
os.environ.setdefault("MISREP_PROGRESS", "0")
import argparse
import json
import platform
import time

import numpy as np


def shapes3d_like_codes(n, d, seed=0):
    "n distinct Shapes3D factor rows (classes) and a (n, d) code: one noisy dim per factor, mixed dims, collapsed dims, noise."
    from misrep.shapes3d import FACTOR_SIZES, N_IMAGES, grid_classes
    rng = np.random.default_rng(seed)
    y = np.asarray(grid_classes(rng.choice(N_IMAGES, n, replace=False)))
    f = (y + 0.5) / np.array(FACTOR_SIZES)             # factors in (0, 1)
    k = len(FACTOR_SIZES)
    z = rng.normal(size=(n, d))
    z[:, :k] = f * 4 + 0.3 * rng.normal(size=(n, k))  # one dim per factor
    z[:, k:k + 10] += f @ rng.normal(size=(k, 10)) * 2  # 10 mixed dims
    z[:, k + 10:k + 12] *= 0.01                         # 2 collapsed dims
    return z, y


def timed(fn):
    "Wall seconds, CPU seconds of this process (what the wall time would be on an idle core, one thread) and the result."
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def reference_extrapolation(z, y, sizes, n_train, seed=0):
    "Time GradientBoostingClassifier on the 4-class factor at `sizes` rows; extrapolate to n_train rows, all factors."
    from sklearn.ensemble import GradientBoostingClassifier
    k = 4  # shape: 4 classes
    walls, cpus = [], []
    for n in sizes:
        dt, dc, _ = timed(lambda: GradientBoostingClassifier(random_state=seed).fit(z[:n], y[:n, k]))
        walls.append(dt); cpus.append(dc)
        print(f"  reference GradientBoostingClassifier, factor 'shape' (4 classes), {n} rows: wall {dt:.1f} s, cpu {dc:.1f} s", flush=True)
    trees = sum(c if c > 2 else 1 for c in (len(np.unique(y[:, j])) for j in range(y.shape[1])))
    out = dict(sizes=list(sizes), wall_s=[round(t, 2) for t in walls], cpu_s=[round(t, 2) for t in cpus])
    for name, times in (("wall", walls), ("cpu", cpus)):
        b, log_a = np.polyfit(np.log(sizes), np.log(times), 1)  # t = a n^b
        out[f"{name}_exponent"] = round(float(b), 3)
        out[f"{name}_all_factors_at_n_train_s"] = round(float(np.exp(log_a) * n_train ** b) * trees / 4, 1)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=5_000)
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference-sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--only", nargs="+", default=None, help="metrics to time, by the start of their names (e.g. dci sap)")
    a = p.parse_args()
    import torch
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    from misrep import metrics as M

    z, y = shapes3d_like_codes(a.n_train + a.n_test, a.dims, a.seed)
    print(f"codes {z.shape}, factors {y.shape} (classes {[len(np.unique(c)) for c in y.T]}); fit on {a.n_train}, "
          f"score on {a.n_test}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one thread; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    kw = dict(n_train=a.n_train, n_test=a.n_test, seed=a.seed)
    runs = {
        "mig": lambda: M.mig(z, y, a.n_train, seed=a.seed),
        "dci (lightgbm)": lambda: M.dci(z, y, **kw, show_progress=False),
        "sap (continuous)": lambda: M.sap(z, y, **kw),
        "sap (discrete, LinearSVC)": lambda: M.sap(z, y, **kw, continuous=False, show_progress=False),
        "modularity": lambda: M.modularity(z, y, a.n_train, seed=a.seed),
        "explicitness": lambda: M.explicitness(z, y, **kw, show_progress=False),
        "factor_vae": lambda: M.factor_vae_score(z, y, **kw, show_progress=False),
        "beta_vae": lambda: M.beta_vae_score(z, y, **kw, show_progress=False),
    }
    result = {}
    print(f"{'metric':28s} {'wall s':>8s} {'cpu s':>8s}   value", flush=True)
    for name, fn in runs.items():
        if a.only and not any(name.startswith(o) for o in a.only): continue
        dt, dc, out = timed(fn)
        val = out if isinstance(out, float) else {k: v for k, v in out.items() if k != "importance"}
        result[name] = dict(wall_s=round(dt, 2), cpu_s=round(dc, 2), value=val)
        print(f"{name:28s} {dt:8.2f} {dc:8.2f}   {val}", flush=True)
    if not a.skip_reference:
        ref = reference_extrapolation(z[:a.n_train], y[:a.n_train], a.reference_sizes, a.n_train, a.seed)
        result["dci (sklearn reference, extrapolated)"] = ref
        for name in ("wall", "cpu"):
            if "dci (lightgbm)" not in result: break
            slow, fast = ref[f"{name}_all_factors_at_n_train_s"], result["dci (lightgbm)"][f"{name}_s"]
            print(f"reference DCI extrapolated to {a.n_train} rows, all factors ({name}): {slow / 60:.1f} min "
                  f"(time ~ n^{ref[f'{name}_exponent']}); LightGBM {fast:.1f} s: {slow / fast:.0f}x faster", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
