"""The numpy z-buffer rasteriser: per-pixel triangle id, depth and barycentrics
of a mesh in image space (what the unwrap step and the image renderer need).
No TensorFlow; not differentiable (the training ops are ``tf_face.render``).
"""
