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
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    params = dict(params)
    params["setting"] = {**(params.get("setting") or {}), "label": int(label)}
    extractor = featureextractor.RadiomicsFeatureExtractor(params)
    result = extractor.execute(image, mask, label=int(label))
    features, diagnostics = {}, {}
    for key, value in result.items():
        if key.startswith(DIAGNOSTICS_PREFIX):
            diagnostics[key] = str(value)
        else:
            features[key] = float(value)
    return features, diagnostics
