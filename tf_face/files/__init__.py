"""Output side of tf_face: mesh files (OBJ/MTL/GLB), the dense detail mesh,
displacement maps, and the HTML report with its offline 3D viewer.

Import the submodules by their full path (``tf_face.files.mesh_files`` ...);
this package imports nothing so that each stays cheap to load.
"""
