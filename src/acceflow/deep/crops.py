"""Fixed-size crops around the lesion, every modality resampled onto one common grid.

The crop grid is axis-aligned (identity direction), ``size`` voxels of ``spacing`` mm per axis,
centred on the lesion's centre of mass (physical mm) in the reference (first) modality's mask.
Every modality's image is resampled onto that grid with SimpleITK's ``Resample`` (linear
interpolation; nearest neighbour for the mask), which is the co-registration / resampling step of
early fusion: images that share a physical frame (as PET and MR of one patient, registered by the
scanner or beforehand) then share voxels. Voxels outside an image get ``fill`` (default the
image's minimum).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk


class CropError(ValueError):
    """A crop cannot be made (missing file, empty mask); the message names the case and file."""


def lesion_centre(mask, label: int | None = None) -> tuple[float, float, float]:
    """The lesion's centre of mass in physical coordinates (mm, x/y/z order of ITK).

    Parameters
    ----------
    mask : SimpleITK.Image or path
        The lesion mask. Voxels ``== label`` (``> 0`` when ``label`` is None) are the lesion.
    label : int, optional

    Returns
    -------
    tuple of 3 floats, mm

    Raises
    ------
    CropError
        When the mask has no lesion voxel.
    """
    name = str(mask) if not isinstance(mask, sitk.Image) else "mask"
    if not isinstance(mask, sitk.Image):
        mask = sitk.ReadImage(str(mask))
    arr = sitk.GetArrayViewFromImage(mask)
    idx = np.argwhere(arr == label if label is not None else arr > 0)
    if idx.size == 0:
        raise CropError(f"{name}: the mask has no lesion voxel (label {label if label is not None else '> 0'}); "
                        f"check the segmentation of this case or exclude it")
    centre_index = idx.mean(axis=0)[::-1]  # numpy z,y,x -> ITK x,y,z
    return tuple(float(v) for v in mask.TransformContinuousIndexToPhysicalPoint(centre_index.tolist()))


def crop_grid(centre_mm, size: int, spacing: float):
    """A reference SimpleITK image: ``size``^3 voxels of ``spacing`` mm, identity direction, centred on ``centre_mm``."""
    ref = sitk.Image([int(size)] * 3, sitk.sitkFloat32)
    ref.SetSpacing([float(spacing)] * 3)
    ref.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    half = (int(size) - 1) / 2.0 * float(spacing)
    ref.SetOrigin([float(c) - half for c in centre_mm])
    return ref


def resample_onto(image, reference, interpolator: str = "linear", fill: float | None = None) -> np.ndarray:
    """Resample ``image`` onto ``reference``'s grid (identity transform); array (z, y, x) float32."""
    interp = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}[interpolator]
    if fill is None:
        fill = float(np.min(sitk.GetArrayViewFromImage(image)))
    out = sitk.Resample(image, reference, sitk.Transform(), interp, float(fill), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).astype(np.float32)


def make_crop(images: dict[str, str], mask: str, size: int = 64, spacing: float = 2.0, label: int | None = None,
              case: str = "") -> dict:
    """Crop every modality of one case onto one lesion-centred grid.

    Parameters
    ----------
    images : dict modality -> path
        Preprocessed images (NIfTI, any readable by SimpleITK), in channel order; the first is
        the reference modality.
    mask : path
        The reference modality's lesion mask (its centre of mass centres the crop).
    size : int
        Crop edge in voxels (cubic crop).
    spacing : float
        Crop voxel spacing, mm (isotropic).
    label : int, optional
        Lesion label in the mask (default: any non-zero voxel).
    case : str
        Case id for error messages.

    Returns
    -------
    dict
        ``image`` float32 array (C, size, size, size) in (channel, z, y, x) order; ``mask``
        uint8 array (size, size, size); ``modalities`` (C,); ``centre_mm`` (3,);
        ``spacing_mm`` (float); ``lesion_voxels_in_crop`` (int) and ``lesion_voxels`` (int,
        in the crop grid's resolution before cropping is not known: the fraction inside is
        ``lesion_fraction_in_crop``).

    Raises
    ------
    CropError
        A file is missing or unreadable, or the mask is empty (the message names the case, the
        file and the fix).
    """
    if not images:
        raise CropError(f"case {case}: no image given for the crop; check deep.modalities and the manifest")
    for path in [*images.values(), mask]:
        if not path or not os.path.exists(path):
            raise CropError(f"case {case}: file {path!r} does not exist; check the manifest (and that the "
                            f"case has every modality listed in deep.modalities)")
    try:
        mask_img = sitk.ReadImage(str(mask))
    except RuntimeError as exc:
        raise CropError(f"case {case}: cannot read mask {mask}: {exc}") from exc
    centre = lesion_centre(mask_img, label)
    ref = crop_grid(centre, size, spacing)
    channels = []
    for modality, path in images.items():
        try:
            img = sitk.ReadImage(str(path), sitk.sitkFloat32)
        except RuntimeError as exc:
            raise CropError(f"case {case}: cannot read {modality} image {path}: {exc}") from exc
        channels.append(resample_onto(img, ref))
    lesion = mask_img == label if label is not None else mask_img > 0
    crop_mask = resample_onto(sitk.Cast(lesion, sitk.sitkUInt8), ref, "nearest", 0).astype(np.uint8)
    # lesion volume (mm^3) in the original mask vs inside the crop: how much of the lesion the crop holds
    vol = float(sitk.GetArrayViewFromImage(lesion).sum()) * float(np.prod(mask_img.GetSpacing()))
    inside = float(crop_mask.sum()) * float(spacing) ** 3
    return {"image": np.stack(channels).astype(np.float32), "mask": crop_mask,
            "modalities": np.array(list(images)), "centre_mm": np.array(centre), "spacing_mm": float(spacing),
            "lesion_fraction_in_crop": min(1.0, inside / vol) if vol > 0 else 0.0}


def save_crop(crop: dict, path: str | os.PathLike) -> None:
    """Write a crop (see :func:`make_crop`) to a compressed ``.npz``, atomically (temporary name, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **crop)
    os.replace(tmp, path)


def load_crop(path: str | os.PathLike) -> dict:
    """Read a crop written by :func:`save_crop` (arrays as in :func:`make_crop`)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
