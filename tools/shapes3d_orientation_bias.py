"""Does the real image look turned further than its label? A classifier-free measure of the renderer's orientation bias.

For each labelled real reference image of orientation class o (1 <= o <= 13), the mismatch E = real - render(o) is
projected on the change one class makes, D = (render(o - 1) - render(o + 1)) / 2:

    c = <E, D>_region / <D, D>_image,

in classes toward lower orientation (positive: the real image looks like a lower class), per region (object, walls,
floor without the shadow, shadow, sky; the masks of `shapes3d_region_swap.regions`), summing to the whole image's c. The
outward component (c for o < 7, -c for o > 7) says how much further from the middle (0 degrees) the real image looks
than its label: what the sim-to-real classifier's orientation misreads do on the grid images (results/shapes3d_render).
Prints the mean per orientation class and region on the grid images, and the outward component per half (fit /
held-out); about 20 s.

    OMP_NUM_THREADS=1 python tools/shapes3d_orientation_bias.py --reference ../shared/data/shapes3d-reference
"""
import argparse

import numpy as np
import pandas as pd
import torch

from misrep.shapes3d import DEFAULT_SUPERSAMPLE, SceneParams, render_shapes3d
from misrep.shapes3d_fidelity import reference_set
from shapes3d_region_swap import RENDERERS, regions

REGIONS = ["all", "object", "walls", "floor_no_shadow", "shadow", "sky"]   # "all" and the masks of `regions`


def orientation_bias(refs: dict, params: SceneParams | None = None, supersample: int = DEFAULT_SUPERSAMPLE) -> pd.DataFrame:
    "Per image of orientation class 1-13: source, split, orientation, shape and c per region ('all' and the masks), in classes."
    real, lab = np.asarray(refs["images"]).astype(float), np.asarray(refs["labels"])
    masks, ren = regions(lab, params, supersample)
    def turned(k):
        l = lab.copy(); l[:, 5] = np.clip(l[:, 5] + k, 0, 14)
        return render_shapes3d(torch.from_numpy(l), supersample, params=params).numpy().astype(float)
    D, E = (turned(-1) - turned(1)) / 2, real - ren.astype(float)
    rows = []
    for i in np.nonzero((lab[:, 5] > 0) & (lab[:, 5] < 14))[0]:
        dd = (D[i] ** 2).sum()
        r = dict(source=refs["source"][i], split=refs["split"][i], orientation=int(lab[i, 5]), shape=int(lab[i, 4]),
                 all=float((E[i] * D[i]).sum() / dd))
        for k, m in masks.items(): r[k] = float((E[i] * D[i])[m[i]].sum() / dd)
        rows.append(r)
    return pd.DataFrame(rows)


def outward(d: pd.DataFrame) -> pd.DataFrame:
    "The outward component (further from 0 degrees, classes) per region: c for classes below 7, -c above, 0 at 7."
    sign = np.sign(7 - d.orientation)
    return d[REGIONS].mul(sign, axis=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="folder holding 3dshapes.gif, nb0.png and nb1.png")
    ap.add_argument("--renderer", choices=list(RENDERERS), default="v5", help="which renderer version (default: v5, this one)")
    ap.add_argument("--supersample", type=int, default=DEFAULT_SUPERSAMPLE,
                    help=f"rays per pixel along each axis of the renders (default {DEFAULT_SUPERSAMPLE})")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    d = orientation_bias(reference_set(a.reference), RENDERERS[a.renderer], a.supersample)
    pd.set_option("display.width", 200)
    g = d[d.source == "grid"]
    print(f"renderer {a.renderer}, {a.supersample} x {a.supersample} rays per pixel: c, classes toward lower orientation in real - render, grid images, mean per class")
    print(g.groupby("orientation")[REGIONS].mean().round(3).T.to_string())
    print("\noutward component (further from 0 degrees than the label, classes), grid images, mean per half:")
    print(pd.concat([g[["split"]], outward(g)], axis=1).groupby("split").mean().round(3).to_string())


if __name__ == "__main__":
    main()
