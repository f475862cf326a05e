"""Read, check and write images and masks with SimpleITK.

Supported: every single-file format SimpleITK reads (NIfTI ``.nii``/``.nii.gz``, NRRD, MHA/MHD)
and a DICOM series given as a folder (the first series found; slices ordered by SimpleITK's
GDCM series reader, which sorts by image position).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk


class ImageError(ValueError):
    """An image or mask cannot be used; the message names the file and the fix."""


def read_image(path: str | os.PathLike) -> sitk.Image:
    """Read an image or mask.

    Parameters
    ----------
    path : path-like
        A file SimpleITK can read (NIfTI, NRRD, MHA, ...) or a folder holding one DICOM series.

    Returns
    -------
    SimpleITK.Image
        The image with its physical geometry (spacing in mm, origin in mm, direction cosines).

    Raises
    ------
    ImageError
        If the path does not exist or cannot be read as an image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found; check the manifest's path (relative paths resolve "
                         f"against the manifest's folder or input.data_root)")
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise ImageError(f"{path}: folder holds no DICOM series")
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            return reader.Execute()
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:  # SimpleITK raises RuntimeError for unreadable files
        raise ImageError(f"{path}: cannot be read as an image ({str(exc).strip().splitlines()[-1]}); "
                         f"re-export it as NIfTI, NRRD or MHA") from exc


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write an image atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    image : SimpleITK.Image
    path : path-like
        Destination; the format follows the extension (``.nii.gz`` recommended).
    compress : bool
        Use compression where the format supports it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".nii.gz"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=suffix)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp, compress)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image: size (voxels), spacing (mm), origin (mm), direction cosines."""

    size: tuple
    spacing: tuple
    origin: tuple
    direction: tuple

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))


def geometry_mismatch(image: sitk.Image, mask: sitk.Image, tolerance: float = 1e-3) -> list[str]:
    """List how a mask's voxel grid differs from its image's.

    Parameters
    ----------
    image, mask : SimpleITK.Image
    tolerance : float
        Absolute tolerance for spacing and origin (mm) and for direction cosines.

    Returns
    -------
    list of str
        One readable item per differing property (size, spacing, origin, direction); empty when
        the grids agree.
    """
    a, b = Geometry.of(image), Geometry.of(mask)
    problems = []
    if a.size != b.size:
        problems.append(f"size {b.size} vs image {a.size} voxels")
    for name in ("spacing", "origin", "direction"):
        va, vb = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        if va.shape != vb.shape or not np.allclose(va, vb, atol=tolerance, rtol=0):
            problems.append(f"{name} {tuple(np.round(vb, 4))} vs image {tuple(np.round(va, 4))}")
    return problems


def mask_voxels(mask: sitk.Image, label: int = 1) -> int:
    """Number of voxels of ``mask`` equal to ``label``."""
    return int(np.count_nonzero(sitk.GetArrayViewFromImage(mask) == label))
