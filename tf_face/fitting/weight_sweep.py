"""Sweep of w_shape / w_expr on synthetic ICT faces (how the defaults in
``FitOptions`` were chosen; numbers in ``README.md`` beside this file).

    python -m tf_face.fitting.weight_sweep --model=ict_npz:../shared/data/ict_face_model.npz

Faces: alpha ~ N(0, I), ICT blendshape weights clip(U(-0.6, 0.5), 0, 1)
(about a third of the 53 active), yaw U(-40, 40), pitch/roll U(-15, 15) deg.
The 68 landmarks are what a 2D annotator would mark (jaw points on the visible
outline for sides not turned towards the camera, ``annotator_landmarks``;
candidates from the model's loader), plus Gaussian noise of
``noise`` x IOD per coordinate. Reported per (noise, w_shape, w_expr): dense
vertex error of the pose-free shape (cm, RMS over all vertices), RMS error of
alpha, mean |beta error|, rotation error (deg), landmark_rmse_iod.
"""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
from absl import app, flags

from tf_face.facemodel import load_face_model
from tf_face.fitting.contour import ContourTable
from tf_face.fitting.fit import fit_face
from tf_face.fitting.landmark_spec import spec_68
from tf_face.fitting.options import FitOptions
from tf_face.fitting.rotation import euler_ypr, rotation_angle
from tf_face.ibug import inter_ocular_distance
from tf_face.types import model_to_image


def annotator_landmarks(model, shape, scale, rot, trans, near_yaw_deg=30.0):
    """68 image points; jaw slots on the visible outline as ``contour.py``
    defines it (strip 0 of each slot's candidates, for the true shape and
    pose: the fixed vertex on a side turned towards the camera, else the
    outermost vertex across the jaw)."""
    img = model_to_image(shape, scale, rot, trans)
    ids = np.asarray(model.landmarks68, np.int64).copy()
    spec = spec_68(model)
    table = ContourTable.from_spec(spec, np.asarray(model.mean_shape))
    if table is not None:
        ids[table.rows] = table.select(np.asarray(shape, np.float64)[table.ids], rot,
                                       near_yaw_deg)
    return img[ids, :2]


def make_faces(model, n, seed):
    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(n):
        alpha = rng.standard_normal(model.num_shape)
        beta = np.clip(rng.uniform(-0.6, 0.5, model.num_expr), 0.0, 1.0)
        rot = euler_ypr(rng.uniform(-40, 40), rng.uniform(-15, 15), rng.uniform(-15, 15))
        shape = model.shape(alpha, beta)
        lm = annotator_landmarks(model, shape, 9.0, rot, np.array([320.0, 240.0]))
        iod = inter_ocular_distance(lm)
        faces.append((alpha, beta, rot, shape, lm, iod, rng.standard_normal(lm.shape)))
    return faces


def run_sweep(model, w_shapes, w_exprs, noises, n_faces=8, seed=0, base=None):
    base = base or FitOptions()
    faces = make_faces(model, n_faces, seed)
    rows = []
    for noise, ws, we in itertools.product(noises, w_shapes, w_exprs):
        opts = FitOptions(**{**base.__dict__, "w_shape": ws, "w_expr": we})
        m = []
        t0 = time.process_time()
        for alpha, beta, rot, shape, lm, iod, z in faces:
            fit = fit_face(model, lm + z * noise * iod, (480, 640), opts)
            m.append([np.sqrt(((fit.vertices_model - shape) ** 2).sum(1).mean()),
                      np.sqrt(((fit.shape_coeffs - alpha) ** 2).mean()),
                      np.abs(fit.expr_coeffs - beta).mean(),
                      rotation_angle(rot, fit.rotation), fit.landmark_rmse_iod])
        m = np.mean(m, axis=0)
        rows.append(dict(noise=noise, w_shape=ws, w_expr=we, dense_cm=m[0],
                         alpha_rms=m[1], beta_mae=m[2], rot_deg=m[3], rmse_iod=m[4],
                         cpu_ms_per_fit=(time.process_time() - t0) / len(faces) * 1e3))
    return rows


def main(argv=None):
    flags.DEFINE_string("model", None, "face model spec, e.g. ict_npz:PATH")
    flags.DEFINE_integer("faces", 8, "synthetic faces per setting")
    flags.DEFINE_string("json", "", "also write the rows here")

    def run(_):
        fl = flags.FLAGS
        model = load_face_model(fl.model)       # with the loader's contour candidates
        mean_dense = np.mean([np.sqrt(((f[3] - model.mean_shape) ** 2).sum(1).mean())
                              for f in make_faces(model, fl.faces, 0)])
        print(f"dense error of the mean shape itself: {mean_dense:.3f}")
        rows = run_sweep(model, [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], [1e-4, 1e-3, 1e-2],
                         [0.0, 0.01, 0.03], n_faces=fl.faces)
        print("noise  w_shape  w_expr  dense_cm alpha_rms beta_mae rot_deg rmse_iod cpu_ms")
        for r in rows:
            print(f"{r['noise']:.2f} {r['w_shape']:8.0e} {r['w_expr']:7.0e} {r['dense_cm']:8.3f} "
                  f"{r['alpha_rms']:9.3f} {r['beta_mae']:8.3f} {r['rot_deg']:7.2f} "
                  f"{r['rmse_iod']:8.4f} {r['cpu_ms_per_fit']:6.1f}")
        if fl.json:
            with open(fl.json, "w") as f:
                json.dump(rows, f, indent=1)

    app.run(run, argv)


if __name__ == "__main__":
    main()
