#!/usr/bin/env python3
"""results/mnist_comparison.md from the per-seed accuracy tables of results/mnist_<model>/ (written by nbs/31_mnist.ipynb)
and of results/mnist_infogan_paper/ (seeds gathered by tools/gather_mnist_seeds.py) when it exists.

Each cell: mean ± sample std over seeds. Pairwise comparisons (the `quick` runs, one budget): Welch's t-test on the per-seed accuracies (unequal
variances), two-sided, and the difference of means with its 95 % Welch confidence interval. With 3 seeds a side the
test has little power: a p-value above 0.05 says the seeds cannot tell the models apart, not that they are equal.

    python tools/mnist_comparison.py [--results results] [--out results/mnist_comparison.md]
"""
import argparse
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

MODELS = {"infogan": "InfoGAN", "hsic_infogan": "HSIC-InfoGAN", "bi_infogan": "Bidirectional-InfoGAN"}
PAPER = {"infogan": "~95 (Q, 5 % error; Chen et al. 2016)", "hsic_infogan": "not reported (no inference network)",
         "bi_infogan": "96.9 (E, best model; Hinz and Wermter)"}


def per_seed(folder: Path) -> pd.DataFrame:
    "Rows of `tables/accuracy.csv` that are seeds (the mean and std rows dropped), accuracies in %."
    t = pd.read_csv(folder / "tables" / "accuracy.csv")
    t = t[pd.to_numeric(t.iloc[:, 0], errors="coerce").notna()].copy()
    for c in ("acc_generator", "acc_encoder"):
        t[c] = pd.to_numeric(t[c], errors="coerce") * 100
    return t


def welch(a: np.ndarray, b: np.ndarray) -> tuple:
    "Difference of means a - b, its 95 % Welch interval, and the two-sided p-value."
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    d = a.mean() - b.mean()
    half = stats.t.ppf(0.975, dof) * se
    return d, d - half, d + half, stats.ttest_ind(a, b, equal_var=False).pvalue


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--out", default="results/mnist_comparison.md")
    a = ap.parse_args()
    res, rows, acc, paper = Path(a.results), [], {}, None
    folders = [(m, res / f"mnist_{m}") for m in MODELS] + [("infogan", res / "mnist_infogan_paper")]
    for m, f in folders:
        name = MODELS[m]
        if not (f / "tables" / "accuracy.csv").is_file():
            if f.name.endswith("_paper"): continue          # not run yet: the quick rows alone
            raise SystemExit(f"missing {f}/tables/accuracy.csv: run nbs/31_mnist.ipynb for {m} first")
        cfg_path = f / "config.json" if (f / "config.json").is_file() else sorted(f.glob("seed*/config.json"))[0]  # gathered seeds
        cfg, t = json.loads(cfg_path.read_text()), per_seed(f)
        if cfg["profile"] == "quick": acc[m] = t
        else: paper = t
        fmt = lambda s: "n/a (no Q/E)" if s.isna().all() else f"{s.mean():.1f} ± {s.std(ddof=1):.1f}"
        run = f"{cfg['profile']}: {cfg['steps']} steps, batch {cfg['batch_size']}, widths /{cfg.get('width_div', 1)}, {len(t)} seeds"
        rows.append(f"| {name} | {run} | {fmt(t.acc_generator)} | {fmt(t.acc_encoder)} | "
                    f"{', '.join(f'{v:.1f}' for v in t.acc_generator)} | {PAPER[m]} |")
    comps = []
    for col, side in (("acc_generator", "generator side"), ("acc_encoder", "encoder side")):
        for m1, m2 in combinations(MODELS, 2):
            x, y = acc[m1][col].dropna().to_numpy(), acc[m2][col].dropna().to_numpy()
            if len(x) < 2 or len(y) < 2: continue
            d, lo, hi, p = welch(x, y)
            comps.append(f"| {side} | {MODELS[m1]} - {MODELS[m2]} | {d:+.1f} | [{lo:+.1f}, {hi:+.1f}] | {p:.3f} |")
        if paper is not None:                                # the same model at two budgets
            d, lo, hi, p = welch(paper[col].dropna().to_numpy(), acc["infogan"][col].dropna().to_numpy())
            comps.append(f"| {side} | InfoGAN `paper` - InfoGAN `quick` | {d:+.1f} | [{lo:+.1f}, {hi:+.1f}] | {p:.3f} |")
    text = "\n".join([
        "# MNIST: code-digit accuracy of InfoGAN, HSIC-InfoGAN and Bidirectional-InfoGAN",
        "",
        "Accuracy (%) of the categorical code against the digit classes after Hungarian matching. *Generator side*: "
        "images generated for each code value, labelled by misrep's MNIST classifier. *Encoder side*: argmax of the "
        "inference network's categorical head (Q for InfoGAN, E for Bidirectional-InfoGAN) on the 10,000 MNIST test "
        "images. Made by `nbs/31_mnist.ipynb` (commands in each `results/mnist_<model>/README.md`); this page by "
        "`python tools/mnist_comparison.py`.",
        "",
        "| model | run | generator side | encoder side | generator side per seed | paper |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Mean ± sample std over seeds. Pairwise differences (Welch's t-test on the per-seed accuracies, two-sided; "
        "95 % Welch interval of the difference of means). With 3 seeds a side the test has little power: p > 0.05 "
        "means the seeds cannot tell the two apart, not that they are equal.",
        "",
        "| side | difference | mean (points) | 95 % interval | p |",
        "|---|---|---|---|---|",
        *comps,
        "",
        "**Why the quick runs fall short of the papers.** The `quick` profile trains 3,000 steps of batch 64 with "
        "quarter-width networks; InfoGAN's paper schedule is 5,000 updates of batch 128 at full width (the `paper` "
        "profile), Bidirectional-InfoGAN's 30,000 iterations. The categorical code is fully used in every run (`li_cat` "
        "near log 10 = 2.30 nats in `metrics.csv`), but some code values cover two digits (4/9, 3/5/8, 7/9 in the "
        "confusion tables `results/mnist_<model>/tables/confusion_*`) while two codes share one digit: the known "
        "InfoGAN failure mode. At the paper's settings (InfoGAN `paper`, 2 seeds, `results/mnist_infogan_paper/`) the "
        "mean rises by about 5 points, not significantly with these seeds, and still falls short of 95: the better "
        "seed loses only 4 against 9 (two codes draw both), the other also shares 1, 2 and 8 among three codes. "
        "HSIC-InfoGAN's and Bidirectional-InfoGAN's `paper` profiles have not run (no GPU was lent; about 1 h 25 min "
        "per InfoGAN seed on an idle core of this CPU).",
        "",
    ])
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
