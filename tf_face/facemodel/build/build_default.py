"""Build the default face model asset: ``python -m tf_face.facemodel.build.build_default``.

Writes ``tf_face/facemodel/data/default_model.npz`` (arrays only, < 1 MB) and
prints a report. Steps:

1. 468 MediaPipe landmarks (``tf_face.landmarks``) of the astronaut photo
   (``skimage.data.astronaut()``, always) and of every photo under
   ``--photos`` (default ``../shared/data/faces`` when present), every face of
   at least 80 px.
2. All faces are aligned (generalised 3-D similarity Procrustes); their mean
   is put in a canonical frame (x from the right to the left eye centroid, z
   the face-oval plane normal), and the mirror map is found on all faces
   together (``meanshape.mirror_map``), refining frame and map twice.
3. The reference shape is the Procrustes mean of the near-frontal faces
   (rotation from the canonical frame < 18 degrees) with a closed mouth (inner
   lip gap < 8% of the outer-eye-corner distance); the astronaut is always
   included. It is made symmetric (``meanshape.symmetrise``), turned so the
   face-oval plane faces +z, centred, and scaled to unit RMS radius.
4. UV: a cylinder around a vertical axis at the back-most depth, with u the
   arc length along the fitted mean horizontal profile r(theta) (even
   polynomial), v = -y; u and v scaled separately to fill [0.02, 0.98]
   (u symmetric about 0.5). Triangles: Delaunay in that UV restricted to the
   face oval (eyes and mouth filled: a disk), CCW from +z.
5. The 468 -> 68 correspondence (``ibug68``) and the region loops of the
   albedo prior (lips, brows, eyes) from the connection lists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import skimage.data

from tf_face.assets import connections
from tf_face.facemodel.build.ibug68 import compute_ibug68
from tf_face.facemodel.mesh import face_normals, topology_report
from tf_face.facemodel.build.meanshape import (REFLECT, canonical_frame, face_frontal, generalised_procrustes,
                                         image_to_model, mirror_map, normalise,
                                         similarity_align, symmetrise)
from tf_face.facemodel.build.uvlayout import edge_chains, signed_area_2d, texel_density, triangulate
from tf_face.image_io import load_image
from tf_face.landmarks import FaceDetector, FaceMeshLandmarker
from tf_face.outputs import atomic_write_file
from tf_face.tf_import import quiet_tf_logs

ASSET = Path(__file__).resolve().parents[1] / "data" / "default_model.npz"
MAX_ANGLE_DEG = 18.0
MAX_MOUTH_GAP = 0.08
MIN_FACE_PX = 80
UV_MARGIN = 0.02
PROFILE_DEGREE = 2


def collect_landmarks(photo_dir: Path | None) -> dict[str, np.ndarray]:
    """name -> [468,3] image-pixel landmarks for the astronaut and photo_dir's faces."""
    det, lmk = FaceDetector(), FaceMeshLandmarker()
    images = [("astronaut", lambda: skimage.data.astronaut())]
    if photo_dir is not None and photo_dir.is_dir():
        for p in sorted(photo_dir.rglob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.name != "astronaut.png":
                images.append((str(p.relative_to(photo_dir)), lambda p=p: load_image(p)))
    out = {}
    for name, get in images:
        try:
            img = get()
            for k, d in enumerate(det(img)):
                if d.size >= MIN_FACE_PX:
                    out[f"{name}#{k}"] = np.asarray(lmk(img, d), np.float64)
        except Exception as e:  # noqa: BLE001 - a bad photo only drops out
            print(f"  skipped {name}: {e}", file=sys.stderr)
    return out


def profile_uv(x: np.ndarray, degree: int = PROFILE_DEGREE, margin: float = UV_MARGIN) -> np.ndarray:
    """Cylindrical UV with u = arc length along the mean horizontal profile."""
    cz = x[:, 2].min()
    th = np.arctan2(x[:, 0], x[:, 2] - cz)
    rho = np.hypot(x[:, 0], x[:, 2] - cz)
    a = np.stack([th ** (2 * k) for k in range(degree + 1)], 1)
    c = np.linalg.lstsq(a, rho, rcond=None)[0]
    g = np.linspace(0.0, np.abs(th).max(), 4001)
    r = sum(c[k] * g ** (2 * k) for k in range(degree + 1))
    dr = sum(2 * k * c[k] * g ** (2 * k - 1) for k in range(1, degree + 1))
    speed = np.hypot(r, dr)
    arc = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(g))])
    u = np.sign(th) * np.interp(np.abs(th), g, arc)
    w = -x[:, 1]
    uu = 0.5 + (0.5 - margin) * u / np.abs(u).max()
    vv = margin + (1 - 2 * margin) * (w - w.min()) / np.ptp(w)
    return np.stack([uu, vv], 1)


