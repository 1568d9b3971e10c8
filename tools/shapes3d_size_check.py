"""Is the renderer's object size right? Render every labelled real Shapes3D reference image at its own factors with the
six object-size constants of `SceneParams` multiplied by m, and at one scale class below and above its label; print the
mean absolute pixel difference per m and source, and per image (results/shapes3d_render/README.md, issue 16).

    OMP_NUM_THREADS=1 python tools/shapes3d_size_check.py --reference ../shared/data/shapes3d-reference
"""
import argparse
import dataclasses

import numpy as np
import torch

from misrep.shapes3d import SceneParams, render_shapes3d
from misrep.shapes3d_fidelity import reference_set

SIZES = ("cube", "cylinder_radius", "cylinder_height", "sphere", "capsule_radius", "capsule_length")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="folder holding 3dshapes.gif, nb0.png and nb1.png")
    ap.add_argument("--multipliers", type=float, nargs="+", default=[0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06])
    ap.add_argument("--supersample", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    refs = reference_set(a.reference)
    real, lab, P = refs["images"].astype(float), refs["labels"], SceneParams()
    mad = lambda x: np.abs(x.numpy().astype(float) - real).mean((1, 2, 3))
    err = np.array([mad(render_shapes3d(torch.from_numpy(lab), a.supersample,
                                        params=dataclasses.replace(P, **{k: getattr(P, k) * m for k in SIZES})))
                    for m in a.multipliers])                                       # (M, N)
    near = []
    for d in (-1, 0, 1):                                                           # one scale class below, the label, above
        l2 = lab.copy(); l2[:, 3] = np.clip(l2[:, 3] + d, 0, 7); near.append(mad(render_shapes3d(torch.from_numpy(l2), a.supersample)))
    near = np.array(near)
    best = np.array(a.multipliers)[err.argmin(0)]
    for src in ("grid", "gif"):
        k = refs["source"] == src
        print(f"{src}: mean |diff| per m " + ", ".join(f"{m:.2f}: {e:.3f}" for m, e in zip(a.multipliers, err[:, k].mean(1))))
    print("best m per image:", dict(zip(*[v.tolist() for v in np.unique(best, return_counts=True)])))
    print("source index split scale best_m d(scale-1) d(scale) d(scale+1)")
    for i in range(len(lab)):
        print(refs["source"][i], refs["index"][i], refs["split"][i], lab[i, 3], best[i], *np.round(near[:, i], 2))


if __name__ == "__main__":
    main()
