"""Radiomics feature extraction with pyradiomics (van Griethuysen et al. 2017, Cancer Res 77:e104).

Features are named ``<image type>_<class>_<feature>`` as pyradiomics names them
(``original_firstorder_Mean``); pyradiomics' ``diagnostics_*`` entries are returned separately
so that they never enter the feature table.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import SimpleITK as sitk
import yaml


def load_params(path: str | os.PathLike) -> dict:
    """Read a pyradiomics parameter file (YAML) into a dict."""
    with open(path) as fh:
        params = yaml.safe_load(fh) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: not a pyradiomics parameter file (expected a mapping)")
    return params


def resegmentation_range(image: sitk.Image, mask: sitk.Image, label: int = 1, value_range=None,
                         outlier_sd: float | None = None) -> list[float] | None:
    """Absolute re-segmentation range combining a range and outlier filtering (IBSI 2.5).

    IBSI allows both re-segmentation methods together; pyradiomics applies one
    (``resegmentMode``). The two are combined here into one absolute range, in IBSI's order: the
    range ``[a, b]`` first, then mean ± ``outlier_sd`` SD (population SD) of the ROI voxels left
    inside it. This reproduces IBSI's configuration E reference (range [-1000, 400] HU and 3 SD on
    the CT phantom: 44 484 voxels in the intensity mask).

    Parameters
    ----------
    image : SimpleITK.Image
        Interpolated image (HU, SUV or normalised units).
    mask : SimpleITK.Image
        Label mask on the image's grid.
    label : int
        Label of the region of interest.
    value_range : sequence of 2 (float or None), optional
        ``[a, b]`` in image units; ``None`` for an open end.
    outlier_sd : float, optional
        Half-width of the outlier window in SDs (IBSI: 3).

    Returns
    -------
    list of 2 float, or None
        ``[lower, upper]`` (an open end as -inf / inf), or None when neither is given.

    Raises
    ------
    ValueError
        When no ROI voxel lies inside the range.
    """
    if value_range is None and outlier_sd is None:
        return None
    lo, hi = _bounds(value_range)
    arr = sitk.GetArrayViewFromImage(image)
    values = arr[sitk.GetArrayViewFromImage(mask) == int(label)].astype(float)
    values = values[(values >= lo) & (values <= hi)]
    if values.size == 0:
        raise ValueError(f"no voxel of label {label} lies inside the re-segmentation range [{lo:g}, {hi:g}]")
    if outlier_sd is not None:
        mean, sd = float(values.mean()), float(values.std())
        lo, hi = max(lo, mean - outlier_sd * sd), min(hi, mean + outlier_sd * sd)
    return [float(lo), float(hi)]


def _bounds(value_range) -> tuple[float, float]:
    if value_range is None:
        return -np.inf, np.inf
    if len(value_range) != 2:
        raise ValueError(f"re-segmentation range must be [lower, upper] (null for an open end), got {value_range}")
    lo = -np.inf if value_range[0] is None else float(value_range[0])
    hi = np.inf if value_range[1] is None else float(value_range[1])
    if lo > hi:
        raise ValueError(f"re-segmentation range [{lo:g}, {hi:g}] is empty (lower > upper)")
    return lo, hi


def scan_params(params: dict, image: sitk.Image | None = None, mask: sitk.Image | None = None, label: int = 1,
                discretisation: dict | None = None, resegment=None, outlier_sd: float | None = None) -> dict:
    """pyradiomics parameters of one scan: ``params`` with the modality's settings merged in.

    Parameters
    ----------
    params : dict
        pyradiomics parameters from the file (``setting``, ``imageType``, ``featureClass``); not
        modified.
    image, mask : SimpleITK.Image, optional
        The scan; needed only when ``resegment`` and ``outlier_sd`` are both given (the combined
        range depends on the ROI's intensities, see :func:`resegmentation_range`).
    label : int
        Label of the region of interest.
    discretisation : dict, optional
        ``{"bin_width": w}`` (fixed bin size, IBSI 2.7; ``w`` in image units: HU, SUV, SD units)
        -> pyradiomics ``binWidth`` (``binCount`` removed), or ``{"bin_count": n}`` (fixed bin
        number) -> ``binCount`` (``binWidth`` removed). pyradiomics aligns fixed-width bins on
        multiples of ``w`` and numbers them from the bin holding the ROI minimum (IBSI starts them
        at the range's lower bound: a lower bound that is a multiple of ``w`` gives the same bins,
        though possibly numbered differently).
    resegment : sequence of 2 (float or None), optional
        Range re-segmentation ``[a, b]`` (IBSI 2.5) -> ``resegmentRange`` with
        ``resegmentMode: absolute`` (an open upper end gives ``[a]``).
    outlier_sd : float, optional
        Outlier filtering, mean ± ``outlier_sd`` SD inside the ROI (IBSI 2.5; 3 in IBSI) ->
        ``resegmentRange: [-k, k]`` with ``resegmentMode: sigma``. With ``resegment`` too, both
        become one absolute range (:func:`resegmentation_range`).

    Returns
    -------
    dict
        New parameters. pyradiomics keeps ``resegmentShape: false`` (its default), so shape
        features use the original mask (IBSI's morphological mask) and every other class the
        re-segmented one (IBSI's intensity mask). pyradiomics records the settings used in
        ``diagnostics_Configuration_Settings``.

    Raises
    ------
    ValueError
        On a discretisation with neither or both of ``bin_width`` / ``bin_count`` or a
        non-positive value, an empty range, or a combined re-segmentation without image and mask.
    """
    setting = dict(params.get("setting") or {})
    if discretisation:
        keys = {k for k, v in discretisation.items() if v is not None}
        if len(keys) != 1 or not keys <= {"bin_width", "bin_count"}:
            raise ValueError(f"discretisation must name one of bin_width or bin_count, got {discretisation}")
        (key,) = keys
        value = discretisation[key]
        if value <= 0:
            raise ValueError(f"discretisation {key} must be positive, got {value}")
        setting.pop("binWidth", None)
        setting.pop("binCount", None)
        setting["binWidth" if key == "bin_width" else "binCount"] = float(value) if key == "bin_width" else int(value)
    if resegment is not None and outlier_sd is not None:
        if image is None or mask is None:
            raise ValueError("range and outlier re-segmentation together need the image and mask")
        lo, hi = resegmentation_range(image, mask, label, resegment, outlier_sd)
        setting.update(resegmentRange=[lo, hi], resegmentMode="absolute")
    elif resegment is not None:
        lo, hi = _bounds(resegment)
        setting.update(resegmentRange=[lo] if np.isinf(hi) else [lo, hi], resegmentMode="absolute")
    elif outlier_sd is not None:
        if outlier_sd <= 0:
            raise ValueError(f"outlier_sd must be positive, got {outlier_sd}")
        setting.update(resegmentRange=[-float(outlier_sd), float(outlier_sd)], resegmentMode="sigma")
    return {**params, "setting": setting}


def extract_features(image: sitk.Image, mask: sitk.Image, params: dict, label: int = 1) -> tuple[dict, dict]:
    """Extract radiomics features of one region of interest.

    Parameters
    ----------
    image : SimpleITK.Image
        Preprocessed image (HU, SUV or normalised units).
    mask : SimpleITK.Image
        Label mask on the image's grid.
    params : dict
        pyradiomics parameters (``setting``, ``imageType``, ``featureClass``).
    label : int
        Label of the region of interest.

    Returns
    -------
    features : dict of str -> float
        Feature name -> value, in pyradiomics' order.
    diagnostics : dict of str -> str
        pyradiomics' ``diagnostics_*`` entries (versions, image and mask hashes, ROI statistics).

    Raises
    ------
    ValueError
        From pyradiomics, e.g. when the ROI is too small or the label is absent.
    """
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    params = dict(params)
    params["setting"] = {**params.get("setting", {}), "label": int(label)}
    extractor = featureextractor.RadiomicsFeatureExtractor(params)
    result = extractor.execute(image, mask, label=int(label))
    features, diagnostics = {}, {}
    for key, value in result.items():
        if key.startswith("diagnostics_"):
            diagnostics[key] = str(value)
        else:
            features[key] = float(np.asarray(value, dtype=float))
    return features, diagnostics