def region_loops(conns: dict, x: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Closed vertex loops of lips (outer), brows, eyes for the albedo prior."""
    lips = max(edge_chains(conns["FACEMESH_LIPS"]), key=lambda c: np.ptp(x[c, 0]))
    brows = []
    for name in ("FACEMESH_RIGHT_EYEBROW", "FACEMESH_LEFT_EYEBROW"):
        a, b = edge_chains(conns[name])
        # join the two chains into one loop: a, then b from the end nearest a's end
        if np.linalg.norm(x[a[-1]] - x[b[0]]) > np.linalg.norm(x[a[-1]] - x[b[-1]]):
            b = b[::-1]
        brows.append(np.array(a + b, np.int32))
    eyes = [np.array(max(edge_chains(conns[n]), key=len), np.int32)
            for n in ("FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYE")]
    return {"lips": [np.array(lips, np.int32)], "brows": brows, "eyes": eyes}


def build(landmarks: dict[str, np.ndarray], conns: dict) -> tuple[dict, dict]:
    """(asset arrays, report) from the collected landmarks."""
    names = sorted(landmarks)
    shapes = [image_to_model(landmarks[n]) for n in names]
    oval = max(edge_chains(conns["FACEMESH_FACE_OVAL"]), key=len)
    eyes = [max(edge_chains(conns[n]), key=len)
            for n in ("FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYE")]
    mean_all, _ = generalised_procrustes(shapes)
    frame = canonical_frame(mean_all, oval, *eyes)           # rough mirror frame
    for _ in range(2):                                       # refine frame and map
        aligned = [similarity_align(s, frame)[3] for s in shapes]
        aligned = [a - a.mean(0) for a in aligned]
        mirror = mirror_map(aligned)
        frame = symmetrise(frame, mirror)                    # mirror plane -> x = 0

    keep = []
    for n, s in zip(names, shapes):
        _, r, _, _ = similarity_align(s, frame)
        angle = np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))
        eye = np.linalg.norm(s[33] - s[263])
        gap = np.linalg.norm(s[13] - s[14]) / eye
        if n.startswith("astronaut#") or (angle < MAX_ANGLE_DEG and gap < MAX_MOUTH_GAP):
            keep.append(n)
    mean_sel, resid = generalised_procrustes([shapes[names.index(n)] for n in keep])
    mean_sel = similarity_align(mean_sel, frame)[3]
    x = symmetrise(mean_sel, mirror)
    x = face_frontal(x, oval)
    x = normalise(x)
    x[mirror == np.arange(len(x)), 0] = 0.0

    uv = profile_uv(x)
    tri = triangulate(uv, oval)
    lm68 = compute_ibug68(x, mirror, conns)
    regions = region_loops(conns, x)

    asset = {
        "mean_shape": x.astype(np.float32), "triangles": tri.astype(np.int32),
        "uv": uv.astype(np.float32), "mirror": mirror.astype(np.int32),
        "landmarks68": lm68.astype(np.int32),
        "units": np.array("normalised: RMS distance of the 468 points from their centroid = 1"),
        "num_faces": np.array(len(keep), np.int32),
        "num_faces_mirror": np.array(len(names), np.int32),
    }
    for rname, loops in regions.items():
        for k, lp in enumerate(loops):
            asset[f"region_{rname}_{k}"] = lp
    topo = topology_report(tri, len(x))
    dens = texel_density(x, uv, tri)
    fn = face_normals(x, tri)
    report = {
        "faces_detected": len(names), "faces_used": len(keep),
        "procrustes_rms_residual": float(np.mean(resid)),
        "midline_vertices": int((mirror == np.arange(len(x))).sum()),
        "symmetry_error": float(np.abs(x - (x * REFLECT)[mirror]).max()),
        "uv_symmetry_error": float(np.abs(uv[:, 0] - (1 - uv[mirror, 0])).max()),
        "uv_min": uv.min(0).tolist(), "uv_max": uv.max(0).tolist(),
        "uv_flipped_triangles": int((signed_area_2d(uv, tri) <= 0).sum()),
        "back_facing_triangles": int((fn[:, 2] <= 0).sum()),
        "texel_density_percentiles_1_5_50_95_99": np.percentile(dens, [1, 5, 50, 95, 99]).round(3).tolist(),
        "texel_density_p95_over_p5": float(np.percentile(dens, 95) / np.percentile(dens, 5)),
        **topo,
    }
    return asset, report


def write_asset(asset: dict, path: Path = ASSET) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_file(path) as tmp:
        np.savez_compressed(tmp, **asset)


def main(argv: list[str] | None = None) -> int:
    quiet_tf_logs()
    shared = Path(__file__).resolve().parents[4] / "shared" / "data" / "faces"
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=Path, default=shared if shared.is_dir() else None,
                   help="folder searched recursively for face photos (default ../shared/data/faces)")
    p.add_argument("--out", type=Path, default=ASSET)
    p.add_argument("--landmarks_npz", type=Path, default=None,
                   help="use saved landmarks (name -> [468,3]) instead of running the detector")
    p.add_argument("--save_landmarks", type=Path, default=None)
    args = p.parse_args(argv)
    if args.landmarks_npz:
        with np.load(args.landmarks_npz, allow_pickle=False) as z:
            lms = {k: z[k].astype(np.float64) for k in z.files}
    else:
        lms = collect_landmarks(args.photos)
    if args.save_landmarks:
        np.savez_compressed(args.save_landmarks, **lms)
    if not any(k.startswith("astronaut#") for k in lms):
        print("error: no face found in the astronaut photo", file=sys.stderr)
        return 1
    asset, report = build(lms, connections())
    write_asset(asset, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB)")
    for k, v in report.items():
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
