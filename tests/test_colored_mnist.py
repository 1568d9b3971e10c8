"""Tests of misrep.colored_mnist: Sanchez et al.'s colored-MNIST pairs (values on real MNIST where present)."""
import numpy as np
import pytest
import torch

from conftest import write_fake_mnist
from misrep.colored_mnist import COLOURS, N_COLOURS, ColoredMNISTPairs, colour_digits, digit_mask
from misrep.images import load_mnist


def _check_values(pairs, idx):
    x, y, lab = pairs.batch(idx)
    d = pairs.images[torch.as_tensor(idx)]
    m = digit_mask(d).expand(-1, 3, -1, -1)
    assert torch.equal(lab[:, 0], pairs.labels[torch.as_tensor(idx)])
    # every X background pixel and every Y digit pixel is exactly one of the 12 colours: its image's colour
    assert torch.equal(x.permute(0, 2, 3, 1)[~m[:, 0]], COLOURS[lab[:, 1]][:, None].expand(-1, 28 * 28, -1)[~m[:, 0].reshape(len(idx), -1)])
    assert torch.equal(x[m], d.expand(-1, 3, -1, -1)[m])  # X's digit: its own grey levels
    if pairs.pairing == "same":
        assert torch.equal(y.amax(1, keepdim=True) > 0, digit_mask(d))  # the digit mask preserved in Y
        assert torch.equal(y[m], COLOURS[lab[:, 2]][:, :, None, None].expand(-1, -1, 28, 28)[m])
        assert y[~m].max() == 0
    return x, y, lab


def test_fake_mnist_pairs_from_a_root(tmp_path):
    write_fake_mnist(tmp_path, n_train=50, n_test=20, seed=2)
    pairs = ColoredMNISTPairs.from_mnist(tmp_path, train=True, download=False, seed=3)
    assert len(pairs) == 50
    _check_values(pairs, np.arange(50))
    again = ColoredMNISTPairs.from_mnist(tmp_path, train=True, download=False, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(again.batch(np.arange(50)), pairs.batch(np.arange(50))))


def test_real_mnist_pairs(mnist_root):
    x, y = load_mnist(mnist_root, train=False, download=False)
    pairs = ColoredMNISTPairs(x, y, seed=0)
    xx, yy, lab = _check_values(pairs, np.arange(2000))
    # a digit covers a plausible share of the image (MNIST: about 19 % of pixels >= 0.5)
    share = digit_mask(x[:2000]).float().mean().item()
    assert 0.1 < share < 0.3
    counts = torch.bincount(pairs.background, minlength=N_COLOURS).float()
    assert (counts / len(pairs) - 1 / 12).abs().max() < 0.01  # uniform colours over 10,000 images
    cls = ColoredMNISTPairs(x, y, pairing="class", seed=0)
    assert torch.equal(y[cls.partner], y) and (cls.partner != torch.arange(len(y))).all()


def test_bad_inputs():
    d = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match="labels must have shape"): ColoredMNISTPairs(d, torch.zeros(4))
    with pytest.raises(ValueError, match="colour indices"): colour_digits(d, d, torch.tensor([0, 1]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"): digit_mask(torch.zeros(3, 3, 28, 28, dtype=torch.uint8))
