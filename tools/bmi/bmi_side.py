"""The BMI side of the benchmark (run it with the BMI environment's Python, .venv-bmi/bin/python).

Czyz, Grabowski, Vogt, Beerenwinkel and Marx, "Beyond Normal: On the Evaluation of Mutual Information Estimators",
NeurIPS 2023; PyPI benchmark-mi 0.1.3. Two subcommands:

  samples   write each task's samples (x, y) and its true MI to DIR/samples/{task_id}__seed{seed}.npz
  estimate  run BMI's own neural estimators (InfoNCE, NWJ, DV, MINE, at BMI's defaults) on those samples and append
            one row per (task, seed, estimator) to DIR/bmi_estimates.csv: estimate, wall time, steps, whether early
            stopping triggered. Rows already there are skipped, so an interrupted run resumes.

The estimators keep BMI's defaults (MLP critic (16, 8), batch 256, Adam lr 0.1, at most 10,000 steps, test every
250 steps, 50/50 split, standardised inputs, early stopping, estimate = best test value) except `--max-steps`, the
shared step budget.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# the reported tasks: BMI's multivariate normal (dense and 2-pair, every size) and Student-t tasks
TASK_GROUPS = ("MULTINORMAL_TASKS", "STUDENT_TASKS")
ESTIMATORS = ("infonce", "nwj", "dv", "mine")
FIELDS = ["task_id", "task_name", "seed", "dim_x", "dim_y", "n_samples", "true_mi", "estimator", "estimate",
          "wall_s", "cpu_s", "n_steps", "early_stopping_triggered"]


def reported_tasks():
    "The BMI tasks this benchmark reports on, in BMI's order."
    from bmi.benchmark import task_list
    return [t for g in TASK_GROUPS for t in getattr(task_list, g)]


def cmd_samples(args):
    out = Path(args.dir) / "samples"; out.mkdir(parents=True, exist_ok=True)
    index = []
    for task in reported_tasks():
        for seed in args.seeds:
            f = out / f"{task.id}__seed{seed}.npz"
            if not f.exists():
                x, y = task.sample(args.n_samples, seed)
                np.savez_compressed(f, x=np.asarray(x, np.float32), y=np.asarray(y, np.float32),
                                    true_mi=task.mutual_information, task_id=task.id, task_name=task.name, seed=seed)
            index.append(dict(file=f.name, task_id=task.id, task_name=task.name, seed=seed,
                              dim_x=task.dim_x, dim_y=task.dim_y, true_mi=task.mutual_information,
                              n_samples=args.n_samples))
            print(f"{task.name:<34} seed {seed}  MI {task.mutual_information:.3f}  -> {f.name}", flush=True)
    (Path(args.dir) / "samples" / "index.json").write_text(json.dumps(index, indent=1))


def make_estimator(name: str, max_steps: int, seed: int):
    from bmi.estimators import neural
    kw = dict(max_n_steps=max_steps, seed=seed, verbose=False)
    return {"infonce": neural.InfoNCEEstimator, "nwj": neural.NWJEstimator,
            "dv": neural.DonskerVaradhanEstimator, "mine": neural.MINEEstimator}[name](**kw)


def cmd_estimate(args):
    d = Path(args.dir); index = json.loads((d / "samples" / "index.json").read_text())
    out = d / "bmi_estimates.csv"
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
            for name in args.estimators:
                if (rec["task_id"], rec["seed"], name) in done: continue
                est = make_estimator(name, args.max_steps, seed=rec["seed"])
                t0, c0 = time.perf_counter(), time.process_time()
                res = est.estimate_with_info(z["x"], z["y"])
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                info = res.additional_information
                row = dict(task_id=rec["task_id"], task_name=rec["task_name"], seed=rec["seed"], dim_x=rec["dim_x"],
                           dim_y=rec["dim_y"], n_samples=rec["n_samples"], true_mi=rec["true_mi"], estimator=name,
                           estimate=float(res.mi_estimate), wall_s=round(wall, 3), cpu_s=round(cpu, 3),
                           n_steps=info.get("n_training_steps", ""),
                           early_stopping_triggered=not info.get("early_stopping_not_triggered", False))
                w.writerow(row); f.flush()
                print(f"{rec['task_name']:<34} seed {rec['seed']} {name:<8} {row['estimate']:7.3f} "
                      f"(true {rec['true_mi']:.3f}) {wall:6.1f} s  {row['n_steps']} steps", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("samples", help="write each task's samples"); s.add_argument("--dir", required=True)
    s.add_argument("--seeds", type=int, nargs="+", required=True); s.add_argument("--n-samples", type=int, default=10_000)
    e = sub.add_parser("estimate", help="BMI's neural estimators on the written samples")
    e.add_argument("--dir", required=True); e.add_argument("--seeds", type=int, nargs="*")
    e.add_argument("--tasks", nargs="*"); e.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    e.add_argument("--max-steps", type=int, default=10_000)
    args = p.parse_args(argv)
    {"samples": cmd_samples, "estimate": cmd_estimate}[args.cmd](args)


if __name__ == "__main__":
    main()
