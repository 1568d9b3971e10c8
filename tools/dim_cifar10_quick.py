"""The Deep InfoMax CIFAR-10 set at `quick` scale (issue 13): every Table 1 row that matters, the supervised encoder and
(inside the infoNCE runs) the random encoder, over several seeds, each one `misrep run dim` into its own run folder.

    python tools/dim_cifar10_quick.py [--dataset ../shared/data/cifar10-jpeg] [--seeds 0,1,2] [--profile quick]
                                      [--only local_infonce,local_jsd] [--dry-run]

Start it once per free core (one torch thread each): the workers share the job list in a fixed order (seed 0 of every
row first, then the next seed), claim a job by creating `runs/.claims/<run>` (atomic `mkdir`; a claim whose process is
gone is taken over), skip a job whose run folder already holds `summary.json`, and resume an interrupted one from its
checkpoint (the notebook's `resume=True`). Then gather the runs with nbs/32a_dim_table.ipynb:

    misrep run dim_table -p runs 'runs/dim__*__cifar10-jpeg__quick__seed*' --out results/dim_cifar10_quick
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

ROWS = {  # name -> notebook parameters (nbs/32_dim.ipynb); random-encoder probes only once per seed (same initial weights)
    "local_infonce": dict(objective="local", estimator="infonce", probe_random=True),
    "local_jsd": dict(objective="local", estimator="jsd", probe_random=False),
    "local_dv": dict(objective="local", estimator="dv", probe_random=False),
    "global_jsd": dict(objective="global", estimator="jsd", probe_random=False),
    "supervised": dict(objective="supervised", estimator="infonce", probe_random=False),
}


def _alive(pid: int) -> bool:
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    except PermissionError: return True
    return True


def claim(claims: Path, name: str) -> bool:
    "True when this process now owns the job `name` (a stale claim, whose process is gone, is taken over)."
    d = claims / name
    try: d.mkdir(parents=True)
    except FileExistsError:
        try: pid = int((d / "pid").read_text())
        except (OSError, ValueError): return False  # being written by the other worker
        if _alive(pid): return False
    (d / "pid").write_text(str(os.getpid()))
    return True


def job_folder(params: dict, profile: str) -> str:
    "The run folder `misrep run dim` derives from these parameters (misrep.cli.plan_run: no kernel, resume checked)."
    from misrep.cli import plan_run
    return str(plan_run("dim", params, profile=profile).run_dir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="../shared/data/cifar10-jpeg", help="CIFAR-10 as an image folder, or 'cifar10'")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--only", default="", help="comma-separated rows of ROWS (default: all)")
    ap.add_argument("--seeds-for", default="global_jsd:0,supervised:0",
                    help="rows run on fewer seeds than --seeds, as row:s1+s2,... (default: one seed for DIM(G) and supervised)")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    rows = [r.strip() for r in a.only.split(",") if r.strip()] or list(ROWS)
    unknown = sorted(set(rows) - set(ROWS))
    if unknown: ap.error(f"unknown rows {unknown}; expected some of {list(ROWS)}")
    seeds = [int(s) for s in a.seeds.split(",")]
    limit = {k: [int(s) for s in v.split("+")] for k, v in (kv.split(":") for kv in a.seeds_for.split(",") if kv)}
    misrep = Path(sys.executable).with_name("misrep")
    jobs = [(seed, row) for seed in seeds for row in rows if seed in limit.get(row, seeds)]
    for seed, row in jobs:
        p = dict(ROWS[row], dataset=a.dataset, seed=seed)
        args = [str(misrep), "run", "dim", "--profile", a.profile] + [x for k, v in p.items() for x in ("-p", k, str(v))]
        out = job_folder(p, a.profile)
        if (Path(out) / "summary.json").exists(): print(f"done already: {out}", flush=True); continue
        if a.dry_run: print("would run:", " ".join(args)); continue
        if not claim(Path("runs/.claims"), Path(out).name): print(f"taken by the other worker: {out}", flush=True); continue
        print(f"running {row} seed {seed} -> {out}", flush=True)
        rc = subprocess.run(args).returncode
        if rc: print(f"FAILED (rc {rc}): {' '.join(args)}", flush=True)


if __name__ == "__main__":
    main()
