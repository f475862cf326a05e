"""DICOM readers: image series, RT Structure Sets (RTSTRUCT) and Segmentations (SEG).

* **Image series** (a folder): the files are grouped by SeriesInstanceUID with pydicom; a folder
  with several series needs the one to read (``series_uid``), otherwise the error lists them.
  Slices are ordered by their ImagePositionPatient projected on the slice normal (the cross
  product of the ImageOrientationPatient row and column cosines, DICOM PS3.3 C.7.6.2.1.1), the
  order SimpleITK's GDCM reader also uses; a missing slice or uneven gaps are refused (SimpleITK
  would only warn and give the volume one spacing). Pixels are read by SimpleITK.
* **RTSTRUCT**: the closed planar contours of one ROI are rasterised on the image's voxel grid
  with pydicom and matplotlib's point-in-polygon test: a voxel belongs to the ROI when its centre
  lies inside the contour; several contours of one ROI on one slice combine by exclusive or, so an
  inner contour is a hole (the convention of plastimatch and dicompyler). On the IBSI CT phantom
  (PAT1) this reproduces the IBSI reference NIfTI mask voxel for voxel. rt-utils (1.2.7) was tried
  first and not used: it requires the optional ContourImageSequence (PAT1 has none), and it swaps
  rows and columns on non-square images (PAT1 is 204 x 201 voxels).
* **SEG**: read with highdicom (segment selected by number or label) and placed on the image's
  grid; empty frames, which a SEG may omit, become background.

Masks come back as SimpleITK images on the reference image's grid with the region of interest
set to ``label``, so that the rest of the workflow never sees the DICOM objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from acceflow.io.geometry import ImageError, on_image_grid

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"  # RT Structure Set Storage
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
#: Metadata keys (DICOM tags) that :func:`read_dicom_series` sets on the image it returns.
SERIES_UID_KEY, FRAME_OF_REFERENCE_KEY = "0020|000e", "0020|0052"
#: A slice gap may differ from the median gap by this fraction of it (highdicom's default rtol).
SLICE_GAP_RTOL = 0.01
#: A contour must lie within this fraction of the slice spacing of a slice centre.
CONTOUR_PLANE_TOLERANCE = 0.1

_HEADER_TAGS = ["SOPClassUID", "Modality", "SeriesInstanceUID", "SeriesDescription", "FrameOfReferenceUID",
                "ImagePositionPatient", "ImageOrientationPatient", "NumberOfFrames", "Rows", "Columns",
                "PixelSpacing", "RescaleSlope", "RescaleIntercept"]


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM image series in a folder.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID.
    description, modality : str
        SeriesDescription and Modality ("" when absent).
    files : tuple of str
        Its files, in the order found (see :func:`read_dicom_series` for the slice order).
    n_slices : int
        Number of slices (frames, for multi-frame files).
    """

    uid: str
    description: str
    modality: str
    files: tuple
    n_slices: int

    def __str__(self) -> str:
        return f"{self.uid} ({self.modality or '?'}, '{self.description}', {self.n_slices} slices)"

    def record(self) -> str:
        """As :meth:`__str__` without the SeriesDescription (free text, kept out of the results)."""
        return f"{self.uid} ({self.modality or '?'}, {self.n_slices} slices)"


def dicom_object(path: str | os.PathLike) -> str | None:
    """What a file is: ``"RTSTRUCT"``, ``"SEG"``, ``"IMAGE"`` (any other DICOM object) or None.

    Parameters
    ----------
    path : path-like
        A file. DICOM is recognised by its preamble ("DICM" at byte 128, DICOM PS3.10); the kind
        by SOPClassUID, or Modality when the SOP class is another.

    Returns
    -------
    str or None
        None for a folder or a file that is not DICOM (NIfTI, NRRD, ...).
    """
    path = Path(path)
    if not path.is_file() or not pydicom.misc.is_dicom(path):
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except Exception:  # noqa: BLE001 - a damaged header: let the image reader report it
        return "IMAGE"
    sop, modality = str(ds.get("SOPClassUID", "")), str(ds.get("Modality", ""))
    if sop == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
        return "RTSTRUCT"
    if sop == SEG_SOP_CLASS or modality == "SEG":
        return "SEG"
    return "IMAGE"


