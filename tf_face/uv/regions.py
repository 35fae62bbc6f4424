"""Named regions of a face model's UV layout, from its 68-landmark correspondence.

``feature_mask(uv, landmarks68, size, features=("eyes", "brows"))``:

* ``eyes``: the two eye openings (iBUG points 36-41 and 42-47, the lid
  contours) as polygons, widened by ``EYE_GROW_IOD`` inter-ocular distances
  (the six-point polygon cuts the curved lids short);
* ``brows``: a band under each brow's upper contour (iBUG 17-21, 22-26: the
  68-point convention puts them on the brow's top edge), from
  ``BROW_ABOVE_IOD`` above it to ``BROW_BELOW_IOD`` below, straight down in UV
  (v). On the default layout and the shared photos the brow hair lies 0-0.12
  IOD under the points;
* ``lips`` (not a default feature): the outer lip contour (iBUG 48-59),
  widened by ``LIPS_GROW_IOD``. With the eyes and brows it is where the
  albedo fit keeps thin strokes (``STROKE_KEEP``, ``maps.thin_strokes``).
* ``centre`` (not a default feature): the nose and the cheeks under the eyes,
  the polygon under the lower lids (iBUG 36, 41, 40, 39; 42, 47, 46, 45)
  through the bridge (27), down to the nostrils (31, 33, 35) and out to the
  cheeks half-way between the outer eye corners and the mouth corners. The
  skin a fringe, a cap or a beard leaves most often: the per-photo fit takes
  the face's skin colour there (``tf_face.appearance.skin``).
* ``beard`` (not a default feature): the lower face, inside the jaw line
  (iBUG 3-13) and below the nostrils (31, 33, 35): where beards and stubble
  grow, and where hair in front of the face rarely falls; the per-photo
  fit's skin test leaves it alone by default.

It needs only ``FaceModel.uv`` and ``FaceModel.landmarks68``, so it exists for
every face model (default, BFM, ICT), not only for the default model's region
loops. Used by the per-photo albedo fit (``tf_face.appearance``: these
features' colour comes from the photo, not from the prior's low frequencies)
and by the synthetic benchmark's feature-region error.

Conventions as ``tf_face.uv.atlas``: v down, texel ``(i, j)`` centred at
``((j + .5) / size, (i + .5) / size)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_face.ibug import LEFT_EYE_68, RIGHT_EYE_68, inter_ocular_distance

FEATURES = ("eyes", "brows")
#: every region ``feature_mask`` knows (``lips`` is not one of the photo features)
KNOWN_FEATURES = FEATURES + ("lips", "centre", "beard")
#: where the albedo fit keeps thin strokes (``maps.thin_strokes``): their edges are the person's
STROKE_KEEP = ("eyes", "brows", "lips")
LIPS_68 = np.arange(48, 60)       # the outer lip contour
LIPS_GROW_IOD = 0.05
#: how far the eye polygons are widened, inter-ocular distances (~3 texels at
#: 256^2 on the default layout, whose eye centres are ~82 texels apart)
EYE_GROW_IOD = 0.04
BROW_ABOVE_IOD = 0.03
BROW_BELOW_IOD = 0.15
RIGHT_BROW_68 = np.arange(17, 22)
LEFT_BROW_68 = np.arange(22, 27)
_SHIFT = 4   # cv2 fixed-point bits


def _fill(img: np.ndarray, poly_uv: np.ndarray) -> None:
    size = img.shape[0]
    pts = np.round(poly_uv * size * (1 << _SHIFT) - 0.5 * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(img, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)


def feature_mask(uv, landmarks68, size: int, features=FEATURES) -> np.ndarray:
    """[size, size] bool: the union of ``features`` (module doc) in the UV layout."""
    uv = np.asarray(uv, np.float64)
    lm = uv[np.asarray(landmarks68, np.int64)]
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 UV landmarks, got {lm.shape}")
    unknown = set(features) - set(KNOWN_FEATURES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; known: {KNOWN_FEATURES}")
    size = int(size)
    iod = inter_ocular_distance(lm)
    out = np.zeros((size, size), bool)
    if "eyes" in features:
        out |= _grown_polygons([lm[RIGHT_EYE_68], lm[LEFT_EYE_68]], EYE_GROW_IOD * iod, size)
    if "brows" in features:
        img = np.zeros((size, size), np.uint8)
        down = np.array([0.0, 1.0])
        for ids in (RIGHT_BROW_68, LEFT_BROW_68):
            top = lm[ids] - BROW_ABOVE_IOD * iod * down
            bottom = lm[ids] + BROW_BELOW_IOD * iod * down
            _fill(img, np.concatenate([top, bottom[::-1]]))
        out |= img > 0
    if "lips" in features:
        out |= _grown_polygons([lm[LIPS_68]], LIPS_GROW_IOD * iod, size)
    if "centre" in features:
        img = np.zeros((size, size), np.uint8)
        ring = [lm[[36, 41, 40, 39, 27, 42, 47, 46, 45]], 0.5 * (lm[[45]] + lm[[54]]),
                lm[[35, 33, 31]], 0.5 * (lm[[36]] + lm[[48]])]
        _fill(img, np.concatenate(ring))
        out |= img > 0
    if "beard" in features:
        img = np.zeros((size, size), np.uint8)
        _fill(img, lm[[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 33, 31]])
        out |= img > 0
    return out


def _grown_polygons(polys, grow_uv: float, size: int) -> np.ndarray:
    """[size, size] bool: the filled UV polygons, dilated by a disc of ``grow_uv``."""
    img = np.zeros((size, size), np.uint8)
    for p in polys:
        _fill(img, p)
    r = int(round(grow_uv * size))
    if r > 0:
        img = cv2.dilate(img, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return img > 0


def model_feature_mask(model, size: int, features=FEATURES) -> np.ndarray:
    """``feature_mask`` of a ``FaceModel`` (its ``uv`` and ``landmarks68``)."""
    return feature_mask(model.uv, model.landmarks68, size, features)
