"""Render a ``SyntheticFace`` into a photo and its ground truth.

``render_face(face, image_size=512) -> (image uint8 [H,W,3], SyntheticTruth)``

Image formation, in **linear RGB** until the last step:

1. background (``background``), then the proxy head + neck (``head``);
2. the face mesh (default topology, posed with the weak-perspective pose of
   ``tf_face.types``): ``tf_face.viz.image_renderer.render`` z-buffers it
   (``tf_face.raster.zbuffer.rasterize``, 2x supersampled), samples the UV
   albedo and the **detail** normal map (camera frame; ``normals``) per pixel
   and shades ``albedo * sum_b sh[b] H_b(n)`` (clipped to [0, 1]);
3. occluders (``occluders``) composited in front;
4. linear -> sRGB with the exact sRGB curve (the inverse of
   ``tf_face.srgb.srgb_to_linear``), Gaussian blur
   (``blur_sigma * image_size / 512`` px) and additive Gaussian noise
   (``noise_sigma``), rounded to uint8.

Ground truth (``SyntheticTruth``), all UV maps ``[256, 256, ...]`` in the
default model's UV space (texel centre ``((c+.5)/W, (r+.5)/H)``, v down):

* ``albedo`` linear RGB (``prior_albedo`` / ``prior_coeffs``: the smooth
  prior draw it started from, before the procedural detail; ``skin_group`` /
  ``ita_deg``: the drawn skin tone, see ``tf_face.skin_tone``); ``displacement`` (IOD units along the base normal,
  positive outwards); ``sh`` [9,3] (camera frame, ``tf_face.render.sh``);
* ``normals`` detail normals and ``base_normals`` mesh normals, unit,
  camera frame at the photo's pose (0 off the atlas);
* ``visible``: texels the real pipeline's ``unwrap`` would mark visible with
  the *true* geometry (in the image, front facing, view cosine > 0.2, not
  self-occluded); ``occlusion``: visible texels whose image point is covered
  by an occluder (occluder alpha > 0.05 anywhere in the texel's 3x3-pixel
  neighbourhood);
* the posed mesh ``vertices_image`` (image frame) and ``vertices_model``
  (model frame, pose removed), ``scale``, ``rotation``, ``translation``,
  ``yaw``/``pitch``/``roll``; ``iod_model`` / ``iod_pixels``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tf_face.facemodel import default_model
from tf_face.ibug import inter_ocular_distance
from tf_face.srgb import linear_to_srgb
from tf_face.uv import get_atlas, unwrap
from tf_face.viz.image_renderer import render
from tf_face.synthetic.background import random_background
from tf_face.synthetic.head import render_head
from tf_face.synthetic.normals import normal_maps
from tf_face.synthetic.occluders import draw_occluders
from tf_face.synthetic.sampling import SyntheticFace
from tf_face.types import FittedFace, model_to_image

OCCLUSION_ALPHA = 0.05


@dataclasses.dataclass
class SyntheticTruth:
    albedo: np.ndarray          # [S,S,3] float32 linear RGB
    displacement: np.ndarray    # [S,S] float32, IOD units
    sh: np.ndarray              # [9,3] float32
    normals: np.ndarray         # [S,S,3] float32 detail normals, camera frame
    base_normals: np.ndarray    # [S,S,3] float32 mesh normals, camera frame
    visible: np.ndarray         # [S,S] bool
    occlusion: np.ndarray       # [S,S] bool (subset of visible)
    atlas_mask: np.ndarray      # [S,S] bool
    vertices_image: np.ndarray  # [V,3] float32 image frame
    vertices_model: np.ndarray  # [V,3] float32 model frame
    scale: float
    rotation: np.ndarray        # [3,3]
    translation: np.ndarray     # [2]
    yaw: float
    pitch: float
    roll: float
    iod_model: float
    iod_pixels: float
    image_size: tuple
    occluder_alpha: np.ndarray  # [H,W] float32 coverage of the occluders in the photo
    face_alpha: np.ndarray      # [H,W] float32 coverage of the face mesh
    prior_albedo: np.ndarray    # [S,S,3] float32: the albedo-prior draw before the detail
    prior_coeffs: np.ndarray    # [K] float32: its coefficients (unit variance)
    skin_group: str = ""        # ITA group of the face's drawn skin tone (tf_face.skin_tone)
    ita_deg: float = float("nan")   # its drawn ITA deg (= skin_tone.skin_ita(prior_albedo))

    def fitted(self) -> FittedFace:
        """The true geometry as a ``FittedFace`` (for ``tf_face.uv.unwrap``)."""
        lm = default_model().landmarks68
        return FittedFace(
            model_name="default", vertices_image=self.vertices_image.astype(np.float32),
            vertices_model=self.vertices_model.astype(np.float32), scale=float(self.scale),
            rotation=np.asarray(self.rotation, np.float64),
            translation=np.asarray(self.translation, np.float64),
            shape_coeffs=np.zeros(0, np.float32), expr_coeffs=np.zeros(0, np.float32),
            landmarks_observed=self.vertices_image[lm, :2].astype(np.float32),
            landmark_vertices=np.asarray(lm, np.int32), landmark_rmse_iod=0.0,
            image_size=tuple(int(v) for v in self.image_size))

    def extras(self) -> dict:
        """Record extras for ``tf_face.data.encode_example`` (names ``gt_*``)."""
        return {
            "gt_albedo": self.albedo.astype(np.float32),
            "gt_displacement": self.displacement.astype(np.float32),
            "gt_sh": self.sh.astype(np.float32),
            "gt_occlusion": self.occlusion.astype(bool),
            "gt_visible": self.visible.astype(bool),
            "gt_normals": self.normals.astype(np.float32),
        }

    def to_npz(self) -> dict:
        """All fields as plain arrays (``np.savez``; loadable with allow_pickle=False)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = np.asarray(v)
        return out