def _headers(folder: Path) -> tuple[dict, list]:
    """Headers of the DICOM files directly in ``folder``: image files by series, and other objects."""
    series: dict[str, list] = {}
    others = []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue  # not DICOM (a README, a DICOMDIR index is skipped below)
        sop = str(ds.get("SOPClassUID", ""))
        if sop in (RTSTRUCT_SOP_CLASS, SEG_SOP_CLASS) or ds.get("Modality") in ("RTSTRUCT", "SEG"):
            others.append((f, ds))
        elif "SeriesInstanceUID" in ds and "Rows" in ds:
            series.setdefault(str(ds.SeriesInstanceUID), []).append((f, ds))
    return series, others


def list_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """The DICOM image series directly in a folder (not its sub-folders, as GDCM).

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    list of SeriesInfo
        Sorted by SeriesInstanceUID; RTSTRUCT and SEG objects and non-DICOM files are left out.
    """
    return list_series_from(_headers(Path(folder))[0])


def slice_normal(orientation) -> np.ndarray:
    """Unit normal of a slice: row cosines x column cosines (ImageOrientationPatient, 6 values)."""
    o = np.asarray(orientation, float)
    n = np.cross(o[:3], o[3:])
    return n / np.linalg.norm(n)


def sorted_slices(folder: str | os.PathLike, items: list, rtol: float = SLICE_GAP_RTOL) -> list[str]:
    """Order the single-frame slices of one series by position and check their spacing.

    Parameters
    ----------
    folder : path-like
        The series folder (named in errors).
    items : list of (path, pydicom.Dataset)
        The slices' files and headers (ImagePositionPatient, ImageOrientationPatient in mm).
    rtol : float
        Largest accepted deviation of a gap from the median gap, as a fraction of the median.

    Returns
    -------
    list of str
        File names sorted by position along the slice normal (ascending).

    Raises
    ------
    ImageError
        Slices with different orientations or sizes, two slices at one position, or a missing
        slice / uneven gaps (the message lists the positions in mm).
    """
    folder = Path(folder)
    first = items[0][1]
    for f, ds in items:
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            raise ImageError(f"{f}: no ImagePositionPatient / ImageOrientationPatient; the slice cannot be "
                             f"placed in space: re-export the series from the scanner or PACS")
        if not np.allclose(ds.ImageOrientationPatient, first.ImageOrientationPatient, atol=1e-4):
            raise ImageError(f"{folder}: slices of one series have different orientations ({f.name}: "
                             f"{list(ds.ImageOrientationPatient)} vs {list(first.ImageOrientationPatient)}); "
                             f"a localiser or a reformat is mixed in: keep one stack per series")
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns):
            raise ImageError(f"{folder}: slices of one series have different sizes ({f.name}: "
                             f"{ds.Rows}x{ds.Columns} vs {first.Rows}x{first.Columns}); keep one stack per series")
    normal = slice_normal(first.ImageOrientationPatient)
    pos = np.array([np.dot(normal, np.asarray(ds.ImagePositionPatient, float)) for _, ds in items])
    order = np.argsort(pos, kind="stable")
    pos = pos[order]
    files = [str(items[i][0]) for i in order]
    if len(pos) > 1:
        gaps = np.diff(pos)
        shown = ", ".join(f"{p:.3f}" for p in pos)
        if np.any(gaps < 1e-3):
            dup = [f"{pos[i]:.3f}" for i in np.flatnonzero(gaps < 1e-3)]
            raise ImageError(f"{folder}: several slices at the same position ({', '.join(dup)} mm along the "
                             f"slice normal); the series mixes acquisitions, echoes or phases: split it so that "
                             f"each position occurs once. Positions (mm): {shown}")
        median = float(np.median(gaps))
        bad = np.flatnonzero(np.abs(gaps - median) > rtol * median)
        if bad.size:
            irregular = "; ".join(f"{pos[i]:.3f} -> {pos[i + 1]:.3f} mm (gap {gaps[i]:.3f})" for i in bad[:10])
            raise ImageError(f"{folder}: slice spacing is not uniform (median gap {median:.3f} mm; irregular: "
                             f"{irregular}); a slice is missing or the series joins stacks of different "
                             f"spacing: re-export the complete series. Positions (mm): {shown}")
    return files


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None,
                      rtol: float = SLICE_GAP_RTOL) -> sitk.Image:
    """Read one DICOM image series from a folder.

    Parameters
    ----------
    folder : path-like
        Folder holding the series' files (other series, RTSTRUCT/SEG objects and non-DICOM files
        may be there too).
    series_uid : str, optional
        SeriesInstanceUID of the series to read; needed when the folder holds several.
    rtol : float
        Slice gap tolerance, see :func:`sorted_slices`.

    Returns
    -------
    SimpleITK.Image
        3D image in DICOM patient coordinates (LPS; spacing and origin in mm), voxel values
        rescaled by RescaleSlope/RescaleIntercept (e.g. CT in HU). Float32 when the rescale
        varies between slices. Metadata keys ``0020|000e`` (SeriesInstanceUID) and ``0020|0052``
        (FrameOfReferenceUID) are set.

    Raises
    ------
    ImageError
        No image series; several and none chosen (the message lists each UID with its
        SeriesDescription and number of slices); ``series_uid`` not present; inconsistent slices
        (see :func:`sorted_slices`); unreadable pixel data.
    """
    folder = Path(folder)
    series, others = _headers(folder)
    if not series:
        kinds = sorted({str(ds.get("Modality", "")) for _, ds in others})
        hint = (f" (only {', '.join(kinds)} objects: a mask, give it in the manifest's mask column)" if others
                else "")
        raise ImageError(f"{folder}: folder holds no DICOM image series{hint}")
    infos = {i.uid: i for i in list_series_from(series)}
    listing = "; ".join(str(i) for i in infos.values())
    brief = "; ".join(i.record() for i in infos.values())
    if series_uid:
        series_uid = str(series_uid).strip()
        if series_uid not in series:
            msg = "{folder}: no series with SeriesInstanceUID {uid}; series present: {listing}; fix the manifest's " \
                  "series_uid column"
            raise ImageError(msg.format(folder=folder, uid=series_uid, listing=listing),
                             msg.format(folder=folder, uid=series_uid, listing=brief))
    elif len(series) > 1:
        msg = "{folder}: holds {n} DICOM series: {listing}; choose one with the manifest's series_uid column (or " \
              "move each series into its own folder)"
        raise ImageError(msg.format(folder=folder, n=len(series), listing=listing),
                         msg.format(folder=folder, n=len(series), listing=brief))
    else:
        series_uid = next(iter(series))
    items = series[series_uid]
    try:
        if len(items) == 1:  # one file: a multi-frame (enhanced) object or a single slice
            image = sitk.ReadImage(str(items[0][0]))
        else:
            files = sorted_slices(folder, items, rtol)
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            rescale = {(float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0))
                       for _, ds in items}
            if len(rescale) > 1:  # the first slice's pixel type would truncate the others' values
                reader.SetOutputPixelType(sitk.sitkFloat32)
            image = reader.Execute()
    except RuntimeError as exc:
        raise ImageError(f"{folder}: series {series_uid} cannot be read ({str(exc).strip().splitlines()[-1]}); "
                         f"re-export it (uncompressed) or convert it to NIfTI") from exc
    image.SetMetaData(SERIES_UID_KEY, series_uid)
    frame = str(items[0][1].get("FrameOfReferenceUID", ""))
    if frame:
        image.SetMetaData(FRAME_OF_REFERENCE_KEY, frame)
    return image


