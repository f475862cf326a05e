"""Image and mask perturbations for robustness without repeats (after Zwanenburg et al. 2019).

Zwanenburg A, Leger S, Agolli L, et al. (2019). Assessing robustness of radiomic features by
image perturbation. Sci Rep 9:614. Each perturbed copy of a scan is one "repeat"; the ICC of a
feature over the N copies of every case (ICC(1,1), one-way random) measures how much of its
between-case variance survives small, plausible changes of acquisition and delineation.

The chain (``chain``, applied in this order; each draw comes from a generator seeded with
``(seed, crc32(scan id), index)``, so a perturbation is reproducible and independent of the
others):

* ``rotation``: rotation about the z axis (in-plane) through the mask's centroid by an angle
  uniform in ``[-rotation_deg, rotation_deg]`` (Zwanenburg: -15 to 15 degrees).
* ``translation``: shift by a fraction uniform in ``[0, 1)`` of a voxel along each axis
  (Zwanenburg: 0, 0.25, 0.5, 0.75 voxel). Rotation and translation are one resampling: image
  linear interpolation, mask linear then thresholded at 0.5 (as Zwanenburg).
* ``noise``: additive Gaussian noise with the SD of the image's own noise, estimated as
  ``MAD(diff_x) / (0.6745 * sqrt(2))`` of neighbouring-voxel differences (Donoho & Johnstone's
  MAD estimator on a first-order high-pass; Zwanenburg used a wavelet-based estimate of the
  same quantity).
* ``volume``: the mask grown or shrunk to ``(1 + tau)`` times its volume, ``tau`` uniform in
  ``[-volume_fraction, volume_fraction]`` (Zwanenburg: tau in -0.20..0.20), by keeping the voxels
  with the smallest signed distance to its boundary (slightly smoothed to break ties), exactly
  that many.
* ``contour``: contour randomisation: the signed distance map plus a smooth Gaussian random field
  (SD ``contour_sd_mm``, Gaussian correlation length ``contour_corr_mm``) thresholded at 0, so
  the boundary moves in and out in patches as a different reader's would. Zwanenburg et al.
  randomise the contour with supervoxels; this is a simpler stand-in with the same purpose.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from acceflow.runtime import require_keys

__all__ = ["PERTURBATIONS", "SETTING_KEYS", "perturb_scan", "estimate_noise_sd"]

PERTURBATIONS = ("rotation", "translation", "noise", "volume", "contour")
#: The keys of ``reproducibility.perturbation`` that :func:`perturb_scan` takes. Their defaults live
#: in the config schema only (workflow/schemas/config.schema.yaml).
SETTING_KEYS = ("rotation_deg", "volume_fraction", "contour_sd_mm", "contour_corr_mm")


def estimate_noise_sd(image: sitk.Image) -> float:
    """Noise SD from the median absolute neighbouring-voxel difference along x (robust to edges)."""
    a = sitk.GetArrayFromImage(image).astype(float)
    if a.shape[-1] < 2:
        return 0.0
    d = np.diff(a, axis=-1).ravel()
    return float(np.median(np.abs(d - np.median(d))) / 0.6745 / math.sqrt(2.0))


def _centroid(mask: sitk.Image, label: int) -> tuple[float, ...]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask == label, sitk.sitkUInt8))
    if not stats.HasLabel(1):
        raise ValueError(f"the mask has no voxel with label {label}")
    return stats.GetCentroid(1)


def _resample(image, mask, transform, label):
    img = sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    msk = sitk.Resample(sitk.Cast(mask == label, sitk.sitkFloat32), mask, transform, sitk.sitkLinear, 0.0)
    return img, sitk.Cast(msk >= 0.5, sitk.sitkUInt8)


def _signed_distance(mask: sitk.Image) -> np.ndarray:
    """Signed distance (mm) to the mask's boundary, negative inside."""
    d = sitk.SignedMaurerDistanceMap(mask, squaredDistance=False, useImageSpacing=True, insideIsPositive=False)
    return sitk.GetArrayFromImage(d)


def _from_array(arr, ref):
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(ref)
    return out


def _smooth_field(shape, spacing_zyx, corr_mm, rng) -> np.ndarray:
    field = rng.standard_normal(shape)
    sigma = [corr_mm / s for s in spacing_zyx]
    field = ndimage.gaussian_filter(field, sigma, mode="wrap")
    sd = field.std()
    return field / sd if sd > 0 else field