def face_pose(face: SyntheticFace, height: int, width: int):
    """(scale, rotation, translation) placing the face per ``face_height`` / ``centre``."""
    v = np.asarray(face.vertices_model, np.float64)
    rot = face.rotation()
    scale = face.face_height * height / float(v[:, 1].max() - v[:, 1].min())
    vi = model_to_image(v, scale, rot, np.zeros(2))
    box_c = 0.5 * (vi[:, :2].min(0) + vi[:, :2].max(0))
    trans = np.asarray(face.centre) * np.array([width, height]) - box_c
    return scale, rot, trans


def render_face(face: SyntheticFace, image_size: int = 512, model=None, atlas=None):
    """Render ``face`` at ``image_size`` x ``image_size``: (uint8 image, ``SyntheticTruth``)."""
    model = default_model() if model is None else model
    s_uv = face.albedo.shape[0]
    atlas = get_atlas(model, size=s_uv) if atlas is None else atlas
    h = w = int(image_size)
    if h < 64:
        raise ValueError(f"image_size must be >= 64, got {image_size}")
    rng = np.random.default_rng(face.render_seed)
    scale, rot, trans = face_pose(face, h, w)
    verts = np.asarray(face.vertices_model, np.float64)
    vi = model_to_image(verts, scale, rot, trans)
    lm68 = np.asarray(model.landmarks68, np.int64)
    iod_m = inter_ocular_distance(verts[lm68])
    base_m, detail_m = normal_maps(verts, model, atlas, face.displacement.astype(np.float64) * iod_m)
    base_c = (base_m @ rot.T).astype(np.float32)        # camera frame = R @ model frame
    detail_c = (detail_m @ rot.T).astype(np.float32)

    canvas = random_background(rng, h, w, face.background)
    head_col, head_a = render_head(scale, rot, trans, face.sh, face.skin, face.hair, h, w,
                                   hairline=face.hairline)
    canvas = head_col + (1 - head_a[..., None]) * canvas
    img, face_a = render(vi, model.triangles, model.uv, face.albedo, face.sh, h, w,
                         normal_map=detail_c, uv_mask=atlas.mask, background=canvas,
                         supersample=2, color_space="srgb")
    lm = vi[lm68]
    iod_px = inter_ocular_distance(lm[:, :2])
    occ_col, occ_a = draw_occluders(face.occluders, lm, iod_px, h, w, face.skin, face.hair)
    img = occ_col + (1 - occ_a[..., None]) * img
    srgb = linear_to_srgb(img)
    sigma = face.blur_sigma * h / 512.0
    if sigma > 0.05:
        srgb = cv2.GaussianBlur(srgb, (0, 0), sigma)
    if face.noise_sigma > 0:
        srgb = srgb + rng.normal(0.0, face.noise_sigma, srgb.shape)
    image = np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)

    truth = SyntheticTruth(
        albedo=face.albedo.astype(np.float32), displacement=face.displacement.astype(np.float32),
        sh=np.asarray(face.sh, np.float32), normals=detail_c, base_normals=base_c,
        visible=np.zeros(atlas.shape, bool), occlusion=np.zeros(atlas.shape, bool),
        atlas_mask=atlas.mask.copy(), vertices_image=vi.astype(np.float32),
        vertices_model=verts.astype(np.float32), scale=float(scale), rotation=rot,
        translation=trans, yaw=face.yaw, pitch=face.pitch, roll=face.roll,
        iod_model=iod_m, iod_pixels=iod_px, image_size=(h, w),
        occluder_alpha=occ_a.astype(np.float32), face_alpha=face_a.astype(np.float32),
        prior_albedo=face.prior_albedo.astype(np.float32),
        prior_coeffs=face.prior_coeffs.astype(np.float32),
        skin_group=face.skin_group, ita_deg=float(face.ita_deg))
    sample = unwrap(image, truth.fitted(), model, atlas)
    truth.visible = sample.mask.copy()
    occ_dil = cv2.dilate(occ_a.astype(np.float32), np.ones((3, 3), np.uint8))
    pts = atlas.interpolate(vi.astype(np.float32))
    sampled = cv2.remap(occ_dil, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    truth.occlusion = truth.visible & (sampled > OCCLUSION_ALPHA)
    return image, truth