def list_series_from(series: dict) -> list[SeriesInfo]:
    """:class:`SeriesInfo` of each series of a ``{uid: [(path, header), ...]}`` mapping."""
    out = []
    for uid, items in sorted(series.items()):
        ds = items[0][1]
        n = sum(int(d.get("NumberOfFrames", 1) or 1) for _, d in items)
        out.append(SeriesInfo(uid, str(ds.get("SeriesDescription", "")), str(ds.get("Modality", "")),
                              tuple(str(f) for f, _ in items), n))
    return out


def mask_object_in(folder: str | os.PathLike) -> Path | None:
    """The single RTSTRUCT or SEG file of a folder without image series, else None."""
    series, others = _headers(Path(folder))
    if series or len(others) != 1:
        return None
    return Path(others[0][0])


def _check_frame_of_reference(path, frame: str, reference: sitk.Image) -> None:
    if frame and reference.HasMetaDataKey(FRAME_OF_REFERENCE_KEY):
        ref = reference.GetMetaData(FRAME_OF_REFERENCE_KEY)
        if ref and ref != frame:
            raise ImageError(f"{path}: drawn in frame of reference {frame}, but the image is in {ref}; the mask "
                             f"belongs to another scan (or needs registration): give the matching image")


def _choose(path, wanted, names: list[str], what: str, fix: str, numbers: list | None = None) -> int:
    """Index of ``wanted`` in ``names``: exact, else case-insensitive and unique."""
    listing = ", ".join(f"{k}: '{n}'" if numbers else f"'{n}'" for k, n in zip(numbers or names, names))
    if wanted is None or str(wanted).strip() == "":
        if len(names) == 1:
            return 0
        raise ImageError(f"{path}: holds {len(names)} {what}s ({listing}); name the one to use with {fix}")
    wanted = str(wanted).strip()
    if wanted in names:
        return names.index(wanted)
    folded = [i for i, n in enumerate(names) if n.strip().casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise ImageError(f"{path}: no {what} '{wanted}'; {what}s present: {listing}; fix {fix}")


def rtstruct_roi_names(path: str | os.PathLike) -> list[str]:
    """ROI names (StructureSetROISequence) of an RTSTRUCT file, in file order."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return [str(r.get("ROIName", "")) for r in ds.get("StructureSetROISequence", [])]


def read_rtstruct(path: str | os.PathLike, reference: sitk.Image, roi: str | None = None,
                  label: int = 1, notes: list | None = None) -> sitk.Image:
    """Rasterise one ROI of a DICOM RTSTRUCT on a reference image's voxel grid.

    Parameters
    ----------
    path : path-like
        The RTSTRUCT file.
    reference : SimpleITK.Image
        The image the ROI was drawn on (any format; geometry in LPS, mm). When it was read by
        :func:`read_dicom_series`, its FrameOfReferenceUID is checked against the ROI's.
    roi : str, optional
        ROIName; matched exactly, else case-insensitively. May be omitted when the structure set
        holds a single ROI.
    label : int
        Value given to the ROI's voxels (``extraction.label``).
    notes : list, optional
        Receives remarks (open contours skipped, contour parts outside the image dropped).

    Returns
    -------
    SimpleITK.Image
        UInt8 mask on ``reference``'s grid: ``label`` where the voxel centre is inside the ROI
        (contours on one slice combined by exclusive or), 0 elsewhere.

    Raises
    ------
    ImageError
        Unknown ROI (the message lists the ROI names present), several ROIs and none named, an ROI
        without closed planar contours, a contour that is not in a slice plane of the image
        (another series or orientation), contours beyond the image's first or last slice, or a
        frame of reference other than the image's.
    """
    from matplotlib.path import Path as Polygon  # heavy optional dependency: imported on first use

    path = Path(path)
    ds = pydicom.dcmread(path)
    rois = list(ds.get("StructureSetROISequence", []))
    if not rois:
        raise ImageError(f"{path}: RTSTRUCT holds no ROI (empty StructureSetROISequence); export the contours again")
    names = [str(r.get("ROIName", "")) for r in rois]
    chosen = rois[_choose(path, roi, names, "ROI", "the manifest's roi column or input.roi")]
    name, number = str(chosen.get("ROIName", "")), int(chosen.ROINumber)
    _check_frame_of_reference(path, str(chosen.get("ReferencedFrameOfReferenceUID", "")), reference)
    contours = [c for item in ds.get("ROIContourSequence", []) if int(item.ReferencedROINumber) == number
                for c in item.get("ContourSequence", [])]
    closed = [c for c in contours if str(c.get("ContourGeometricType", "CLOSED_PLANAR")) == "CLOSED_PLANAR"]
    if not closed:
        types = sorted({str(c.get("ContourGeometricType", "")) for c in contours})
        raise ImageError(f"{path}: ROI '{name}' has no closed planar contour"
                         + (f" (only {', '.join(types)})" if types else " (it was never contoured)")
                         + "; choose another ROI with the manifest's roi column or input.roi")
    if notes is not None and len(closed) < len(contours):
        notes.append(f"RTSTRUCT {path.name}: {len(contours) - len(closed)} open or point contour(s) of ROI "
                     f"'{name}' ignored")
    size = np.asarray(reference.GetSize())
    spacing = np.asarray(reference.GetSpacing(), float)
    to_index = np.linalg.inv(np.asarray(reference.GetDirection(), float).reshape(3, 3) @ np.diag(spacing))
    origin = np.asarray(reference.GetOrigin(), float)
    out = np.zeros(size[::-1], dtype=bool)  # (z, y, x)
    dropped = 0
    for c in closed:
        points = np.asarray(c.ContourData, float).reshape(-1, 3)
        index = (points - origin) @ to_index.T  # continuous (x, y, z) voxel indices
        k = int(np.rint(np.median(index[:, 2])))
        off = float(np.max(np.abs(index[:, 2] - k)))
        if off > CONTOUR_PLANE_TOLERANCE:
            raise ImageError(f"{path}: a contour of ROI '{name}' (z = {points[0, 2]:.3f} mm) lies "
                             f"{off * spacing[2]:.3f} mm off the image's nearest slice plane; the RTSTRUCT was "
                             f"drawn on another series or orientation: give the image it was drawn on "
                             f"(series_uid) or a mask on this image's grid")
        if not 0 <= k < size[2]:
            raise ImageError(f"{path}: ROI '{name}' has a contour at z = {points[0, 2]:.3f} mm, beyond the "
                             f"image's slices (0..{size[2] - 1}); the RTSTRUCT belongs to another (longer) scan")
        lo = np.floor(index[:, :2].min(axis=0)).astype(int)
        hi = np.ceil(index[:, :2].max(axis=0)).astype(int)
        ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        inside = Polygon(index[:, :2]).contains_points(np.c_[ii.ravel(), jj.ravel()]).reshape(ii.shape)
        within = (ii >= 0) & (ii < size[0]) & (jj >= 0) & (jj < size[1])
        dropped += int(np.count_nonzero(inside & ~within))
        out[k, jj[within], ii[within]] ^= inside[within]
    if dropped and notes is not None:
        notes.append(f"RTSTRUCT {path.name}: {dropped} voxel(s) of ROI '{name}' lie outside the image in-plane "
                     f"and were dropped")
    mask = sitk.GetImageFromArray(out.astype(np.uint8) * np.uint8(label))
    mask.CopyInformation(reference)
    return mask


def seg_segments(path: str | os.PathLike) -> dict[int, str]:
    """Segment number -> SegmentLabel of a DICOM SEG file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in ds.get("SegmentSequence", [])}


