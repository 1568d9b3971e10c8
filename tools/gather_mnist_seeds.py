#!/usr/bin/env python3
"""Gather MNIST runs of the InfoGAN family trained as separate processes (one seed each) into one folder.

Each RUN is a finished run folder of nbs/31_mnist.ipynb (e.g. `misrep run mnist -p model infogan --profile paper
-p seed 1 -p n_seeds 1`); they must share every setting but the seeds and the runtime ones. Writes OUT/seed{s}/
(each run's config, metrics, summary, tables, figures) and OUT/tables/accuracy.{csv,md} (per seed, mean, sample std):
`misrep.mnist_eval.gather_seed_runs`.

    python tools/gather_mnist_seeds.py RUN [RUN ...] --out DIR
"""
import argparse

from misrep.mnist_eval import gather_seed_runs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders of nbs/31_mnist.ipynb")
    ap.add_argument("--out", required=True, help="the folder to gather them into")
    a = ap.parse_args(argv)
    try: table = gather_seed_runs(a.runs, a.out)
    except (ValueError, FileNotFoundError) as e: raise SystemExit(f"gather_mnist_seeds: {e}")
    print(table.to_string())


if __name__ == "__main__":
    main()
