"""The renderer's versions side by side (2: no fitted wall and floor shading, the key light riding with the camera; 3:
the shading `misrep.shapes3d_fidelity.fit_shade` fits on the fit half of the labelled real images, on the walls only or
on walls and floor; 4, this one: the key light fixed in the room, the shading refitted), judged on the real images:
the fit's log-ratio table, the mean absolute pixel difference per source and half, and the sim-to-real gap per factor
(real held-out minus held-out renders) for each classifier seed, with mean and sd (results/shapes3d_render/README.md,
issue 16).

    OMP_NUM_THREADS=1 python tools/shapes3d_shade_compare.py --reference ../shared/data/shapes3d-reference \
        --variants v2 v3 v4 v5 --seeds 0 1 2
"""
import argparse

import pandas as pd
import torch

from misrep.shapes3d import FITTED_SHADE
from misrep.shapes3d_fidelity import fit_shade, pixel_differences, reference_set, sim_to_real_seeds
from shapes3d_region_swap import RENDERERS as VARIANTS   # tools/: v2, v3-walls, v3, v4, v5


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="folder holding 3dshapes.gif, nb0.png and nb1.png")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="sim-to-real classifier seeds (none: pixels only)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    refs = reference_set(a.reference)
    ws, fs, report = fit_shade(refs)
    same = (ws, fs) == (FITTED_SHADE["wall_shade"], FITTED_SHADE["floor_shade"])
    print(f"fit_shade on the fit half reproduces FITTED_SHADE: {same}\n{report.to_string(index=False)}\n", flush=True)
    pix = {v: pixel_differences(refs, VARIANTS[v], supersamples=(2,))[1]["mad_ss2"] for v in a.variants}
    print("mean |real - render| / 255, supersample 2:\n" + pd.DataFrame(pix).round(3).to_string() + "\n", flush=True)
    for v in a.variants if a.seeds else []:
        t = sim_to_real_seeds(refs, VARIANTS[v], a.seeds)
        print(f"{v}: gap, real held-out minus held-out renders (points), per classifier seed:\n{t.to_string()}\n", flush=True)


if __name__ == "__main__":
    main()