def perturb_scan(image: sitk.Image, mask: sitk.Image, chain, index: int, seed: int = 42, scan_id: str = "",
                 label: int = 1, **settings) -> tuple[sitk.Image, sitk.Image, dict]:
    """One perturbed copy of a scan (image and mask).

    Parameters
    ----------
    image, mask : SimpleITK.Image
        The (preprocessed) image and its mask on the same grid.
    chain : sequence of str
        Perturbations to apply, a subset of :data:`PERTURBATIONS` (applied in that order).
    index : int
        Which copy (1, 2, ...); with ``seed`` and ``scan_id`` it seeds the random draws.
    seed : int
    scan_id : str
    label : int
        The mask's label of the region of interest (the output mask has label 1).
    **settings
        All of :data:`SETTING_KEYS`: ``rotation_deg``, ``volume_fraction``, ``contour_sd_mm``,
        ``contour_corr_mm``, from the complete ``reproducibility.perturbation`` section, e.g.
        ``acceflow.study.settings.section_settings('reproducibility', {...})['perturbation']``;
        no defaults are filled here. Other keys of the section are ignored.

    Returns
    -------
    image : SimpleITK.Image (float32)
    mask : SimpleITK.Image (uint8, 1 = region of interest)
    draws : dict
        What was drawn (angle, shift, noise SD, volume fraction), for the log.

    Raises
    ------
    ValueError
        On an unknown perturbation, an empty mask, or settings without a key of
        :data:`SETTING_KEYS` (the message names it).
    """
    unknown = [c for c in chain if c not in PERTURBATIONS]
    if unknown:
        raise ValueError(f"unknown perturbation(s) {unknown}; choose from {list(PERTURBATIONS)}")
    s = require_keys(settings, SETTING_KEYS, "the perturbation settings",
                     "e.g. acceflow.study.settings.section_settings('reproducibility', {...})['perturbation'] "
                     "fills the schema's defaults")
    rng = np.random.default_rng([int(seed), zlib.crc32(str(scan_id).encode()), int(index)])
    draws: dict = {}
    img = sitk.Cast(image, sitk.sitkFloat32)
    msk = sitk.Cast(mask == label, sitk.sitkUInt8)
    if "rotation" in chain or "translation" in chain:
        t = sitk.Euler3DTransform()
        t.SetCenter(_centroid(msk, 1))
        if "rotation" in chain:
            angle = float(rng.uniform(-s["rotation_deg"], s["rotation_deg"]))
            t.SetRotation(0.0, 0.0, math.radians(angle))
            draws["rotation_deg"] = angle
        if "translation" in chain:
            shift = rng.uniform(0.0, 1.0, 3) * np.asarray(image.GetSpacing())
            t.SetTranslation(tuple(float(v) for v in shift))
            draws["translation_mm"] = [float(v) for v in shift]
        img, msk = _resample(img, msk, t, 1)
    if "noise" in chain:
        sd = estimate_noise_sd(image)
        arr = sitk.GetArrayFromImage(img) + rng.normal(0.0, sd, img.GetSize()[::-1]).astype(np.float32)
        noisy = sitk.GetImageFromArray(arr)
        noisy.CopyInformation(img)
        img = noisy
        draws["noise_sd"] = sd
    if "volume" in chain:
        tau = float(rng.uniform(-s["volume_fraction"], s["volume_fraction"]))

        # the n_target voxels nearest the inside; the distance map is smoothed slightly (half a
        # voxel) so that the many ties of a voxel grid are broken by the local curvature
        dist = ndimage.gaussian_filter(_signed_distance(msk).astype(float), 0.5)
        n_target = max(1, int(round((1.0 + tau) * int(sitk.GetArrayViewFromImage(msk).sum()))))
        chosen = np.zeros(dist.size, dtype=bool)
        chosen[np.argsort(dist, axis=None, kind="stable")[:n_target]] = True
        msk = _from_array(chosen.reshape(dist.shape), msk)
        draws["volume_fraction"] = tau
    if "contour" in chain:
        dist = _signed_distance(msk)
        spacing_zyx = np.asarray(msk.GetSpacing())[::-1]
        field = _smooth_field(dist.shape, spacing_zyx, s["contour_corr_mm"], rng) * s["contour_sd_mm"]
        new = dist + field <= 0
        if new.sum() >= 10:  # keep a region pyradiomics can measure
            msk = _from_array(new, msk)
        draws["contour_sd_mm"] = s["contour_sd_mm"]
    if int(sitk.GetArrayViewFromImage(msk).sum()) == 0:
        raise ValueError(f"perturbation {index} of {scan_id!r} left an empty mask")
    return img, msk, draws
