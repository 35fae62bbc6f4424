"""The fit runs BLAS on one thread (threadpoolctl) and restores the limit after."""

import threading

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import tf_face.fitting.fit as fit_mod


def _blas_threads() -> list:
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


def test_fit_runs_on_one_blas_thread_and_restores(monkeypatch):
    seen = []

    def fake_fit(model, landmarks, image_size, options):
        seen.append(_blas_threads())
        np.linalg.solve(np.eye(150) * 2.0, np.ones(150))   # BLAS works under the limit
        return "fitted"

    monkeypatch.setattr(fit_mod, "_fit_face", fake_fit)
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == [2]
        assert fit_mod.fit_face(None, None, (10, 10)) == "fitted"
        assert seen == [[1]]
        assert _blas_threads() == [2]          # restored


def test_concurrent_fits_restore_the_limit_once_all_are_done(monkeypatch):
    inside = threading.Barrier(2)
    seen = []

    def fake_fit(model, landmarks, image_size, options):
        inside.wait(timeout=30)      # both fits inside at once
        seen.append(_blas_threads())
        inside.wait(timeout=30)
        return None

    monkeypatch.setattr(fit_mod, "_fit_face", fake_fit)
    with threadpool_limits(limits=2, user_api="blas"):
        threads = [threading.Thread(target=fit_mod.fit_face, args=(None, None, (1, 1)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert seen == [[1], [1]]
        assert _blas_threads() == [2]
