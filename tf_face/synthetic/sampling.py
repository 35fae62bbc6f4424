"""Random face parameters: ``Difficulty`` knobs, ``SyntheticFace`` and ``sample_face``.

A ``SyntheticFace`` holds everything that defines one photo except the image
size: the shape (default-model topology), the pose, the UV albedo and
displacement maps, the SH light, the occluder specs, the head/hair colours,
the background kind and the camera-noise settings, plus ``render_seed`` for
the render-time randomness (background texture, noise). ``render_face``
(``scene``) turns it into pixels; the same face gives byte-identical images.

Pose convention (model frame, then ``tf_face.types.model_to_image``):
``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` with right-handed rotations about the
model axes; **positive yaw turns the nose towards the image right** (+x),
positive pitch tips the nose down in the image, positive roll turns the face
counter-clockwise as seen in the model frame (clockwise in the image, whose
y points down). Yaw is uniform in ``[-max_yaw, max_yaw]``, pitch and roll
uniform in their (smaller) ranges.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from tf_face.facemodel import default_model
from tf_face.synthetic.albedo import check_skin_tone, hair_colour, random_albedo
from tf_face.synthetic.background import KINDS as BACKGROUND_KINDS
from tf_face.synthetic.lighting import random_sh
from tf_face.synthetic.occluders import random_occluders, random_solid_occluder
from tf_face.synthetic.shape import random_shape
from tf_face.synthetic.wrinkles import random_displacement
from tf_face.uv import get_atlas

UV_SIZE = 256


@dataclasses.dataclass(frozen=True)
class Difficulty:
    """Knobs of the generator (all >= 0; 1 = the default amount)."""
    max_yaw: float = 60.0          # degrees, yaw ~ U(-max_yaw, max_yaw)
    max_pitch: float = 15.0        # degrees
    max_roll: float = 10.0         # degrees
    occlusion_prob: float = 0.3    # probability a face gets >= 1 occluder
    light_harshness: float = 0.5   # 0 soft frontal white .. 1 harsh side / coloured
    shape_strength: float = 1.0    # random smooth deformation of the mean shape
    wrinkle_strength: float = 1.0  # depth of the wrinkles
    wrinkle_variety: float = 1.0   # 0 every wrinkle family at fixed sites (v1-v3 data) .. 1 varied
    albedo_detail: float = 1.0     # pores, freckles, moles
    camera_noise: float = 1.0      # blur + sensor noise (0 = clean render)
    solid_occluder_prob: float = 0.0  # probability of a fringe or a cap over the forehead

    def validate(self) -> "Difficulty":
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"difficulty {f.name} must be a finite number >= 0, got {v!r}")
        if self.max_yaw > 89 or self.max_pitch > 89 or self.max_roll > 180:
            raise ValueError("max_yaw / max_pitch must be < 90 degrees, max_roll <= 180")
        if (self.occlusion_prob > 1 or self.light_harshness > 1 or self.wrinkle_variety > 1
                or self.solid_occluder_prob > 1):
            raise ValueError("occlusion_prob, light_harshness, wrinkle_variety and "
                             "solid_occluder_prob must be in [0, 1]")
        return self


@dataclasses.dataclass
class SyntheticFace:
    vertices_model: np.ndarray      # [V,3] float64, default-model frame and topology
    yaw: float                      # degrees (see module docstring)
    pitch: float
    roll: float
    face_height: float              # projected face height / image height
    centre: np.ndarray              # [2] face bbox centre / (width, height)
    albedo: np.ndarray              # [S,S,3] float32 linear RGB, default-model UV
    prior_albedo: np.ndarray        # [S,S,3] float32: the prior draw alone (no detail)
    prior_coeffs: np.ndarray        # [K] float32 coefficients of that draw (unit variance)
    displacement: np.ndarray        # [S,S] float32, IOD units along the base normal
    sh: np.ndarray                  # [9,3] float64, camera frame
    occluders: list                 # [{"kind", "seed"}], see occluders
    skin: np.ndarray                # [3] linear RGB of the proxy head / hand
    hair: np.ndarray                # [3] linear RGB of hair, brows, hair strands
    hairline: float                 # proxy head hairline height (model units)
    background: str                 # one of background.KINDS
    blur_sigma: float               # pixels at 512 px (scaled with the image size)
    noise_sigma: float              # std of additive sRGB noise (0..1 scale)
    render_seed: int
    difficulty: Difficulty
    shape_source: str = "default"   # "default" (random smooth bumps) or "ict"
    ict_alpha: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    ict_beta: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    skin_group: str = ""            # ITA group of the drawn skin tone (tf_face.skin_tone)
    ita_deg: float = math.nan       # drawn ITA deg = skin_tone.skin_ita(prior_albedo)

    def rotation(self) -> np.ndarray:
        return euler_rotation(self.yaw, self.pitch, self.roll)


def euler_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (degrees), model frame."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def sample_pose(rng: np.random.Generator, difficulty: Difficulty):
    """(yaw, pitch, roll) degrees, face height / image height, centre [2] / image size."""
    d = difficulty
    yaw = float(rng.uniform(-d.max_yaw, d.max_yaw))
    pitch = float(rng.uniform(-d.max_pitch, d.max_pitch))
    roll = float(rng.uniform(-d.max_roll, d.max_roll))
    face_height = float(rng.uniform(0.42, 0.58))
    centre = np.array([0.5, 0.54]) + rng.uniform(-0.06, 0.06, 2)
    return yaw, pitch, roll, face_height, centre


def border_colour(albedo: np.ndarray, model) -> np.ndarray:
    """Median albedo of the atlas texels within 6 texels of the face outline
    (the colour the proxy head gets, so the face blends into it)."""
    mask = get_atlas(model, size=albedo.shape[0]).mask.astype(np.uint8)
    ring = mask.astype(bool) & ~cv2.erode(mask, np.ones((13, 13), np.uint8)).astype(bool)
    return np.median(albedo[ring], axis=0).astype(np.float64)


def sample_face(rng: np.random.Generator, model=None,
                difficulty: Difficulty | None = None, ict=None,
                skin_tone: str | None = None) -> SyntheticFace:
    """Draw one synthetic face (see the module docstrings for each part).

    ``model``: the default face model (``tf_face.facemodel.default_model()``,
    the default when None); the ground truth lives in its UV space.
    ``ict``: an ``ict_shapes.IctShapes`` (``IctShapes.load(path)``) to take the
    shape from ICT-FaceKit identities + expressions transferred onto the
    default mesh (scaled by ``shape_strength``) instead of random smooth bumps.
    ``skin_tone``: None or "all" draws the tone uniformly over the six ITA
    groups of ``tf_face.skin_tone``; a group name (``skin_tone.GROUP_NAMES``)
    draws only that group (ValueError for any other value). Hair, brow, iris
    and lip colours go with the tone (``albedo``).
    """
    model = default_model() if model is None else model
    if model.name != "default" or model.num_vertices != 468:
        raise ValueError("sample_face needs the default (MediaPipe-topology) model; the ground "
                         "truth is defined in its UV space")
    d = (difficulty or Difficulty()).validate()
    tone_group = check_skin_tone(skin_tone)
    if ict is None:
        verts = random_shape(rng, model, strength=d.shape_strength)
        source, alpha, beta = "default", np.zeros(0), np.zeros(0)
    else:
        verts, alpha, beta = ict.sample(rng, model.mean_shape, shape_scale=d.shape_strength)
        source = "ict"
    yaw, pitch, roll, face_height, centre = sample_pose(rng, d)
    alb = random_albedo(rng, model, UV_SIZE, prior_scale=0.5, detail=d.albedo_detail,
                        skin_tone_group=tone_group)
    disp = random_displacement(rng, model, UV_SIZE, strength=d.wrinkle_strength,
                               variety=d.wrinkle_variety)
    sh = random_sh(rng, d.light_harshness)
    occ = random_occluders(rng, d.occlusion_prob) + random_solid_occluder(rng, d.solid_occluder_prob)
    skin = border_colour(alb["albedo"], model)
    hair = alb["hair_colour"] if rng.random() < 0.8 else hair_colour(rng, alb["skin_group"])
    return SyntheticFace(
        vertices_model=verts, yaw=yaw, pitch=pitch, roll=roll, face_height=face_height,
        centre=centre, albedo=alb["albedo"], prior_albedo=alb["prior_albedo"],
        prior_coeffs=alb["prior_coeffs"], displacement=disp, sh=sh, occluders=occ,
        skin=skin, hair=np.asarray(hair, np.float64), hairline=float(rng.uniform(1.2, 1.5)),
        background=BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))],
        blur_sigma=float(d.camera_noise * rng.uniform(0.0, 1.0)),
        noise_sigma=float(d.camera_noise * rng.uniform(0.002, 0.012)),
        render_seed=int(rng.integers(2 ** 31)), difficulty=d, shape_source=source,
        ict_alpha=np.asarray(alpha, np.float32), ict_beta=np.asarray(beta, np.float32),
        skin_group=alb["skin_group"], ita_deg=float(alb["ita_deg"]))
