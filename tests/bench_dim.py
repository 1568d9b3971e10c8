"""Benchmark of Deep InfoMax training steps (misrep.dim): images/s, CIFAR-10 epochs per hour and peak memory for each
local critic and estimator, as the batch grows. Every local critic scores B x B x M^2 (location, code) pairs; the concat-and-convolve critic also
holds a B x B x M^2 x hidden activation, the encode-and-dot-product critic only (B M^2) x d and B x d embeddings.

    .venv/bin/python tests/bench_dim.py                        # CPU, 1 thread, dot width 256 (the quick profile's)
    .venv/bin/python tests/bench_dim.py --embed-dim 2048 --batch-sizes 64 --critics dot   # the paper profile's step
    .venv/bin/python tests/bench_dim.py --device cuda --embed-dim 2048 --batch-sizes 32 64 128 256

Each setting runs in its own process, so peak memory (CPU: max RSS; CUDA: max allocated) is that setting's alone.
Settings whose estimated activation memory exceeds --max-gb are skipped (and listed as such).
"""
import argparse
import json
import resource
import subprocess
import sys
import time


def one(critic, estimator, batch, args):
    "Time `args.steps` training steps of DIM(L) for one setting; print one JSON line."
    import torch
    torch.set_num_threads(args.threads)
    from misrep.core import get_device
    from misrep.dim import DIMConfig, DeepInfoMax, dim_optimizers, dim_update, make_prior_discriminator
    dev = get_device(args.device)
    torch.manual_seed(0)
    cfg = DIMConfig("local", estimator=estimator, critic=critic, in_channels=3, embed_dim=args.embed_dim)
    model = DeepInfoMax(cfg).to(dev); disc = make_prior_discriminator(cfg).to(dev)
    opts = dim_optimizers(model, disc)
    x = torch.rand(batch, 3, 32, 32, device=dev)  # pixels in [0, 1]
    g = torch.Generator().manual_seed(0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda": torch.cuda.reset_peak_memory_stats(dev)
    dim_update(model, disc, opts, x, generator=g)  # warm-up
    if dev.type == "cuda": torch.cuda.synchronize(dev)
    t = time.perf_counter()
    for _ in range(args.steps): out = dim_update(model, disc, opts, x, generator=g)
    float(out["loss"])  # wait for the last step
    if dev.type == "cuda": torch.cuda.synchronize(dev)
    dt = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    print(json.dumps({"images_per_s": batch * args.steps / dt, "peak_mb": peak}))


def estimate_gb(critic, batch, args, L=64):
    "Rough activation memory of the local critic (float32, ~4 saved copies of its largest tensor)."
    big = batch * batch * L * (512 if critic == "concat" else 1) + batch * L * args.embed_dim
    return 4 * 4 * big / 2**30


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on the shared 2-core machine)")
    ap.add_argument("--embed-dim", type=int, default=256, help="dot critic width (paper: 2048)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--critics", nargs="+", default=["dot", "concat"])
    ap.add_argument("--estimators", nargs="+", default=["jsd", "dv", "infonce"])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per setting (after one warm-up)")
    ap.add_argument("--max-gb", type=float, default=3.0, help="skip settings estimated above this")
    ap.add_argument("--out", default=None, help="also write the table as Markdown to this file")
    ap.add_argument("--one", nargs=3, metavar=("CRITIC", "ESTIMATOR", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.one[0], args.one[1], int(args.one[2]), args)
    mem = "peak alloc MB (CUDA)" if args.device.startswith("cuda") else "peak RSS increase MB"
    lines = [f"DIM(L) training step, device={args.device}, threads={args.threads}, dot width={args.embed_dim}, "
             f"{args.steps} timed steps; M^2 = 64 locations",
             "", f"| critic | estimator | batch | scores B*B*M^2 | images/s | CIFAR-10 epochs/hour | {mem} |",
             "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for critic in args.critics:
        for est in args.estimators:
            for b in args.batch_sizes:
                if estimate_gb(critic, b, args) > args.max_gb:
                    row = f"| {critic} | {est} | {b} | {b * b * 64:,} | skipped (~{estimate_gb(critic, b, args):.1f} GB > --max-gb) | | |"
                else:
                    cmd = [sys.executable, __file__, "--one", critic, est, str(b), "--device", args.device,
                           "--threads", str(args.threads), "--embed-dim", str(args.embed_dim), "--steps", str(args.steps)]
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode != 0:
                        row = f"| {critic} | {est} | {b} | {b * b * 64:,} | failed: {r.stderr.strip().splitlines()[-1][:80]} | | |"
                    else:
                        res = json.loads(r.stdout.strip().splitlines()[-1])
                        per_hour = res["images_per_s"] * 3600 / 50_000  # passes over CIFAR-10's 50,000 training images
                        row = f"| {critic} | {est} | {b} | {b * b * 64:,} | {res['images_per_s']:.0f} | {per_hour:.2f} | {res['peak_mb']:.0f} |"
                lines.append(row); print(row, flush=True)
    if args.out:
        with open(args.out, "w") as f: f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
