"""The trainer in two processes (`torchrun --nproc_per_node 2`, gloo on the CPU) against one process at the same global
batch: the same weights and metrics within a stated tolerance, one writer of checkpoints and metrics, identical weights
and buffers in every process, an exact resume, and a batch that does not split refused.

The two-process side is this file run as a script under torchrun (`python -m torch.distributed.run --standalone
--nproc_per_node 2 tests/test_ddp.py OUT ...`); the one-process side runs the same code in the test's own process."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from misrep.core import RunDir
from misrep.train import Trainer, shard, world

STEPS, BATCH = 20, 16
# One process sums the 16 rows' gradients in one reduction; two processes sum 8 and 8 and average the two: the same
# numbers in another floating-point order. After 20 Adam steps (lr 1e-2) the weights agree to this (float32):
WEIGHT_TOL, LOSS_TOL = 1e-5, 1e-5


class RunningMean(nn.Module):
    "A buffer each process updates from its own shard: only the broadcast after each step keeps the processes equal."
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(4))
    def update(self, x): self.mean.mul_(0.9).add_(0.1 * x.mean(0))


def build(init_seed=0):
    "A small regression model, its optimiser, a running statistic, and the step (global batch drawn, then sharded)."
    torch.manual_seed(init_seed)
    net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    stats = RunningMean()
    w = torch.tensor([1., -2., 0.5, 3.])

    def step(t, g):
        x = torch.randn(BATCH, 4, generator=g)                       # the global batch: the same in every process
        y = torch.sin(x @ w) + 0.1 * torch.randn(BATCH, generator=g)
        x, y = shard((x, y))                                          # this process's rows
        loss = ((net(x).squeeze(1) - y) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        stats.update(x)
        return {"loss": loss.detach(), "x0": x[:, 0].mean()}
    return net, opt, stats, step


def train(out, steps=STEPS, stop_at=None, init_seed=0):
    "Train in this process (whatever the group) into run folder `out`; return the modules."
    net, opt, stats, step = build(init_seed)
    tr = Trainer(step, {"net": net, "stats": stats}, {"opt": opt}, steps, RunDir(out), tag="toy", seed=3, log_every=2,
                 ckpt_every=5, show_progress=False)
    tr.fit(stop_at=stop_at)
    return net, stats


def worker(out):
    "Under torchrun: a full run, an interrupted run resumed, and a record of who wrote checkpoints."
    import misrep.train as mt
    calls = []
    real = mt.save_checkpoint
    mt.save_checkpoint = lambda obj, path: (calls.append(str(path)), real(obj, path))[1]
    rank, n = world()                            # the trainer joins the group itself; before that: (0, 1)
    net, stats = train(out / "full")
    rank, n = world()
    train(out / "half", stop_at=STEPS // 2)
    net_r, stats_r = train(out / "half", init_seed=rank + 7)   # other initial weights: only the checkpoint and rank 0 count
    train(out / "split", stop_at=STEPS // 2)                   # left at 10 steps: finished in one process by a test
    torch.save({"net": net.state_dict(), "stats": stats.state_dict(), "net_resumed": net_r.state_dict(),
                "world": n, "saves": calls}, out / f"rank{rank}.pt")
    import torch.distributed as dist
    dist.barrier()
    if rank == 0:                                # a batch that does not split into equal shards stops with the reason
        try: shard(torch.zeros(5, 2)); msg = ""
        except ValueError as e: msg = str(e)
        (out / "refused.txt").write_text(msg)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    "The worker's folder after one torchrun launch of two processes."
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def _max_diff(a, b): return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_processes_match_one_at_the_same_global_batch(two, tmp_path):
    ranks = [torch.load(two / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    # every process ends with the same weights and buffers, bit for bit (gradients averaged, buffers broadcast)
    for k in ("net", "stats", "net_resumed"):
        assert all(torch.equal(ranks[0][k][p], ranks[1][k][p]) for p in ranks[0][k]), k
    # one process at the same global batch of 16: the same weights within WEIGHT_TOL
    one_net, one_stats = train(tmp_path / "one")
    one = one_net.state_dict()
    assert _max_diff(ranks[0]["net"], build(0)[0].state_dict()) > 1000 * WEIGHT_TOL                                  # it did train: the tolerance is not vacuous
    assert _max_diff(ranks[0]["net"], one) < WEIGHT_TOL, _max_diff(ranks[0]["net"], one)
    # the running statistic is the first process's (its shard's rows 0-7), not the global batch's
    assert not torch.allclose(ranks[0]["stats"]["mean"], one_stats.mean, atol=1e-3)
    # metrics: written once (20 / log_every rows), each the mean over both processes = the global batch's mean
    two_m, one_m = RunDir(two / "full").metrics(), RunDir(tmp_path / "one").metrics()
    assert two_m.step.tolist() == list(range(2, STEPS + 1, 2)) == one_m.step.tolist()
    assert (two_m.loss - one_m.loss).abs().max() < LOSS_TOL
    assert (two_m.x0 - one_m.x0).abs().max() < 1e-6                  # a plain mean of the data: order of sums only
    # only the first process wrote checkpoints (every 5 steps and at the end)
    assert len(ranks[0]["saves"]) > 0 and ranks[1]["saves"] == []
    ck = torch.load(two / "full" / "checkpoints" / "toy.pt", weights_only=True)
    assert ck["step"] == STEPS and all(torch.equal(ck["modules"]["net"][k], ranks[0]["net"][k]) for k in ck["modules"]["net"])
    # 10 steps, interrupted, resumed in two processes from other initial weights: exactly the uninterrupted run
    assert all(torch.equal(ranks[0]["net_resumed"][k], ranks[0]["net"][k]) for k in ranks[0]["net"])
    assert RunDir(two / "half").metrics().equals(two_m)
    assert "does not split into 2 equal shards" in (two / "refused.txt").read_text()


def test_a_two_process_run_finishes_in_one_process(two, tmp_path):
    "10 steps in two processes, the last 10 in one: the two-process run's weights within WEIGHT_TOL."
    shutil.copytree(two / "split", tmp_path / "split")
    assert torch.load(tmp_path / "split" / "checkpoints" / "toy.pt", weights_only=True)["step"] == STEPS // 2
    net, _ = train(tmp_path / "split", init_seed=11)
    ref = torch.load(two / "rank0.pt", weights_only=True)["net"]
    assert _max_diff(net.state_dict(), ref) < WEIGHT_TOL, _max_diff(net.state_dict(), ref)
    assert RunDir(tmp_path / "split").metrics().step.tolist() == list(range(2, STEPS + 1, 2))


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
