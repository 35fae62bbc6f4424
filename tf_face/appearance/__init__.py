"""Per-photo analysis-by-synthesis (``--appearance=fit``): the paper's three
self-supervised objectives minimised for one photo instead of over a dataset.

* ``light_albedo``: B-Net's E_pixel + w_a E_a for (p_a, SH) (Gauss-Newton, numpy);
* ``maps``: FAN's objective on the albedo map (with the low-frequency guidance)
  and DRN's Eq. 9 on the displacement map (Adam through the custom ops);
* ``align``: the mesh refined against the photo with the PCA albedo (before the
  maps; ``AppearanceFitter.align``);
* ``fit``: ``AppearanceFitter`` runs them in order for a UV sample.
"""

from tf_face.appearance.align import AlignOptions, AlignResult

from tf_face.appearance.fit import (AppearanceFitError, AppearanceFitter, AppearanceOptions,
                                    AppearanceResult)

__all__ = ["AlignOptions", "AlignResult", "AppearanceFitError", "AppearanceFitter", "AppearanceOptions", "AppearanceResult"]
