"""Exceptions with one-line, user-facing messages.

Every error a user can cause by bad input derives from ``TfFaceError``; the
CLIs print ``str(err)`` on one line and exit non-zero (batch mode records it in
``failures.json``) instead of showing a traceback.
"""


def show_path(path) -> str:
    """A user-given path for a one-line message: control characters replaced,
    long paths shortened from the left."""
    text = "".join(c if c.isprintable() else "?" for c in str(path))
    return text if len(text) <= 200 else "..." + text[-197:]


class TfFaceError(Exception):
    """Base class for errors caused by user input or missing setup."""


class ImageError(TfFaceError):
    """The input file is not a readable image (not an image, truncated, empty...)."""


class NoFaceError(TfFaceError):
    """No face was found in the image."""


class LandmarkError(TfFaceError):
    """Landmarks could not be computed or a landmark file is malformed."""


class FaceModelError(TfFaceError):
    """A face-model file has the wrong format, keys or shapes."""


class FitError(TfFaceError):
    """The 3D fit failed (e.g. degenerate landmarks, extreme pose)."""


class AssetMissingError(TfFaceError):
    """A downloadable asset (MediaPipe TFLite model...) is not in the cache."""


def describe_error(err: BaseException) -> str:
    """One line: the message of our own errors, type + message of anything else."""
    if isinstance(err, TfFaceError):
        return str(err)
    return f"internal error ({type(err).__name__}): {err}"
