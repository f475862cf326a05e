"""IBSI 1 conformance check of acceflow's radiomics extraction (pyradiomics).

The Image Biomarker Standardisation Initiative (IBSI 1; Zwanenburg et al. 2020, Radiology 295:328;
reference manual arXiv:1612.07003, chapter 5 "Reference data sets") publishes reference values,
with tolerances, for a 5 x 4 x 4 digital phantom and for a lung cancer CT image (``PAT1``)
processed in five configurations A-E. This module computes the same features with pyradiomics
(through :func:`acceflow.imaging.extract.extract_features`, the function the study's extraction
uses) and compares them with the reference values, feature by feature.

What is acceflow's and what is pyradiomics'
-------------------------------------------
pyradiomics computes every feature. acceflow does the image processing that IBSI prescribes and
pyradiomics does differently (pyradiomics FAQ, "Does PyRadiomics adhere to IBSI definitions of
features?", https://pyradiomics.readthedocs.io/en/latest/faq.html), so that the check tests the
feature definitions and not a resampling difference:

* interpolation grid (IBSI manual 2.4, "Notes on interpolation" in chapter 5): grid size
  ``ceil(n * s_old / s_new)``, grid centred on the original grid (pyradiomics aligns the origin
  voxel's corner), nearest-boundary extrapolation;
* intensities rounded to the nearest integer after interpolation (configurations B-E, CT in HU);
* the ROI mask interpolated like an image (linear) and thresholded at a partial volume of 0.5
  (pyradiomics resamples masks with nearest neighbour);
* configuration E's range *and* 3-sigma re-segmentation: pyradiomics applies one mode at a time,
  so the intersection of the two intervals is computed here and passed as an absolute range (as
  the pyradiomics FAQ does for E).

These steps are the study's own functions, not a second implementation: the grid, interpolation,
rounding and mask thresholding are :mod:`acceflow.imaging.preprocess` (``resampled_grid``,
``resample``, ``round_intensities``, ``resample_mask``, called through ``preprocess``; see
:func:`ibsi_grid`, :func:`ibsi_resample`), and the combined re-segmentation interval is
:func:`acceflow.imaging.extract.resegmentation_range`, so a conformance result speaks for the code
that preprocesses the study's scans.

What remains is pyradiomics' own behaviour and is reported, never corrected: fixed-bin-size
discretisation with bin edges at multiples of the bin width (IBSI starts the bins at the lower
bound of the re-segmentation range), kurtosis without the -3, the 1/N covariance of the PCA axes,
and the IBSI features pyradiomics does not have (GLDZM, IVH, local intensity peaks, per-slice 2D
aggregation, ...). The mapping from pyradiomics names to IBSI tags, with those deviations, is the
package file ``acceflow/imaging/ibsi_map.tsv`` (:func:`load_map`).

Texture aggregation (IBSI manual, chapter 3, aggregation of texture matrices): pyradiomics
computes GLCM and GLRLM features per direction and averages them (IBSI "3D, averaged"; with ``force2D``, directions in the slice plane
pooled over all slices: "2.5D, direction-merged"); with ``weightingNorm: no_weighting`` it sums the
directional matrices first (IBSI "merged"). GLSZM, GLDM (IBSI NGLDM) and NGTDM are single
matrices ("3D"; with ``force2D``, "2.5D").

A value matches when ``|value - reference| <= tolerance + r``, where ``r`` is half a unit in the
third significant digit of the reference: the IBSI reference values are given to three significant
digits (the digital phantom's with tolerance 0), so a value that rounds to the reference matches.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from acceflow.imaging.extract import extract_features, resegmentation_range
from acceflow.imaging.preprocess import preprocess, resampled_grid, round_intensities, target_spacing
from acceflow.io.images import read_image

__all__ = [
    "CONFIGURATIONS", "EXTRACTIONS", "IBSIConfiguration", "MATCH", "MISMATCH", "NOT_COMPUTED", "TABLE_COLUMNS",
    "SUMMARY_COLUMNS", "MAX_STUDY_BINS", "load_map", "load_reference", "ibsi_grid", "ibsi_resample",
    "preprocess_ibsi", "pyradiomics_params", "compute_configuration", "is_match",
    "compare_with_reference", "summarise", "study_settings", "closest_configuration", "crop_to_roi", "compute_study",
    "missing_data_tables", "run_ibsi_check",
]

MATCH, MISMATCH, NOT_COMPUTED = "match", "mismatch", "not computed"

#: Columns of ``analytical/ibsi.tsv`` (one row per configuration x IBSI feature).
TABLE_COLUMNS = ["configuration", "reference_configuration", "ibsi_tag", "ibsi_family", "ibsi_feature", "feature",
                 "consensus", "reference", "tolerance", "value", "difference", "match", "known_deviation",
                 "deviation"]
#: Columns of ``analytical/ibsi_summary.tsv`` (one row per configuration).
SUMMARY_COLUMNS = ["configuration", "reference_configuration", "data_set", "n_reference", "n_computed", "n_match",
                   "n_mismatch", "n_mismatch_known_deviation", "n_not_computed", "match_rate", "n_diagnostics",
                   "n_diagnostics_match", "dimension", "spacing_mm", "interpolation", "intensity_rounding",
                   "resegmentation", "discretisation", "texture_aggregation", "seconds", "note"]

#: The pyradiomics runs of a configuration: extraction name -> settings. ``merged`` runs sum the
#: directional GLCM / GLRLM matrices before computing features (pyradiomics ``weightingNorm``).
EXTRACTIONS = {
    "3D": {"force2D": False},
    "3D_merged": {"force2D": False, "weightingNorm": "no_weighting"},
    "2.5D": {"force2D": True, "force2Ddimension": 0},
    "2.5D_merged": {"force2D": True, "force2Ddimension": 0, "weightingNorm": "no_weighting"},
}

#: Shape features are listed because Compactness1/2 and SphericalDisproportion are off unless named.
_SHAPE = ["MeshVolume", "VoxelVolume", "SurfaceArea", "SurfaceVolumeRatio", "Compactness1", "Compactness2",
          "SphericalDisproportion", "Sphericity", "Maximum3DDiameter", "MajorAxisLength", "MinorAxisLength",
          "LeastAxisLength", "Elongation", "Flatness"]


@dataclass(frozen=True)
class IBSIConfiguration:
    """One IBSI 1 processing configuration (IBSI manual, chapter 5, "Configurations").

    Attributes
    ----------
    name : the configuration's name (``digital_phantom``, ``A`` ... ``E``)
    data_set : ``digital_phantom`` or ``ct_phantom`` (PAT1)
    reference_file : name of the reference-value CSV in ``<ibsi data>/reference_values``
    dimension : ``3D`` (volumetric texture) or ``2D`` (slice-wise: pyradiomics ``force2D``)
    spacing : resampled spacing in mm (x, y, z); ``None`` on an axis keeps it, ``None`` overall: no
        interpolation
    interpolator : image interpolator (``linear``: (bi/tri)linear, ``bspline``: cubic spline)
    round_intensities : round interpolated intensities to the nearest integer (HU)
    partial_volume : threshold on the linearly interpolated mask (IBSI "ROI partial mask volume")
    resegment_range : (low, high) in HU, or ``None``
    outlier_sigma : re-segmentation to mean +/- k SD of the ROI (after the range), or ``None``
    bin_width / bin_count : fixed bin size (FBS) or fixed bin number (FBN) discretisation
    extractions : the pyradiomics runs (keys of :data:`EXTRACTIONS`)
    """

    name: str
    data_set: str
    reference_file: str
    dimension: str
    spacing: tuple | None = None
    interpolator: str | None = None
    round_intensities: bool = False
    partial_volume: float = 0.5
    resegment_range: tuple | None = None
    outlier_sigma: float | None = None
    bin_width: float | None = None
    bin_count: int | None = None
    extractions: tuple = field(default=("3D", "3D_merged"))

    def describe(self) -> dict:
        """The settings as the summary table shows them (strings, one per column)."""
        if self.spacing is None:
            spacing = "none (original grid)"
        else:
            spacing = " x ".join("orig" if s is None else f"{s:g}" for s in self.spacing)
        reseg = []
        if self.resegment_range is not None:
            reseg.append(f"range [{self.resegment_range[0]:g}, {self.resegment_range[1]:g}]")
        if self.outlier_sigma is not None:
            reseg.append(f"outliers mean +/- {self.outlier_sigma:g} SD")
        disc = (f"FBS {self.bin_width:g}" if self.bin_width is not None else f"FBN {self.bin_count}")
        agg = ("3D averaged + merged" if self.dimension == "3D" else "2.5D direction-merged + merged")
        if self.data_set == "digital_phantom":
            agg = "3D and 2.5D, averaged + merged"
        return {"dimension": self.dimension, "spacing_mm": spacing,
                "interpolation": self.interpolator or "none",
                "intensity_rounding": "nearest integer" if self.round_intensities else "no",
                "resegmentation": "; ".join(reseg) or "none", "discretisation": disc,
                "texture_aggregation": agg}


#: IBSI 1 configurations, as in the IBSI manual chapter 5 (verified against the ``ibsi_doc``
#: shipped with the data: A 2D no interpolation, B 2D 2 mm in-plane bilinear, C-E 3D 2 mm
#: isotropic; E tricubic spline; C and E re-segment to [-1000, 400] HU, A and B to [-500, 400];
#: D and E remove outliers beyond 3 SD; A and C fixed bin size 25 HU, B, D and E 32 bins).
CONFIGURATIONS = {
    "digital_phantom": IBSIConfiguration(
        "digital_phantom", "digital_phantom", "ibsi_1_reference_values_digital_phantom.csv", "3D",
        bin_width=1.0, extractions=("3D", "3D_merged", "2.5D", "2.5D_merged")),
    "A": IBSIConfiguration("A", "ct_phantom", "ibsi_1_reference_values_config_A.csv", "2D",
                           resegment_range=(-500.0, 400.0), bin_width=25.0, extractions=("2.5D", "2.5D_merged")),
    "B": IBSIConfiguration("B", "ct_phantom", "ibsi_1_reference_values_config_B.csv", "2D",
                           spacing=(2.0, 2.0, None), interpolator="linear", round_intensities=True,
                           resegment_range=(-500.0, 400.0), bin_count=32, extractions=("2.5D", "2.5D_merged")),
    "C": IBSIConfiguration("C", "ct_phantom", "ibsi_1_reference_values_config_C.csv", "3D",
                           spacing=(2.0, 2.0, 2.0), interpolator="linear", round_intensities=True,
                           resegment_range=(-1000.0, 400.0), bin_width=25.0),
    "D": IBSIConfiguration("D", "ct_phantom", "ibsi_1_reference_values_config_D.csv", "3D",
                           spacing=(2.0, 2.0, 2.0), interpolator="linear", round_intensities=True,
                           outlier_sigma=3.0, bin_count=32),
    "E": IBSIConfiguration("E", "ct_phantom", "ibsi_1_reference_values_config_E.csv", "3D",
                           spacing=(2.0, 2.0, 2.0), interpolator="bspline", round_intensities=True,
                           resegment_range=(-1000.0, 400.0), outlier_sigma=3.0, bin_count=32),
}

#: Image and mask of each data set, relative to the IBSI data folder (the layout of
#: https://github.com/theibsi/data_sets, folder ``ibsi_1_*``).
DATA_FILES = {
    "digital_phantom": ("data_sets/ibsi_1_digital_phantom/nifti/image/phantom.nii.gz",
                        "data_sets/ibsi_1_digital_phantom/nifti/mask/mask.nii.gz"),
    "ct_phantom": ("data_sets/ibsi_1_ct_radiomics_phantom/nifti/image/phantom.nii.gz",
                   "data_sets/ibsi_1_ct_radiomics_phantom/nifti/mask/mask.nii.gz"),
}

#: Above this many fixed-bin-width grey levels on PAT1 the study's settings are not run (memory).
MAX_STUDY_BINS = 2000

# ----------------------------------------------------------------------------------- tables


def load_map() -> pd.DataFrame:
    """The maintained IBSI tag -> pyradiomics feature table (package file ``ibsi_map.tsv``).

    Returns
    -------
    pandas.DataFrame
        One row per IBSI 1 tag of the reference tables (digital phantom and configurations A-E),
        columns ``ibsi_tag``, ``ibsi_family``, ``ibsi_feature``, ``feature`` (pyradiomics name such
        as ``original_glcm_JointAverage``, ``acceflow_preprocessing_<tag>`` for the diagnostic
        features of acceflow's IBSI preprocessing, empty when not computed), ``extraction`` (the
        pyradiomics run of :data:`EXTRACTIONS` that gives the value; ``any``: every run;
        ``preprocessing``: acceflow's diagnostics), ``grey_level_dependent`` (bool: the value depends
        on the absolute discretised grey levels), ``deviation_kind`` (``deviation``: pyradiomics
        differs from IBSI, which explains a mismatch; ``equivalence``: a mathematically equal
        pyradiomics feature is compared; ``condition``: equal to IBSI under a setting acceflow uses;
        ``not computed``; empty) and ``deviation`` (the text, with its source).

    Source: tags and names of the IBSI reference tables; deviations from the pyradiomics FAQ and
    feature docstrings, and those this check found (marked as such in the text).
    """
    with resources.files("acceflow.imaging").joinpath("ibsi_map.tsv").open("r", encoding="utf-8") as fh:
        table = pd.read_csv(fh, sep="\t", comment="#", dtype=str, keep_default_na=False)
    table["grey_level_dependent"] = table["grey_level_dependent"].eq("yes")
    return table


def load_reference(data_dir: str | os.PathLike, configuration: str) -> pd.DataFrame:
    """IBSI reference values of one configuration.

    Parameters
    ----------
    data_dir : the IBSI data folder (holding ``reference_values/``)
    configuration : a key of :data:`CONFIGURATIONS`

    Returns
    -------
    pandas.DataFrame
        Columns ``ibsi_tag``, ``ibsi_family``, ``ibsi_feature``, ``consensus``, ``reference``,
        ``tolerance`` (floats; NaN where IBSI gives no reference value, "not standardized").

    Raises
    ------
    FileNotFoundError
        When the reference file is missing.
    """
    path = Path(data_dir) / "reference_values" / CONFIGURATIONS[configuration].reference_file
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ref = pd.DataFrame({
        "ibsi_tag": [r["tag"] for r in rows], "ibsi_family": [r["family"] for r in rows],
        "ibsi_feature": [r["feature"] for r in rows], "consensus": [r["consensus"] for r in rows],
        "reference": pd.to_numeric(pd.Series([r["reference value"] for r in rows]), errors="coerce"),
        "tolerance": pd.to_numeric(pd.Series([r["tolerance"] for r in rows]), errors="coerce"),
    })
    return ref


# ---------------------------------------------------------------------------------- images


def ibsi_grid(image: sitk.Image, spacing) -> tuple[list[int], list[float], list[float]]:
    """The IBSI interpolation grid over ``image``: the study's grid, :func:`acceflow.imaging.preprocess.resampled_grid`.

    Grid size ``ceil(n_a * s_a / s_b)`` per axis and the new grid centred on the original one
    (IBSI manual 2.4 and chapter 5, interpolation notes); kept as a name for callers that want the
    spacing too.

    Parameters
    ----------
    image : SimpleITK.Image (3D)
    spacing : sequence of 3 (float or None), mm, (x, y, z); ``None`` keeps an axis as it is

    Returns
    -------
    size : list of 3 int (voxels), spacing : list of 3 float (mm), origin : list of 3 float (mm)

    Raises
    ------
    ValueError
        When a spacing is not positive.
    """
    size, origin = resampled_grid(image, spacing)
    return size, target_spacing(image, spacing), origin


def ibsi_resample(image: sitk.Image, mask: sitk.Image, spacing, interpolator: str = "linear",
                  round_intensities: bool = True, partial_volume: float = 0.5) -> tuple[sitk.Image, sitk.Image]:
    """Interpolate an image and its ROI mask onto the IBSI grid with the study's preprocessing.

    This is :func:`acceflow.imaging.preprocess.preprocess` (no N4, no normalisation) with the mask
    interpolated trilinearly and thresholded, so the conformance check runs the code the study runs:
    :func:`~acceflow.imaging.preprocess.resample` (grid of :func:`ibsi_grid`, nearest-boundary
    extrapolation, float32), :func:`~acceflow.imaging.preprocess.round_intensities` and
    :func:`~acceflow.imaging.preprocess.resample_mask`.

    Parameters
    ----------
    image : SimpleITK.Image, intensities (HU for the CT phantom)
    mask : SimpleITK.Image, binary ROI mask (0 / 1) on the image's grid
    spacing : sequence of 3 (float or None), mm; see :func:`ibsi_grid`
    interpolator : ``linear`` (IBSI bi/trilinear) or ``bspline`` (cubic spline, IBSI "tricubic spline");
        IBSI names are accepted (:func:`acceflow.imaging.preprocess.interpolator_name`)
    round_intensities : round the interpolated intensities to the nearest integer (HU)
    partial_volume : the mask is interpolated linearly and voxels with a value >= this are in the ROI

    Returns
    -------
    (image, mask) : float32 image and mask (the input mask's pixel type and labels) on the new grid

    Raises
    ------
    ValueError
        On an unknown interpolator or a non-positive spacing.
    """
    return preprocess(image, mask, spacing, interpolator, mask_interpolator="linear",
                      mask_threshold=partial_volume, rounding=round_intensities)


def _bbox_dims(mask: np.ndarray) -> tuple[int, int, int]:
    """Bounding-box size (x, y, z) of a (z, y, x) boolean array."""
    if not mask.any():
        return (0, 0, 0)
    idx = np.nonzero(mask)
    z, y, x = (int(i.max() - i.min() + 1) for i in idx)
    return x, y, z


def _stage_diagnostics(image: sitk.Image, int_mask: np.ndarray, morph_mask: np.ndarray, stage: str,
                       image_stage: str | None) -> dict:
    """IBSI diagnostic features (manual chapter 5, "Diagnostic features") of one processing stage."""
    arr = sitk.GetArrayViewFromImage(image)
    out = {}
    size, spacing = image.GetSize(), image.GetSpacing()
    if image_stage:
        for ax, n, s in zip("xyz", size, spacing):
            out[f"img_dim_{ax}_{image_stage}_img"] = float(n)
            out[f"vox_dim_{ax}_{image_stage}_img"] = float(s)
        out[f"mean_int_{image_stage}_img"] = float(arr.mean())
        out[f"min_int_{image_stage}_img"] = float(arr.min())
        out[f"max_int_{image_stage}_img"] = float(arr.max())
    for ax, n, bi, bm in zip("xyz", size, _bbox_dims(int_mask), _bbox_dims(morph_mask)):
        out[f"int_mask_dim_{ax}_{stage}_roi"] = float(n)
        out[f"int_mask_bb_dim_{ax}_{stage}_roi"] = float(bi)
        out[f"morph_mask_bb_dim_{ax}_{stage}_roi"] = float(bm)
    out[f"int_mask_vox_count_{stage}_roi"] = float(int_mask.sum())
    out[f"morph_mask_vox_count_{stage}_roi"] = float(morph_mask.sum())
    vals = arr[int_mask]
    out[f"int_mask_mean_int_{stage}_roi"] = float(vals.mean()) if vals.size else math.nan
    out[f"int_mask_min_int_{stage}_roi"] = float(vals.min()) if vals.size else math.nan
    out[f"int_mask_max_int_{stage}_roi"] = float(vals.max()) if vals.size else math.nan
    return out


def preprocess_ibsi(image: sitk.Image, mask: sitk.Image, cfg: IBSIConfiguration):
    """IBSI image processing of one configuration before pyradiomics (see the module docstring).

    Parameters
    ----------
    image : SimpleITK.Image, the data set's image (cast to float32 and rounded to integers first with
        :func:`acceflow.imaging.preprocess.round_intensities`, as the IBSI manual asks for the NIfTI
        phantoms)
    mask : SimpleITK.Image, its ROI mask
    cfg : the configuration

    Returns
    -------
    image : SimpleITK.Image (float32), the interpolated image
    mask : SimpleITK.Image (uint8, 0 / 1), the interpolated ROI (morphological mask)
    reseg : [low, high] or None, the re-segmentation interval (image units, HU) from
        :func:`acceflow.imaging.extract.resegmentation_range`: the range, then mean +/- k population
        SD of the ROI voxels left inside it; pyradiomics applies it in absolute mode
    diagnostics : dict IBSI diagnostic tag -> value (initial image and ROI, interpolated image and
        ROI, re-segmented ROI); empty for the digital phantom, which has no diagnostic references

    Raises
    ------
    ValueError
        From :func:`ibsi_resample` (unknown interpolator, bad spacing) and from
        :func:`acceflow.imaging.extract.resegmentation_range` (no ROI voxel inside the range);
        RuntimeError from SimpleITK when image and mask do not share a grid.
    """
    img = round_intensities(image)
    msk = sitk.GetImageFromArray((sitk.GetArrayFromImage(mask) > 0.5).astype(np.uint8))
    msk.CopyInformation(image)
    diagnostics = {}
    if cfg.data_set == "ct_phantom":
        m0 = sitk.GetArrayViewFromImage(msk).astype(bool)
        diagnostics.update(_stage_diagnostics(img, m0, m0, "init", "init"))
    if cfg.spacing is not None:
        img, msk = ibsi_resample(img, msk, cfg.spacing, cfg.interpolator, cfg.round_intensities, cfg.partial_volume)
    m1 = sitk.GetArrayViewFromImage(msk).astype(bool)
    reseg = resegmentation_range(img, msk, 1, cfg.resegment_range, cfg.outlier_sigma)
    if cfg.data_set == "ct_phantom":
        diagnostics.update(_stage_diagnostics(img, m1, m1, "interp", "interp"))
        a = sitk.GetArrayViewFromImage(img)
        m2 = m1 & (a >= reseg[0]) & (a <= reseg[1]) if reseg else m1
        diagnostics.update(_stage_diagnostics(img, m2, m1, "reseg", None))
    return img, msk, reseg, diagnostics


# --------------------------------------------------------------------------------- features


def pyradiomics_params(cfg: IBSIConfiguration, extraction: str, reseg=None) -> dict:
    """pyradiomics parameters for one run of a configuration.

    Parameters
    ----------
    cfg : the configuration
    extraction : a key of :data:`EXTRACTIONS` (3D / 2.5D, directional features averaged or merged)
    reseg : (low, high) absolute re-segmentation interval from :func:`preprocess_ibsi`, or None;
        used for a range (A, B, C) and for range-then-outliers (E, which pyradiomics cannot do in one
        mode); outliers only (D) use pyradiomics' ``sigma`` mode instead

    Returns
    -------
    dict : a pyradiomics parameter mapping (``setting``, ``imageType``, ``featureClass``). No
        resampling in pyradiomics (done by :func:`preprocess_ibsi`); GLCM distance 1, symmetrical;
        GLDM alpha 0 (pyradiomics defaults, as IBSI prescribes); ``voxelArrayShift`` 0; shape
        features on the morphological (not re-segmented) mask (``resegmentShape`` false).
        Merged runs compute only GLCM and GLRLM (the only classes the merging changes).

    Raises
    ------
    KeyError
        On an unknown extraction name.
    """
    setting = {"label": 1, "resampledPixelSpacing": None, "voxelArrayShift": 0, "symmetricalGLCM": True,
               "distances": [1], "gldm_a": 0, "minimumROIDimensions": 1, "minimumROISize": 1,
               "resegmentShape": False, **EXTRACTIONS[extraction]}
    if cfg.bin_width is not None:
        setting["binWidth"] = float(cfg.bin_width)
    else:
        setting["binCount"] = int(cfg.bin_count)
    if cfg.outlier_sigma is not None and cfg.resegment_range is None:
        # outliers only (D): pyradiomics' own sigma mode, mean +/- k population SD of the ROI
        setting["resegmentRange"] = [-float(cfg.outlier_sigma), float(cfg.outlier_sigma)]
        setting["resegmentMode"] = "sigma"
    elif reseg is not None:
        setting["resegmentRange"] = [float(reseg[0]), float(reseg[1])]
        setting["resegmentMode"] = "absolute"
    if extraction.endswith("_merged"):
        classes = {"glcm": [], "glrlm": []}
    else:
        classes = {"shape": list(_SHAPE), "firstorder": [], "glcm": [], "glrlm": [], "glszm": [], "gldm": [],
                   "ngtdm": []}
    return {"setting": setting, "imageType": {"Original": {}}, "featureClass": classes}


def _read(data_dir, data_set):
    img_path, mask_path = (Path(data_dir) / p for p in DATA_FILES[data_set])
    return read_image(img_path), read_image(mask_path)


def _pyradiomics_bin_origin(values: np.ndarray, bin_width: float) -> float:
    """Lowest bin edge pyradiomics uses for fixed bin width (radiomics.imageoperations.getBinEdges)."""
    low = float(values.min())
    return low - (low % bin_width)


def compute_configuration(data_dir: str | os.PathLike, configuration: str) -> tuple[dict, dict]:
    """Feature values of one IBSI configuration, keyed by IBSI tag.

    Parameters
    ----------
    data_dir : the IBSI data folder (``data_sets/`` and ``reference_values/``)
    configuration : a key of :data:`CONFIGURATIONS`

    Returns
    -------
    values : dict IBSI tag -> (feature name, value) for every tag of :func:`load_map` that is computed
        (pyradiomics features and acceflow's diagnostic features)
    info : dict with ``bin_shift`` (FBS only: by how many bins pyradiomics' grey levels are lower
        than IBSI's, i.e. (pyradiomics' lowest bin edge - IBSI's) / bin width; 0 when they coincide), ``reseg`` (the absolute interval used) and
        ``seconds`` (wall time)

    Raises
    ------
    acceflow.io.images.ImageError, FileNotFoundError
        When the data set is not in ``data_dir``; ValueError from pyradiomics.
    """
    t0 = time.perf_counter()
    cfg = CONFIGURATIONS[configuration]
    image, mask = _read(data_dir, cfg.data_set)
    img, msk, reseg, diagnostics = preprocess_ibsi(image, mask, cfg)
    mapping = load_map()
    computed = {}
    for extraction in cfg.extractions:
        features, _ = extract_features(img, msk, pyradiomics_params(cfg, extraction, reseg), label=1)
        computed[extraction] = features
    values = {}
    for row in mapping.itertuples(index=False):
        if not row.feature:
            continue
        if row.extraction == "preprocessing":
            if row.ibsi_tag in diagnostics:
                values[row.ibsi_tag] = (row.feature, diagnostics[row.ibsi_tag])
            continue
        runs = list(cfg.extractions) if row.extraction == "any" else [row.extraction]
        for run in runs:
            if run in computed and row.feature in computed[run]:
                values[row.ibsi_tag] = (row.feature, computed[run][row.feature])
                break
    info = {"reseg": reseg, "bin_shift": 0.0, "seconds": None}
    if cfg.bin_width is not None:
        arr = sitk.GetArrayViewFromImage(img)
        roi = arr[sitk.GetArrayViewFromImage(msk).astype(bool)]
        if reseg is not None:
            roi = roi[(roi >= reseg[0]) & (roi <= reseg[1])]
        ibsi_origin = reseg[0] if (cfg.resegment_range is not None) else float(roi.min())
        shift = (_pyradiomics_bin_origin(roi, cfg.bin_width) - ibsi_origin) / cfg.bin_width
        info["bin_shift"] = 0.0 if abs(shift) < 1e-9 else float(shift)
    info["seconds"] = time.perf_counter() - t0
    return values, info


# ------------------------------------------------------------------------------- comparison


def is_match(value: float, reference: float, tolerance: float) -> bool:
    """Whether a value agrees with an IBSI reference value.

    ``|value - reference| <= tolerance + r``, with ``r`` half a unit in the third significant digit
    of the reference (IBSI reference values are reported to three significant digits; the digital
    phantom's tolerance is 0). A reference of 0 has ``r = 0``. A slack of 1e-9 absorbs floating-point
    noise.

    Parameters
    ----------
    value, reference, tolerance : floats (the feature's units)

    Returns
    -------
    bool : False when any of them is NaN.
    """
    if not all(np.isfinite([value, reference, tolerance])):
        return False
    r = 0.0 if reference == 0 else 0.5 * 10.0 ** (math.floor(math.log10(abs(reference))) - 2)
    return abs(value - reference) <= tolerance + r + 1e-9


_BIN_SHIFT = ("pyradiomics starts fixed-bin-size bins at a multiple of the bin width, IBSI at the lower bound of the "
              "re-segmentation range: pyradiomics' grey levels are {k:g} bin(s) lower than IBSI's in this "
              "configuration (pyradiomics FAQ)")


def compare_with_reference(values: dict, reference: pd.DataFrame, mapping: pd.DataFrame, configuration: str,
                           bin_shift: float = 0.0, reference_configuration: str | None = None) -> pd.DataFrame:
    """One row per IBSI reference feature: value, match status and the known deviation.

    Parameters
    ----------
    values : dict IBSI tag -> (feature name, value), from :func:`compute_configuration`
    reference : from :func:`load_reference`; tags without a reference value (IBSI "not
        standardized") are left out
    mapping : from :func:`load_map`
    configuration : the name written in the ``configuration`` column
    bin_shift : bins by which pyradiomics' fixed-bin-size grey levels are lower than IBSI's
        (:func:`compute_configuration`); when not 0, grey-level-dependent features carry that deviation
    reference_configuration : the IBSI configuration whose reference values are used (default:
        ``configuration``)

    Returns
    -------
    pandas.DataFrame with :data:`TABLE_COLUMNS`: ``match`` is ``match`` / ``mismatch`` / ``not
    computed``; ``known_deviation`` is True for a mismatch that a documented pyradiomics deviation
    explains (``deviation_kind`` deviation, or the bin offset); ``difference`` is value - reference.
    """
    info = mapping.set_index("ibsi_tag")
    rows = []
    for r in reference.itertuples(index=False):
        if not np.isfinite(r.reference):
            continue
        m = info.loc[r.ibsi_tag] if r.ibsi_tag in info.index else None
        feature, value = values.get(r.ibsi_tag, ("" if m is None else m["feature"], math.nan))
        notes, explained = [], False
        if m is None:
            notes.append("tag not in acceflow's IBSI map (acceflow/imaging/ibsi_map.tsv)")
        else:
            if m["deviation"]:
                notes.append(m["deviation"])
            explained = m["deviation_kind"] == "deviation"
            if bin_shift and m["grey_level_dependent"]:
                notes.append(_BIN_SHIFT.format(k=bin_shift))
                explained = True
        tol = float(r.tolerance) if np.isfinite(r.tolerance) else 0.0
        if not np.isfinite(value):
            status = NOT_COMPUTED
        else:
            status = MATCH if is_match(float(value), float(r.reference), tol) else MISMATCH
        rows.append({
            "configuration": configuration, "reference_configuration": reference_configuration or configuration,
            "ibsi_tag": r.ibsi_tag, "ibsi_family": r.ibsi_family, "ibsi_feature": r.ibsi_feature,
            "feature": feature, "consensus": r.consensus, "reference": float(r.reference), "tolerance": tol,
            "value": float(value), "difference": float(value) - float(r.reference), "match": status,
            "known_deviation": bool(status == MISMATCH and explained), "deviation": "; ".join(notes),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _is_diagnostic(table: pd.DataFrame) -> pd.Series:
    return table["ibsi_family"].astype(str).str.startswith("Diagnostics")


def summarise(table: pd.DataFrame, settings: dict | None = None, seconds: dict | None = None,
              notes: dict | None = None) -> pd.DataFrame:
    """Match rate per configuration (``analytical/ibsi_summary.tsv``).

    Parameters
    ----------
    table : rows of :func:`compare_with_reference` (several configurations)
    settings : configuration -> dict of the settings columns (``IBSIConfiguration.describe()``)
    seconds : configuration -> wall time of its computation
    notes : configuration -> free text (e.g. why it was not computed)

    Returns
    -------
    pandas.DataFrame with :data:`SUMMARY_COLUMNS`, one row per configuration, in the table's order.
    Feature counts exclude IBSI's diagnostic features (image and ROI sizes after each processing
    step), which are counted apart (``n_diagnostics``, ``n_diagnostics_match``): ``n_reference``
    IBSI features with a reference value, ``n_computed`` of them with a value, ``n_match``,
    ``n_mismatch`` (``n_mismatch_known_deviation`` of them explained by a documented pyradiomics
    deviation), ``n_not_computed``, ``match_rate = n_match / n_computed`` (NaN when none computed).
    """
    settings, seconds, notes = settings or {}, seconds or {}, notes or {}
    out = []
    order = list(dict.fromkeys(table["configuration"])) if len(table) else []
    for name in list(order) + [k for k in notes if k not in order]:
        t = table[table["configuration"] == name]
        diag = _is_diagnostic(t) if len(t) else pd.Series(dtype=bool)
        f, d = t[~diag], t[diag]
        n_comp = int((f["match"] != NOT_COMPUTED).sum())
        n_match = int((f["match"] == MATCH).sum())
        ref_cfg = t["reference_configuration"].iloc[0] if len(t) else name
        data_set = "" if ref_cfg not in CONFIGURATIONS else (
            "IBSI digital phantom" if CONFIGURATIONS[ref_cfg].data_set == "digital_phantom" else "IBSI CT phantom PAT1")
        row = {"configuration": name, "reference_configuration": ref_cfg, "data_set": data_set,
               "n_reference": int(len(f)), "n_computed": n_comp, "n_match": n_match,
               "n_mismatch": int((f["match"] == MISMATCH).sum()),
               "n_mismatch_known_deviation": int(((f["match"] == MISMATCH) & f["known_deviation"].astype(bool)).sum()),
               "n_not_computed": int((f["match"] == NOT_COMPUTED).sum()),
               "match_rate": n_match / n_comp if n_comp else math.nan,
               "n_diagnostics": int((d["match"] != NOT_COMPUTED).sum()),
               "n_diagnostics_match": int((d["match"] == MATCH).sum()),
               "seconds": seconds.get(name, math.nan), "note": notes.get(name, "")}
        row.update({k: settings.get(name, {}).get(k, "") for k in
                    ("dimension", "spacing_mm", "interpolation", "intensity_rounding", "resegmentation",
                     "discretisation", "texture_aggregation")})
        out.append(row)
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


# ------------------------------------------------------------------------------ the study


def study_settings(params: dict, preprocessing: dict | None, modality: str = "CT") -> dict:
    """The study's extraction settings in the terms of :meth:`IBSIConfiguration.describe`.

    Parameters
    ----------
    params : the study's pyradiomics parameters (``extraction.params``, or the modality's file)
    preprocessing : the config's ``preprocessing`` section (``spacing``, ``image_interpolator``,
        ``normalisation``), applied by acceflow's preprocess rule before pyradiomics
    modality : the modality whose normalisation applies (the IBSI phantom is CT)

    Returns
    -------
    dict with the settings columns of the summary, plus ``_dimension``, ``_bin_width``,
    ``_bin_count``, ``_resampled``, ``_reseg`` and ``_merged`` (machine-readable, for
    :func:`closest_configuration`).
    """
    s = dict(params.get("setting") or {})
    pre = preprocessing or {}
    force2d = bool(s.get("force2D", False))
    spacing = pre.get("spacing")
    pyr_spacing = s.get("resampledPixelSpacing")
    parts = []
    if spacing:
        parts.append(" x ".join(f"{float(v):g}" for v in spacing) + f" (acceflow preprocess, "
                     f"{pre.get('image_interpolator', 'bspline')}; mask nearest neighbour)")
    if pyr_spacing:
        parts.append(" x ".join(f"{float(v):g}" for v in pyr_spacing) + " (pyradiomics resampling)")
    if "binCount" in s and s["binCount"]:
        disc, bw, bc = f"FBN {int(s['binCount'])}", None, int(s["binCount"])
    else:
        bw = float(s.get("binWidth", 25))
        disc, bc = f"FBS {bw:g} (pyradiomics bin edges at multiples of the width)", None
    rng, mode = s.get("resegmentRange"), s.get("resegmentMode", "absolute")
    if rng:
        reseg = (f"range [{', '.join(f'{float(v):g}' for v in rng)}]" if mode == "absolute"
                 else f"{mode} [{', '.join(f'{float(v):g}' for v in rng)}]")
    else:
        reseg = "none"
    norm = (pre.get("normalisation") or {}).get(modality, "none")
    merged = s.get("weightingNorm") is not None
    return {"dimension": "2D" if force2d else "3D", "spacing_mm": "; ".join(parts) or "none (original grid)",
            "interpolation": (pre.get("image_interpolator", "bspline") if spacing else
                              (str(s.get("interpolator", "sitkBSpline")) if pyr_spacing else "none")),
            "intensity_rounding": "no" + ("" if norm == "none" else f" (normalisation {norm})"),
            "resegmentation": reseg, "discretisation": disc,
            "texture_aggregation": ("2.5D" if force2d else "3D") + (" merged" if merged else " averaged"),
            "_dimension": "2D" if force2d else "3D", "_bin_width": bw, "_bin_count": bc,
            "_resampled": bool(spacing or pyr_spacing), "_reseg": bool(rng), "_merged": merged}


def closest_configuration(settings: dict) -> str:
    """The IBSI CT configuration (A-E) whose settings are closest to the study's.

    Score (highest wins, ties to the earlier letter): same dimension 4, same discretisation type
    (fixed bin size / number) 2, same bin width or count 1, interpolation done or not alike 1,
    re-segmentation done or not alike 1. Dimension and discretisation change texture features most;
    spacing and re-segmentation change them less (the study's values are then still not
    expected to match, see the summary's settings columns).

    Parameters
    ----------
    settings : from :func:`study_settings`

    Returns
    -------
    str : ``A`` ... ``E``
    """
    best, best_score = "C", -1
    for name, cfg in CONFIGURATIONS.items():
        if cfg.data_set != "ct_phantom":
            continue
        score = 4 * (cfg.dimension == settings["_dimension"])
        if settings["_bin_count"] is not None:
            score += 2 * (cfg.bin_count is not None) + (cfg.bin_count == settings["_bin_count"])
        else:
            score += 2 * (cfg.bin_width is not None) + (cfg.bin_width == settings["_bin_width"])
        score += (cfg.spacing is not None) == settings["_resampled"]
        score += (cfg.resegment_range is not None or cfg.outlier_sigma is not None) == settings["_reseg"]
        if score > best_score:
            best, best_score = name, score
    return best


def crop_to_roi(image: sitk.Image, mask: sitk.Image, margin_mm: float = 10.0) -> tuple[sitk.Image, sitk.Image]:
    """Crop an image and its mask to the ROI's bounding box plus a margin (for speed).

    Parameters
    ----------
    image, mask : SimpleITK.Image on one grid (mask non-zero inside the ROI)
    margin_mm : margin added on every side, in mm (rounded up to whole voxels, clipped to the image)

    Returns
    -------
    (image, mask) : the cropped pair (same spacing and direction; origin moved)

    Raises
    ------
    ValueError
        When the mask is empty.
    """
    arr = sitk.GetArrayViewFromImage(mask) > 0
    if not arr.any():
        raise ValueError("the ROI mask is empty")
    idx = np.nonzero(arr)  # (z, y, x)
    lo = np.array([i.min() for i in idx][::-1])
    hi = np.array([i.max() for i in idx][::-1])
    pad = np.ceil(margin_mm / np.asarray(image.GetSpacing(), float)).astype(int)
    lo = np.maximum(lo - pad, 0)
    hi = np.minimum(hi + pad, np.asarray(image.GetSize()) - 1)
    size = (hi - lo + 1).astype(int).tolist()
    start = lo.astype(int).tolist()
    return sitk.RegionOfInterest(image, size, start), sitk.RegionOfInterest(mask, size, start)


def compute_study(data_dir: str | os.PathLike, params: dict, preprocessing: dict | None,
                  modality: str = "CT", margin_mm: float = 10.0) -> tuple[dict, dict]:
    """The study's own extraction (acceflow preprocess + its pyradiomics parameters) on PAT1.

    The CT phantom, cropped to the ROI's bounding box plus ``margin_mm`` (:func:`crop_to_roi`; the
    whole 204 x 201 x 60 image would take most of the check's time at 1 mm), goes through
    :func:`acceflow.imaging.preprocess.preprocess` with the study's ``preprocessing`` settings and
    :func:`acceflow.imaging.extract.extract_features` with its parameters, as a study scan would
    (the resampled grid is centred on the cropped field of view). Only ``original_*`` features
    are compared (filtered image types have no IBSI 1 reference). The digital phantom is not used:
    its grey levels 1-6 have no physical unit, so a study's HU bin width or resampling gives no
    meaningful value.

    Parameters
    ----------
    data_dir : the IBSI data folder
    params : the study's pyradiomics parameters
    preprocessing : the config's ``preprocessing`` section
    modality : the normalisation that applies (CT)
    margin_mm : crop margin around the ROI (mm)

    Returns
    -------
    values : dict IBSI tag -> (feature name, value) for the tags the study's run gives (3D or 2.5D,
        averaged or merged, as its ``force2D`` / ``weightingNorm`` say)
    info : dict with ``seconds``

    Raises
    ------
    ValueError
        When the study's fixed bin width would give more than :data:`MAX_STUDY_BINS` grey levels
        on the phantom (e.g. an MR z-score bin width applied to HU): the texture matrices would
        need gigabytes; and from pyradiomics.
    """
    t0 = time.perf_counter()
    pre = preprocessing or {}
    image, mask = _read(data_dir, "ct_phantom")
    image, mask = crop_to_roi(image, sitk.Cast(mask > 0, sitk.sitkUInt8), margin_mm=margin_mm)
    image, mask = preprocess(image, mask, spacing=pre.get("spacing"),
                             interpolator=pre.get("image_interpolator", "bspline"),
                             normalisation=(pre.get("normalisation") or {}).get(modality, "none"))
    params = dict(params)
    params["setting"] = {**(params.get("setting") or {}), "label": 1}
    width = params["setting"].get("binWidth", 25) if not params["setting"].get("binCount") else None
    if width:
        roi = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) > 0]
        n_bins = (float(roi.max()) - float(roi.min())) / float(width)
        if n_bins > MAX_STUDY_BINS:
            raise ValueError(f"the study's bin width {width:g} gives {n_bins:.0f} grey levels on the CT phantom "
                             f"(more than {MAX_STUDY_BINS}): these settings are not meant for HU")
    features, _ = extract_features(image, mask, params, label=1)
    s = params["setting"]
    dim = "2.5D" if s.get("force2D") else "3D"
    run = dim + ("_merged" if s.get("weightingNorm") is not None else "")
    values = {}
    for row in load_map().itertuples(index=False):
        if not row.feature or row.feature not in features:
            continue
        directional = row.feature.startswith(("original_glcm_", "original_glrlm_"))
        if row.extraction == "any" or row.extraction == run or (row.extraction == dim and not directional):
            values[row.ibsi_tag] = (row.feature, features[row.feature])
    return values, {"seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------- the check


def missing_data_tables(data_dir, configurations, reason: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables written when the check cannot run (no IBSI data): one 'not computed' row each.

    Parameters
    ----------
    data_dir : the folder that was looked at
    configurations : the configuration names that were asked for
    reason : why (e.g. "IBSI data not found at ...")

    Returns
    -------
    (table, summary) : DataFrames with :data:`TABLE_COLUMNS` / :data:`SUMMARY_COLUMNS`
    """
    table = pd.DataFrame([{**{c: "" for c in TABLE_COLUMNS}, "configuration": c, "reference_configuration": c,
                           "match": NOT_COMPUTED, "known_deviation": False, "deviation": reason,
                           "reference": math.nan, "tolerance": math.nan, "value": math.nan,
                           "difference": math.nan} for c in configurations], columns=TABLE_COLUMNS)
    summary = pd.DataFrame([{**{c: "" for c in SUMMARY_COLUMNS}, "configuration": c, "reference_configuration": c,
                             "n_reference": 0, "n_computed": 0, "n_match": 0, "n_mismatch": 0,
                             "n_mismatch_known_deviation": 0, "n_not_computed": 0, "match_rate": math.nan,
                             "n_diagnostics": 0, "n_diagnostics_match": 0, "seconds": math.nan, "note": reason}
                            for c in configurations], columns=SUMMARY_COLUMNS)
    return table, summary


def run_ibsi_check(data_dir: str | os.PathLike, configurations=None, study: dict | None = None,
                   log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The IBSI 1 conformance check: every configuration, compared with its reference values.

    Parameters
    ----------
    data_dir : the IBSI data folder, laid out as https://github.com/theibsi/data_sets
        (``data_sets/ibsi_1_*/nifti/{image,mask}``) plus ``reference_values/`` with the IBSI 1
        reference CSVs
    configurations : names of :data:`CONFIGURATIONS` (default: all six)
    study : optional ``{"params": dict, "preprocessing": dict, "modality": "CT"}``: also run the
        study's own settings on PAT1 (configuration ``study``) and compare them with the closest
        IBSI configuration (:func:`closest_configuration`); ``{"skip": reason}`` writes only a
        summary row ``study`` with the reason
    log : callable taking a string (progress messages)

    Returns
    -------
    (table, summary) : ``analytical/ibsi.tsv`` (:data:`TABLE_COLUMNS`) and
    ``analytical/ibsi_summary.tsv`` (:data:`SUMMARY_COLUMNS`). When the data folder lacks the
    files, both say 'not computed' with the reason instead of raising (the DAG goes on); a
    configuration whose computation fails is reported the same way with the error.
    """
    configurations = list(configurations or CONFIGURATIONS)
    names = configurations + (["study"] if study else [])
    skip_study = (study or {}).get("skip")
    if skip_study:
        study = None
    data_dir = Path(data_dir)
    needed = [data_dir / "reference_values" / CONFIGURATIONS[c].reference_file for c in configurations]
    needed += [data_dir / p for c in configurations for p in DATA_FILES[CONFIGURATIONS[c].data_set]]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        reason = (f"not computed: IBSI data not found at {data_dir} (missing {missing[0]}"
                  + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                  + "); get it from https://github.com/theibsi/data_sets and set ibsi.data")
        log(reason)
        return missing_data_tables(data_dir, names, reason)
    mapping = load_map()
    parts, settings, seconds, notes = [], {}, {}, {}
    for name in configurations:
        cfg = CONFIGURATIONS[name]
        settings[name] = cfg.describe()
        reference = load_reference(data_dir, name)
        try:
            values, info = compute_configuration(data_dir, name)
        except Exception as exc:  # noqa: BLE001 - one failing configuration is reported, not fatal
            notes[name] = f"not computed: {type(exc).__name__}: {exc}"
            log(f"configuration {name}: {notes[name]}")
            parts.append(compare_with_reference({}, reference, mapping, name))
            continue
        seconds[name] = info["seconds"]
        if info["bin_shift"]:
            notes[name] = _BIN_SHIFT.format(k=info["bin_shift"])
        parts.append(compare_with_reference(values, reference, mapping, name, bin_shift=info["bin_shift"]))
        log(f"configuration {name}: {info['seconds']:.1f} s")
    if study:
        st = study_settings(study["params"], study.get("preprocessing"), study.get("modality", "CT"))
        ref_name = closest_configuration(st)
        settings["study"] = {k: v for k, v in st.items() if not k.startswith("_")}
        reference = load_reference(data_dir, ref_name)
        # IBSI diagnostics describe IBSI's processing chain, not the study's: features only
        reference = reference[~reference["ibsi_family"].str.startswith("Diagnostics")]
        try:
            values, info = compute_study(data_dir, study["params"], study.get("preprocessing"),
                                         study.get("modality", "CT"))
            seconds["study"] = info["seconds"]
            notes["study"] = (f"the study's own settings on PAT1, compared with configuration {ref_name}, the closest "
                              "IBSI configuration; settings differ (see the settings columns), so differences "
                              "measure the settings, not conformance")
        except Exception as exc:  # noqa: BLE001
            values = {}
            notes["study"] = f"not computed: {type(exc).__name__}: {exc}"
        parts.append(compare_with_reference(values, reference, mapping, "study", reference_configuration=ref_name))
        log(f"study settings vs configuration {ref_name}: {seconds.get('study', math.nan):.1f} s")
    if skip_study:
        notes["study"] = skip_study
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=TABLE_COLUMNS)
    return table, summarise(table, settings, seconds, notes)
