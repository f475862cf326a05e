"""2D and 2.5D inputs from the 3D lesion crops: axial slices through the lesion.

A crop (:mod:`acceflow.deep.crops`) is (C, D, H, W) in (channel, z, y, x) order on an axis-aligned
grid, with its lesion mask (D, H, W); axial slices are the planes of constant z.

* **Which slices** (:func:`lesion_slices`): of the crop's axial slices that hold lesion voxels,
  the ``k`` with the largest lesion area (``deep.slices_2d``; ties by position), in ascending z.
  A lesion spanning fewer than ``k`` slices gives all of them; the rest of the case's ``k``
  places are padding (NaN), which the network skips (:mod:`acceflow.deep.networks`). A slice
  without lesion voxels is never used: a 2D crop through an empty slice is refused
  (:class:`SliceError`, naming the case).
* **2D**: each chosen slice, its C modalities as channels.
* **2.5D**: each chosen slice with its ``n`` neighbours (``deep.slices_2_5d``, odd; z - (n-1)/2 ..
  z + (n-1)/2, in that order), per modality: channels ``[m0 z-1, m0 z, m0 z+1, m1 z-1, ...]``. A
  neighbour beyond the crop's edge repeats the edge slice (the crop is centred on the lesion, so
  this only happens for lesions reaching the crop's border).
* **Case-level prediction**: the mean of the logits of the case's slices
  (:func:`mean_of_logits`; what the network computes, the head being linear).

The network's input is one array per case, (S x C', H, W) with S = ``k`` and C' = C (2D) or
C x n (2.5D): batching, class weighting, the Cox loss, folds and early stopping stay case-level.
"""

from __future__ import annotations

import numpy as np


class SliceError(ValueError):
    """A 2D / 2.5D input cannot be made for a case (no lesion voxel on the chosen slice); the message names the case."""


def lesion_slices(mask: np.ndarray, k: int, case: str = "") -> np.ndarray:
    """The axial slices (z indices) of a crop used for 2D / 2.5D: the ``k`` largest lesion sections.

    Parameters
    ----------
    mask : numpy.ndarray (D, H, W)
        The crop's lesion mask (non-zero = lesion).
    k : int
        Slices per case (>= 1).
    case : str
        Case id for the error message.

    Returns
    -------
    numpy.ndarray of int, ascending, length min(k, number of slices with lesion voxels)

    Raises
    ------
    SliceError
        When no axial slice of the crop holds a lesion voxel.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"case {case}: a crop mask is (D, H, W), got shape {mask.shape}")
    area = (mask > 0).reshape(mask.shape[0], -1).sum(axis=1)
    lesion = np.flatnonzero(area)
    if lesion.size == 0:
        raise SliceError(f"case {case}: the crop's mask has no lesion voxel on any axial slice, so a 2D / 2.5D input "
                         f"would be a slice without lesion; check this case's segmentation (or its crop: "
                         f"deep.crop_size, deep.crop_spacing), or exclude the case")
    order = sorted(lesion, key=lambda z: (-area[z], z))[:int(k)]
    return np.sort(np.asarray(order, dtype=int))


def case_slices(image: np.ndarray, mask: np.ndarray, z, neighbours: int = 1, case: str = "") -> np.ndarray:
    """Slices ``z`` of one crop (C, D, H, W) as (len(z) x C x neighbours, H, W), refusing a slice without lesion.

    ``neighbours`` = 1 gives 2D (the slice's C modalities); an odd n > 1 gives 2.5D: per
    modality the slices z - (n-1)/2 .. z + (n-1)/2 in order (edge slices repeated beyond the crop).

    Raises
    ------
    SliceError
        A requested slice has no lesion voxel in ``mask`` (the message names the case and the slice).
    ValueError
        An even ``neighbours``.
    """
    n = int(neighbours)
    if n < 1 or n % 2 == 0:
        raise ValueError(f"deep.slices_2_5d must be an odd number >= 1 (the slice and as many neighbours each side), "
                         f"got {n}")
    image, mask = np.asarray(image), np.asarray(mask)
    depth = image.shape[1]
    half = (n - 1) // 2
    out = []
    for zi in np.asarray(z, dtype=int):
        if not (mask[zi] > 0).any():
            raise SliceError(f"case {case}: axial slice z={zi} of the crop holds no lesion voxel: a 2D crop through an "
                             f"empty slice is refused; choose slices with acceflow.deep.slices.lesion_slices")
        idx = np.clip(np.arange(zi - half, zi + half + 1), 0, depth - 1)
        out.append(image[:, idx].reshape(-1, *image.shape[2:]))  # (C x n, H, W), modality-major
    return np.concatenate(out).astype(np.float32)


def slice_input(X: np.ndarray, masks: np.ndarray, dimensions: str, k: int, neighbours: int = 3,
                cases=None) -> np.ndarray:
    """The network input of 2D / 2.5D models: (N, k x C', H, W), NaN padding for lesions of fewer than k slices.

    Parameters
    ----------
    X : numpy.ndarray (N, C, D, H, W)
        Crops (already normalised per channel).
    masks : numpy.ndarray (N, D, H, W)
        Their lesion masks.
    dimensions : str
        ``2d`` or ``2.5d`` (``3d`` returns X unchanged).
    k : int
        Slices per case (:func:`lesion_slices`).
    neighbours : int
        2.5D: slices per channel group (odd).
    cases : sequence of str, optional
        Case ids for error messages.

    Raises
    ------
    SliceError
        A case without lesion voxel in its crop (named).
    """
    if dimensions == "3d":
        return X
    if dimensions not in ("2d", "2.5d"):
        raise ValueError(f"unknown deep.dimensions {dimensions!r}: use 3d, 2.5d or 2d")
    if masks is None or len(masks) != len(X):
        raise ValueError(f"deep.dimensions: {dimensions} needs the crops' lesion masks (one per crop)")
    n = int(neighbours) if dimensions == "2.5d" else 1
    N, C, _, H, W = X.shape
    per = C * n
    out = np.full((N, int(k) * per, H, W), np.nan, dtype=np.float32)
    for i in range(N):
        case = str(cases[i]) if cases is not None else f"#{i}"
        z = lesion_slices(masks[i], k, case)
        part = case_slices(X[i], masks[i], z, n, case)
        out[i, :len(part)] = part
    return out


def slice_masks(masks: np.ndarray, k: int, cases=None) -> np.ndarray:
    """The lesion masks of the chosen slices, (N, k, H, W) uint8, padding slices 255 (ignored), for the multi-task decoder."""
    N, _, H, W = masks.shape
    out = np.full((N, int(k), H, W), 255, dtype=np.uint8)
    for i in range(N):
        z = lesion_slices(masks[i], k, str(cases[i]) if cases is not None else f"#{i}")
        out[i, :len(z)] = (masks[i][z] > 0)
    return out


def mean_of_logits(slice_logits: np.ndarray, case_index: np.ndarray, n_cases: int) -> np.ndarray:
    """Case-level logits: the mean of each case's slice logits.

    Parameters
    ----------
    slice_logits : array (M,)
    case_index : array of int (M,)
        The case (0 .. n_cases - 1) of each slice.
    n_cases : int

    Returns
    -------
    numpy.ndarray (n_cases,); NaN for a case without slice.
    """
    slice_logits = np.asarray(slice_logits, dtype=float)
    case_index = np.asarray(case_index, dtype=int)
    total = np.bincount(case_index, weights=slice_logits, minlength=n_cases)
    count = np.bincount(case_index, minlength=n_cases)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
