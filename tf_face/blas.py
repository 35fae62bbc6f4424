"""``single_blas_thread()``: numpy's and scipy's OpenBLAS limited to one thread
for a block of small linear algebra (threadpoolctl).

Why (both measured on 2 cores): OpenBLAS splits even tiny products over its
threads, and after each call its worker threads keep spinning for a while.

* The landmark fit solves dozens of ~150x150 systems; on a loaded machine the
  spinning workers made one 68-point fit take 1-3 s instead of ~15 ms.
* In ``reconstruct``, the geometry stages' small BLAS calls left two spinning
  threads that took a core from TensorFlow's networks call right after: 77-85
  ms for B-Net + FAN + DRN instead of 53-61 ms (``eval/bench_reconstruct.py``).

The limit is process-wide (threadpoolctl changes the libraries' setting):
blocks running at once in several threads share one limit, counted, and the
last to leave restores the original. Large products that gain from threads
(the appearance fit's normal equations) run outside such blocks.
"""

from __future__ import annotations

import contextlib
import threading

from threadpoolctl import ThreadpoolController

_state = {"controller": None, "active": 0, "limits": None}
_lock = threading.Lock()


@contextlib.contextmanager
def single_blas_thread():
    with _lock:
        if _state["active"] == 0:
            if _state["controller"] is None:
                _state["controller"] = ThreadpoolController()   # ~ms: scan once
            _state["limits"] = _state["controller"].limit(limits=1, user_api="blas")
        _state["active"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["active"] -= 1
            if _state["active"] == 0:
                _state["limits"].restore_original_limits()
                _state["limits"] = None
