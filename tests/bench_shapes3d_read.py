"""Shapes3D read benchmark: images per second and peak memory of reading a file, the old reader against the new one.

    python tests/bench_shapes3d_read.py [--path FILE] [--n-old 48000] [--n-new 480000] [--batches 200] [--threads 1,2]

Build the file first (`misrep-shapes3d build --threads 1`: the full grid, 1.6 GB, into the cache; the default --path).
Each measurement runs in a fresh interpreter, so its peak resident memory is its own (printed above the interpreter's
baseline after imports). Methods:

  old-fancy   the reader before the split of misrep.data (commit f40841d): h5py fancy indexing on the sorted unique
              rows, then the inverse permutation and a reordering (three full copies)
  old-slice   h5py reading one contiguous slice `images[0:n]` (what `in_memory=True` did)
  new         `Shapes3D.images`: each needed chunk read once, adjacent chunks with one pread, inflated with zlib in
              `threads` threads, rows written into one preallocated output

for a sequential read of the first n rows (sorted, as the `paper` profile asks for all of them) and for random
batches of 64 rows. Every method's bytes (the first --n-old rows, and all random batches) are hashed: the table says whether they
equal the old reader's.
The old reader is measured on --n-old rows (its three copies of 480,000 images need about 18 GB); the new one on
--n-new. The machine is shared: the load average is printed. Not collected by pytest.
"""
import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _old_images(dset, idx):
    "The reader of commit f40841d (misrep.data.Shapes3D.images, lazy path)."
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    order = np.argsort(idx, kind="stable"); uniq, inv = np.unique(idx[order], return_inverse=True)
    out = dset[uniq][inv]  # h5py wants increasing indices
    res = np.empty_like(out); res[order] = out
    return res


def one(method, path, n, batches, threads, n_hash, seed=0):
    "Run one measurement in this interpreter; return a dict."
    import h5py
    from misrep.shapes3d import Shapes3D
    ds = Shapes3D(path, threads=threads)
    rows = np.arange(n)
    rand = np.random.default_rng(seed).integers(0, len(ds), (batches, 64))
    h5 = h5py.File(path, "r"); dset = h5["images"]
    if method == "new": ds.images([0])  # opens the file and builds the chunk table (timed apart below)
    base = _rss_mb()
    t0 = time.perf_counter()
    if method == "old-fancy": x = _old_images(dset, rows)
    elif method == "old-slice": x = dset[0:n]
    else: x = ds.images(rows)
    t_seq = time.perf_counter() - t0
    peak_seq = _rss_mb() - base
    digest = hashlib.sha1(np.ascontiguousarray(x[:n_hash]).tobytes()).hexdigest()[:12]
    del x
    t0 = time.perf_counter(); h = hashlib.sha1()
    for b in rand:
        y = _old_images(dset, b) if method.startswith("old") else ds.images(b)
        h.update(y.tobytes())
    t_rand = time.perf_counter() - t0
    return dict(method=method, threads=threads if method == "new" else 1, rows=n, seq_s=round(t_seq, 2),
                seq_img_per_s=round(n / t_seq), seq_peak_mb=round(peak_seq), rand_img_per_s=round(batches * 64 / t_rand),
                digest_first=digest, digest_random=h.hexdigest()[:12])


def chunk_table_seconds(path):
    import h5py
    from misrep.shapes3d import _raw_chunks
    with h5py.File(path, "r") as h5:
        t0 = time.perf_counter(); raw = _raw_chunks(h5["images"]); t = time.perf_counter() - t0
    return t, raw is not None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", default=None, help="Shapes3D file (default: the full rendered grid in the cache)")
    ap.add_argument("--n-old", type=int, default=48000)
    ap.add_argument("--n-new", type=int, default=480000)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:  # child: one measurement, JSON on stdout
        m, n, t = a.one.split(":")
        print(json.dumps(one(m, a.path, int(n), a.batches, int(t), a.n_old))); return
    if a.path is None:
        from misrep.shapes3d import default_shapes3d_path
        a.path = str(default_shapes3d_path())
    if not os.path.exists(a.path): sys.exit(f"{a.path} not found: build it with `misrep-shapes3d build --threads 1`.")
    t, direct = chunk_table_seconds(a.path)
    print(f"file {a.path} ({os.path.getsize(a.path) / 2**30:.2f} GiB); chunk table {t:.2f} s; direct reads: {direct}")
    print(f"load before: {os.getloadavg()}")
    jobs = [("old-fancy", a.n_old, 1), ("old-slice", a.n_old, 1)] + [("new", a.n_old, int(t)) for t in a.threads.split(",")]
    if a.n_new != a.n_old: jobs += [("new", a.n_new, int(t)) for t in a.threads.split(",")]
    rows = []
    for m, n, th in jobs:
        r = subprocess.run([sys.executable, __file__, "--path", a.path, "--batches", str(a.batches), "--n-old", str(a.n_old),
                            "--one", f"{m}:{n}:{th}"],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if r.returncode: sys.exit(r.stderr)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1])); print(rows[-1], flush=True)
    ref = rows[0]
    print(f"\nload after: {os.getloadavg()}\n")
    cols = ["method", "threads", "rows", "seq_s", "seq_img_per_s", "seq_peak_mb", "rand_img_per_s"]
    print("| " + " | ".join(cols) + " | same bytes as old-fancy |\n|" + "---|" * (len(cols) + 1))
    for r in rows:
        same = r["digest_random"] == ref["digest_random"] and r["digest_first"] == ref["digest_first"]
        print("| " + " | ".join(str(r[c]) for c in cols) + f" | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
