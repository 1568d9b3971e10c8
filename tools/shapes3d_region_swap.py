"""Which part of the real Shapes3D images does the sim-to-real classifier misread? Train the fidelity check's factor
classifier on renders (as `misrep.shapes3d_fidelity.sim_to_real` does, one per seed), then score the 103 labelled real
reference images with one region swapped: real pixels in one region (object, walls, floor without the shadow, shadow,
sky) and the render of the image's own labels elsewhere, and the reverse. Regions come from renders: the pixels that
change when the object's (wall's, floor's) hue changes; the shadow, the floor pixels that change when the object's
scale changes. Prints accuracy (%) per factor and variant (results/shapes3d_render/README.md, issue 16).

    OMP_NUM_THREADS=1 python tools/shapes3d_region_swap.py --reference ../shared/data/shapes3d-reference --seeds 0 1 2

--renderer v2 / v3-walls / v3 / v4 / v5 renders (and trains the classifier) as renderer version 2 did (no fitted wall and
floor shading, the key light riding with the camera), as version 3 did with its shading on the walls only or on the
walls and the floor, as version 4 did (the key light fixed in the room, the shading refitted) or as version 5 does (the
default: version 4 with the room texture).
"""
import argparse

import numpy as np
import torch

from misrep.shapes3d import DEFAULT_SUPERSAMPLE, EARLIER_RENDERERS, FACTOR_SIZES, NO_SHADE, SceneParams, render_shapes3d
from misrep.shapes3d_fidelity import factor_predictions, reference_set, train_factor_classifier


RENDERERS = {"v2": SceneParams(**EARLIER_RENDERERS[2]),
             "v3-walls": SceneParams(**{**EARLIER_RENDERERS[3], "floor_shade": NO_SHADE["floor_shade"]}),
             "v3": SceneParams(**EARLIER_RENDERERS[3]), "v4": SceneParams(**EARLIER_RENDERERS[4]),
             "v5": SceneParams()}                                                   # v5: the default, this version


def regions(lab: np.ndarray, params: SceneParams | None = None, supersample: int = DEFAULT_SUPERSAMPLE) -> tuple:
    "Boolean (N, 64, 64) masks of the object, walls, floor without the shadow, shadow and sky, from renders of `lab`; and those renders."
    R = lambda l: render_shapes3d(torch.from_numpy(l), supersample, params=params).numpy()
    differ = lambda a, b: np.abs(a.astype(int) - b.astype(int)).sum(-1) > 6
    def moved(l, col, shift): l = l.copy(); l[:, col] = (l[:, col] + shift) % FACTOR_SIZES[col]; return l
    ren = R(lab)
    obj = differ(ren, R(moved(lab, 2, 5)))
    wall, floor = differ(ren, R(moved(lab, 1, 5))) & ~obj, differ(ren, R(moved(lab, 0, 5))) & ~obj
    other = lab.copy(); other[:, 3] = np.where(lab[:, 3] < 4, 7, 0)                  # the other end of the scale range
    r_other = R(other)
    shadow = floor & differ(ren, r_other) & ~differ(r_other, R(moved(other, 2, 5)))
    return dict(object=obj, walls=wall, floor_no_shadow=floor & ~shadow, shadow=shadow, sky=~(obj | wall | floor)), ren


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="folder holding 3dshapes.gif, nb0.png and nb1.png")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--renderer", choices=list(RENDERERS), default="v5", help="which renderer version (default: v5, this one)")
    ap.add_argument("--supersample", type=int, default=DEFAULT_SUPERSAMPLE,
                    help=f"rays per pixel along each axis of every render, the classifier's too (default {DEFAULT_SUPERSAMPLE})")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    refs = reference_set(a.reference)
    real, lab = refs["images"], refs["labels"]
    params = RENDERERS[a.renderer]
    masks, ren = regions(lab, params, a.supersample)
    print("pixel fractions: " + ", ".join(f"{k} {m.mean():.3f}" for k, m in masks.items()))
    variants = {"render": ren, "real": real}
    for k, m in masks.items():
        variants[f"real {k} only"] = np.where(m[..., None], real, ren).astype(np.uint8)
        variants[f"real except {k}"] = np.where(m[..., None], ren, real).astype(np.uint8)
    for seed in a.seeds:
        model = train_factor_classifier(params, a.supersample, seed=seed)[0]   # sim_to_real's classifier, its defaults
        pred = {k: factor_predictions(model, v) for k, v in variants.items()}
        for f, j in (("scale", 3), ("shape", 4), ("orientation", 5)):
            print(f"seed {seed} {f}: " + " | ".join(f"{k} {100 * (p[:, j] == lab[:, j]).mean():.1f}" for k, p in pred.items()),
                  flush=True)


if __name__ == "__main__":
    main()
