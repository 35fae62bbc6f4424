"""Pictures of a reconstruction: the numpy image renderer (shaded, relit and
novel-view renders over the z-buffer of ``tf_face.raster``) and the view sets
written by ``reconstruct`` and the reports. Not differentiable; for training
use ``tf_face.render``.

Import the submodules by their full path (``tf_face.viz.image_renderer``,
``tf_face.viz.views``); this package imports nothing.
"""
