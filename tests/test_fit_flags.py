"""The fit's CLI flags (tf_face.cli.fit_flags): their defaults are the
library's defaults, and each reaches its AppearanceOptions field."""

from absl import flags

from tf_face.appearance import AppearanceOptions
from tf_face.cli.fit_flags import define_fit_flags, fit_options_from_flags


def _parse(*argv):
    fv = flags.FlagValues()
    define_fit_flags(fv)
    fv(["prog", *argv])
    return fv


def test_defaults_are_the_library_defaults():
    assert fit_options_from_flags(_parse()) == AppearanceOptions()


def test_each_flag_reaches_its_field():
    o = fit_options_from_flags(_parse("--fit_exposure=front", "--nofit_photo_features",
                                      "--fit_align=off", "--nofit_thin_occluders",
                                      "--fit_w_a_spatial=1", "--nofit_skin_test",
                                      "--nofit_one_colour_light", "--fit_hidden_features=pca",
                                      "--fit_detail_prior=paper"),
                               init_displacement="refine")
    assert not o.align.enabled and AppearanceOptions().align.enabled
    assert fit_options_from_flags(_parse("--fit_align=rigid")).align.mode == "rigid"
    assert o.light_albedo.exposure_normals == "front"
    assert not o.albedo_map.photo_features and not o.displacement.skip_features
    assert o.init_displacement == "refine"
    assert not o.albedo_map.thin_occluders and AppearanceOptions().albedo_map.thin_occluders
    assert o.light_albedo.w_a_spatial == 1.0 != AppearanceOptions().light_albedo.w_a_spatial
    assert not o.skin.enabled and AppearanceOptions().skin.enabled
    assert o.light_albedo.w_sh_chroma == 0 < AppearanceOptions().light_albedo.w_sh_chroma
    assert o.albedo_map.hidden_features == "pca" != AppearanceOptions().albedo_map.hidden_features
    assert o.displacement.w_incoherent == 0 < AppearanceOptions().displacement.w_incoherent
    assert (o.displacement.w_smooth, o.displacement.steps) == (20.0, 25)
    assert (o.displacement.grad_sigma, o.displacement.w_grad) == (0.0, 0.5)   # Eq. 9 as written
    assert AppearanceOptions().displacement.grad_sigma > 0
    # everything else stays at the defaults
    d = AppearanceOptions()
    assert o.albedo_map.w_low == d.albedo_map.w_low and o.light_albedo.w_a == d.light_albedo.w_a


def test_unknown_detail_prior_is_refused():
    import pytest

    from tf_face.appearance.maps import DisplacementOptions
    with pytest.raises(ValueError, match="detail prior"):
        DisplacementOptions.for_prior("wrinkly")
    assert DisplacementOptions.for_prior("lines") == DisplacementOptions()
