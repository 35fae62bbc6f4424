"""The scripts that computed the default model's data files
(``tf_face/facemodel/data``): the symmetric mean shape, the UV layout and the
468 -> 68 iBUG correspondence. Run ``python -m tf_face.facemodel.build.build_default``
to rebuild; nothing here runs when a model is loaded.
"""
