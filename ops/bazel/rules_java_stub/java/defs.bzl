"""Offline stand-in for @rules_java//java:defs.bzl: the native rules of Bazel 4.

Only needed because Bazel parses its registered JDK toolchains even for a C++
build; nothing in tf_face uses Java.
"""

def java_binary(**attrs):
    native.java_binary(**attrs)

def java_import(**attrs):
    native.java_import(**attrs)

def java_library(**attrs):
    native.java_library(**attrs)

def java_proto_library(**attrs):
    native.java_proto_library(**attrs)

def java_runtime(**attrs):
    native.java_runtime(**attrs)

def java_toolchain(**attrs):
    native.java_toolchain(**attrs)
