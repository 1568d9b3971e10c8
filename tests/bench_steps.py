"""Training-step benchmark of every experiment's profile: iterations per second and peak memory of each stage, per
`negatives` setting (critics that score pairs) and per trainer option (bf16 autocast, channels-last), on the CPU and
(where there is one) a GPU. Each case builds the experiment's own model and step from its profile (the library's
trainer factories) on random data of the experiment's shapes, runs `--warmup` steps, then times `--steps` steps.

    python tests/bench_steps.py [--profile paper] [--devices cpu,cuda] [--cases shapes3d_stage1,...]
                                [--negatives all,1] [--variants fp32,bf16,channels_last] [--steps 3] [--warmup 1]
                                [--threads 1] [--out results/bench]

    python tests/bench_steps.py --parts [--negatives all,1] [--threads 1]
    python tests/bench_steps.py --against /tmp/neg_f40 [--rounds 3] [--negatives all,1] [--steps 2] [--warmup 1]

`--against REF` (a checkout of another commit, e.g. `git worktree add /tmp/neg_f40 f40841d`) times the Shapes3D stage
1 and stage 2 steps of the `paper` model (batch 64) in fresh processes, alternating this checkout's code (one process
per `--negatives` setting) with REF's (all pairs), for `--rounds` rounds; each process runs `--warmup` steps, then times
`--steps` steps. It writes steps_negatives.csv (every process) and steps_negatives.md (medians over the rounds, each as
a fraction of REF's median step time of the same stage) under --out, with the command, the machine and the load.

`--parts` times the parts of the Shapes3D `paper` stage-1 step (encoder; global and local statistics networks with the
JSD bound, one direction, per `--negatives` setting) and writes steps_parts.md under --out.

Writes steps_{profile}.csv and .md under --out (rows appended per device; an existing row of the same case, device,
setting and variant is replaced) and prints each row. Peak memory: on a GPU `torch.cuda.max_memory_allocated` over the
case (model, optimisers, data, warm-up and timed steps; the CUDA allocator's peak); on the CPU the growth of the
process's peak resident set over its resident set before the case was built (Linux: peak reset through
/proc/self/clear_refs), and that peak itself (peak_rss_mb). tools/gpu_check.py runs it on a GPU.
Not collected by pytest (the file name does not start with test_)."""
import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

try: from misrep.core import resolve_run_config
except ImportError: resolve_run_config = None  # an older checkout timed by --against (its processes need none)

BIG = 10 ** 9  # log_every: no metrics row but the last one


# ---------------------------------------------------------------- random data of each experiment's shapes
def _uint8(shape, seed=0):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _config(cls, profile, profiles, negatives, **params):
    "The run config of a profile, with `negatives` when the config has it ('all' is the default everywhere)."
    if negatives not in (None, "all"): params["negatives"] = negatives
    try: return resolve_run_config(cls, profile, profiles, **params)
    except (ValueError, TypeError) as e:
        if "negatives" in params and "negatives" in str(e): raise NotImplementedError(f"{cls.__name__} has no negatives setting")
        raise


# ---------------------------------------------------------------- the cases: name -> build(profile, device, negatives, steps, **trainer_kw)
def shapes3d(stage):
    def build(profile, dev, negatives, steps, **kw):
        from misrep.evaluation import to_float
        from misrep.shared_exclusive import SHAPES3D_PROFILES, ExclusiveStage, SharedStage, Shapes3DRunConfig, stage_trainer
        cfg = _config(Shapes3DRunConfig, profile, SHAPES3D_PROFILES, negatives)
        imgs = _uint8((512, 64, 64, 3)).to(dev)                     # (N, H, W, C) uint8 on the device, as nbs/30 keeps them
        def batch_fn(t):
            i, j = torch.randint(0, len(imgs), (2, cfg.batch_size), generator=torch.Generator().manual_seed(t)).to(dev)
            return to_float(imgs[i]), to_float(imgs[j])
        torch.manual_seed(0); s1 = SharedStage(cfg.model).to(dev)
        model = s1 if stage == 1 else ExclusiveStage(s1.encoder, cfg.model).to(dev)
        return stage_trainer(model, batch_fn, steps, None, lr=cfg.lr, disc_lr=cfg.disc_lr, log_every=BIG,
                             show_progress=False, **kw), cfg.batch_size
    return build


