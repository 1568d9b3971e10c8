"""Benchmark: training iterations/s and peak memory of InfoGAN, HSIC-InfoGAN and Bidirectional-InfoGAN.

usage: .venv/bin/python tests/bench_mnist.py [--width-div 2] [--batch-size 64] [--steps 30] [--device cpu]
Each model runs in its own subprocess so that its peak resident memory (CPU) or peak allocated memory (CUDA) is its own.
Random images stand in for MNIST (the speed of a step does not depend on the pixels). Not collected by pytest.
"""
import argparse, json, resource, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("infogan", "hsic_infogan", "bi_infogan")

def build(name, width_div):
    from misrep.infogan import InfoGAN, InfoGANConfig, InfoGANArch
    arch = InfoGANArch() if width_div == 1 else InfoGANArch.small(width_div)
    if name == "infogan": return InfoGAN(InfoGANConfig(arch=arch))
    if name == "hsic_infogan":
        from misrep.hsic_infogan import HSICInfoGAN, HSICInfoGANConfig
        return HSICInfoGAN(HSICInfoGANConfig(arch=arch))
    from misrep.bi_infogan import BiInfoGAN, BiInfoGANConfig, BiArch
    return BiInfoGAN(BiInfoGANConfig(arch=BiArch() if width_div == 1 else BiArch.small(width_div)))

def one(args):
    import torch
    sys.path.insert(0, str(REPO))
    from misrep.core import get_device
    dev = get_device(args.device); torch.manual_seed(0)
    m = build(args.one, args.width_div).to(dev)
    x = torch.rand(args.batch_size, 1, 28, 28, device=dev)
    for _ in range(3): m.train_step(x)                   # warm-up
    if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(args.steps): m.train_step(x)
    if dev.type == "cuda": torch.cuda.synchronize()
    dt = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"model": args.one, "it_per_s": args.steps / dt, "peak_mem_mib": peak,
                      "n_params": sum(p.numel() for p in m.parameters())}))

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--width-div", type=int, default=2, help="1 = the papers' networks; 2 = the quick profile")
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
