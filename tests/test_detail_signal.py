"""eval/detail_signal.py: the fit's E_grad sees a known displacement where the
photo shows it (units, sign, registration and detail normals agree)."""

import pytest

from eval import detail_signal as ds


def test_the_true_displacement_lowers_e_grad_on_a_clean_render():
    """A clean render (no skin texture, no camera noise, no occluder, harsh
    light): the true displacement carried into the pipeline's map, softened to
    0.6x (the photo's resampling blurs the grooves), explains the photo's
    gradients better than none, and its negative does not; the carried truth
    itself scores far better than "no detail" on the wrinkle metric."""
    from tf_face.appearance.fit import AppearanceOptions
    from tf_face.appearance.maps import AlbedoMapOptions, DisplacementOptions
    clean = ds.make_difficulty(albedo_detail=0, camera_noise=0, occlusion_prob=0, max_yaw=20,
                               light_harshness=1)
    fast = AppearanceOptions(albedo_map=AlbedoMapOptions(steps=1),
                             displacement=DisplacementOptions(steps=2))
    r = ds.run_signal(num_faces=1, seed=3000, scales=(0.6, -0.6), difficulty=clean,
                      progress=False, fit_options=fast)
    assert r["faces_evaluated"] == 1, r["failures"]
    assert r["e_grad_ratio_0.6"] < 0.97
    assert r["e_grad_ratio_-0.6"] > 1.0
    none = r["detail_error_none_wrinkle_registered_deg"]
    assert r["detail_error_truth_wrinkle_registered_deg"] < 0.7 * none
    assert r["per_face"][0]["texels_wrinkle_registered"] > 100
    assert "E_grad(f x truth)" in ds.format_table(r)
    assert set(r["settings"]["difficulty"]) >= {"albedo_detail", "camera_noise"}
    assert r["settings"]["difficulty"]["albedo_detail"] == pytest.approx(0.0)