def mnist(model_name):
    def build(profile, dev, negatives, steps, **kw):
        from misrep.infogan import gan_trainer
        from misrep.mnist_eval import mnist_run_config
        if negatives not in (None, "all"): raise NotImplementedError("the InfoGAN family scores no pairs")
        cfg = mnist_run_config(model_name, profile)
        torch.manual_seed(0); m = cfg.build().to(dev)
        return gan_trainer(m, _uint8((1024, 1, 28, 28)).to(dev), steps, cfg.batch_size, log_every=BIG, show_progress=False,
                           **kw), cfg.batch_size
    return build


def dim(objective, estimator, critic):
    def build(profile, dev, negatives, steps, **kw):
        from misrep.dim import DIM_PROFILES, DIMRunConfig, dim_trainer
        cfg = _config(DIMRunConfig, profile, DIM_PROFILES, negatives, objective=objective, estimator=estimator,
                      critic=critic, max_steps=steps, epochs=BIG, log_every=BIG, device=str(dev))
        x, y = _uint8((1024, 3, 32, 32)), torch.randint(0, 10, (1024,), generator=torch.Generator().manual_seed(1))
        return dim_trainer(cfg, x, y, None, device=dev, show_progress=False, **kw), cfg.batch_size
    return build


def staircase(profile, dev, negatives, steps, **kw):
    from misrep.staircase import PROFILES, StaircaseConfig, make_critic, staircase_step
    from misrep.train import Trainer
    if negatives not in (None, "all"): raise NotImplementedError("the staircase's critics score all pairs by design")
    cfg = resolve_run_config(StaircaseConfig, profile, PROFILES)
    torch.manual_seed(0)
    models = {f"{c}_{b}": make_critic(c, cfg, b).to(dev) for c in cfg.critics for b in cfg.bounds}
    opts = {k: torch.optim.Adam(m.parameters(), lr=cfg.lr) for k, m in models.items()}
    return Trainer(staircase_step(cfg, models, opts, dev), models, opts, steps, None, tag="staircase", log_every=BIG,
                   show_progress=False, **kw), cfg.batch_size


def benchmark_dim(profile, dev, negatives, steps, **kw):
    "Deep InfoMax (local, infoNCE) on the shared/exclusive encoder, as nbs/34 trains it."
    from misrep.benchmark import BENCHMARK_PROFILES, BenchmarkRunConfig, ConvDIM, shared_exclusive_config
    from misrep.dim import dim_optimizers, dim_update, make_prior_discriminator
    from misrep.evaluation import to_float
    from misrep.train import Trainer
    cfg = _config(BenchmarkRunConfig, profile, BENCHMARK_PROFILES, negatives)
    torch.manual_seed(0); model = ConvDIM(cfg.dim, shared_exclusive_config(cfg).model).to(dev)
    disc = make_prior_discriminator(cfg.dim); disc = disc.to(dev) if disc is not None else None
    opts, imgs = dim_optimizers(model, disc), _uint8((512, 64, 64, 3)).to(dev)
    def step(t, g):
        x = to_float(imgs[torch.randint(0, len(imgs), (cfg.dim_batch_size,), generator=g).to(dev)])
        return dim_update(model, disc, opts, x, generator=g)
    modules = {"dim": model, **({"dim_disc": disc} if disc is not None else {})}
    return Trainer(step, modules, opts, steps, None, tag="dim", log_every=BIG, show_progress=False, **kw), cfg.dim_batch_size


def beta_vae(profile, dev, negatives, steps, **kw):
    from misrep.benchmark import BENCHMARK_PROFILES, BenchmarkRunConfig
    from misrep.beta_vae import BetaVAE, beta_vae_trainer
    from misrep.evaluation import to_float
    if negatives not in (None, "all"): raise NotImplementedError("the beta-VAE scores no pairs")
    cfg = resolve_run_config(BenchmarkRunConfig, profile, BENCHMARK_PROFILES)
    imgs = _uint8((512, 64, 64, 3)).to(dev)
    batch = lambda t, g: to_float(imgs[torch.randint(0, len(imgs), (cfg.bvae_batch_size,), generator=g).to(dev)])
    torch.manual_seed(0); m = BetaVAE(cfg.bvae).to(dev)
    return beta_vae_trainer(m, batch, steps, None, log_every=BIG, show_progress=False, **kw), cfg.bvae_batch_size


