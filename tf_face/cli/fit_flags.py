"""Flags of the per-photo appearance fit shared by the entry points that run it
(``tf_face.cli.reconstruct``, ``eval/synthetic_benchmark.py``,
``eval/real_photos.py``): the choices where reasonable people differ. Every
other weight is an ``AppearanceOptions`` field (library use).
"""

from __future__ import annotations

from absl import flags


def define_fit_flags(flag_values=flags.FLAGS) -> None:
    flags.DEFINE_enum(
        "fit_exposure", "face", ["face", "front"],
        "Per-photo fit: judge the exposure prior (the face gets ~0.95 irradiance) on the face's "
        "own visible normals ('face'), or on a fixed camera-facing disc ('front': the synthetic "
        "generator's definition; reads a face looking up into the light as darker skin).",
        flag_values=flag_values)
    flags.DEFINE_float(
        "fit_w_a_spatial", 10.0,
        "Per-photo fit: the albedo prior's weight on its non-tone columns (the smooth colour "
        "variation over the face, the lips' and brows' colour) as a multiple of the paper's "
        "w_a; the skin tone keeps w_a. 1 = the paper's E_a = ||p_a||^2, under which those "
        "columns absorb the mesh's shading errors as bands of colour "
        "(tf_face.appearance.light_albedo).",
        lower_bound=0.0, flag_values=flag_values)
    flags.DEFINE_bool(
        "fit_one_colour_light", True,
        "Per-photo fit: the light is about one colour from every direction (its colour "
        "overall is white either way); without it the light takes colour the PCA albedo "
        "cannot hold, and a re-render shows teal nostrils and rims where the photo shows little "
        "(tf_face.appearance.light_albedo); --nofit_one_colour_light lets each direction take "
        "its own colour (a face lit by lamps of different colours).",
        flag_values=flag_values)
    flags.DEFINE_bool(
        "fit_skin_test", True,
        "Per-photo fit: find the visible texels that are not the face's skin (delit colour "
        "2.5x off the face centre's or another hue, in solid regions: a fringe, a cap, a hand "
        "in shadow; not the eyes, brows, lips or the lower face, where a beard is the "
        "person's) and fit the light, the PCA albedo and the maps without them "
        "(tf_face.appearance.skin); --nofit_skin_test fits every visible texel (a hat or "
        "hair style that should print, painted skin).",
        flag_values=flag_values)
    flags.DEFINE_bool(
        "fit_photo_features", True,
        "Per-photo fit: the eyes and brows of the albedo map are the photo's, delit (irises, "
        "brow hair), and the displacement fit leaves their colour edges out; "
        "--nofit_photo_features: the prior's grey eye and template brow guide them like skin.",
        flag_values=flag_values)
    flags.DEFINE_enum(
        "fit_hidden_features", "colour", ["colour", "pca", "mirror"],
        "Per-photo fit (with fit_photo_features): what the albedo map's eyes and brows are "
        "where the photo does not show them (the far side of a turned face, out of the frame): "
        "'colour' the prior's eye and brow in the colour of the ones the photo shows "
        "(brown eyes stay brown; the default), 'pca' the prior's own (a grey-blue eye, a "
        "template brow), 'mirror' the visible ones mirrored (sharper, but they land off on "
        "a turned face; tf_face.appearance.maps).",
        flag_values=flag_values)
    flags.DEFINE_enum(
        "fit_detail_prior", "lines", ["lines", "paper"],
        "Per-photo fit: the displacement map's prior. 'lines' (the default): the paper's Eq. 9 "
        "with weaker regularisers plus a slope penalty where the photo's fine detail has no "
        "direction (pores, freckles, noise), and its E_grad on the photo and render "
        "low-passed (grain and noise are finer than folds), so folds and wrinkles come out "
        "and skin grain does not turn into bumps; 'paper': Eq. 9 alone, with the weights that "
        "keep grain out by keeping every fold faint (tf_face.appearance.maps).",
        flag_values=flag_values)
    flags.DEFINE_bool(
        "fit_thin_occluders", True,
        "Per-photo fit: thin, elongated strokes outside the eyes, brows and lips (hair strands, "
        "glasses frames, lines of shading) keep the PCA albedo instead of printing into the "
        "albedo map (tf_face.appearance.maps.thin_strokes); --nofit_thin_occluders keeps them "
        "(a scar, a tattoo line, drawn-on make-up).",
        flag_values=flag_values)
    flags.DEFINE_enum(
        "fit_align", "warp", ["warp", "rigid", "both", "off"],
        "Per-photo fit: before the appearance, move the landmark fit's mesh so the photo lines "
        "up with the shaded PCA albedo (E_pixel; tf_face.appearance.align), so the albedo map's "
        "brows, eyes and lips sit where the UV layout has them: 'warp' every vertex (smoothly; "
        "the default model; others get 'rigid'), 'rigid' the pose only, 'both' pose then warp, "
        "'off' the landmark fit as it is (~0.3 s less).",
        flag_values=flag_values)


def fit_options_from_flags(flag_values=flags.FLAGS, **kwargs):
    """``AppearanceOptions`` with the flags above (``kwargs``: other fields)."""
    from tf_face.appearance import AppearanceOptions
    from tf_face.appearance.align import AlignOptions
    from tf_face.appearance.light_albedo import LightAlbedoOptions
    from tf_face.appearance.maps import AlbedoMapOptions, DisplacementOptions
    from tf_face.appearance.skin import SkinOptions

    f = flag_values
    return AppearanceOptions(
        light_albedo=LightAlbedoOptions(
            exposure_normals=f.fit_exposure, w_a_spatial=f.fit_w_a_spatial,
            w_sh_chroma=LightAlbedoOptions.w_sh_chroma if f.fit_one_colour_light else 0.0),
        albedo_map=AlbedoMapOptions(photo_features=f.fit_photo_features,
                                    thin_occluders=f.fit_thin_occluders,
                                    hidden_features=f.fit_hidden_features),
        displacement=DisplacementOptions.for_prior(f.fit_detail_prior,
                                                   skip_features=f.fit_photo_features),
        align=AlignOptions(enabled=f.fit_align != "off",
                           mode=f.fit_align if f.fit_align != "off" else AlignOptions.mode),
        skin=SkinOptions(enabled=f.fit_skin_test),
        **kwargs)
