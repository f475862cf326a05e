"""Ingest quality control: one verdict per manifest row, so that one bad case never stops the rest.

Each row is checked for: a cohort named in the config, a known outcome, readable image and mask,
matching voxel grids (size, spacing in mm, origin in mm, direction), a non-empty region of
interest, and finite voxel values. The SHA-256 of every input file is recorded for provenance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import SimpleITK as sitk

from acceflow.io.images import ImageError, geometry_mismatch, mask_voxels, read_image
from acceflow.io.manifest import ManifestError, binary_outcome, sha256_file

QC_COLUMNS = ["case_id", "repeat", "modality", "cohort", "scan_id", "status", "reason"]


def check_scan(image_path: str, mask_path: str, label: int = 1, min_voxels: int = 1,
               tolerance: float = 1e-3, need_mask: bool = True) -> str:
    """Check one image/mask pair; return ``""`` when usable, else the reason it is not.

    Parameters
    ----------
    image_path, mask_path : str
        Files (or DICOM folders); ``mask_path`` may be ``""`` when ``need_mask`` is False.
    label : int
        Mask label of the region of interest.
    min_voxels : int
        Smallest region of interest accepted, in voxels.
    tolerance : float
        Geometry tolerance in mm (spacing, origin) and for direction cosines.
    need_mask : bool
        Whether a mask is required.

    Returns
    -------
    str
        Empty string, or a reason that names the file and the fix.
    """
    try:
        image = read_image(image_path)
        array = sitk.GetArrayViewFromImage(image)
        if not np.isfinite(array).all():
            return f"image {image_path} has NaN or infinite voxels; fix the export or mask them out"
        if not mask_path:
            return "no mask given; add a mask column or use segmentation.source: otsu with box_mm" if need_mask else ""
        mask = read_image(mask_path)
    except ImageError as exc:
        return str(exc)
    problems = geometry_mismatch(image, mask, tolerance)
    if problems:
        return (f"mask {mask_path} does not match its image's voxel grid: {'; '.join(problems)}; "
                f"re-export the mask on the image's grid")
    n = mask_voxels(mask, label)
    if n == 0:
        labels = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(mask)))
        return (f"mask {mask_path} has no voxel with label {label} (labels present: {labels}); "
                f"set extraction.label or fix the mask")
    if n < min_voxels:
        return f"mask {mask_path} has {n} voxels with label {label}, fewer than the minimum {min_voxels}"
    return ""


def ingest(manifest: pd.DataFrame, outcome: dict, train: list, external: list, label: int = 1,
           min_voxels: int = 1, need_mask: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the ingest checks on every manifest row.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Output of :func:`acceflow.io.manifest.load_manifest`.
    outcome : dict
        The config's ``outcome`` section.
    train, external : list of str
        Cohorts named in the config.
    label, min_voxels, need_mask
        See :func:`check_scan`.

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
    """
    present = set(manifest["cohort"])
    absent = [c for c in [*train, *external] if c not in present]
    if absent:
        raise ManifestError(f"cohort(s) {absent} named in the config are not in the data "
                            f"(cohorts found: {sorted(present)}); fix cohorts.train / cohorts.external "
                            f"or cohorts.column")
    wanted = set(train) | set(external)
    reasons = []
    if outcome.get("type", "binary") == "binary":
        y = binary_outcome(manifest[outcome["column"]], outcome["positive"]) if outcome["column"] in manifest else None
        if y is None:
            raise ManifestError(f"outcome column '{outcome['column']}' is not in the manifest; set outcome.column")
    else:
        for key in ("time", "event"):
            if outcome.get(key) not in manifest:
                raise ManifestError(f"survival {key} column '{outcome.get(key)}' is not in the manifest; set outcome.{key}")
        y = pd.to_numeric(manifest[outcome["time"]], errors="coerce").where(lambda t: t > 0)
    for i, row in enumerate(manifest.itertuples(index=False)):
        if row.cohort not in wanted:
            reasons.append(f"cohort '{row.cohort}' is in neither cohorts.train nor cohorts.external")
        elif pd.isna(y.iloc[i]):
            reasons.append("outcome missing (or survival time not positive); give the outcome or drop the row")
        else:
            reasons.append(check_scan(row.image, row.mask, label, min_voxels, need_mask=need_mask))
    qc = manifest[["case_id", "repeat", "modality", "cohort", "scan_id"]].copy()
    qc["reason"] = reasons
    qc["status"] = np.where(qc["reason"] == "", "ok", "excluded")
    bad_cases = set(qc.loc[(qc["status"] != "ok") & manifest["primary"].values, "case_id"])
    knock_on = (qc["status"] == "ok") & qc["case_id"].isin(bad_cases)
    qc.loc[knock_on, "status"] = "excluded"
    qc.loc[knock_on, "reason"] = "another scan of this case was excluded"
    scans = manifest.loc[qc["status"].values == "ok"].copy()
    scans["image_sha256"] = [sha256_file(p) for p in scans["image"]]
    scans["mask_sha256"] = [sha256_file(p) if p else "" for p in scans["mask"]]
    return qc[QC_COLUMNS], scans
