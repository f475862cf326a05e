"""Ingest quality control: one verdict per manifest row, so that one bad case never stops the rest.

Each row is checked for: a cohort named in the config, a known outcome (binary: a value;
survival: a positive time and a known event), a readable 3D image with finite voxel values, a
readable mask (label image, DICOM RTSTRUCT or SEG: :func:`acceflow.io.images.read_mask`) on the
image's voxel grid (size, spacing in mm, origin in mm, direction; a mask within
``input.geometry_tolerance_mm`` of it is resampled onto it with nearest neighbour and the note says
so), finite integer mask values, and a region of interest of at least ``extraction.min_voxels``
voxels. A mask with labels other than 0 and ``extraction.label`` is accepted with a note in
``reason`` (status stays ok): multi-label masks are common (lesion + organ, several lesions) and
only the configured label is ever used; a user whose region is another label sets
``extraction.label``. The SHA-256 of every input file is recorded for provenance.

With ``on_error="stop"`` (config ``on_case_error: stop``) the first unusable scan raises
:class:`CaseError` with its reason instead of being excluded.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import SimpleITK as sitk

from acceflow.io.images import GEOMETRY_TOLERANCE_MM, ImageError, mask_voxels, read_image, read_mask
from acceflow.io.manifest import ManifestError, binary_outcome
from acceflow.runtime import sha256_file

QC_COLUMNS = ["case_id", "repeat", "modality", "cohort", "scan_id", "status", "reason"]
NOTE_PREFIX = "accepted: "


class CaseError(ValueError):
    """One case is unusable and ``on_case_error`` is ``stop``; the message names the case and the fix."""


def check_scan(image_path: str, mask_path: str, label: int = 1, min_voxels: int = 1,
               tolerance: float = GEOMETRY_TOLERANCE_MM, need_mask: bool = True, notes: list | None = None,
               roi: str | int | None = None, series_uid: str | None = None) -> str:
    """Check one image/mask pair; return ``""`` when usable, else the reason it is not.

    Parameters
    ----------
    image_path, mask_path : str
        Files (or DICOM folders); ``mask_path`` may be ``""`` when ``need_mask`` is False, and may
        be a DICOM RTSTRUCT or SEG.
    label : int
        Mask label of the region of interest (``extraction.label``).
    min_voxels : int
        Smallest region of interest accepted, in voxels of the image (``extraction.min_voxels``).
    tolerance : float
        Geometry tolerance in mm (spacing, origin) and for direction cosines
        (``input.geometry_tolerance_mm``): a mask within it of the image's grid is resampled onto
        it (nearest neighbour, noted), beyond it refused. See :func:`acceflow.io.images.on_image_grid`.
    need_mask : bool
        Whether a mask is required.
    notes : list, optional
        Receives remarks on a usable scan (mask resampled, mask labels other than 0 and ``label``).
    roi : str or int, optional
        RTSTRUCT ROI name or SEG segment (manifest column ``roi`` or ``input.roi``).
    series_uid : str, optional
        SeriesInstanceUID when the image is a DICOM folder with several series.

    Returns
    -------
    str
        Empty string, or a reason that names the file and the fix.

    Notes
    -----
    SimpleITK (ITK before 6, InsightSoftwareConsortium/ITK#6683) reads NaN and infinite voxels of
    NIfTI files as 0 and the missing part of a truncated NIfTI file as zeros; NIfTI files are
    therefore read once more with nibabel (:func:`acceflow.io.images.check_nifti`), which refuses both.
    """
    try:
        image = read_image(image_path, series_uid=series_uid or None)
        if image.GetDimension() != 3:
            return (f"image {image_path} is {image.GetDimension()}D; the workflow needs a 3D volume "
                    f"(re-export the scan as one volume)")
        array = sitk.GetArrayViewFromImage(image)
        if image.GetNumberOfComponentsPerPixel() > 1:
            return (f"image {image_path} has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                    f"(colour or vector image); give a scalar (grey-level) image")
        if not np.isfinite(array).all():
            n_nan, n_inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
            return (f"image {image_path} has {n_nan} NaN and {n_inf} infinite voxels; fix the export "
                    f"(or replace them with a finite background value)")
        outlier = implausible_voxels(array)
        if outlier:
            return f"image {image_path} {outlier}"
        if not mask_path:
            return "no mask given; add a mask column or use segmentation.source: otsu with box_mm" if need_mask else ""
        mask = read_mask(mask_path, image, roi=roi, label=label, tolerance=tolerance, notes=notes)
    except ImageError as exc:
        return exc.record
    values = sitk.GetArrayViewFromImage(mask)
    if not np.isfinite(values).all():
        return (f"mask {mask_path} has {int(np.count_nonzero(~np.isfinite(values)))} NaN or infinite voxels; "
                f"re-export it as a label image (0 = background)")
    fractional = values != np.round(values)
    if fractional.any():
        return (f"mask {mask_path} has non-integer values (e.g. {float(values[fractional][0]):g}): a probability "
                f"map is not a mask; threshold it (e.g. at 0.5) and save it as a label image")
    n = mask_voxels(mask, label)
    if n == 0:
        labels = sorted(int(v) for v in np.unique(values))
        return (f"mask {mask_path} has no voxel with label {label} (labels present: {labels}); "
                f"set extraction.label or fix the mask")
    if n < min_voxels:
        return (f"mask {mask_path} has {n} voxels with label {label}, fewer than the minimum {min_voxels} "
                f"(extraction.min_voxels); check the mask, or lower extraction.min_voxels")
    if notes is not None:
        labels = sorted(int(v) for v in np.unique(values))
        other = [v for v in labels if v not in (0, label)]
        if other:
            notes.append(f"mask {mask_path} also has label(s) {other}; only label {label} (extraction.label) "
                         f"is used")
    return ""


#: A voxel farther than this many times the image's robust scale from its median is refused at
#: ingest: a float overflow or fill value (1e30) that no discretisation or filter can handle.
IMPLAUSIBLE_FACTOR = 1e6


def implausible_voxels(array: np.ndarray) -> str:
    """Why an image's intensities are implausible (``""`` when they are not).

    A voxel is implausible when it lies more than :data:`IMPLAUSIBLE_FACTOR` times the robust
    scale (the 0.1-99.9 percentile range, at least the median's magnitude and at least 1) from
    the median: fixed-bin-width discretisation would then need billions of grey levels.
    """
    if array.size == 0 or max(abs(float(np.min(array))), abs(float(np.max(array)))) <= IMPLAUSIBLE_FACTOR / 2:
        return ""  # |v - median| <= 2 max|v| cannot exceed the threshold (the scale is at least 1)
    values = np.asarray(array, dtype=float).ravel()
    lo, median, hi = np.percentile(values, [0.1, 50, 99.9])
    scale = max(hi - lo, abs(median), 1.0)
    far = np.abs(values - median) > IMPLAUSIBLE_FACTOR * scale
    if not far.any():
        return ""
    worst = float(values[far][np.argmax(np.abs(values[far]))])
    return (f"has {int(far.sum())} voxel(s) of implausible magnitude (e.g. {worst:.3g}; 99.8% of voxels lie in "
            f"[{lo:.4g}, {hi:.4g}]), a float overflow or fill value; fix the export, or replace them with a "
            f"background value")


def _roots(manifest: pd.DataFrame) -> list[str]:
    """Folders whose absolute paths are shortened in qc reasons: the data root, and the common folder."""
    roots = [manifest.attrs["data_root"]] if manifest.attrs.get("data_root") else []
    paths = [os.path.dirname(p) for c in ("image", "mask") if c in manifest for p in manifest[c]
             if isinstance(p, str) and os.path.isabs(p)]
    if paths:
        try:
            roots.append(os.path.commonpath(paths))
        except ValueError:  # paths on different drives
            pass
    return sorted({r.rstrip(os.sep) for r in roots if r and r != os.sep}, key=len, reverse=True)


def relative_paths(reason: str, roots: list[str]) -> str:
    """``reason`` with absolute paths under ``roots`` written relative to them (qc.tsv and the
    dossier name files as the manifest does, without the machine's folders)."""
    for root in roots:
        reason = reason.replace(root + os.sep, "")
    return reason


def survival_reason(time, event) -> str:
    """Why a survival outcome is unusable (``""`` when it is usable)."""
    t = pd.to_numeric(pd.Series([time]), errors="coerce").iloc[0]
    if pd.isna(t):
        return f"survival time missing or not a number ({time}); give the time in days or drop the row"
    if not np.isfinite(t) or t <= 0:
        return f"survival time {t:g} is not positive; follow-up must be > 0 days (fix the date arithmetic)"
    e = pd.to_numeric(pd.Series([event]), errors="coerce").iloc[0]
    if pd.isna(e) or e not in (0, 1):
        return f"survival event {event} is not 0 or 1; code the event as 1 (event) or 0 (censored)"
    return ""


def ingest(manifest: pd.DataFrame, outcome: dict, train: list, external: list, label: int = 1,
           min_voxels: int = 1, need_mask: bool = True,
           on_error: str = "exclude", tolerance: float = GEOMETRY_TOLERANCE_MM,
           roi: str | int | None = None, time_to_event: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the ingest checks on every manifest row.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Output of :func:`acceflow.io.manifest.load_manifest`.
    outcome : dict
        The config's ``outcome`` section: ``column`` and ``positive`` of a binary outcome, or
        ``time`` (days) and ``event`` (1 = event) columns.
    train, external : list of str
        Cohorts named in the config.
    label, min_voxels, need_mask, tolerance
        See :func:`check_scan`.
    on_error : {"exclude", "stop"}
        ``exclude``: an unusable scan gets status excluded and its reason; ``stop``: the first one
        raises :class:`CaseError`.
    roi : str or int, optional
        RTSTRUCT ROI / SEG segment for rows whose ``roi`` column is empty or absent (``input.roi``).
        A ``series_uid`` column, when present, chooses the series of a DICOM folder per row.
    time_to_event : bool
        The outcome is survival (``time``, ``event``) rather than binary
        (``acceflow.study.task.task_for(config).time_to_event``).

    Returns
    -------
    qc : pandas.DataFrame
        One row per manifest row: ``case_id, repeat, modality, cohort, scan_id, status, reason``.
    scans : pandas.DataFrame
        The usable rows (status ok) with ``image_sha256`` and ``mask_sha256`` added. A case is
        excluded as a whole when any of its primary scans fails.

    Raises
    ------
    ManifestError
        When a cohort named in the config has no row in the manifest.
    CaseError
        With ``on_error="stop"``, at the first unusable scan.
    """
    present = set(manifest["cohort"])
    absent = [c for c in [*train, *external] if c not in present]
    if absent:
        raise ManifestError(f"cohort(s) {absent} named in the config are not in the data "
                            f"(cohorts found: {sorted(present)}); fix cohorts.train / cohorts.external "
                            f"or cohorts.column")
    wanted = set(train) | set(external)
    reasons = []
    if not time_to_event:
        if outcome["column"] not in manifest:
            raise ManifestError(f"outcome column '{outcome['column']}' is not in the manifest; set outcome.column")
        y = binary_outcome(manifest[outcome["column"]], outcome["positive"])
    else:
        for key in ("time", "event"):
            if outcome.get(key) not in manifest:
                raise ManifestError(f"survival {key} column '{outcome.get(key)}' is not in the manifest; set outcome.{key}")
        y = None
    if y is not None:  # a property of the data, not of image QC: refuse before any image is processed
        for cohort in [*train, *external]:
            values = y[(manifest["cohort"].values == cohort) & manifest["primary"].values].dropna()
            if values.nunique() < 2:
                raise ManifestError(
                    f"cohort {cohort}: " + (f"all {len(values)} cases with a known outcome are "
                                            f"{'positive' if values.iloc[0] == 1 else 'negative'}"
                                            if len(values) else "no case has a known outcome") + " (outcome.column "
                    f"'{outcome['column']}', outcome.positive {outcome['positive']!r}); discrimination and "
                    f"calibration need both outcome classes: check outcome.positive, or drop the cohort from the config")
    for i, row in enumerate(manifest.itertuples(index=False)):
        notes: list[str] = []
        if row.cohort not in wanted:
            reason = f"cohort '{row.cohort}' is in neither cohorts.train nor cohorts.external"
        elif y is not None and pd.isna(y.iloc[i]):
            reason = f"outcome missing (column '{outcome['column']}'); give the outcome or drop the row"
        elif y is None and (reason := survival_reason(manifest[outcome["time"]].iloc[i],
                                                     manifest[outcome["event"]].iloc[i])):
            pass
        else:
            reason = check_scan(row.image, row.mask, label, min_voxels, tolerance=tolerance, need_mask=need_mask,
                                notes=notes, roi=getattr(row, "roi", "") or roi,
                                series_uid=getattr(row, "series_uid", "") or None)
        if reason and on_error == "stop" and row.cohort in wanted:
            raise CaseError(f"case {row.case_id} (scan {row.scan_id}): {reason}. on_case_error is 'stop'; "
                            f"fix the case, drop its row, or set on_case_error: exclude to go on without it")
        reasons.append(reason or "; ".join(NOTE_PREFIX + n for n in notes))
    qc = manifest[["case_id", "repeat", "modality", "cohort", "scan_id"]].copy()
    roots = _roots(manifest)
    qc["reason"] = [relative_paths(r, roots) for r in reasons]
    qc["status"] = np.where((qc["reason"] == "") | qc["reason"].str.startswith(NOTE_PREFIX), "ok", "excluded")
    bad_cases = set(qc.loc[(qc["status"] != "ok") & manifest["primary"].values, "case_id"])
    knock_on = (qc["status"] == "ok") & qc["case_id"].isin(bad_cases)
    qc.loc[knock_on, "status"] = "excluded"
    qc.loc[knock_on, "reason"] = "another scan of this case was excluded"
    scans = manifest.loc[qc["status"].values == "ok"].copy()
    scans["image_sha256"] = [sha256_file(p) for p in scans["image"]]
    scans["mask_sha256"] = [sha256_file(p) if p else "" for p in scans["mask"]]
    return qc[QC_COLUMNS], scans
