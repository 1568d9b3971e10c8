"""Table and figure of the BMI benchmark from the two sides' CSVs (run with misrep's Python).

Reads DIR/bmi_estimates.csv (BMI's estimators) and DIR/misrep_estimates.csv (estimate_mi per bound) and writes into
OUT (results/bmi): tables/estimates.{csv,md} (per task: true MI, the mean estimate of every estimator over the seeds
run), tables/times.{csv,md} (per task: wall and CPU seconds of each), tables/summary.{csv,md} (per estimator: mean absolute error, mean and total wall time, how often
early stopping triggered), metrics.csv (every row of both sides), config.json, figures/bmi.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def load(d: Path, default_bound: str) -> pd.DataFrame:
    b = pd.read_csv(d / "bmi_estimates.csv"); b["side"] = "bmi"; b["name"] = "BMI " + b.estimator
    m = pd.read_csv(d / "misrep_estimates.csv"); m["side"] = "misrep"; m["name"] = "misrep " + m.estimator
    df = pd.concat([m, b], ignore_index=True)
    df["abs_error"] = (df.estimate - df.true_mi).abs()
    df["default"] = (df.side == "misrep") & (df.estimator == default_bound)
    return df


def tables(df: pd.DataFrame):
    # the (task, seed) pairs where estimate_mi's default and every BMI estimator ran; other bounds where they ran
    task_order = list(dict.fromkeys(zip(df[df.side == "bmi"].task_name, df[df.side == "bmi"].true_mi)))
    need = set(df[df.side == "bmi"].name) | set(df[df.default].name)
    have = df.groupby(["task_id", "seed"]).name.agg(set)
    keep = have[have.apply(lambda s: need <= s)].index
    df = df.set_index(["task_id", "seed"]).loc[keep].reset_index()
    rank = {t: i for i, t in enumerate(task_order)}
    df = df.assign(_r=[rank[t] for t in zip(df.task_name, df.true_mi)]).sort_values(["_r", "seed"], kind="stable").drop(columns="_r")
    order = list(dict.fromkeys(df.sort_values(["side", "estimator"], ascending=[False, True]).name))
    est = df.pivot_table(index=["task_name", "true_mi"], columns="name", values="estimate", aggfunc="mean")[order]
    present = set(zip(df.task_name, df.true_mi))
    est = est.loc[[t for t in task_order if t in present]]
    wall = df.pivot_table(index=["task_name", "true_mi"], columns="name", values="wall_s", aggfunc="mean")[order]
    wall = wall.loc[est.index]; wall.columns = [f"{c} [s]" for c in wall.columns]
    cpu = df.pivot_table(index=["task_name", "true_mi"], columns="name", values="cpu_s", aggfunc="mean")[order]
    cpu = cpu.loc[est.index]; cpu.columns = [f"{c} [cpu s]" for c in cpu.columns]
    est.insert(0, "seeds", df.groupby("task_name").seed.nunique().loc[est.index.get_level_values(0)].to_numpy())
    per_task = (est, wall.join(cpu))
    summ = df.groupby("name").agg(mae=("abs_error", "mean"), mean_wall_s=("wall_s", "mean"), total_wall_s=("wall_s", "sum"),
                                  mean_cpu_s=("cpu_s", "mean"), total_cpu_s=("cpu_s", "sum"),
                                  early_stop_rate=("early_stopping_triggered", "mean"), runs=("estimate", "size")).loc[order]
    summ.insert(0, "tasks", df.groupby("name").task_id.nunique().loc[order])
    return df, per_task, summ


def figure(df: pd.DataFrame, default_name: str):
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(df.sort_values(["side", "estimator"], ascending=[False, True]).name))
    tasks = list(dict.fromkeys(df[df.side == "bmi"].task_name))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw=dict(width_ratios=[3, 1]))
    w = 0.8 / len(names)
    for k, nme in enumerate(names):
        g = df[df.name == nme].groupby("task_name")
        err = (g.estimate.mean() - g.true_mi.first()).reindex(tasks)
        color = ("tab:red" if nme == default_name else plt.cm.Blues(0.4 + 0.5 * k / len(names))) if nme.startswith("misrep") \
            else plt.cm.Greys(0.35 + 0.5 * k / len(names))
        ax.bar(np.arange(len(tasks)) + (k - len(names) / 2) * w, err, w, label=nme + (" (default)" if nme == default_name else ""), color=color)
    ax.axhline(0, color="k", lw=0.8); ax.set_xticks(range(len(tasks))); ax.set_xticklabels(tasks, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("estimate - true MI (nats)"); ax.legend(fontsize=7, ncol=2); ax.set_title("Error per task (mean over seeds)")
    # only the estimators run on every task shown (the others' means are over fewer tasks)
    n_tasks = df.task_id.nunique()
    s = df.groupby("name").agg(mae=("abs_error", "mean"), wall=("cpu_s", "mean"), tasks=("task_id", "nunique"))
    for nme, r in s[s.tasks == n_tasks].iterrows():
        ax2.scatter(r.wall, r.mae, color="tab:red" if nme == default_name else ("tab:blue" if nme.startswith("misrep") else "gray"))
        ax2.annotate(nme, (r.wall, r.mae), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax2.set_xscale("log"); ax2.set_xlabel("mean CPU time per task (s)"); ax2.set_ylabel("mean absolute error (nats)")
    ax2.set_title(f"Accuracy and time ({n_tasks} tasks)")
    fig.tight_layout()
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", required=True); p.add_argument("--out", required=True)
    p.add_argument("--default-bound", default=None, help="estimate_mi's default bound (read from its signature)")
    args = p.parse_args(argv)
    import inspect
    from misrep.estimate import estimate_mi
    default = args.default_bound or inspect.signature(estimate_mi).parameters["bound"].default
    from misrep.core import RunDir
    df, per_task, summ = tables(load(Path(args.dir), default))
    sig = {k: (v.default if v.default is not inspect.Parameter.empty else None)
           for k, v in inspect.signature(estimate_mi).parameters.items() if k not in ("x", "y")}
    run = RunDir(args.out, config={"estimate_mi_defaults": sig, "seeds": sorted(df.seed.unique().tolist()),
                                   "n_samples": int(df.n_samples.iloc[0]), "tasks": sorted(df.task_id.unique())})
    df.drop(columns=["default"]).to_csv(run.metrics_path, index=False)
    est, times = per_task
    run.save_table(est, "estimates", float_format="%.3f"); run.save_table(times, "times", float_format="%.1f")
    run.save_table(summ, "summary", float_format="%.3f")
    run.save_figure(figure(df, f"misrep {default}"), "bmi")
    print(summ.round(3).to_string())


if __name__ == "__main__":
    main()
