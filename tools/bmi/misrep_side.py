"""The misrep side of the BMI benchmark (run it with misrep's Python, .venv/bin/python).

Reads the samples that `tools/bmi/bmi_side.py samples` wrote to DIR/samples/ and runs `misrep.estimate.estimate_mi`
on each (task, seed) for each bound, with every other setting at its default, and appends one row per
(task, seed, bound) to DIR/misrep_estimates.csv: estimate, wall time, CPU time, steps, whether early stopping triggered. Rows
already there are skipped, so an interrupted run resumes. `--max-steps` is the step budget shared with BMI's side.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from misrep.estimate import BOUND_NAMES, estimate_mi

FIELDS = ["task_id", "task_name", "seed", "dim_x", "dim_y", "n_samples", "true_mi", "estimator", "estimate",
          "wall_s", "cpu_s", "n_steps", "early_stopping_triggered"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True, help="the folder bmi_side.py wrote (samples/ inside)")
    p.add_argument("--seeds", type=int, nargs="*", help="only these seeds (default: all written)")
    p.add_argument("--tasks", nargs="*", help="only these task ids")
    p.add_argument("--bounds", nargs="+", default=list(BOUND_NAMES), help="bounds to run (default: all)")
    p.add_argument("--max-steps", type=int, default=10_000, help="step budget (BMI's default: 10,000)")
    p.add_argument("--out", default="misrep_estimates.csv", help="file name under --dir")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    d = Path(args.dir); index = json.loads((d / "samples" / "index.json").read_text())
    out = d / args.out
    done = set()
    if out.exists():
        with open(out) as f: done = {(r["task_id"], int(r["seed"]), r["estimator"]) for r in csv.DictReader(f)}
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new: w.writeheader()
        for rec in index:
            if args.seeds and rec["seed"] not in args.seeds: continue
            if args.tasks and rec["task_id"] not in args.tasks: continue
            z = np.load(d / "samples" / rec["file"])
            for b in args.bounds:
                if (rec["task_id"], rec["seed"], b) in done: continue
                t0, c0 = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = estimate_mi(z["x"], z["y"], bound=b, max_steps=args.max_steps, seed=rec["seed"], progress=False)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                row = dict(task_id=rec["task_id"], task_name=rec["task_name"], seed=rec["seed"], dim_x=rec["dim_x"],
                           dim_y=rec["dim_y"], n_samples=rec["n_samples"], true_mi=rec["true_mi"], estimator=b,
                           estimate=r.estimate, wall_s=round(wall, 3), cpu_s=round(cpu, 3), n_steps=r.steps,
                           early_stopping_triggered=r.early_stopped)
                w.writerow(row); f.flush()
                print(f"{rec['task_name']:<34} seed {rec['seed']} {b:<8} {r.estimate:7.3f} (true {rec['true_mi']:.3f}) "
                      f"{wall:6.1f} s  {r.steps} steps", flush=True)


if __name__ == "__main__":
    main()
