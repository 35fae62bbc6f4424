"""tf_face: one in-the-wild face photo -> 3D face, UV albedo and wrinkle detail.

Stages (one module each): ``landmarks`` (detect + 468 landmarks),
``facemodel`` (face models and loaders), ``fitting`` (Eq. 1),
``uv`` (UV atlas + unwrap), ``render`` (custom ops and their TF references),
``cli`` (command-line entry points).
"""

__version__ = "0.1.0"
