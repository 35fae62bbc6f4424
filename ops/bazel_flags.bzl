"""Compiler flags of the op library (those tf.sysconfig.get_compile_flags() reports)."""

TF_COPTS = ["-std=c++17", "-O3", "-fPIC", "-w"]
