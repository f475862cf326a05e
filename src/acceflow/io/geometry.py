"""Voxel grids: how a mask's grid differs from its image's, and putting a mask on its image's grid.
Shared by the image readers (:mod:`acceflow.io.images`) and the DICOM readers (:mod:`acceflow.io.dicom`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


class ImageError(ValueError):
    """An image or mask cannot be used; the message names the file and the fix.

    ``record`` is the message as written to ``ingest/qc.tsv`` and the dossier: the same, less
    header text the user sees on the console but the results do not promise (a DICOM
    SeriesDescription).
    """

    def __init__(self, message: str, record: str | None = None):
        super().__init__(message)
        self.record = message if record is None else record


#: Default geometry tolerance (mm for spacing and origin; direction cosines): config
#: ``input.geometry_tolerance_mm``.
GEOMETRY_TOLERANCE_MM = 1e-3
#: Grids that differ by less than this (mm) are the same grid: float32 storage of NIfTI headers
#: alone moves origins of a few hundred mm by ~1e-5 mm.
SAME_GRID_MM = 1e-4
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
            problems.append(f"{name} {_shown(vb)} vs image {_shown(va)}")
    return problems


def _shown(values) -> tuple:
    return tuple(float(v) + 0.0 for v in np.round(values, 4))  # + 0.0: no "-0.0"


def _matched_axes(mask: sitk.Image, reference: sitk.Image) -> list[tuple[int, int, float]] | None:
    """Pair each mask axis with the image axis most parallel to it: (mask axis, image axis, sign).

    None when two mask axes pair with one image axis (the grids are rotated against each other).
    Pairing up to order and sign recognises a mask stored in another orientation (e.g. RAS instead
    of LPS, or a DICOM SEG stacked head to feet) on the same voxel lattice.
    """
    n = reference.GetDimension()
    dm = np.asarray(mask.GetDirection(), float).reshape(n, n)
    dr = np.asarray(reference.GetDirection(), float).reshape(n, n)
    pairs = []
    for a in range(n):
        cos = dr.T @ dm[:, a]
        b = int(np.argmax(np.abs(cos)))
        pairs.append((a, b, 1.0 if cos[b] >= 0 else -1.0))
    return pairs if len({b for _, b, _ in pairs}) == n else None


def _axis_problems(mask: sitk.Image, reference: sitk.Image, pairs, tolerance: float) -> list[str]:
    """Spacing (mm) and direction-cosine differences of paired axes beyond ``tolerance``."""
    n = reference.GetDimension()
    dm = np.asarray(mask.GetDirection(), float).reshape(n, n)
    dr = np.asarray(reference.GetDirection(), float).reshape(n, n)
    sm, sr = np.asarray(mask.GetSpacing(), float), np.asarray(reference.GetSpacing(), float)
    if pairs is None:
        return [f"direction {_shown(dm.ravel())} vs image {_shown(dr.ravel())} (axes not parallel)"]
    problems = []
    for a, b, sign in pairs:
        if abs(sm[a] - sr[b]) > tolerance:
            problems.append(f"spacing {_shown(sm)} vs image {_shown(sr)}")
        if np.max(np.abs(dm[:, a] - sign * dr[:, b])) > tolerance:
            problems.append(f"direction {_shown(dm.ravel())} vs image {_shown(dr.ravel())}")
    return list(dict.fromkeys(problems))


def _start_corner(mask: sitk.Image, pairs) -> np.ndarray:
    """Physical centre (mm) of the mask voxel at the image's low end of every axis."""
    index = [0 if sign > 0 else mask.GetSize()[a] - 1 for a, _, sign in pairs]
    return np.asarray(mask.TransformIndexToPhysicalPoint([int(i) for i in index]), float)


def _lattice_offset_mm(point: np.ndarray, reference: sitk.Image) -> float:
    """Distance (mm) from ``point`` to the nearest voxel centre of ``reference``'s (unbounded) lattice."""
    n = reference.GetDimension()
    matrix = np.asarray(reference.GetDirection(), float).reshape(n, n) @ np.diag(reference.GetSpacing())
    index = np.linalg.solve(matrix, point - np.asarray(reference.GetOrigin()))
    return float(np.linalg.norm(matrix @ (index - np.rint(index))))


