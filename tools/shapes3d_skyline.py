"""The wall-top edge (the skyline between the walls and the sky) of real and rendered images, per image column.

The sky is one colour s = (153, 226, 249) in every image; the wall below it is not (hue, shading, texture). Per column,
the first row r0 that is far from the sky colour (distance > 40) marks the edge; the wall colour w is read 3 rows below
it, and the edge's row, to a fraction of a pixel, is

    y = r0 - 3 + sum_{r = r0 - 3}^{r0 + 1} (1 - <x_r - s, w - s> / |w - s|^2),

the rows of sky above the wall (the pixel's sky fraction summed, so the edge filter's blur does not move it). Columns
where the wall is too close to the sky in colour (|w - s|^2 < 2000), or the edge lies outside rows 5-34, are skipped.

Per supersampling, on each half of the labelled real images, the script prints:

- `rough` and `real_rough`: how jagged the edge is, the mean |y[c+1] - 2 y[c] + y[c-1]| over columns of the edge
  averaged over the grid images of one orientation (the edge depends on the orientation only; averaging removes the
  real images' noise and the objects' hues), on the columns read in all of them, real and rendered alike; then the mean
  over orientations. With s x s rays per pixel a rendered edge can stand at s heights per pixel row before the filter:
  a gently sloping edge becomes a staircase where s is small.
- `edge`: mean |y_real - y_render| per column and image (pixels; differences above 1.5 clipped: the object reaching above
  the walls), and `pixels`: the mean absolute pixel difference (/ 255), over all the half's images.

`--figure PATH` also draws the edge, averaged over the grid images of one orientation (`--orientation`, default 0),
real against renders at each supersampling. About 30 s:

    OMP_NUM_THREADS=1 python tools/shapes3d_skyline.py --reference ../shared/data/shapes3d-reference --supersamples 2 3 4 6 \
        --figure results/shapes3d_render/figures/skyline.png
"""
import argparse

import numpy as np
import pandas as pd
import torch

from misrep.shapes3d import SceneParams, render_shapes3d
from misrep.shapes3d_fidelity import reference_set

SKY = np.array(SceneParams.sky, dtype=np.float64)   # the sky band's colour, the same in every image


def skyline(img: np.ndarray) -> np.ndarray:
    "Rows of sky above the wall per column (64,), to a fraction of a pixel; nan where the edge cannot be read."
    img = np.asarray(img, dtype=np.float64)
    d = np.sqrt(((img[:40] - SKY) ** 2).sum(-1))
    out = np.full(img.shape[1], np.nan)
    for c in range(img.shape[1]):
        far = np.nonzero(d[:, c] > 40)[0]
        if not len(far) or not 5 <= far[0] <= 34: continue
        r0 = far[0]; dv = img[r0 + 3, c] - SKY; dn = (dv ** 2).sum()
        if dn < 2000: continue
        out[c] = r0 - 3 + (1 - ((img[r0 - 3:r0 + 2, c] - SKY) @ dv) / dn).sum()
    return out


def _nanmean(v) -> float:
    "Mean of the finite values of `v`; nan (without a warning) when there are none."
    v = np.asarray(v, dtype=float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else np.nan


def roughness(y: np.ndarray) -> float:
    "Mean |second difference| of an edge over the columns where it and both neighbours were read (nan if none)."
    return _nanmean(np.abs(y[2:] - 2 * y[1:-1] + y[:-2]))


def compare(refs: dict, supersamples=(2, 4), params: SceneParams | None = None) -> pd.DataFrame:
    "Per supersampling and half: the rendered and real edges' roughness, their mean difference, and the pixel difference."
    real, lab = np.asarray(refs["images"]), np.asarray(refs["labels"])
    split, grid = np.asarray(refs["split"]), np.asarray(refs["source"]) == "grid"
    y_real = np.array([skyline(x) for x in real])
    rows = []
    for s in supersamples:
        ren = render_shapes3d(torch.from_numpy(lab), s, params=params).numpy()
        y = np.array([skyline(x) for x in ren])
        for half in dict.fromkeys(split):
            rough = []
            for o in range(15):
                m = grid & (split == half) & (lab[:, 5] == o)
                if m.sum() < 2: continue
                ok = np.isfinite(y_real[m]).all(0) & np.isfinite(y[m]).all(0)
                if ok.sum() < 3: continue
                rough.append([roughness(np.where(ok, v[m].mean(0), np.nan)) for v in (y, y_real)])
            idx = np.nonzero(split == half)[0]
            edge = [np.nanmean(np.minimum(np.abs(y_real[i] - y[i]), 1.5)) for i in idx if np.isfinite(y_real[i] - y[i]).sum() >= 8]
            rows.append(dict(supersample=s, half=half, images=len(idx), orientations=len(rough),
                             rough=_nanmean([r[0] for r in rough]), real_rough=_nanmean([r[1] for r in rough]),
                             edge=np.mean(edge), pixels=np.abs(ren[idx].astype(float) - real[idx]).mean()))
    return pd.DataFrame(rows)


def edge_figure(refs: dict, orientation: int = 0, supersamples=(2, 4), params: SceneParams | None = None):
    "Figure: the wall-top edge per column, averaged over the grid images of one orientation (both halves), real and rendered."
    import matplotlib.pyplot as plt
    lab = np.asarray(refs["labels"])
    m = (np.asarray(refs["source"]) == "grid") & (lab[:, 5] == orientation)
    if not m.any(): raise ValueError(f"no grid image of orientation class {orientation} among the references.")
    y_real = np.array([skyline(x) for x in np.asarray(refs["images"])[m]])
    ys = {s: np.array([skyline(x) for x in render_shapes3d(torch.from_numpy(lab[m]), s, params=params).numpy()])
          for s in supersamples}
    ok = np.isfinite(y_real).all(0) & np.all([np.isfinite(y).all(0) for y in ys.values()], 0)
    cols = np.nonzero(ok)[0]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(cols, y_real[:, ok].mean(0), "k.-", lw=1.5, label="real")
    for s, y in ys.items(): ax.plot(cols, y[:, ok].mean(0), ".-", lw=1, label=f"render, {s} x {s} rays per pixel")
    ax.invert_yaxis(); ax.set_xlabel("image column"); ax.set_ylabel("rows of sky above the wall")
    ax.set_title(f"wall-top edge, orientation class {orientation} ({m.sum()} grid images, mean)", fontsize=10)
    ax.legend(fontsize=8); fig.tight_layout()
    return fig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="folder holding 3dshapes.gif, nb0.png and nb1.png")
    ap.add_argument("--supersamples", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8])
    ap.add_argument("--figure", default=None, help="also draw the averaged edge of one orientation, real and at 2 x 2 and 4 x 4, into this PNG")
    ap.add_argument("--orientation", type=int, default=0, help="the figure's orientation class (default 0)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    refs = reference_set(a.reference)
    d = compare(refs, a.supersamples)
    print(d.round(3).to_string(index=False))
    if a.figure:
        edge_figure(refs, a.orientation).savefig(a.figure, dpi=130)
        print(f"figure: {a.figure}")


if __name__ == "__main__":
    main()
