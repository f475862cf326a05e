"""Radiomics feature extraction with pyradiomics (van Griethuysen et al. 2017, Cancer Res 77:e104).

The extraction contract:

* the filters (image types: ``Original``, ``LoG``, ``Wavelet``, ...), feature classes and settings
  come from a pyradiomics parameter file (``config/radiomics/*.yaml``; see
  https://pyradiomics.readthedocs.io/en/latest/customization.html);
* every feature is named ``<image type>_<class>_<feature>`` exactly as pyradiomics names it, e.g.
  ``original_glcm_Idm``, ``log-sigma-1-0-mm-3D_firstorder_Mean``, ``wavelet-LLH_glcm_Idm``: the
  image type may contain hyphens but never an underscore, so the name splits into exactly three
  parts at its underscores (:func:`split_feature_name`);
* pyradiomics' ``diagnostics_*`` entries (versions, settings, image and mask hashes, ROI
  statistics) are provenance: they are returned separately and never enter the feature table;
* a feature value that is not finite (NaN, inf) is not a measurement; :func:`nonfinite_features`
  names them so that the caller can treat the scan as failed instead of passing NaN on silently.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import SimpleITK as sitk
import yaml

#: prefix of pyradiomics' provenance entries (kept out of the feature table)
DIAGNOSTICS_PREFIX = "diagnostics_"


def load_params(path: str | os.PathLike) -> dict:
    """Read a pyradiomics parameter file (YAML) into a dict.

    Parameters
    ----------
    path : str or path-like
        YAML file with the sections ``setting``, ``imageType`` and ``featureClass`` (pyradiomics'
        parameter-file format).

    Returns
    -------
    dict
        The parameters, as pyradiomics' ``RadiomicsFeatureExtractor`` accepts them.

    Raises
    ------
    OSError
        When the file cannot be read.
    ValueError
        When the file does not hold a mapping.
    """
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


def split_feature_name(name: str) -> tuple[str, str, str]:
    """Split a feature name into ``(image type, feature class, feature)``.

    Parameters
    ----------
    name : str
        A pyradiomics feature name such as ``original_firstorder_Mean``,
        ``log-sigma-2-0-mm-3D_glcm_Idm`` or ``wavelet-HLL_glszm_ZoneEntropy``.

    Returns
    -------
    tuple of str
        Image type (``original``, ``log-sigma-2-0-mm-3D``, ``wavelet-HLL``, ...), feature class
        (``firstorder``, ``shape``, ``shape2D``, ``glcm``, ``glrlm``, ``glszm``, ``gldm``,
        ``ngtdm``) and feature name.

    Raises
    ------
    ValueError
        When the name does not have exactly three non-empty parts separated by underscores, or is
        a ``diagnostics_`` entry.
    """
    parts = name.split("_")
    if name.startswith(DIAGNOSTICS_PREFIX) or len(parts) != 3 or not all(parts):
        raise ValueError(f"'{name}' is not a feature name of the form <image type>_<class>_<feature>")
    return parts[0], parts[1], parts[2]


def nonfinite_features(features: dict) -> list[str]:
    """Names of the features whose value is NaN or infinite.

    Parameters
    ----------
    features : dict of str -> float
        Feature name -> value, as :func:`extract_features` returns them.

    Returns
    -------
    list of str
        The names, in the order of ``features`` (empty when every value is finite).
    """
    return [name for name, value in features.items() if not math.isfinite(value)]


#: Most grey levels a fixed bin width may give in a region of interest (texture matrices are
#: levels x levels; beyond this numpy fails with "Maximum allowed size exceeded").
MAX_GREY_LEVELS = 100_000


def _check_grey_levels(image: sitk.Image, mask: sitk.Image, setting: dict, label: int) -> None:
    """Refuse a region whose intensity range needs more than :data:`MAX_GREY_LEVELS` fixed-width bins."""
    width = setting.get("binWidth")
    if setting.get("binCount") or not width or image.GetSize() != mask.GetSize():
        return
    values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) == label]
    if values.size == 0:
        return
    lo, hi = float(np.min(values)), float(np.max(values))
    levels = (hi - lo) / float(width)
    if not np.isfinite(levels) or levels > MAX_GREY_LEVELS:
        raise ValueError(f"the region's intensities span [{lo:.4g}, {hi:.4g}], {levels:.3g} bins of width {width:g} "
                         f"(at most {MAX_GREY_LEVELS}); a voxel value is implausible (fix the image's export) or "
                         f"set extraction.resegment for the modality")


def extract_features(image: sitk.Image, mask: sitk.Image, params: dict, label: int = 1) -> tuple[dict, dict]:
    """Extract radiomics features of one region of interest with pyradiomics.

    Parameters
    ----------
    image : SimpleITK.Image
        Preprocessed image, 2D or 3D (HU, SUV or normalised units; spacing in mm).
    mask : SimpleITK.Image
        Label mask on the image's grid (pyradiomics resamples it onto the image grid first when
        ``setting.correctMask`` is true and the geometries differ).
    params : dict
        pyradiomics parameters: ``setting``, ``imageType`` (filters: ``Original``, ``LoG`` with
        ``sigma`` in mm, ``Wavelet``, ...) and ``featureClass`` (see :func:`load_params`).
    label : int
        Label of the region of interest; overrides ``setting.label``.

    Returns
    -------
    features : dict of str -> float
        ``<image type>_<class>_<feature>`` -> value, in pyradiomics' order; shape features are
        computed on the original image only (pyradiomics' rule), the other classes once per image
        type. Values may be NaN when pyradiomics cannot compute a feature (see
        :func:`nonfinite_features`).
    diagnostics : dict of str -> str
        pyradiomics' ``diagnostics_*`` entries (versions, settings, image and mask hashes, ROI
        statistics), as strings.

    Raises
    ------
    ValueError
        From pyradiomics, e.g. when the ROI is too small, the label is absent, or the parameters
        fail pyradiomics' schema validation.
    """
    from radiomics import featureextractor  # heavy optional dependency: imported on first use

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    logging.getLogger("pykwalify").setLevel(logging.WARNING)  # its "validation.valid" on every parameter file
    params = dict(params)
    params["setting"] = {**(params.get("setting") or {}), "label": int(label)}
    _check_grey_levels(image, mask, params["setting"], label)
    extractor = featureextractor.RadiomicsFeatureExtractor(params)
    result = extractor.execute(image, mask, label=int(label))
    features, diagnostics = {}, {}
    for key, value in result.items():
        if key.startswith(DIAGNOSTICS_PREFIX):
            diagnostics[key] = str(value)
        else:
            features[key] = float(value)
    return features, diagnostics


def extract_scan(image_path: str | os.PathLike, mask_path: str | os.PathLike, params_path: str | os.PathLike,
                 label: int = 1, overrides: dict | None = None) -> tuple[dict, dict]:
    """Read one preprocessed scan and its mask and extract its features (one pyradiomics ``execute``).

    This is what the ``extract_case`` rule does for each scan of a case, in one process per case
    (issue 21: the interpreter and the SimpleITK / numpy / pyradiomics imports are paid once per
    case, not once per scan). Filtered images (LoG, wavelet, ...) are computed once per scan:
    pyradiomics' ``execute`` builds each image type once and computes every enabled feature
    class on it.

    Parameters
    ----------
    image_path, mask_path : path-like
        Preprocessed image and its label mask (NIfTI, same grid), as the DAG wrote them: read by
        SimpleITK alone (:func:`acceflow.io.images.read_pipeline_image`).
    params_path : path-like
        pyradiomics parameter file (:func:`load_params`).
    label : int
        Label of the region of interest.
    overrides : dict, optional
        The modality's ``discretisation``, ``resegment`` and ``outlier_sd`` (:func:`scan_params`).

    Returns
    -------
    features, diagnostics : dict
        As :func:`extract_features`; every feature value is finite.

    Raises
    ------
    ValueError
        When pyradiomics fails, or returns NaN/inf for any feature (named, first ten).
    """
    from acceflow.io.images import read_pipeline_image

    image, mask = read_pipeline_image(image_path), read_pipeline_image(mask_path)
    params = scan_params(load_params(params_path), image, mask, label, **(overrides or {}))
    features, diagnostics = extract_features(image, mask, params, label=label)
    bad = nonfinite_features(features)
    if bad:
        raise ValueError(f"pyradiomics returned NaN/inf for {len(bad)} feature(s): {', '.join(bad[:10])}"
                         + (", ..." if len(bad) > 10 else ""))
    return features, diagnostics