def _voxels_outside(mask: sitk.Image, reference: sitk.Image) -> int:
    """Number of non-zero mask voxels whose centre falls outside ``reference``'s voxels."""
    voxels = np.array(np.nonzero(sitk.GetArrayViewFromImage(mask))[::-1], float).T  # (x, y, z) indices
    if voxels.size == 0:
        return 0
    n = reference.GetDimension()
    m = np.asarray(mask.GetDirection(), float).reshape(n, n) @ np.diag(mask.GetSpacing())
    r = np.asarray(reference.GetDirection(), float).reshape(n, n) @ np.diag(reference.GetSpacing())
    points = voxels @ m.T + np.asarray(mask.GetOrigin())
    index = np.linalg.solve(r, (points - np.asarray(reference.GetOrigin())).T).T
    outside = (index < -0.5) | (index >= np.asarray(reference.GetSize()) - 0.5)
    return int(np.count_nonzero(outside.any(axis=1)))


def on_image_grid(mask: sitk.Image, reference: sitk.Image, tolerance: float = GEOMETRY_TOLERANCE_MM,
                  notes: list | None = None, name: str = "mask", cropped: bool = False) -> sitk.Image:
    """Put a mask on its image's voxel grid, or refuse it.

    Grids that agree within ``SAME_GRID_MM`` are the same: the mask gets the image's geometry.
    A mask within ``tolerance`` of the image's grid is resampled onto it with nearest neighbour
    (as pyradiomics' ``correctMask``): spacing (mm) and direction cosines within ``tolerance``,
    axes matched up to order and sign (a mask stored in another orientation on the same voxels
    fits), its first voxel within ``tolerance`` mm of the image's first voxel (size may differ:
    voxels beyond the mask's extent become background), and every region voxel inside the image.
    Anything else is refused: a mask shifted by whole voxels is more likely misplaced than
    cropped, so that is refused too, unless ``cropped``.

    Parameters
    ----------
    mask, reference : SimpleITK.Image
        The mask and the image it belongs to (spacing and origin in mm).
    tolerance : float
        ``input.geometry_tolerance_mm``: mm for spacing and origin, and for direction cosines.
    notes : list, optional
        Receives a remark when the mask was resampled (it ends up in ``ingest/qc.tsv``).
    name : str
        How the mask is named in remarks and errors (e.g. ``"mask /data/p1/gtv.nii.gz"``).
    cropped : bool
        The mask may cover part of the image: its first voxel need only lie within ``tolerance``
        of some image voxel centre (a DICOM SEG, whose frame positions are explicit, omits empty
        frames).

    Returns
    -------
    SimpleITK.Image
        The mask on ``reference``'s grid (same size, spacing, origin and direction), pixel type kept.

    Raises
    ------
    ImageError
        Different dimensions, differences beyond the tolerance, or region voxels outside the image;
        the message lists what differs.
    """
    if mask.GetDimension() != reference.GetDimension():
        raise ImageError(f"{name} is {mask.GetDimension()}D but its image is {reference.GetDimension()}D; "
                         f"re-export the mask as a volume on the image's grid")
    differs = geometry_mismatch(reference, mask, SAME_GRID_MM)
    if not differs:
        if Geometry.of(mask) != Geometry.of(reference):
            mask = sitk.Image(mask)
            mask.CopyInformation(reference)
        return mask
    pairs = _matched_axes(mask, reference)
    beyond = _axis_problems(mask, reference, pairs, tolerance)
    if pairs is not None:
        corner = _start_corner(mask, pairs)
        offset = (_lattice_offset_mm(corner, reference) if cropped
                  else float(np.linalg.norm(corner - np.asarray(reference.GetOrigin()))))
        if offset > tolerance:
            beyond.append(f"first voxel {offset:.4g} mm from the image's " + ("voxel lattice" if cropped else "first voxel"))
    if beyond:
        raise ImageError(f"{name} does not match its image's voxel grid: {'; '.join(differs)} ({'; '.join(beyond)}, "
                         f"beyond input.geometry_tolerance_mm = {tolerance:g}); re-export the mask on the "
                         f"image's grid")
    lost = _voxels_outside(mask, reference)
    if lost:
        raise ImageError(f"{name} does not match its image's voxel grid: {'; '.join(differs)}; {lost} region "
                         f"voxel(s) lie outside the image; re-export the mask on the image's grid")
    if notes is not None:
        notes.append(f"{name} resampled onto the image's grid (nearest neighbour; within "
                     f"input.geometry_tolerance_mm = {tolerance:g}): {'; '.join(differs)}")
    return sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
