"""Image preprocessing with SimpleITK: resampling and intensity normalisation.

Resampling follows IBSI (Zwanenburg et al. 2020, Radiology 295:328, chapter 2.4): images with a
B-spline (or linear) interpolator, masks with nearest neighbour on the same grid, so that the
resampled mask stays binary. The new grid keeps the physical extent and centre of the original.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

INTERPOLATORS = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


def resampled_grid(image: sitk.Image, spacing) -> tuple[list[int], list[float]]:
    """Size (voxels) and origin (mm) of the grid with ``spacing`` (mm) over ``image``'s extent.

    The grid is centred on the original field of view (IBSI grid alignment "centre").
    """
    old_size = np.asarray(image.GetSize(), float)
    old_spacing = np.asarray(image.GetSpacing(), float)
    spacing = np.asarray(spacing, float)
    size = np.maximum(np.round(old_size * old_spacing / spacing), 1).astype(int)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    # centre of the old grid in index space, then the new origin that keeps it centred
    shift = ((old_size - 1) * old_spacing - (size - 1) * spacing) / 2.0
    origin = np.asarray(image.GetOrigin(), float) + direction @ shift
    return size.tolist(), origin.tolist()


def resample(image: sitk.Image, spacing, interpolator: str = "bspline",
             reference: sitk.Image | None = None) -> sitk.Image:
    """Resample an image to ``spacing`` (mm), or onto ``reference``'s grid.

    Parameters
    ----------
    image : SimpleITK.Image
        3D image (intensities in HU, SUV or arbitrary MR units).
    spacing : sequence of 3 float or None
        Target voxel spacing in mm (x, y, z); ``None`` returns the image unchanged.
    interpolator : {"bspline", "linear", "nearest"}
        Use "nearest" for masks.
    reference : SimpleITK.Image, optional
        Resample onto this grid instead (``spacing`` ignored).

    Returns
    -------
    SimpleITK.Image
        Same pixel type as the input for masks; float32 for images.

    Raises
    ------
    ValueError
        On an unknown interpolator or a non-positive spacing.
    """
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"interpolator '{interpolator}' unknown; use one of {sorted(INTERPOLATORS)}")
    if reference is None and spacing is None:
        return image
    f = sitk.ResampleImageFilter()
    f.SetInterpolator(INTERPOLATORS[interpolator])
    if reference is not None:
        f.SetReferenceImage(reference)
    else:
        if min(spacing) <= 0:
            raise ValueError(f"resampled spacing must be positive mm values, got {spacing}")
        size, origin = resampled_grid(image, spacing)
        f.SetOutputSpacing([float(s) for s in spacing])
        f.SetSize([int(s) for s in size])
        f.SetOutputOrigin(origin)
        f.SetOutputDirection(image.GetDirection())
    if interpolator == "nearest":
        f.SetOutputPixelType(image.GetPixelID())
        f.SetDefaultPixelValue(0)
        return f.Execute(image)
    image = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(image)
    f.SetDefaultPixelValue(float(arr.min()))
    f.SetOutputPixelType(sitk.sitkFloat32)
    return f.Execute(image)


def normalise(image: sitk.Image, method: str = "none") -> sitk.Image:
    """Intensity normalisation.

    Parameters
    ----------
    image : SimpleITK.Image
    method : {"none", "zscore"}
        ``none`` keeps physical units (CT in HU, PET in SUV); ``zscore`` subtracts the mean and
        divides by the SD of the image's foreground (voxels above the Otsu threshold), the usual
        choice for MR whose units are arbitrary (Shinohara et al. 2014, NeuroImage Clin 6:9).

    Returns
    -------
    SimpleITK.Image
        float32 image on the same grid.

    Raises
    ------
    ValueError
        On an unknown method or a constant image.
    """
    if method == "none":
        return image
    if method != "zscore":
        raise ValueError(f"normalisation '{method}' unknown; use none or zscore")
    image = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(image)
    fg = sitk.GetArrayViewFromImage(sitk.OtsuThreshold(image, 0, 1)) > 0
    values = arr[fg] if fg.sum() > 10 else arr.ravel()
    sd = float(values.std())
    if sd == 0:
        raise ValueError("image is constant: z-score normalisation is undefined")
    out = sitk.GetImageFromArray(((arr - values.mean()) / sd).astype(np.float32))
    out.CopyInformation(image)
    return out


def preprocess(image: sitk.Image, mask: sitk.Image | None, spacing=None, interpolator: str = "bspline",
               normalisation: str = "none") -> tuple[sitk.Image, sitk.Image | None]:
    """Normalise, then resample an image and its mask onto one grid.

    Parameters
    ----------
    image : SimpleITK.Image
    mask : SimpleITK.Image or None
        Label mask on the image's grid (checked at ingest).
    spacing : sequence of 3 float or None
        Resampled spacing in mm.
    interpolator : str
        Image interpolator (the mask always uses nearest neighbour).
    normalisation : str
        See :func:`normalise`.

    Returns
    -------
    (image, mask) : SimpleITK.Image pair on the same grid (mask None when none was given).
    """
    image = normalise(image, normalisation)
    out_image = resample(image, spacing, interpolator)
    out_mask = None
    if mask is not None:
        out_mask = resample(mask, None, "nearest", reference=out_image)
    return out_image, out_mask
