"""Shapes3D renderer benchmark: images per second and peak memory, on the CPU and (where there is one) a GPU.

    python tests/bench_render.py [--n 3000] [--supersample 1] [--devices cpu,cuda] [--threads 0]

Three numbers per device:
  cells    the ray-cast pass for the 480 (scale, shape, orientation) cells (done once per build)
  compose  images composed from those cells (what a full build does for 480,000 images, minus gzip and disk)
  random   `render_shapes3d` on N random grid rows from scratch (ray-casts every distinct cell in the batch)
  build    `build_shapes3d` of N images of three cells to a temporary file (compose + gzip + HDF5 writing)
and the full-grid estimates = cells + 480,000 / (compose or build rate). The machine is shared: the load average is printed.
Not collected by pytest (the file name does not start with test_).
"""
import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from misrep.shapes3d import N_IMAGES, build_shapes3d, grid_classes, render_geometry, render_shapes3d, subset_indices


def _sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize(dev)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(device: str, n: int, ss: int, seed: int = 0) -> dict:
    dev = torch.device(device)
    if dev.type == "cuda": torch.cuda.reset_peak_memory_stats(dev)
    rows = np.random.default_rng(seed).integers(0, N_IMAGES, n)
    f = torch.from_numpy(grid_classes(rows)).to(dev)
    render_shapes3d(f[:8], ss)  # warm-up
    _sync(dev); t0 = time.perf_counter()
    table = render_geometry(torch.arange(480, device=dev), ss)
    _sync(dev); t_cells = time.perf_counter() - t0
    # composing a build-like chunk: consecutive grid rows
    g = torch.from_numpy(grid_classes(np.arange(n) + 123 * 480)).to(dev)
    _sync(dev); t0 = time.perf_counter()
    for s in range(0, n, 2400): render_shapes3d(g[s:s + 2400], ss, geometry=table)
    _sync(dev); t_comp = time.perf_counter() - t0
    _sync(dev); t0 = time.perf_counter()
    render_shapes3d(f, ss)
    _sync(dev); t_rand = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:  # compose + gzip + HDF5 of n images of three cells (cells timed above)
        one_cell = np.arange(n) * 160 + 7
        t0 = time.perf_counter()
        build_shapes3d(Path(d) / "b.h5", indices=one_cell, supersample=ss, device=device, progress_bar=False)
        t_build = time.perf_counter() - t0
    out = dict(device=device, n=n, supersample=ss, cells_s=t_cells, compose_img_per_s=n / t_comp,
               random_img_per_s=n / t_rand, build_img_per_s=n / t_build,
               full_grid_estimate_s=t_cells + N_IMAGES / (n / t_comp),
               full_build_estimate_s=t_cells + N_IMAGES / (n / t_build), peak_rss_mb=_peak_rss_mb())
    if dev.type == "cuda": out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--supersample", type=int, default=1)
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}  torch threads: {torch.get_num_threads()}")
    for device in a.devices.split(","):
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"{device}: no CUDA device on this machine (skipped)"); continue
        r = bench(device, a.n, a.supersample)
        print(f"{device} (supersample {r['supersample']}, n {r['n']}): 480 cells {r['cells_s']:.1f} s | "
              f"compose {r['compose_img_per_s']:,.0f} img/s | random batch from scratch {r['random_img_per_s']:,.0f} img/s | "
              f"build (gzip+HDF5) {r['build_img_per_s']:,.0f} img/s | full grid ~{r['full_grid_estimate_s'] / 60:.1f} min "
              f"(render only), full build ~{r['full_build_estimate_s'] / 60:.1f} min | peak RSS {r['peak_rss_mb']:,.0f} MB"
              + (f" | peak GPU {r['peak_gpu_mb']:,.0f} MB" if "peak_gpu_mb" in r else ""))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
