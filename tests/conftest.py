"""Shared fixtures: paths to the real data in ../shared/data and small synthetic images."""
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available (../shared/data is expected beside the checkout)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return need(SHARED_DATA)


def make_image(array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    """SimpleITK image from a (z, y, x) array with the given spacing (mm) and origin (mm)."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


@pytest.fixture
def sphere_case():
    """A 40^3 image (1 mm) with a bright sphere of radius 8 mm and its mask."""
    z, y, x = np.mgrid[:40, :40, :40]
    inside = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 8 ** 2
    rng = np.random.default_rng(0)
    arr = (40 + 60 * inside + rng.normal(0, 5, inside.shape)).astype(np.float32)
    return make_image(arr), make_image(inside.astype(np.uint8))
