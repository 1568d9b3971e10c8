"""tools/shapes3d_shadow_check.py, tools/shapes3d_region_swap.py, tools/shapes3d_orientation_bias.py and
tools/shapes3d_skyline.py (the renderer's diagnostics against the real images, results/shapes3d_render): checked on renders standing in for the real images, so that no real data is needed."""
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from misrep.shapes3d import SceneParams, render_shapes3d

sys.path.insert(0, str(REPO / "tools"))
import shapes3d_orientation_bias as bias  # noqa: E402
import shapes3d_region_swap as swap  # noqa: E402
import shapes3d_shadow_check as shadow  # noqa: E402
import shapes3d_skyline as skyline  # noqa: E402

# (floor, wall, object hue, scale, shape, orientation): large objects, every shape, both ends of the azimuth range
LABELS = np.array([[0, 3, 5, 7, 0, 0], [2, 5, 7, 6, 1, 14], [4, 7, 9, 7, 2, 7], [6, 9, 1, 5, 3, 3]])


@pytest.fixture(scope="module")
def renders():
    return render_shapes3d(torch.from_numpy(LABELS), 2).numpy()


def _refs(images):
    n = len(LABELS)
    return dict(images=images, labels=LABELS, source=np.array(["grid"] * n), split=np.array(["fit", "held-out"] * (n // 2)))


def test_shadow_check_finds_no_offset_where_the_real_images_are_the_renders(renders):
    d = shadow.compare(_refs(renders), SceneParams())
    assert len(d) == len(LABELS), d                       # every image has a shadow near enough to measure
    assert (d.dy == 0).all() and (d.dx == 0).all() and (d.error < 0.01).all(), d


def test_shadow_check_finds_a_shadow_moved_up_one_row(renders):
    moved = renders.astype(float)
    for i, (floor, real, ren) in enumerate(shadow.shadow_factors(_refs(renders), SceneParams())):
        up = np.roll(ren, -1, axis=0)                     # the render's shadow factor, one row higher
        ok = floor & np.roll(floor, -1, axis=0)
        moved[i][ok] *= (up / ren)[ok][:, None]           # unclipped floor: pixel = hue x shadow-free light x factor
    d = shadow.compare(_refs(np.clip(np.round(moved), 0, 255).astype(np.uint8)), SceneParams())
    assert len(d) == len(LABELS) and (d.dy == -1).all() and (d.dx == 0).all() and (d.error > 0.02).all(), d


def test_region_swap_masks_cover_every_pixel_once():
    masks, ren = swap.regions(LABELS[:2], SceneParams(), supersample=2)
    total = sum(m.astype(int) for m in masks.values())  # walls and floor overlap where an edge pixel mixes both hues
    assert ren.shape == (2, 64, 64, 3) and (total >= 1).all() and (total > 1).mean() < 0.03, (total > 1).mean()
    assert not (masks["shadow"] & masks["floor_no_shadow"]).any() and not (masks["object"] & masks["walls"]).any()
    assert all(m.any() for m in masks.values()), {k: int(m.sum()) for k, m in masks.items()}
    assert set(swap.RENDERERS) == {"v2", "v3-walls", "v3", "v4", "v5"} and swap.RENDERERS["v5"] == SceneParams()


def test_orientation_bias_is_zero_on_the_renders_and_reads_turned_images_as_turned(renders):
    inner = (LABELS[:, 5] > 0) & (LABELS[:, 5] < 14)                  # classes 7 and 3: both neighbours exist
    d = bias.orientation_bias(_refs(renders), SceneParams(), supersample=2)   # the fixture's renders
    assert list(d.orientation) == list(LABELS[inner, 5]) and (d[["all", "walls", "object"]].abs() < 1e-12).all().all()
    for k, sign in ((-1, 1), (1, -1)):                                  # "real" images one class lower / higher
        turned = LABELS.copy(); turned[:, 5] += k * inner
        d = bias.orientation_bias(_refs(render_shapes3d(torch.from_numpy(turned), 2).numpy()), SceneParams(), supersample=2)
        assert (sign * d["all"] > 0.3).all() and (sign * d["walls"] > 0.1).all(), d
        out = bias.outward(d)
        assert (out["all"][d.orientation == 7] == 0).all() and (sign * out["all"][d.orientation == 3] > 0.3).all(), out


def test_skyline_reads_a_sloping_edge_to_a_fraction_of_a_pixel_and_compares_renders_with_themselves(renders):
    wall, cols = np.array([200., 40, 40]), np.arange(64)
    edge = 14.3 + 0.05 * cols                                         # rows of sky above the wall, per column
    rows = np.arange(64)[:, None]
    frac = np.clip(edge[None, :] - rows, 0, 1)[..., None]              # each pixel's sky fraction
    img = frac * skyline.SKY + (1 - frac) * wall
    np.testing.assert_allclose(skyline.skyline(img), edge, atol=1e-9)
    assert abs(skyline.roughness(edge)) < 1e-12 and skyline.roughness(np.r_[0., 1, 0, 1, 0]) == 2
    same = _refs(renders)
    d = skyline.compare(same, supersamples=(2,))
    assert list(d.half) == ["fit", "held-out"] and (d.edge == 0).all() and (d.pixels == 0).all(), d
    fig = skyline.edge_figure(same, orientation=0, supersamples=(2,))
    assert [len(ax.lines) for ax in fig.axes] == [2]                  # the real edge and one rendered
    np.testing.assert_array_equal(*(ln.get_ydata() for ln in fig.axes[0].lines))   # "real" here is the 2 x 2 render
    with pytest.raises(ValueError, match="orientation class 5"):
        skyline.edge_figure(same, orientation=5)
