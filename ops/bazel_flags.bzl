"""Compiler flags of the op library (those tf.sysconfig.get_compile_flags() reports).

No -w: our sources build -Wall clean; TF's headers come in through
@tf_pip//:tf_headers' `includes`, which Bazel passes as -isystem, so their
warnings are not reported.
"""

TF_COPTS = ["-std=c++17", "-O3", "-fPIC", "-Wall"]
