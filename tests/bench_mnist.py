"""Benchmark: training iterations/s and peak memory of InfoGAN, HSIC-InfoGAN and Bidirectional-InfoGAN.

usage: .venv/bin/python tests/bench_mnist.py [--width-div 4] [--batch-size 64] [--steps 30] [--device cpu]
Each model runs in its own subprocess so that its peak resident memory (CPU) or peak allocated memory (CUDA) is its own.
Random uint8 images stand in for MNIST (the speed of a step does not depend on the pixels); each step is the trainer's
step function (`misrep.infogan.gan_step`: batch indices and latents from the step's generator). Not collected by pytest.
"""
import argparse, json, resource, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("infogan", "hsic_infogan", "bi_infogan")


def one(args):
    import torch
    from misrep.core import get_device
    from misrep.infogan import gan_step
    from misrep.mnist_eval import mnist_run_config
    from misrep.train import step_generator
    dev = get_device(args.device); torch.manual_seed(0)
    cfg = mnist_run_config(args.one, "paper", width_div=args.width_div, batch_size=args.batch_size)
    m = cfg.build().to(dev)
    x = (torch.rand(2000, 1, 28, 28) * 255).to(torch.uint8)
    step = gan_step(m, x, args.batch_size)
    for t in range(3): step(t, step_generator(0, "bench", t))          # warm-up
    if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for t in range(args.steps): out = step(t, step_generator(0, "bench", t))
    if dev.type == "cuda": torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"model": args.one, "it_per_s": args.steps / dt, "peak_mem_mib": peak,
                      "n_params": sum(p.numel() for p in m.parameters())}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--width-div", type=int, default=4, help="1 = the papers' networks; 4 = the quick profile")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cpu")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one: return one(args)
    import os, platform
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"width_div={args.width_div}, batch={args.batch_size}, {args.steps} timed steps, device={args.device}")
    print(f"{'model':14s} {'it/s':>8s} {'peak MiB':>9s} {'params':>10s}")
    for name in args.models:
        r = subprocess.run([sys.executable, __file__, "--one", name, "--width-div", str(args.width_div), "--batch-size",
                            str(args.batch_size), "--steps", str(args.steps), "--device", args.device],
                           capture_output=True, text=True, cwd=REPO)
        if r.returncode: print(name, "FAILED", r.stderr[-2000:]); continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{name:14s} {d['it_per_s']:8.2f} {d['peak_mem_mib']:9.0f} {d['n_params']:10d}")


if __name__ == "__main__": main()
