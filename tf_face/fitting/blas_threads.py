"""Run the fit's small dense algebra (~150x150 matrices) on one BLAS thread.

The fit solves dozens of tiny systems. OpenBLAS splits even these over its
threads, which costs more than it saves, and on a loaded machine (more busy
processes than cores) spinning worker threads made one 68-point ICT fit take
1-3 s instead of ~15 ms (measured here). numpy's and scipy's wheels bundle
OpenBLAS builds that export ``openblas_set_num_threads_local``, which sets the
thread count *for the calling thread only* and returns the previous one; the
context manager below uses it and restores the old value. Elsewhere (other
BLAS builds) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os

_FUNCS = None


def _functions():
    global _FUNCS
    if _FUNCS is None:
        funcs = []
        import importlib
        pkgs = []
        for name in ("numpy", "scipy"):
            try:
                pkgs.append(importlib.import_module(name))
            except ImportError:
                pass
        for pkg in pkgs:
            libdir = os.path.join(os.path.dirname(os.path.dirname(pkg.__file__)),
                                  pkg.__name__ + ".libs")
            for path in sorted(glob.glob(os.path.join(libdir, "lib*openblas*.so*"))):
                try:
                    fn = ctypes.CDLL(path).openblas_set_num_threads_local
                except (OSError, AttributeError):
                    continue
                fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
                funcs.append(fn)
        _FUNCS = funcs
    return _FUNCS


@contextlib.contextmanager
def single_blas_thread():
    funcs = _functions()
    old = [fn(1) for fn in funcs]
    try:
        yield
    finally:
        for fn, n in zip(funcs, old):
            fn(n)