CASES = {
    "shapes3d_stage1": shapes3d(1), "shapes3d_stage2": shapes3d(2),
    "infogan": mnist("infogan"), "hsic_infogan": mnist("hsic_infogan"), "bi_infogan": mnist("bi_infogan"),
    "dim_local_infonce_dot": dim("local", "infonce", "dot"), "dim_local+global_jsd_concat": dim("local+global", "jsd", "concat"),
    "mi_staircase": staircase, "benchmark_dim": benchmark_dim, "benchmark_beta_vae": beta_vae,
}
VARIANTS = {"fp32": {}, "bf16": {"amp": "bf16"}, "channels_last": {"channels_last": True},
            "bf16+channels_last": {"amp": "bf16", "channels_last": True}, "compile": {"compile": True}}


# ---------------------------------------------------------------- memory
def _rss_mb(field="VmRSS"):
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"): return int(line.split()[1]) / 1024
    except OSError: pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    try: Path("/proc/self/clear_refs").write_text("5"); return True
    except OSError: return False


def _sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize(dev)


# ---------------------------------------------------------------- one measurement
def measure(case: str, profile: str = "paper", device: str = "cpu", negatives="all", variant: str = "fp32",
            steps: int = 3, warmup: int = 1) -> dict:
    "it/s and peak memory of `steps` timed steps of one case (after `warmup` steps), as a dict row."
    dev = torch.device(device)
    row = dict(case=case, profile=profile, device=device, negatives=str(negatives), variant=variant, steps=steps)
    gc.collect()
    if dev.type == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)
    reset, before = _reset_peak_rss(), _rss_mb()
    try: trainer, batch = CASES[case](profile, dev, negatives, warmup + steps, **VARIANTS[variant])
    except NotImplementedError as e: return {**row, "note": str(e)}
    trainer.fit(stop_at=warmup); _sync(dev)
    t0 = time.perf_counter(); trainer.fit(); _sync(dev); dt = time.perf_counter() - t0
    row.update(batch=batch, it_s=steps / dt, s_per_it=dt / steps)
    if dev.type == "cuda": row["peak_mb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    elif reset: row.update(peak_rss_mb=_rss_mb("VmHWM"), peak_mb=_rss_mb("VmHWM") - before)
    del trainer
    if dev.type == "cuda": torch.cuda.empty_cache()
    return row


def machine() -> str:
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; load {tuple(round(v, 1) for v in os.getloadavg())}")


def save(rows: list, out: Path, profile: str) -> pd.DataFrame:
    "Merge rows into out/steps_{profile}.csv (replacing rows of the same case, device, negatives, variant) and .md."
    out.mkdir(parents=True, exist_ok=True)
    path, key = out / f"steps_{profile}.csv", ["case", "device", "negatives", "variant"]
    new = pd.DataFrame(rows)
    if path.exists():
        old = pd.read_csv(path, dtype={"negatives": str})
        old = old[~old.set_index(key).index.isin(new.set_index(key).index)]
        new = pd.concat([old, new], ignore_index=True)
    new.to_csv(path, index=False)
    (out / f"steps_{profile}.md").write_text(markdown(new.drop(columns=["machine"], errors="ignore")))
    return new


def markdown(df: pd.DataFrame) -> str:
    "A pipe table (floats to 4 significant digits, NaN blank) without the tabulate package."
    cell = lambda v: "" if v is None or (isinstance(v, float) and v != v) else (f"{v:.4g}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- one checkout against another (--against)
def paired_step(stage: int, negatives="all", batch: int = 64, seed: int = 0):
    "(step(t) -> None, batch) of the Shapes3D paper model with whichever misrep is on the path (today's or f40841d's API)."
    import misrep.shared_exclusive as se
    kw = {} if negatives in (None, "all") else {"negatives": negatives}
    cfg = se.SharedExclusiveConfig(**kw)
    imgs = _uint8((512, 3, 64, 64), seed)
    def batch_fn(t):
        i, j = torch.randint(0, len(imgs), (2, batch), generator=torch.Generator().manual_seed(t))
        return imgs[i].float() / 255, imgs[j].float() / 255
    torch.manual_seed(seed); s1 = se.SharedStage(cfg)
    model = s1 if stage == 1 else se.ExclusiveStage(s1.encoder, cfg)
    enc_params = model.parameters() if stage == 1 else model.encoder_parameters()
    opts = dict(model=torch.optim.Adam(enc_params, lr=1e-4)) if stage == 1 else \
        dict(encoder=torch.optim.Adam(enc_params, lr=1e-4), disc=torch.optim.Adam(model.discriminator.parameters(), lr=1e-4))
    model.train()
    gen = lambda t: torch.Generator().manual_seed(1000 * stage + t)
    if hasattr(se, "stage_step"):                                   # today's API: the trainer's step function
        f = se.stage_step(model, opts, batch_fn)
        return (lambda t: f(t, gen(t))), batch
    old = se.stage1_step if stage == 1 else se.stage2_step          # f40841d's API
    return (lambda t: old(model, opts, *batch_fn(t), gen(t))), batch


def _child(a):
    "One process of --against: time one stage with one setting, print a JSON row."
    torch.set_num_threads(1)
    neg = a.one_negatives if a.one_negatives == "all" else int(a.one_negatives)
    step, batch = paired_step(a.one_stage, neg)
    for t in range(a.warmup): step(t)
    t0 = time.perf_counter()
    for t in range(a.warmup, a.warmup + a.steps): step(t)
    dt = (time.perf_counter() - t0) / a.steps
    print(json.dumps(dict(s_per_it=dt, peak_rss_mb=_rss_mb("VmHWM"), torch=torch.__version__)), flush=True)


def against(a, argv):
    "Alternate this checkout and REF in fresh processes; write steps_negatives.csv and .md."
    here, ref = Path(__file__).resolve().parents[1], Path(a.against).resolve()
    commit = lambda d: subprocess.run(["git", "-C", str(d), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    sides = [("ref", ref, "all")] + [("this", here, n) for n in a.negatives.split(",")]
    commits = {"ref": commit(ref), "this": commit(here)}                 # HEAD of each checkout when the run starts
    load0, rows = os.getloadavg(), []
    for r in range(a.rounds):
        for stage in (1, 2):
            order = sides if r % 2 == 0 else sides[::-1]            # alternate which side goes first
            for side, root, neg in order:
                env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
                cmd = [sys.executable, str(here / "tests" / "bench_steps.py"), "--one-stage", str(stage), "--one-negatives", neg,
                       "--steps", str(a.steps), "--warmup", str(a.warmup)]
                out = subprocess.run(cmd, env=env, cwd=str(root), capture_output=True, text=True)
                if out.returncode: raise RuntimeError(f"{side} stage {stage} negatives={neg} failed:\n{out.stderr[-3000:]}")
                row = dict(round=r, stage=stage, side=side, commit=commits[side], negatives=neg, **json.loads(out.stdout.strip().splitlines()[-1]),
                           load1=os.getloadavg()[0])
                rows.append(row); print(row, flush=True)
    df = pd.DataFrame(rows)
    outdir = Path(a.out); outdir.mkdir(parents=True, exist_ok=True)
    df.to_csv(outdir / "steps_negatives.csv", index=False)
    med = df.groupby(["stage", "side", "negatives"], sort=False).agg(s_per_it=("s_per_it", "median"), s_min=("s_per_it", "min"),
                                                                    s_max=("s_per_it", "max"), peak_rss_mb=("peak_rss_mb", "max")).reset_index()
    refs = med[med.side == "ref"].set_index("stage").s_per_it
    med["fraction_of_ref"] = med.s_per_it / med.stage.map(refs)
    med["it_s"] = 1 / med.s_per_it
    med["code"] = med.side.map(commits)
    load1 = os.getloadavg()
    text = ["# Shapes3D `paper` step: negatives setting against " + commits["ref"], "",
            f"Command: `{' '.join(['python tests/bench_steps.py'] + list(argv))}`", "",
            f"Machine: {machine()}; load average (1, 5, 15 min) at the start {tuple(round(v, 2) for v in load0)}, "
            f"at the end {tuple(round(v, 2) for v in load1)}.", "",
            f"Batch 64, one thread, random pixels; each process builds the model, runs {a.warmup} warm-up step(s), then times "
            f"{a.steps} step(s); {a.rounds} rounds, sides alternated (fresh process each); medians over the rounds. "
            f"`fraction_of_ref`: median step time over {commits['ref']}'s median step time of the same stage.", "",
            markdown(med[["stage", "code", "negatives", "s_per_it", "s_min", "s_max", "it_s", "fraction_of_ref", "peak_rss_mb"]])]
    (outdir / "steps_negatives.md").write_text("\n".join(text))
    print("\n".join(text))
    return df


# ---------------------------------------------------------------- the parts of a step (--parts)
def step_parts(negatives=("all", 1), batch: int = 64, repeat: int = 2) -> list:
    "Seconds (best of `repeat`, after one warm-up call) of the parts of the Shapes3D paper stage-1 step, one direction each."
    from misrep.blocks import score_pairs
    from misrep.estimators import jsd_bound
    from misrep.shared_exclusive import SharedExclusiveConfig, SharedStage
    torch.manual_seed(0); st = SharedStage(SharedExclusiveConfig())
    x = torch.rand(batch, 3, 64, 64)
    with torch.no_grad(): m, s = st.encoder(x)
    m, s = m.requires_grad_(True), s.requires_grad_(True)
    def best(fn):
        fn(); ts = []
        for _ in range(repeat): t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
        return min(ts)
    def enc(): mm, ss = st.encoder(x); (mm.sum() + ss.sum()).backward()
    rows = [dict(part=f"encoder, forward + backward, {batch} images", seconds=best(enc))]
    for critic in ("global", "local"):
        for neg in negatives:
            c = getattr(st, f"{critic}_critic")
            fn = lambda: jsd_bound(score_pairs(c, m, s, neg, torch.Generator().manual_seed(0))).backward()
            rows.append(dict(part=f"{critic} statistics network + JSD, forward + backward, negatives={neg}", seconds=best(fn)))
    for r in rows: print(r, flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--negatives", default="all", help="comma-separated: all and/or integers K")
    ap.add_argument("--variants", default="fp32", help=f"comma-separated, of {list(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--against", default="", help="another checkout (e.g. a git worktree of f40841d): paired Shapes3D timing")
    ap.add_argument("--rounds", type=int, default=3, help="--against: rounds of alternating processes")
    ap.add_argument("--parts", action="store_true", help="time the parts of the Shapes3D paper stage-1 step (one direction each)")
    ap.add_argument("--one-stage", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--one-negatives", default="all", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one_stage: return _child(a)
    if a.parts:
        if a.threads: torch.set_num_threads(a.threads)
        print(machine(), flush=True)
        rows = step_parts(tuple(n if n == "all" else int(n) for n in a.negatives.split(",")))
        out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
        (out / "steps_parts.md").write_text(f"# Parts of the Shapes3D `paper` stage-1 step\n\nCommand: `python tests/bench_steps.py "
                                            f"{' '.join(sys.argv[1:] if argv is None else argv)}`\n\nMachine: {machine()}\n\n"
                                            + markdown(pd.DataFrame(rows)))
        return rows
    if a.against: return against(a, sys.argv[1:] if argv is None else argv)
    if a.threads: torch.set_num_threads(a.threads)
    print(machine(), flush=True)
    rows = []
    for device in a.devices.split(","):
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"{device}: no CUDA device on this machine (skipped)"); continue
        for case in a.cases.split(","):
            for neg in a.negatives.split(","):
                neg = neg if neg == "all" else int(neg)
                for variant in a.variants.split(","):
                    r = measure(case, a.profile, device, neg, variant, a.steps, a.warmup)
                    r["machine"] = machine()
                    rows.append(r)
                    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "machine"}, flush=True)
    if rows: save(rows, Path(a.out), a.profile)
    return rows


if __name__ == "__main__":
    main()
