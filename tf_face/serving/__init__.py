"""Inference side of tf_face: loading a weights folder, the SavedModel with
serving signatures, TFLite conversion and runners, and the photo ->
reconstruction core used by ``tf_face.cli.reconstruct``.

Import the submodules by their full path (``tf_face.serving.weights`` ...);
this package imports nothing so that each stays cheap to load.
"""
