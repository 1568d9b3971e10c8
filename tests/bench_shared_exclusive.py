"""Benchmark of the Shapes3D shared/exclusive model: training iterations/s of each stage and peak memory.

    python tests/bench_shared_exclusive.py --profile quick --device cpu --threads 1
    python tests/bench_shared_exclusive.py --profile paper --device cuda

Each stage runs in its own subprocess, so the peak memory reported is that stage's alone (CPU: peak resident set
size of the process, ru_maxrss; GPU: torch.cuda.max_memory_allocated). Inputs are random pixels in [0, 1] of the
profile's batch size; an iteration is one step of the stage's `misrep.train.Trainer` (stage 2: encoder step +
discriminator step), built by `misrep.shared_exclusive.stage_trainer`.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def bench_stage(stage: int, profile: str, device: str, steps: int, warmup: int, threads: int) -> dict:
    from misrep.core import get_device, resolve_run_config
    from misrep.shared_exclusive import SHAPES3D_PROFILES, ExclusiveStage, SharedStage, Shapes3DRunConfig, stage_trainer
    if threads > 0: torch.set_num_threads(threads)
    cfg = resolve_run_config(Shapes3DRunConfig, profile, SHAPES3D_PROFILES, out_dir="unused"); dev = get_device(device)
    torch.manual_seed(0)
    s1 = SharedStage(cfg.model).to(dev)
    model = s1 if stage == 1 else ExclusiveStage(s1.encoder, cfg.model).to(dev)
    B = cfg.batch_size
    x, y = torch.rand(B, 3, 64, 64, device=dev), torch.rand(B, 3, 64, 64, device=dev)
    # the trainer of the experiment (per-step generators, device-side metrics), without a run folder
    trainer = stage_trainer(model, lambda step: (x, y), warmup + steps, None, lr=cfg.lr, disc_lr=cfg.disc_lr,
                            log_every=warmup + steps, show_progress=False)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    trainer.fit(stop_at=warmup)
    sync()
    if dev.type == "cuda": torch.cuda.reset_peak_memory_stats(dev)
    t, c = time.perf_counter(), time.process_time()
    trainer.fit()
    sync()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return dict(stage=stage, profile=profile, device=str(dev), threads=torch.get_num_threads(), batch_size=B,
                steps=steps, it_per_s=round(steps / wall, 3), cpu_s_per_it=round(cpu / steps, 4),
                peak_memory_mb=round(peak / 2**20, 1),
                memory_kind="cuda max_memory_allocated" if dev.type == "cuda" else "process peak RSS")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--steps", type=int, default=20, help="timed iterations per stage")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--stage", type=int, choices=[1, 2], default=None, help="one stage in this process (internal)")
    a = p.parse_args(argv)
    if a.stage is not None:
        print(json.dumps(bench_stage(a.stage, a.profile, a.device, a.steps, a.warmup, a.threads))); return
    rows = []
    for s in (1, 2):
        out = subprocess.run([sys.executable, __file__, "--stage", str(s), "--profile", a.profile, "--device", a.device,
                              "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads)],
                             capture_output=True, text=True)
        if out.returncode: sys.exit(f"stage {s} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'stage':>5} {'profile':>7} {'device':>7} {'thr':>3} {'batch':>5} {'it/s':>8} {'cpu s/it':>8} {'peak MB':>8}  memory")
    for r in rows:
        print(f"{r['stage']:>5} {r['profile']:>7} {r['device']:>7} {r['threads']:>3} {r['batch_size']:>5} {r['it_per_s']:>8} "
              f"{r['cpu_s_per_it']:>8} {r['peak_memory_mb']:>8}  {r['memory_kind']}")


if __name__ == "__main__":
    main()
