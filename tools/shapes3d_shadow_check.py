"""Where the real Shapes3D shadow lies against the rendered one: for each of the 103 labelled real images, the floor's
shadow factor (real pixel / the render's shadow-free floor, in the floor hue's brightest channel) against the render's
own (shadowed / shadow-free render), on the floor pixels near either shadow. Prints, per source and half, the mean
absolute difference of the two factors and the image shift (rows, columns; a grid of half pixels within +-2) that best
aligns the rendered shadow with the real one, then the shift per orientation class of the grid images
(results/shapes3d_render/README.md, issue 16). The shadow-free render is the same render with full light visibility
(`_soft_shadow` replaced for that one call).

    OMP_NUM_THREADS=1 python tools/shapes3d_shadow_check.py --reference ../shared/data/shapes3d-reference --renderer v3

Renderer version 3 let the key light ride with the camera: its shadow lies about a pixel below the real one on the
grid images (every azimuth) and not on the animation frames (nearly all at +30 degrees, where it was fitted).
"""
import argparse

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import binary_dilation, shift as nd_shift

import misrep.shapes3d as S
from misrep.shapes3d import FACTOR_SIZES, SHARED_FACTORS, group_keys, hsv_to_rgb, render_geometry
from misrep.shapes3d_fidelity import reference_set
from shapes3d_region_swap import RENDERERS   # tools/: v2, v3-walls, v3, v4, v5


def shadow_factors(refs: dict, params) -> list:
    "Per image: (floor mask, real shadow factor, rendered shadow factor), (64, 64) each, on the floor hue's brightest channel."
    lab = refs["labels"]
    keys = group_keys(torch.from_numpy(lab), SHARED_FACTORS, FACTOR_SIZES[3:])
    W1, C1 = (x.numpy() for x in render_geometry(keys, 2, params))
    lit = S._soft_shadow
    S._soft_shadow = lambda h, *a, **k: torch.ones_like(h.t)       # the same render, the key light never blocked
    try: W0 = render_geometry(keys, 2, params)[0].numpy()
    finally: S._soft_shadow = lit
    rho = hsv_to_rgb(torch.from_numpy(lab[:, :3]).float() / torch.tensor(FACTOR_SIZES[:3])).numpy()
    img = refs["images"].astype(float) / 255
    out = []
    for i in range(len(lab)):
        ch = int(np.argmax(rho[i, 0])); r = rho[i, 0, ch]
        floor = (W0[i, 0] > 0.05) & (W0[i, 1] < 1e-4) & (W0[i, 2] < 1e-4) & (C1[i].max(0) < 1e-4) & (W0[i, 0] * r < 0.95)
        free = np.maximum(W0[i, 0], 1e-4)
        out.append((floor, np.where(floor, np.clip(img[i, ..., ch] / (r * free), 0, 1.5), 1), np.where(floor, W1[i, 0] / free, 1)))
    return out


def compare(refs: dict, params) -> pd.DataFrame:
    "One row per image with a shadow: source, split, orientation class, mean |real - rendered| factor, best (dy, dx)."
    rows = []
    for i, (floor, real, ren) in enumerate(shadow_factors(refs, params)):
        near = binary_dilation((ren < 0.98) | (real < 0.9), iterations=3) & floor
        if near.sum() < 20: continue
        err, dy, dx = min((np.abs(nd_shift(ren, (dy, dx), order=1, mode="nearest") - real)[near].mean(), dy, dx)
                          for dy in np.arange(-2, 2.01, 0.5) for dx in np.arange(-2, 2.01, 0.5))
        rows.append(dict(source=refs["source"][i], split=refs["split"][i], orientation=int(refs["labels"][i, 5]),
                         error=np.abs(ren - real)[near].mean(), error_shifted=err, dy=dy, dx=dx))
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="folder holding 3dshapes.gif, nb0.png and nb1.png")
    ap.add_argument("--renderer", nargs="+", choices=list(RENDERERS), default=["v4", "v5"])
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    refs = reference_set(a.reference)
    for name in a.renderer:
        d = compare(refs, RENDERERS[name])
        print(f"renderer {name}: shadow factor, mean |real - rendered| near the shadows, and the shift (rows dy, columns dx; "
              f"negative: up, left) that best aligns the rendered shadow with the real one")
        print(d.groupby(["source", "split"])[["error", "error_shifted", "dy", "dx"]].mean().round(3).to_string())
        print("grid images, mean shift per orientation class:")
        print(d[d.source == "grid"].groupby("orientation")[["dy", "dx"]].mean().round(2).T.to_string() + "\n", flush=True)


if __name__ == "__main__":
    main()
