"""estimate_mi (misrep.estimate): accuracy with its defaults, reproducibility, and clear errors on bad input."""
import math
import warnings

import numpy as np
import pytest
import torch

from misrep.estimate import BOUND_NAMES, estimate_mi
from misrep.estimators import rho_for_mi, sample_correlated_gaussians


def gaussians(n, d, mi, seed):
    x, y = sample_correlated_gaussians(n, d, rho_for_mi(mi, d), torch.Generator().manual_seed(seed))
    return x.numpy(), y.numpy()


def dense_gaussian(n, d, off_diag=0.5, seed=0):
    "BMI's 'multinormal dense' task: (x, y) of d + d dims, unit variances, every correlation off_diag; its true MI."
    cov = np.full((2 * d, 2 * d), off_diag) + (1 - off_diag) * np.eye(2 * d)
    logdet = lambda m: np.linalg.slogdet(m)[1]
    mi = 0.5 * (logdet(cov[:d, :d]) + logdet(cov[d:, d:]) - logdet(cov))
    z = np.random.default_rng(seed).multivariate_normal(np.zeros(2 * d), cov, size=n)
    return z[:, :d], z[:, d:], mi


# estimate_mi with its defaults on 10,000 correlated Gaussians (MI 1 nat, within 0.1, early stopping): a test cell of
# nbs/01a_estimate.ipynb, run against the exported module by tests/test_exports.py (it was here too, the same case twice).


@pytest.mark.slow   # the failure case at full size (make test-slow)
def test_nwj_does_not_collapse_on_the_5x5_dense_gaussian():
    # the failure: NWJ at -4.8 nats on BMI's 5x5 dense Gaussian (MI 0.59) with a naive protocol
    x, y, mi = dense_gaussian(10_000, 5, seed=1)
    assert mi == pytest.approx(0.5928, abs=1e-3)
    r = estimate_mi(x, y, bound="nwj", progress=False)
    assert abs(r.estimate - mi) < 0.15, r


def test_numpy_and_torch_inputs_and_seeds():
    x, y = gaussians(1_200, 2, 0.5, seed=2)
    kw = dict(max_steps=40, eval_every=20, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = estimate_mi(x, y, **kw)
        b = estimate_mi(torch.from_numpy(x), torch.from_numpy(y), **kw)
        c = estimate_mi(x, y, seed=1, **kw)
    assert a.estimate == b.estimate                      # same samples, same seed: the same number
    assert a.estimate != c.estimate                      # another seed: another split and initialisation


@pytest.mark.parametrize("bound", BOUND_NAMES)
def test_every_bound_runs_and_learns(bound):
    x, y = gaussians(2_000, 2, 1.0, seed=3)
    r = estimate_mi(x, y, bound=bound, max_steps=1500, eval_every=50, batch_size=64, progress=False)   # 64: a quarter of the pairs of 128
    assert math.isfinite(r.estimate) and 0.5 < r.estimate < 1.5, r


def test_nan_input_is_refused():
    x, y = gaussians(1_000, 3, 1.0, seed=0)
    x[10, 1] = np.nan
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite values \(first in sample 10\)"):
        estimate_mi(x, y)
    x[10, 1] = 0; y[3, 0] = np.inf
    with pytest.raises(ValueError, match="y contains 1 NaN or infinite"):
        estimate_mi(x, y)


def test_different_lengths_are_refused():
    x, y = gaussians(1_000, 3, 1.0, seed=0)
    with pytest.raises(ValueError, match="same number of samples.*got 1000 and 999"):
        estimate_mi(x, y[:999])


def test_fewer_samples_than_one_batch_are_refused():
    x, y = gaussians(1_000, 3, 1.0, seed=0)
    with pytest.raises(ValueError, match="too few samples: 200 pairs give 100 training.*batch needs 128.*at least 256 pairs"):
        estimate_mi(x[:200], y[:200])
    with pytest.raises(ValueError, match="too few samples"):
        estimate_mi(x[:100], y[:100], batch_size=64, heldout=0.9)
