"""Baseline segmentation: Otsu threshold inside a region of interest (SimpleITK).

Not a clinical segmenter: a transparent baseline against which reference masks (and, later,
deep-learning masks) are compared. The region is the reference mask's bounding box grown by a
margin in mm, or a configured physical box. Otsu (1979, IEEE Trans Syst Man Cybern 9:62) splits
the region's histogram in two; the class that contains the brighter voxels is kept, holes are
filled and the largest connected component is returned.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def region_from_mask(mask: sitk.Image, margin_mm: float = 5.0, label: int = 1) -> tuple[list[int], list[int]]:
    """Index bounding box (lower corner, size in voxels) of ``label`` grown by ``margin_mm``."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask == label, sitk.sitkUInt8))
    if not stats.HasLabel(1):
        raise ValueError(f"mask has no voxel with label {label}")
    box = stats.GetBoundingBox(1)  # (x, y, z, sx, sy, sz)
    dim = mask.GetDimension()
    pad = [int(np.ceil(margin_mm / s)) for s in mask.GetSpacing()]
    lo = [max(box[d] - pad[d], 0) for d in range(dim)]
    hi = [min(box[d] + box[d + dim] + pad[d], mask.GetSize()[d]) for d in range(dim)]
    return lo, [h - l for h, l in zip(hi, lo)]


def region_from_box(image: sitk.Image, box_mm) -> tuple[list[int], list[int]]:
    """Index region of a physical box ``[x0, y0, z0, x1, y1, z1]`` in mm, clipped to the image."""
    a = image.TransformPhysicalPointToIndex([float(v) for v in box_mm[:3]])
    b = image.TransformPhysicalPointToIndex([float(v) for v in box_mm[3:]])
    lo = [max(min(i, j), 0) for i, j in zip(a, b)]
    hi = [min(max(i, j) + 1, n) for i, j, n in zip(a, b, image.GetSize())]
    if any(h <= l for h, l in zip(hi, lo)):
        raise ValueError(f"box {box_mm} mm lies outside the image")
    return lo, [h - l for h, l in zip(hi, lo)]


def otsu_segment(image: sitk.Image, reference_mask: sitk.Image | None = None, margin_mm: float = 5.0,
                 box_mm=None, label: int = 1) -> sitk.Image:
    """Segment the bright object in a region by Otsu's threshold.

    Parameters
    ----------
    image : SimpleITK.Image
        3D image (HU, SUV or normalised MR).
    reference_mask : SimpleITK.Image, optional
        Mask whose bounding box (grown by ``margin_mm``) defines the region; on the image's grid.
    margin_mm : float
        Margin around the reference mask's bounding box, mm.
    box_mm : sequence of 6 float, optional
        Physical box in mm used when no reference mask is given.
    label : int
        Label of the region in ``reference_mask``.

    Returns
    -------
    SimpleITK.Image
        uint8 mask on the image's grid, 1 inside the largest bright connected component.

    Raises
    ------
    ValueError
        When neither a reference mask nor a box is given, or no object is found.
    """
    if reference_mask is not None:
        lo, size = region_from_mask(reference_mask, margin_mm, label)
    elif box_mm is not None:
        lo, size = region_from_box(image, box_mm)
    else:
        raise ValueError("otsu segmentation needs a reference mask or segmentation.box_mm")
    roi = sitk.RegionOfInterest(sitk.Cast(image, sitk.sitkFloat32), size, lo)
    binary = sitk.OtsuThreshold(roi, 0, 1)  # voxels above the threshold -> 1
    binary = sitk.BinaryFillhole(binary)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(binary), sortByObjectSize=True)
    largest = sitk.Cast(components == 1, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(largest).any():
        raise ValueError("Otsu threshold found no object in the region")
    out = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    out.CopyInformation(image)
    return sitk.Paste(out, largest, largest.GetSize(), [0, 0, 0], lo)
