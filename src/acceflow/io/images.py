"""Read, check and write images and masks with SimpleITK.

Supported images: every single-file format SimpleITK reads (NIfTI ``.nii``/``.nii.gz``, NRRD,
MHA/MHD) and a DICOM series given as a folder (:func:`acceflow.io.dicom.read_dicom_series`: the
series is chosen by SeriesInstanceUID when the folder holds several, slices ordered by position,
a missing slice refused). Masks (:func:`read_mask`) may also be a DICOM RTSTRUCT (one ROI,
rasterised on the image's grid) or a DICOM SEG; every mask comes back on its image's voxel grid.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from acceflow.io.geometry import (  # noqa: F401 (re-exported)
    GEOMETRY_TOLERANCE_MM,
    SAME_GRID_MM,
    Geometry,
    ImageError,
    geometry_mismatch,
    on_image_grid,
)

# single-file formats that are never DICOM: no need to look for a DICOM preamble
_NOT_DICOM = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".img", ".hdr", ".tif", ".tiff", ".png")


def _dicom():
    """acceflow.io.dicom, imported on first use (pydicom costs start-up time a NIfTI-only job need not pay)."""
    from acceflow.io import dicom

    return dicom


def _dicom_object(path: Path) -> str | None:
    if path.is_dir() or path.name.lower().endswith(_NOT_DICOM):
        return None
    return _dicom().dicom_object(path)


def _not_found(path: Path) -> ImageError:
    return ImageError(f"{path}: file not found; check the manifest's path (relative paths resolve "
                      f"against the manifest's folder or input.data_root)")


def check_nifti(path: str | os.PathLike) -> None:
    """Read a NIfTI file's voxels with nibabel to catch what SimpleITK does not notice.

    SimpleITK (2.5) reads the missing part of a truncated ``.nii`` / ``.nii.gz`` file as zeros and
    NaN voxels as 0 (ITK before 6, InsightSoftwareConsortium/ITK#6683); nibabel reads the data
    block in full and keeps NaN and infinity.

    Raises
    ------
    ImageError
        When the data block is shorter than the header says or the compressed stream is cut or
        damaged, or when a voxel is NaN or infinite; the message names the file and the fix.
    """
    import nibabel as nib  # imported here: ~0.3 s that a job reading only SimpleITK files need not pay

    path = Path(path)

    def detail(exc: Exception) -> str:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    try:
        proxy = nib.load(str(path), mmap=False).dataobj
    except Exception as exc:  # noqa: BLE001 - nibabel, gzip and zlib raise several kinds on damaged files
        raise ImageError(f"{path}: cannot be read as an image ({detail(exc)}); re-export it as NIfTI, NRRD "
                         f"or MHA") from exc
    try:
        data = np.asarray(proxy.get_unscaled())
    except Exception as exc:  # noqa: BLE001
        raise ImageError(f"{path}: NIfTI file is truncated or damaged ({detail(exc)}); copy or re-export the "
                         f"file again") from exc
    if np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.complexfloating):
        finite = np.isfinite(data)
        if not finite.all():
            n_nan, n_inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
            raise ImageError(f"{path}: {n_nan} NaN and {n_inf} infinite voxels; fix the export (or replace them "
                             f"with a finite background value)")


def read_image(path: str | os.PathLike, series_uid: str | None = None) -> sitk.Image:
    """Read an image or mask.

    Parameters
    ----------
    path : path-like
        A file SimpleITK can read (NIfTI, NRRD, MHA, a single DICOM file, ...) or a folder holding
        a DICOM series (:func:`acceflow.io.dicom.read_dicom_series`).
    series_uid : str, optional
        SeriesInstanceUID of the series to read from a DICOM folder that holds several (manifest
        column ``series_uid``).

    Returns
    -------
    SimpleITK.Image
        The image with its physical geometry (spacing in mm, origin in mm, direction cosines).

    Raises
    ------
    ImageError
        If the path does not exist or cannot be read as an image; a NIfTI file that is truncated
        or holds NaN / infinite voxels (:func:`check_nifti`); a DICOM folder with several
        series and none chosen, a missing slice or uneven slice gaps; an RTSTRUCT or SEG given as
        an image; ``series_uid`` given for a file.
    """
    path = Path(path)
    if not path.exists():
        raise _not_found(path)
    if path.is_dir():
        return _dicom().read_dicom_series(path, series_uid=series_uid or None)
    if series_uid:
        raise ImageError(f"{path}: series_uid {series_uid} given, but the image is a single file; give the "
                         f"DICOM folder as the image, or leave series_uid empty")
    kind = _dicom_object(path)
    if kind in ("RTSTRUCT", "SEG"):
        raise ImageError(f"{path}: is a DICOM {kind} (a mask), not an image; give it in the manifest's mask "
                         f"column and the image it was drawn on in the image column")
    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:  # SimpleITK raises RuntimeError for unreadable files
        raise ImageError(f"{path}: cannot be read as an image ({str(exc).strip().splitlines()[-1]}); "
                         f"re-export it as NIfTI, NRRD or MHA") from exc


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write an image atomically (temporary file in the same folder, then rename).

    A floating-point image must be finite: SimpleITK would write NaN voxels that it later reads
    back as 0, so refusing them here is what lets :func:`read_pipeline_image` trust the DAG's own
    files without a second check.

    Parameters
    ----------
    image : SimpleITK.Image
    path : path-like
        Destination; the format follows the extension (``.nii.gz`` recommended).
    compress : bool
        Use compression where the format supports it.

    Raises
    ------
    ImageError
        When a floating-point image holds NaN or infinite voxels (nothing is written).
    """
    path = Path(path)
    values = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        raise ImageError(f"{path}: the image to write holds {int(np.isnan(values).sum())} NaN and "
                         f"{int(np.isinf(values).sum())} infinite voxels; this is a bug or a degenerate input "
                         f"(a constant image normalised?): check the scan it was computed from")
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


def read_pipeline_image(path: str | os.PathLike) -> sitk.Image:
    """Read an image or mask that the DAG itself wrote (preprocessed image, mask, segmentation).

    SimpleITK alone: the nibabel pass of :func:`read_image` (truncated files, NaN voxels) guards
    files from outside the pipeline. The DAG's own files were written by :func:`write_image`
    (atomically, finite voxels only) from inputs :func:`read_image` had checked, so repeating the
    pass would cost a job ~0.3 s of nibabel import and a second decode of every file for nothing
    (issue 21: it was a fifth of an STS case's extraction time).

    Parameters
    ----------
    path : path-like
        A NIfTI/NRRD/MHA file under the results folder.

    Returns
    -------
    SimpleITK.Image

    Raises
    ------
    ImageError
        If the file does not exist or SimpleITK cannot read it (re-run the rule that wrote it).
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found; it is written by the workflow: re-run snakemake to rebuild it")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageError(f"{path}: cannot be read as an image ({str(exc).strip().splitlines()[-1]}); delete it and "
                         f"re-run snakemake to rebuild it") from exc


def read_mask(path: str | os.PathLike, reference: sitk.Image, roi: str | int | None = None, label: int = 1,
              tolerance: float = GEOMETRY_TOLERANCE_MM, notes: list | None = None) -> sitk.Image:
    """Read a mask of any supported kind onto its image's voxel grid.

    Parameters
    ----------
    path : path-like
        A label image (NIfTI, NRRD, MHA, DICOM series folder), a DICOM RTSTRUCT or SEG file
        (recognised by SOP Class / Modality, whatever the file name), or a folder holding just one
        RTSTRUCT or SEG.
    reference : SimpleITK.Image
        The image (from :func:`read_image`).
    roi : str or int, optional
        RTSTRUCT ROIName or SEG segment (number or label): manifest column ``roi`` or config
        ``input.roi``. Ignored for label images.
    label : int
        Value given to the ROI of an RTSTRUCT or to a chosen SEG segment (``extraction.label``);
        label images keep their values.
    tolerance : float
        Geometry tolerance in mm, see :func:`on_image_grid`.
    notes : list, optional
        Receives remarks (mask resampled onto the image's grid, contour parts dropped).

    Returns
    -------
    SimpleITK.Image
        The mask on ``reference``'s grid.

    Raises
    ------
    ImageError
        Missing or unreadable file, unknown ROI / segment (listing those present), a mask off the
        image's grid beyond ``tolerance`` (see :func:`on_image_grid`, :func:`acceflow.io.dicom.read_rtstruct`,
        :func:`acceflow.io.dicom.read_seg`).
    """
    path = Path(path)
    if not path.exists():
        raise _not_found(path)
    target = path
    if path.is_dir():
        target = _dicom().mask_object_in(path) or path
    kind = _dicom_object(target)
    if kind == "RTSTRUCT":
        return _dicom().read_rtstruct(target, reference, roi=roi, label=label, notes=notes)
    if kind == "SEG":
        return _dicom().read_seg(target, reference, segment=roi, label=label, tolerance=tolerance)
    return on_image_grid(read_image(path), reference, tolerance, notes, name=f"mask {path}")


def mask_voxels(mask: sitk.Image, label: int = 1) -> int:
    """Number of voxels of ``mask`` equal to ``label``."""
    return int(np.count_nonzero(sitk.GetArrayViewFromImage(mask) == label))


def describe_image(image: sitk.Image, mask: sitk.Image | None = None, label: int = 1) -> str:
    """One line for a log: an image's grid (size in voxels, spacing in mm) and, given a mask, the
    region of interest's size (voxels equal to ``label``, and their volume in mL).

    Example: ``128x128x40 voxels of 0.70x0.70x3.00 mm; ROI (label 1) 2304 voxels, 3.39 mL``.
    """
    size = "x".join(str(n) for n in image.GetSize())
    spacing = "x".join(f"{s:.2f}" for s in image.GetSpacing())
    text = f"{size} voxels of {spacing} mm"
    if mask is not None:
        n = mask_voxels(mask, label)
        ml = n * float(np.prod(mask.GetSpacing())) / 1000.0
        text += f"; ROI (label {label}) {n} voxels, {ml:.3g} mL"
    return text
