"""Model files: written atomically and byte-reproducibly, loaded only after their SHA-256 matches
the model card's.

joblib files can run code when loaded; acceflow loads only the files it wrote itself, checked
against the hash recorded at training time.
"""

from __future__ import annotations

import copy
import os
import tempfile

import joblib

from acceflow.runtime import sha256_file


def without_timings(model):
    """A shallow copy of a fitted search without its fit/score times (``*_time`` in ``cv_results_``,
    ``refit_time_``), the only part of a fitted model that differs between identical runs."""
    if not hasattr(model, "cv_results_"):
        return model
    model = copy.copy(model)
    model.cv_results_ = {k: v for k, v in model.cv_results_.items() if not k.endswith("_time")}
    if hasattr(model, "refit_time_"):
        model.refit_time_ = 0.0
    return model


def save_model(model, path: str | os.PathLike) -> str:
    """Write a fitted model with joblib, atomically; return its SHA-256 (record it in the model card).

    Fit and score times are left out (:func:`without_timings`), so that the same data, config and
    seed give a byte-identical file and hash.
    """
    model = without_timings(model)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp_")
    os.close(fd)
    joblib.dump(model, tmp)
    os.replace(tmp, path)
    return sha256_file(path)


def load_model(path: str | os.PathLike, sha256: str):
    """Load a model written by :func:`save_model` after checking its SHA-256.

    joblib files can run code when loaded: the hash recorded in ``model_card.json`` at training
    time is checked first, so only the file this workflow wrote is ever unpickled.

    Raises
    ------
    ValueError
        When the file's hash differs from ``sha256``.
    """
    digest = sha256_file(path)
    if digest != sha256:
        raise ValueError(f"{path}: SHA-256 {digest} differs from the model card's {sha256}; the model file "
                         f"was changed after training: delete it and re-run the training rule")
    return joblib.load(path)