def read_seg(path: str | os.PathLike, reference: sitk.Image, segment: int | str | None = None,
             label: int = 1, tolerance: float = 1e-3) -> sitk.Image:
    """Read a DICOM SEG onto a reference image's voxel grid (highdicom).

    Parameters
    ----------
    path : path-like
        The SEG file (BINARY, FRACTIONAL or LABELMAP).
    reference : SimpleITK.Image
        The image segmented (geometry in LPS, mm).
    segment : int or str, optional
        SegmentNumber, or SegmentLabel (exact, else case-insensitive). Omitted: the only segment,
        or, with several non-overlapping BINARY/LABELMAP segments, a label map whose values are
        the segment numbers (``extraction.label`` then picks one, as with a multi-label NIfTI).
    label : int
        Value given to the chosen segment's voxels.
    tolerance : float
        Geometry tolerance in mm (see :func:`acceflow.io.images.on_image_grid`).

    Returns
    -------
    SimpleITK.Image
        UInt8 mask on ``reference``'s grid. FRACTIONAL segments are binarised at 0.5.

    Raises
    ------
    ImageError
        Unknown segment (the message lists number: label of each), overlapping segments without
        a choice, a SEG that is not a regular 3D volume, or one that does not fit the image's grid.
    """
    import highdicom as hd  # heavy optional dependency: imported on first use

    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - highdicom raises several kinds on malformed objects
        raise ImageError(f"{path}: cannot be read as a DICOM SEG ({exc}); re-export the segmentation") from exc
    _check_frame_of_reference(path, str(seg.get("FrameOfReferenceUID", "")), reference)
    segments = {int(n): str(seg.get_segment_description(n).segment_label) for n in seg.segment_numbers}
    numbers = list(segments)
    labels = [f"{n}: {segments[n]}" for n in numbers]
    fractional = seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
    if segment is None or str(segment).strip() == "":
        chosen = numbers if len(numbers) > 1 and not fractional else [numbers[0]] if len(numbers) == 1 else None
        if chosen is None:
            raise ImageError(f"{path}: holds {len(numbers)} fractional segments ({', '.join(labels)}); name one "
                             f"with the manifest's roi column or input.roi")
    elif str(segment).strip().isdigit() and int(segment) in segments:
        chosen = [int(segment)]
    else:
        names = [segments[n] for n in numbers]
        chosen = [numbers[_choose(path, segment, names, "segment", "the manifest's roi column or input.roi",
                                  numbers)]]
    try:
        if fractional:
            volume = seg.get_volume(segment_numbers=chosen, combine_segments=False)
            volume = volume.with_array((volume.array[..., 0] >= 0.5).astype(np.uint8) * np.uint8(label))
        else:
            volume = seg.get_volume(segment_numbers=chosen, combine_segments=True, dtype=np.uint8)
            if len(chosen) == 1:
                volume = volume.with_array((volume.array > 0).astype(np.uint8) * np.uint8(label))
    except (ValueError, RuntimeError) as exc:
        raise ImageError(f"{path}: segments {chosen} cannot be placed in a 3D volume ({exc}); name one segment "
                         f"with the roi column or input.roi, or re-export the SEG") from exc
    # highdicom indexes (slice, row, column), SimpleITK (column, row, slice)
    mask = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    mask.SetSpacing([float(s) for s in volume.spacing[::-1]])
    mask.SetOrigin([float(p) for p in volume.position])
    mask.SetDirection([float(v) for v in np.asarray(volume.direction)[:, ::-1].ravel()])
    # frames without the segment are usually omitted, and the frames may run head to feet: the
    # volume is a crop of the image's lattice, which on_image_grid maps onto it exactly
    return on_image_grid(mask, reference, tolerance, name=f"SEG {path}", cropped=True)
