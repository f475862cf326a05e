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
