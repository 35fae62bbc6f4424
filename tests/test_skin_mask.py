"""What is not the face's skin (tf_face.appearance.skin): a fringe, a cap and a
mole painted over the default prior's mean face at 64^2, shaded by a known
light; the test must find the fringe and the cap, leave the mole, the eyes,
brows and lips and the shading alone, and the fit must then keep the hair out
of the PCA and the albedo map."""

import dataclasses

import numpy as np
import pytest

from tf_face.appearance import AppearanceFitter, AppearanceOptions
from tf_face.appearance.skin import SkinOptions, non_skin_texels, unshadeable_texels
from tf_face.types import UVSample

SIZE = 64
HAIR = np.array([0.035, 0.022, 0.014], np.float32)    # dark brown, linear RGB
CAP = np.array([0.10, 0.20, 0.55], np.float32)        # blue


@pytest.fixture(scope="module")
def face():
    from tf_face.facemodel import default_model
    from tf_face.facemodel.mesh import vertex_normals
    from tf_face.render import ambient_sh
    from tf_face.uv import get_atlas
    from tf_face.uv.albedo_model import uv_albedo_model
    from tf_face.uv.regions import STROKE_KEEP, model_feature_mask
    model = default_model()
    atlas = get_atlas(model, size=SIZE)
    am = uv_albedo_model(model, atlas)
    vn = vertex_normals(np.asarray(model.mean_shape, np.float64), model.triangles)
    n = atlas.interpolate(vn)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    normals = np.where(atlas.mask[..., None], n, 0.0).astype(np.float32)
    sh = ambient_sh(1, 0.75)[0].astype(np.float64)
    sh[3] += 0.35                       # a white key light from the side (x): strong shading
    keep = model_feature_mask(model, SIZE, STROKE_KEEP)
    centre = model_feature_mask(model, SIZE, ("centre",)) & ~keep
    beard = model_feature_mask(model, SIZE, ("beard",))
    rows = np.nonzero(atlas.mask.any(1))[0]
    fringe = (atlas.mask & (np.arange(SIZE)[:, None] < rows[0] + 0.16 * (rows[-1] - rows[0]))
              & ~keep & ~centre)
    cols = np.nonzero(atlas.mask.any(0))[0]
    mid = (rows[0] + rows[-1]) // 2
    cap = np.zeros_like(atlas.mask)
    cap[mid - 4:mid + 4, cols[0]:cols[0] + 7] = True
    cap &= atlas.mask & ~keep & ~fringe
    mole = np.zeros_like(atlas.mask)
    mole[mid + 6, (cols[0] + cols[-1]) // 2 + 9] = True
    mole &= atlas.mask & ~keep
    assert fringe.sum() > 100 and cap.sum() > 20 and mole.sum() == 1 and centre.sum() > 100
    return dict(model=model, atlas=atlas, am=am, normals=normals, sh=sh.astype(np.float32),
                keep=keep, centre=centre, beard=beard, fringe=fringe, cap=cap, mole=mole)


def _photo(f, albedo):
    """(linear texture as the unwrap would give it: sRGB-quantised, UVSample)."""
    from tf_face.viz.image_renderer import sh_shading
    lin = np.clip(albedo * sh_shading(f["normals"], f["sh"]), 0, 1)
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    srgb = np.round(srgb * 255) / 255 * f["atlas"].mask[..., None]
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    pos = np.stack([xx, -yy, np.zeros_like(xx)], -1) * f["atlas"].mask[..., None]
    sample = UVSample(srgb.astype(np.float32), f["atlas"].mask.copy(), f["normals"],
                      pos.astype(np.float32))
    back = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return back.astype(np.float32), sample


def _occluded(f, cover=None):
    albedo = np.array(f["am"].mean, np.float32)
    albedo[f["fringe"] if cover is None else cover] = HAIR
    albedo[f["cap"]] = CAP
    albedo[f["mole"]] *= 0.3
    return albedo


def test_finds_hair_and_cap_but_not_shading_features_or_moles(face):
    f = face
    lin, s = _photo(f, _occluded(f))
    bad = non_skin_texels(lin, s.mask, s.normals, f["sh"], f["keep"])
    assert bad[f["fringe"]].mean() > 0.95
    assert bad[f["cap"]].mean() > 0.95
    assert not bad[f["mole"]].any()
    assert not (bad & f["keep"]).any()
    # the rest is skin, strongly shaded from the side; only the one-texel rim
    # grown around the occluders may be flagged
    import cv2
    near = cv2.dilate((f["fringe"] | f["cap"]).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    skin = f["atlas"].mask & ~near & ~f["keep"]
    assert bad[skin].mean() < 0.01, bad[skin].mean()
    # the clean face has nothing to flag
    lin0, s0 = _photo(f, np.array(f["am"].mean, np.float32))
    assert not non_skin_texels(lin0, s0.mask, s0.normals, f["sh"], f["keep"]).any()


def test_hair_over_most_of_the_face_is_judged_by_the_centre(face):
    """Hair over the forehead and both sides covers more of the face than the
    skin shows; the reference is the centre's skin (nose, cheeks under the
    eyes), so the hair is still what is flagged."""
    f = face
    cover = f["atlas"].mask & ~f["keep"] & ~f["centre"]
    cols = np.nonzero(f["atlas"].mask.any(0))[0]
    rows = np.nonzero(f["atlas"].mask.any(1))[0]
    lower = np.arange(SIZE)[:, None] > (rows[0] + rows[-1]) // 2
    middle = np.abs(np.arange(SIZE)[None, :] - (cols[0] + cols[-1]) / 2) < 0.3 * (cols[-1] - cols[0])
    cover &= ~(lower & middle)                      # the mouth and the chin stay skin
    tested = f["atlas"].mask & ~f["keep"]
    assert 0.5 < cover.sum() / tested.sum() < 0.7
    lin, s = _photo(f, _occluded(f, cover))
    bad = non_skin_texels(lin, s.mask, s.normals, f["sh"], f["keep"], reference=f["centre"])
    assert bad[cover].mean() > 0.95
    import cv2
    rim = cv2.dilate(cover.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not bad[f["centre"] & ~rim].any()
    # without the centre, the median over the whole face is the hair's
    wrong = non_skin_texels(lin, s.mask, s.normals, f["sh"], f["keep"])
    assert wrong[f["centre"]].mean() > 0.5


def test_too_much_flagged_or_disabled_flags_nothing(face):
    f = face
    lin, s = _photo(f, _occluded(f))
    found = non_skin_texels(lin, s.mask, s.normals, f["sh"], f["keep"])
    share = found.sum() / (f["atlas"].mask & ~f["keep"]).sum()
    assert not non_skin_texels(lin, s.mask, s.normals, f["sh"], f["keep"],
                               opts=SkinOptions(max_fraction=0.5 * share)).any()
    assert not non_skin_texels(lin, s.mask, s.normals, f["sh"], f["keep"],
                               opts=SkinOptions(enabled=False)).any()
    for bad in (dict(log_lightness=0), dict(chroma=-1), dict(max_fraction=0),
                dict(max_fraction=1.5)):
        with pytest.raises(ValueError):
            SkinOptions(**bad)


def _frame(f):
    """A thin dark stroke across the left cheek, one texel wide at 64^2, like
    a glasses frame's lower rim or temple arm: away from the eyes and brows
    that E_grad leaves out anyway."""
    import cv2
    rows = np.nonzero(f["atlas"].mask.any(1))[0]
    cols = np.nonzero(f["atlas"].mask.any(0))[0]
    y = (rows[0] + rows[-1]) // 2 + 2
    x0, x1 = cols[0] + 3, (cols[0] + cols[-1]) // 2 - 6
    line = np.zeros(f["atlas"].mask.shape, np.uint8)
    cv2.line(line, (int(x0), int(y)), (int(x1), int(y) - 3), 1, 1)
    grown = cv2.dilate(f["keep"].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return (line > 0) & f["atlas"].mask & ~grown


def test_thin_dark_frames_cannot_be_shading(face):
    """A thin black frame (one texel at 64^2) is 2.5x off the skin's delit
    lightness: ``unshadeable_texels`` finds it whatever the skin test's region
    rules (at 256^2 its opening drops thin frames; here a minimum area does),
    and flags nothing on the clean, strongly side-lit face."""
    f = face
    frame = _frame(f)
    assert frame.sum() > 15
    albedo = np.array(f["am"].mean, np.float32)
    albedo[frame] = HAIR
    lin, s = _photo(f, albedo)
    regions_only = SkinOptions(min_area=10_000)
    off = unshadeable_texels(lin, s.mask, s.normals, f["sh"], reference=f["centre"],
                             opts=regions_only)
    assert off[frame].mean() > 0.9
    assert not non_skin_texels(lin, s.mask, s.normals, f["sh"], f["keep"],
                               opts=regions_only)[frame].any()
    import cv2
    near = cv2.dilate(frame.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # (the prior's dark pupils are flagged too: E_grad leaves the eyes out anyway)
    skin = f["atlas"].mask & ~near & ~f["keep"]
    assert not off[skin].any()
    lin0, s0 = _photo(f, np.array(f["am"].mean, np.float32))
    assert not unshadeable_texels(lin0, s0.mask, s0.normals, f["sh"],
                                  reference=f["centre"])[f["atlas"].mask & ~f["keep"]].any()
    assert not unshadeable_texels(lin, s.mask, s.normals, f["sh"],
                                  opts=SkinOptions(enabled=False)).any()


def test_displacement_fit_leaves_the_frame_out(face, monkeypatch):
    """``AppearanceFitter.fit`` hands the displacement fit E_grad's texels
    without the frame (``skip_unshadeable``, the default) and with it when
    switched off (the skin test's region rules set so that it leaves the
    frame, as its opening does at 256^2)."""
    import tf_face.appearance.fit as fit_module
    from tf_face.appearance.maps import DisplacementOptions
    f = face
    frame = _frame(f)
    albedo = np.array(f["am"].mean, np.float32)
    albedo[frame] = HAIR
    lin, s = _photo(f, albedo)
    seen = {}
    real = fit_module.fit_displacement_map

    def spy(tex, vis_grad, *args, **kwargs):
        seen["vis_grad"] = np.array(vis_grad)
        return real(tex, vis_grad, *args, **kwargs)

    monkeypatch.setattr(fit_module, "fit_displacement_map", spy)
    used = {}
    for skip in (False, True):
        opts = AppearanceOptions(displacement=DisplacementOptions(skip_unshadeable=skip),
                                 skin=SkinOptions(min_area=10_000))
        fitter = AppearanceFitter(f["am"], f["atlas"].mask, 1.0, opts, stroke_keep=f["keep"])
        fitter.fit(s, 1.0)
        used[skip] = seen["vis_grad"][frame].mean()
    assert used[False] > 0.9 and used[True] == 0.0, used


def test_fit_keeps_the_hair_out_of_the_light_and_albedo(face):
    """With the test, the PCA albedo of the skin and the albedo map under the
    fringe come out near the true skin; without it the light and the PCA take
    the fringe and the map prints it."""
    from tf_face.eval_metrics import gain_invariant_mae
    f = face
    truth = np.array(f["am"].mean, np.float32)
    lin, s = _photo(f, _occluded(f))
    err = {}
    for enabled in (False, True):
        fitter = AppearanceFitter(f["am"], f["atlas"].mask, 1.0,
                                  AppearanceOptions(skin=SkinOptions(enabled=enabled)),
                                  stroke_keep=f["keep"])
        r = fitter.fit(s, 1.0)
        skin = f["atlas"].mask & ~f["fringe"] & ~f["cap"] & ~f["mole"]
        # up to the global gain (exposure) that no photo fixes
        err[enabled] = (gain_invariant_mae(r.albedo_pca, truth, skin)[0],
                        gain_invariant_mae(r.albedo, truth, f["fringe"])[0])
        assert r.non_skin.shape == f["atlas"].mask.shape
        assert r.non_skin.any() == enabled
    assert err[True][0] < 0.6 * err[False][0], err      # measured 0.48x
    assert err[True][1] < 0.1 * err[False][1], err      # measured 0.02x


def test_beard_stays_unless_the_lower_face_is_tested(face):
    """A dark beard over the lower face is the person's: the fitter leaves its
    region alone by default, and flags it with ``test_beard``."""
    f = face
    beard = f["beard"] & f["atlas"].mask & ~f["keep"] & ~f["mole"]
    assert beard.sum() > 50
    albedo = np.array(f["am"].mean, np.float32)
    albedo[beard] = HAIR
    lin, s = _photo(f, albedo)
    found = {}
    for test_beard in (False, True):
        fitter = AppearanceFitter(f["am"], f["atlas"].mask, 1.0,
                                  AppearanceOptions(skin=SkinOptions(test_beard=test_beard)),
                                  stroke_keep=f["keep"], skin_reference=f["centre"],
                                  beard=f["beard"])
        found[test_beard] = fitter.fit(s, 1.0).non_skin
    assert not found[False][beard].any()
    assert found[True][beard].mean() > 0.9


def _not_kept(fitted):
    """An ``AlignResult`` that keeps the mesh as it is."""
    from tf_face.appearance.align import AlignResult
    return AlignResult(fitted, np.zeros(6), None, 1.0, 1.0, False, 0.0)


@dataclasses.dataclass
class _Result:            # the fields of a PipelineResult that align reads
    sample: object
    fitted: object = None
    timings_ms: dict = dataclasses.field(default_factory=dict)


def test_mesh_refinement_leaves_the_hair_out(face, monkeypatch):
    """``AppearanceFitter.align`` lines the mesh up on the skin only: the sample
    it hands to the refinement has the fringe and the cap out of its mask."""
    import tf_face.appearance.fit as fit_module
    f = face
    lin, s = _photo(f, _occluded(f))
    seen = {}

    def fake_align(image, fitted, model, atlas, sample, albedo, sh, opts, min_cos=None):
        seen["mask"] = np.asarray(sample.mask, bool)
        return _not_kept(fitted)

    monkeypatch.setattr(fit_module, "align_mesh", fake_align)
    fitter = AppearanceFitter(f["am"], f["atlas"].mask, 1.0, stroke_keep=f["keep"],
                              skin_reference=f["centre"])
    out, _ = fitter.align(None, _Result(s), f["model"], f["atlas"])
    assert out.sample is s and "align" in out.timings_ms
    mask = seen["mask"]
    assert mask[f["fringe"]].mean() < 0.05 and mask[f["cap"]].mean() < 0.05
    assert mask[f["centre"]].all() and mask.sum() > 0.6 * s.mask.sum()


def test_fit_reuses_the_refinements_stage_1(face, monkeypatch):
    """``fit(stage1=AlignResult.light_albedo)``: on the unwrap the refinement
    saw, stage 1 is not run again and its answer is the fit from scratch's;
    on a new unwrap (here the photo under a 10 % brighter, turned light) the
    short refit from it lands where the fit from scratch does."""
    import tf_face.appearance.fit as fit_module
    from tf_face.appearance.light_albedo import LightAlbedoOptions
    f = face
    lin, s = _photo(f, _occluded(f))
    monkeypatch.setattr(fit_module, "align_mesh",
                        lambda image, fitted, *a, **k: _not_kept(fitted))
    fitter = AppearanceFitter(f["am"], f["atlas"].mask, 1.0, stroke_keep=f["keep"],
                              skin_reference=f["centre"])
    out, al = fitter.align(None, _Result(s), f["model"], f["atlas"])
    stage1 = al.light_albedo
    assert stage1.sample is s and stage1.non_skin[f["fringe"]].mean() > 0.9
    scratch = fitter.fit(s, 1.0)
    calls = []
    real = fitter._light_albedo
    monkeypatch.setattr(fitter, "_light_albedo", lambda *a, **k: calls.append(k) or real(*a, **k))
    reused = fitter.fit(out.sample, 1.0, stage1=stage1)
    assert calls == []
    for a, b in ((reused.p_a, scratch.p_a), (reused.sh, scratch.sh),
                 (reused.albedo_pca, scratch.albedo_pca), (reused.non_skin, scratch.non_skin),
                 (reused.albedo, scratch.albedo)):
        np.testing.assert_array_equal(a, b)

    # a new unwrap: the skin test with stage 1's light, then a short refit from it
    f2 = dict(f, sh=(f["sh"] * 1.1 + np.float32(0.02) * np.eye(9, 3, -1)).astype(np.float32))
    _, s2 = _photo(f2, _occluded(f))
    warm_opts = LightAlbedoOptions(warm_iterations=3)
    fitter.options.light_albedo = warm_opts
    warm = fitter.fit(s2, 1.0, stage1=stage1)
    assert len(calls) == 1           # one refit, not two
    assert len(warm.objectives["light_albedo"]) == warm_opts.warm_iterations + 1
    cold = fitter.fit(s2, 1.0)
    m = f["atlas"].mask
    # measured: 7e-5 apart, where stage 1 itself is 0.024 off
    assert np.abs(warm.albedo_pca - cold.albedo_pca)[m].mean() < 0.05 * np.abs(
        stage1.albedo_pca - cold.albedo_pca)[m].mean()
    assert abs(warm.objectives["light_albedo"][-1] / cold.objectives["light_albedo"][-1] - 1) < 0.02
    assert (warm.non_skin == cold.non_skin)[m].mean() > 0.99


def test_a_fringe_over_the_brow_band_is_followed_into_it(face):
    """Hair that comes down over the top of the brow band (untested: the brows
    are the person's) is followed into it from above, ``brow_reach`` rows at
    most, through texels that are not skin; the brow itself, lower in the
    band with skin between, stays; without the band or the reach nothing in
    the band is flagged."""
    from tf_face.uv.regions import model_feature_mask
    f = face
    band = model_feature_mask(f["model"], SIZE, ("brows",)) & f["atlas"].mask
    rows = np.arange(SIZE)[:, None]
    cols = np.nonzero(band.any(0))[0]
    top = np.full(SIZE, SIZE)
    top[cols] = np.argmax(band[:, cols], axis=0)
    height = band.sum(0)
    cols = cols[height[cols] >= 4]                  # room for hair, skin and a brow below
    assert cols.size > 10
    in_cols = np.zeros(SIZE, bool)
    in_cols[cols] = True
    hair = f["atlas"].mask & in_cols[None] & (rows <= top[None] + 1) & ~f["centre"]
    brow = band & in_cols[None] & (rows >= top[None] + 3)
    import cv2
    brow &= ~(cv2.dilate(hair.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)  # skin between
    albedo = np.array(f["am"].mean, np.float32)
    albedo[f["fringe"] | hair] = HAIR
    albedo[brow] = HAIR
    lin, s = _photo(f, albedo)
    keep = f["keep"] | band
    found = non_skin_texels(lin, s.mask, s.normals, f["sh"], keep, f["centre"], brows=band)
    reached = band & hair
    assert reached.sum() > 20
    assert found[reached].mean() > 0.9
    assert not found[brow].any()
    assert found[(f["fringe"] | hair) & ~keep].mean() > 0.95
    # no deeper than the reach (6 texels at 256^2: 2 rows at 64^2) below hair
    # above the band, whose top may be a row lower in the columns beside (the
    # reach goes one texel sideways per row)
    start = np.where(band.any(0), top, -1)
    deepest = np.array([start[max(0, c - 2):c + 3].max() for c in range(SIZE)]) + 1
    assert not (found & band & (rows > deepest[None])).any()
    # a brow right under the hair: the reach stops in it
    albedo[band & in_cols[None]] = HAIR
    lin2, s2 = _photo(f, albedo)
    found2 = non_skin_texels(lin2, s2.mask, s2.normals, f["sh"], keep, f["centre"], brows=band)
    assert found2[reached].mean() > 0.9
    assert (band & in_cols[None] & (rows > deepest[None])).sum() > 20
    assert not (found2 & band & (rows > deepest[None])).any()
    for kwargs in (dict(brows=None), dict(brows=band, opts=SkinOptions(brow_reach=0))):
        assert not (non_skin_texels(lin, s.mask, s.normals, f["sh"], keep, f["centre"],
                                    **kwargs) & band).any()
