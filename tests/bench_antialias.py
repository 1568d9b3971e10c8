"""The renderer's anti-aliasing filter as a depthwise convolution (misrep's) against one-channel convolutions over a batch
of maps (its formulation before 2026-12-02): the same pixels? how much faster?

    python tests/bench_antialias.py [--n 3000] [--rounds 5] [--supersample 1 2 4]

For each supersampling: both formulations on the 480 geometry cells (weight and constant maps bit-identical?), then
random grid rows rendered from scratch (`render_shapes3d`, one ray per pixel), the two sides alternated, the median of
the per-round ratios. One torch thread. Not collected by pytest (the file name does not start with test_).
"""
import argparse
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import misrep.shapes3d as S


def antialias_batched(x, supersample, p):
    "The filter as two one-channel convolutions over a batch of G C maps (misrep's code until 2026-12-02)."
    s = int(supersample); w = S.aa_kernel(s, p.aa_ringing, p.aa_width).to(x.device); k = len(w)
    G, C, H, W_ = x.shape
    y = x.reshape(G * C, 1, H, W_)
    lo = (k - s) // 2; y = F.pad(y, (lo, k - s - lo, lo, k - s - lo), mode="replicate")
    y = F.conv2d(F.conv2d(y, w.view(1, 1, 1, k), stride=(1, s)), w.view(1, 1, k, 1), stride=(s, 1))
    return y.reshape(G, C, H // s, W_ // s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--supersample", type=int, nargs="+", default=[1, 2, 4])
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()}  torch threads: {torch.get_num_threads()}")
    sides = {"depthwise": S.antialias, "batched": antialias_batched}
    try:
        for ss in a.supersample:
            out, t = {}, {}
            for name, fn in sides.items():
                S.antialias = fn; t0 = time.perf_counter(); out[name] = S.render_geometry(torch.arange(S.N_GEOMETRIES), ss)
                t[name] = time.perf_counter() - t0
            same = all(torch.equal(u, v) for u, v in zip(out["depthwise"], out["batched"]))
            print(f"supersample {ss}: 480 cells depthwise {t['depthwise']:.2f} s, batched {t['batched']:.2f} s; "
                  f"maps bit-identical: {same}")
        f = torch.from_numpy(S.grid_classes(np.random.default_rng(0).integers(0, S.N_IMAGES, a.n)))
        S.render_shapes3d(f[:8])  # warm-up
        rate = {k: [] for k in sides}
        for _ in range(a.rounds):
            for name, fn in sides.items():
                S.antialias = fn; t0 = time.perf_counter(); S.render_shapes3d(f)
                rate[name].append(a.n / (time.perf_counter() - t0))
    finally:
        S.antialias = sides["depthwise"]
    for k, v in rate.items():
        print(f"{k}: from scratch, one ray per pixel, {a.n} random rows: {[round(r) for r in v]} images/s, median {statistics.median(v):,.0f}")
    print(f"ratio depthwise / batched, median of rounds: {statistics.median(d / b for d, b in zip(rate['depthwise'], rate['batched'])):.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
