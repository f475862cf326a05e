"""Where the deep-learning rules run: device choice, mixed precision and seeding (torch, MONAI).

Shared by the segmentation rules (:mod:`acceflow.imaging.segment_model`) and the deep biomarker
rules. The config key ``device`` of those sections takes ``auto`` (CUDA when present, otherwise
CPU), ``cpu``, ``cuda`` or ``cuda:N``. Mixed precision (``torch.autocast`` with float16 and a
gradient scaler) is used on CUDA only: on CPU the rules run in float32, so a CPU run is the
reference and a GPU run differs from it only by floating-point order and precision.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np


def select_device(name: str = "auto"):
    """The torch device for a config value.

    Parameters
    ----------
    name
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        When CUDA is asked for and torch sees no CUDA device (the message says to use ``auto``
        or ``cpu``, or to install a CUDA build of torch), or for an unknown name.
    """
    import torch  # heavy optional dependency: imported on first use

    name = str(name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} was asked for, but torch {torch.__version__} sees no CUDA device: "
                "set device: auto (or cpu) in the config, or install a CUDA build of torch")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


def use_amp(device, mixed_precision: bool = True) -> bool:
    """Whether mixed precision applies: asked for and on CUDA (never on CPU)."""
    return bool(mixed_precision) and getattr(device, "type", str(device)) == "cuda"


def autocast(device, enabled: bool):
    """``torch.autocast`` (float16) on CUDA when ``enabled``; a no-op context otherwise."""
    import torch  # heavy optional dependency: imported on first use

    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device, enabled: bool):
    """A ``torch.amp.GradScaler`` for float16 training on CUDA (disabled elsewhere)."""
    import torch  # heavy optional dependency: imported on first use

    return torch.amp.GradScaler("cuda", enabled=bool(enabled and device.type == "cuda"))


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, torch and MONAI, and ask for deterministic kernels where they exist.

    ``monai.utils.set_determinism`` sets the seeds and cuDNN's deterministic mode;
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` makes the remaining kernels
    deterministic where the backend has such a kernel (on CUDA some, e.g. trilinear
    up-sampling's backward pass, have none: they warn, and a GPU run is then repeatable only to
    floating-point order). CPU runs with one thread count are bit-identical.
    """
    import torch  # heavy optional dependency: imported on first use
    from monai.utils import set_determinism  # heavy optional dependency: imported on first use

    random.seed(seed)
    np.random.seed(seed % 2**32)
    set_determinism(seed=seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def describe(device) -> dict:
    """What a model card records about the device: type, name and the torch / MONAI versions."""
    import monai  # heavy optional dependency: imported on first use
    import torch  # heavy optional dependency: imported on first use

    info = {"device": str(device), "torch": torch.__version__, "monai": monai.__version__,
            "cuda": torch.version.cuda, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(device)
    return info
