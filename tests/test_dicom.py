"""DICOM readers (series, RTSTRUCT, SEG) on the IBSI phantoms, and the ingest geometry / content checks."""
import os
import random
import re

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from conftest import SHARED_DATA, make_image, need
from pydicom.uid import generate_uid

from acceflow.io.dicom import (
    FRAME_OF_REFERENCE_KEY,
    SERIES_UID_KEY,
    dicom_object,
    list_series,
    read_dicom_series,
    rtstruct_roi_names,
    seg_segments,
    sorted_slices,
)
from acceflow.io.images import ImageError, on_image_grid, read_image, read_mask, write_image
from acceflow.io.manifest import load_manifest
from acceflow.io.qc import NOTE_PREFIX, check_scan, ingest

PAT1 = SHARED_DATA / "ibsi" / "data_sets" / "ibsi_1_ct_radiomics_phantom"
DIGITAL = SHARED_DATA / "ibsi" / "data_sets" / "ibsi_1_digital_phantom"
BINARY = {"type": "binary", "column": "outcome", "positive": 1}


def dice(a, b) -> float:
    a, b = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def link_slices(folder, files, names=None):
    """Symbolic links to (real) slices in a new folder, optionally under other names."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        os.symlink(f, folder / (names[i] if names else f.name))
    return folder


@pytest.fixture(scope="module")
def pat1():
    """PAT1's CT series folder, RTSTRUCT and the IBSI reference NIfTI image and mask."""
    need(PAT1)
    return {"series": PAT1 / "dicom" / "image", "rtstruct": next((PAT1 / "dicom" / "mask").glob("*.dcm")),
            "nifti_image": sitk.ReadImage(str(PAT1 / "nifti" / "image" / "phantom.nii.gz")),
            "nifti_mask": sitk.ReadImage(str(PAT1 / "nifti" / "mask" / "mask.nii.gz")),
            "slices": sorted((PAT1 / "dicom" / "image").glob("*.dcm"))}


@pytest.fixture(scope="module")
def ct(pat1):
    return read_dicom_series(pat1["series"])


# --- image series -------------------------------------------------------------------------------


def test_pat1_series_matches_the_nifti_image(pat1, ct):
    ref = pat1["nifti_image"]
    assert ct.GetSize() == ref.GetSize() == (204, 201, 60)
    np.testing.assert_allclose(ct.GetSpacing(), ref.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(ct.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(ct.GetDirection(), ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(ref))  # HU
    assert ct.GetMetaData(SERIES_UID_KEY) == list_series(pat1["series"])[0].uid
    assert ct.HasMetaDataKey(FRAME_OF_REFERENCE_KEY)
    assert read_image(pat1["series"]).GetSize() == ct.GetSize()  # read_image dispatches folders here


def test_slices_are_ordered_by_position_as_gdcm_orders_them(pat1, tmp_path):
    items = [(f, pydicom.dcmread(f, stop_before_pixels=True)) for f in pat1["slices"]]
    reader = sitk.ImageSeriesReader()
    gdcm = reader.GetGDCMSeriesFileNames(str(pat1["series"]), list_series(pat1["series"])[0].uid)
    assert sorted_slices(pat1["series"], items) == list(gdcm)
    # file names that say nothing about the order: still read in position order
    names = [f"x{i:03d}.dcm" for i in range(len(pat1["slices"]))]
    random.Random(1).shuffle(names)
    shuffled = read_image(link_slices(tmp_path / "shuffled", pat1["slices"], names))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(shuffled), sitk.GetArrayViewFromImage(pat1["nifti_image"]))


@pytest.fixture(scope="module")
def multi_series(pat1, tmp_path_factory):
    """One folder with three series: PAT1, a copy of PAT1 under a new SeriesInstanceUID, the
    digital phantom's (multi-frame MR) image, and PAT1's RTSTRUCT."""
    folder = link_slices(tmp_path_factory.mktemp("multi"), pat1["slices"])
    uid = generate_uid()
    for f in pat1["slices"]:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SeriesDescription = uid, "PAT1 copy"
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / f"copy_{f.name}")
    os.symlink(need(DIGITAL / "dicom_deprecated" / "image" / "phantom.deprecated"), folder / "phantom.dcm")
    os.symlink(pat1["rtstruct"], folder / "rtstruct.dcm")
    return folder, uid


def test_a_folder_with_several_series_needs_the_uid(pat1, multi_series):
    folder, copy_uid = multi_series
    series = {s.uid: s for s in list_series(folder)}
    original = list_series(pat1["series"])[0].uid
    assert set(series) == {original, copy_uid, pydicom.dcmread(folder / "phantom.dcm").SeriesInstanceUID}
    with pytest.raises(ImageError) as err:
        read_image(folder)
    message = str(err.value)
    for text in (str(folder), "holds 3 DICOM series", original, f"{copy_uid} (CT, 'PAT1 copy', 60 slices)",
                 "(MR, '', 4 slices)", "series_uid column"):
        assert text in message, (text, message)
    chosen = read_image(folder, series_uid=copy_uid)
    assert chosen.GetMetaData(SERIES_UID_KEY) == copy_uid
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(chosen), sitk.GetArrayViewFromImage(pat1["nifti_image"]))
    with pytest.raises(ImageError, match=r"no series with SeriesInstanceUID 1\.2\.3; series present: .*PAT1 copy"):
        read_image(folder, series_uid="1.2.3")


@pytest.mark.parametrize("defect, expected", [
    ("missing", [r"slice spacing is not uniform \(median gap 3\.000 mm; irregular: -10\.400 -> -4\.400 mm "
                 r"\(gap 6\.000\)\)", "a slice is missing", r"Positions \(mm\): -100\.400, -97\.400"]),
    ("shifted", [r"slice spacing is not uniform", r"gap 4\.000", r"gap 2\.000", "re-export the complete series"]),
    ("duplicate", [r"several slices at the same position \(-7\.400 mm", "split it"]),
])
def test_inconsistent_slice_spacing_is_refused_with_the_positions(pat1, tmp_path, defect, expected):
    slices = list(pat1["slices"])
    middle = next(f for f in slices if abs(float(pydicom.dcmread(f, stop_before_pixels=True)
                                                  .ImagePositionPatient[2]) + 7.4) < 1e-3)
    folder = tmp_path / defect
    if defect == "missing":
        link_slices(folder, [f for f in slices if f != middle])
    elif defect == "shifted":
        link_slices(folder, [f for f in slices if f != middle])
        ds = pydicom.dcmread(middle)
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 1.0]
        ds.save_as(folder / middle.name)
    else:
        link_slices(folder, slices)
        ds = pydicom.dcmread(middle)
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / "second_echo.dcm")
    with pytest.raises(ImageError) as err:
        read_image(folder)
    assert str(folder) in str(err.value)
    for pattern in expected:
        assert re.search(pattern, str(err.value)), (pattern, str(err.value))


def test_rescale_varying_between_slices_is_kept(pat1, tmp_path):
    """PET-like per-slice RescaleSlope: the series is read as float32 (int16 would truncate)."""
    for i, f in enumerate(pat1["slices"][:3]):
        ds = pydicom.dcmread(f)
        ds.RescaleSlope = 0.5 if i == 1 else 1
        ds.save_as(tmp_path / f.name)
    image = read_image(tmp_path)
    middle = pydicom.dcmread(tmp_path / pat1["slices"][1].name)
    assert image.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image)[1], middle.pixel_array * 0.5 - 1000)


def test_a_mask_object_is_not_an_image(pat1):
    assert dicom_object(pat1["rtstruct"]) == "RTSTRUCT" and dicom_object(pat1["slices"][0]) == "IMAGE"
    with pytest.raises(ImageError, match="is a DICOM RTSTRUCT \\(a mask\\), not an image; give it in the manifest's mask"):
        read_image(pat1["rtstruct"])
    with pytest.raises(ImageError, match="holds no DICOM image series \\(only RTSTRUCT objects: a mask"):
        read_image(pat1["rtstruct"].parent)
    with pytest.raises(ImageError, match="series_uid 1.2 given, but the image is a single file"):
        read_image(pat1["slices"][0], series_uid="1.2")


# --- RTSTRUCT -----------------------------------------------------------------------------------


def test_pat1_rtstruct_matches_the_reference_mask(pat1, ct):
    """Issue #3: the RTSTRUCT rasterised on PAT1's grid matches IBSI's NIfTI mask (Dice >= 0.98).

    Measured: Dice 1.0 (125,256 voxels, identical), on the DICOM and on the NIfTI image.
    """
    notes = []
    mask = read_mask(pat1["rtstruct"], ct, notes=notes)
    assert rtstruct_roi_names(pat1["rtstruct"]) == ["GTV-1"]
    assert dice(mask, pat1["nifti_mask"]) >= 0.98
    assert np.count_nonzero(sitk.GetArrayViewFromImage(mask)) == np.count_nonzero(
        sitk.GetArrayViewFromImage(pat1["nifti_mask"]))
    assert notes == []
    on_nifti = read_mask(pat1["rtstruct"], pat1["nifti_image"])  # any image format is a reference
    assert dice(on_nifti, pat1["nifti_mask"]) >= 0.98
    # the folder holding just the RTSTRUCT is accepted too; the ROI gets extraction.label
    by_folder = read_mask(pat1["rtstruct"].parent, ct, roi="gtv-1", label=3)
    assert sorted(np.unique(sitk.GetArrayViewFromImage(by_folder))) == [0, 3]


def _edited_rtstruct(src, dst, edit):
    ds = pydicom.dcmread(src)
    edit(ds)
    ds.save_as(dst)
    return dst


def _add_roi(ds):
    import copy
    roi = copy.deepcopy(ds.StructureSetROISequence[0])
    roi.ROINumber, roi.ROIName = 2, "External"
    ds.StructureSetROISequence.append(roi)
    contours = copy.deepcopy(ds.ROIContourSequence[0])
    contours.ReferencedROINumber = 2
    ds.ROIContourSequence.append(contours)


def _shift_contours(ds):
    for c in ds.ROIContourSequence[0].ContourSequence:
        data = np.asarray(c.ContourData, float).reshape(-1, 3)
        data[:, 2] += 1.5
        c.ContourData = [f"{v:.6f}" for v in data.ravel()]


def test_rtstruct_roi_choice_and_errors(pat1, ct, tmp_path):
    with pytest.raises(ImageError) as err:
        read_mask(pat1["rtstruct"], ct, roi="GTV-2")
    assert (f"{pat1['rtstruct']}: no ROI 'GTV-2'; ROIs present: 'GTV-1'; fix the manifest's roi column or "
            f"input.roi") in str(err.value)
    two = _edited_rtstruct(pat1["rtstruct"], tmp_path / "two.dcm", _add_roi)
    with pytest.raises(ImageError, match=r"holds 2 ROIs \('GTV-1', 'External'\); name the one to use with the "
                                         r"manifest's roi column or input.roi"):
        read_mask(two, ct)
    assert dice(read_mask(two, ct, roi="External"), pat1["nifti_mask"]) == 1.0
    other_frame = _edited_rtstruct(pat1["rtstruct"], tmp_path / "frame.dcm", lambda ds: setattr(
        ds.StructureSetROISequence[0], "ReferencedFrameOfReferenceUID", "1.2.3.4"))
    with pytest.raises(ImageError, match=r"drawn in frame of reference 1\.2\.3\.4, but the image is in .*belongs to "
                                         r"another scan"):
        read_mask(other_frame, ct)
    off_plane = _edited_rtstruct(pat1["rtstruct"], tmp_path / "shifted.dcm", _shift_contours)
    with pytest.raises(ImageError, match=r"lies 1\.500 mm off the image's nearest slice plane; the RTSTRUCT was "
                                         r"drawn on another series"):
        read_mask(off_plane, ct)


# --- SEG ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pat1_seg(pat1, tmp_path_factory):
    """A DICOM SEG written with highdicom from PAT1's CT series: segment 1 = the reference GTV mask,
    segment 2 = a 10-voxel-wide block away from it."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = sorted((pydicom.dcmread(f) for f in pat1["slices"]), key=lambda d: float(d.ImagePositionPatient[2]))
    gtv = sitk.GetArrayFromImage(pat1["nifti_mask"]).astype(bool)  # (z, y, x), z ascending as `sources`
    block = np.zeros_like(gtv)
    block[5:10, 5:15, 5:15] = True
    assert not (gtv & block).any()

    def description(number, name, kind):
        return hd.seg.SegmentDescription(segment_number=number, segment_label=name,
                                         segmented_property_category=codes.SCT.Tissue, segmented_property_type=kind,
                                         algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)

    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=np.stack([gtv, block], axis=-1).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description(1, "GTV-1", codes.SCT.Neoplasm), description(2, "Block", codes.SCT.Tissue)],
        series_instance_uid=generate_uid(), series_number=99, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="acceflow tests", manufacturer_model_name="test_dicom", software_versions="1",
        device_serial_number="1")
    path = tmp_path_factory.mktemp("seg") / "pat1_seg.dcm"
    seg.save_as(path)
    return path


def test_seg_round_trip_is_voxel_exact(pat1, ct, pat1_seg):
    assert dicom_object(pat1_seg) == "SEG" and seg_segments(pat1_seg) == {1: "GTV-1", 2: "Block"}
    reference = sitk.GetArrayViewFromImage(pat1["nifti_mask"])
    for roi in ("GTV-1", "1", 1, "gtv-1"):
        mask = read_mask(pat1_seg, ct, roi=roi)
        assert mask.GetSize() == ct.GetSize() and mask.GetOrigin() == ct.GetOrigin()
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(mask), reference)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_mask(pat1_seg, pat1["nifti_image"], roi=1)),
                                  reference)  # and on the NIfTI image's grid
    labels = sitk.GetArrayFromImage(read_mask(pat1_seg, ct))  # no roi: a label map of segment numbers
    assert np.count_nonzero(labels == 1) == np.count_nonzero(reference) and np.count_nonzero(labels == 2) == 500
    assert sorted(np.unique(sitk.GetArrayFromImage(read_mask(pat1_seg, ct, roi="Block", label=4)))) == [0, 4]
    with pytest.raises(ImageError, match=r"no segment 'Liver'; segments present: 1: 'GTV-1', 2: 'Block'; fix the "
                                         r"manifest's roi column or input.roi"):
        read_mask(pat1_seg, ct, roi="Liver")


def test_real_seg_of_the_digital_phantom():
    """The digital phantom's deprecated DICOM (multi-frame MR + SEG; deprecated for its spacing)."""
    folder = need(DIGITAL / "dicom_deprecated")
    image = read_image(folder / "image" / "phantom.deprecated")
    mask = read_mask(folder / "mask" / "mask.deprecated", image)
    nifti_image = sitk.ReadImage(str(DIGITAL / "nifti" / "image" / "phantom.nii.gz"))
    nifti_mask = sitk.ReadImage(str(DIGITAL / "nifti" / "mask" / "mask.nii.gz"))
    inside = np.sort(sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) > 0])
    expected = np.sort(sitk.GetArrayViewFromImage(nifti_image)[sitk.GetArrayViewFromImage(nifti_mask) > 0])
    assert inside.size == 74
    np.testing.assert_array_equal(inside, expected)  # the same 74 voxel values under the mask


# --- ingest with DICOM masks ----------------------------------------------------------------------


def test_ingest_takes_rtstruct_and_seg_masks_with_roi_column(pat1, pat1_seg, tmp_path):
    rows = [("rt", pat1["series"], pat1["rtstruct"], "GTV-1", "A", 1),
            ("seg", pat1["series"], pat1_seg, "Block", "A", 0),
            ("nii", pat1["series"], PAT1 / "nifti" / "mask" / "mask.nii.gz", "", "B", 1),
            ("bad", pat1["series"], pat1["rtstruct"], "PTV", "B", 0)]
    pd.DataFrame(rows, columns=["case_id", "image", "mask", "roi", "cohort", "outcome"]).to_csv(
        tmp_path / "manifest.tsv", sep="\t", index=False)
    manifest = load_manifest(tmp_path / "manifest.tsv")
    assert list(manifest["roi"]) == ["GTV-1", "Block", "", "PTV"]
    qc, scans = ingest(manifest, BINARY, ["A"], ["B"], min_voxels=100)
    verdict = qc.set_index("case_id")
    assert list(scans["case_id"]) == ["rt", "seg", "nii"]
    assert verdict.loc["rt", "reason"] == "" and verdict.loc["seg", "reason"] == ""
    assert verdict.loc["bad", "status"] == "excluded"
    assert "no ROI 'PTV'; ROIs present: 'GTV-1'" in verdict.loc["bad", "reason"]
    # the DICOM image (float64 header) and the NIfTI mask (float32 header) agree within SAME_GRID_MM: no note
    assert verdict.loc["nii", "reason"] == ""


def test_series_uid_and_roi_columns(tmp_path):
    (tmp_path / "m.tsv").write_text("case_id\timage\tcohort\troi\tseries_uid\n"
                                    "a\ta.nii\tA\t2\t1.2.840.1\nb\tb.nii\tA\t\t\n")
    df = load_manifest(tmp_path / "m.tsv")
    assert list(df["roi"]) == ["2", ""] and list(df["series_uid"]) == ["1.2.840.1", ""]


# --- geometry and content checks -----------------------------------------------------------------


@pytest.fixture
def case(tmp_path, sphere_case):
    image, mask = sphere_case
    write_image(image, tmp_path / "img.nii.gz")
    return tmp_path, image, mask


def _write(folder, name, image):
    sitk.WriteImage(image, str(folder / name))  # not write_image: it refuses the NaN voxels these tests need
    return str(folder / name)


def test_mask_within_tolerance_is_resampled_with_a_note(case):
    folder, image, mask = case
    nudged = sitk.Image(mask)
    nudged.SetOrigin((0.0, 0.0, 0.0005))  # 0.5 um: float noise of another exporter
    notes = []
    assert check_scan(str(folder / "img.nii.gz"), _write(folder, "nudged.nii.gz", nudged), notes=notes) == ""
    assert len(notes) == 1 and "nudged.nii.gz resampled onto the image's grid (nearest neighbour; within " \
                                "input.geometry_tolerance_mm = 0.001): origin" in notes[0]
    # the note reaches qc.tsv, status ok
    pd.DataFrame([("n1", "img.nii.gz", "nudged.nii.gz", "A", 1), ("n2", "img.nii.gz", "nudged.nii.gz", "A", 0)],
                 columns=["case_id", "image", "mask", "cohort", "outcome"]).to_csv(folder / "m.tsv", sep="\t",
                                                                                   index=False)
    qc, _ = ingest(load_manifest(folder / "m.tsv"), BINARY, ["A"], [])
    assert (qc["status"] == "ok").all() and qc["reason"].str.startswith(NOTE_PREFIX + "mask ").all()
    assert qc["reason"].str.contains("resampled onto the image's grid").all()


def test_mask_on_the_same_voxels_in_another_layout_is_resampled_exactly(case):
    folder, image, mask = case
    arr = sitk.GetArrayFromImage(mask)
    short = make_image(arr[:30].copy())  # ends at slice 29; the region (slices 12-28) is inside
    flipped = sitk.GetImageFromArray(arr[:, :, ::-1].copy())  # x stored right to left (RAS-like)
    flipped.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    flipped.SetOrigin((39.0, 0.0, 0.0))
    for name, variant in (("short.nii.gz", short), ("flipped.nii.gz", flipped)):
        notes = []
        back = read_mask(_write(folder, name, variant), image, notes=notes)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), arr)
        assert "resampled onto the image's grid" in notes[0], notes


def test_mask_beyond_tolerance_is_refused_naming_the_difference(case):
    folder, image, mask = case
    moved = sitk.Image(mask)
    moved.SetOrigin((0.0, 0.0, 0.5))
    path = _write(folder, "moved.nii.gz", moved)
    reason = check_scan(str(folder / "img.nii.gz"), path)
    for text in (f"mask {path} does not match its image's voxel grid: origin (0.0, 0.0, 0.5) vs image (0.0, 0.0, 0.0)",
                 "first voxel 0.5 mm from the image's first voxel", "beyond input.geometry_tolerance_mm = 0.001",
                 "re-export the mask on the image's grid"):
        assert text in reason, (text, reason)
    notes = []  # a study that accepts half a millimetre says so
    assert check_scan(str(folder / "img.nii.gz"), path, tolerance=0.5, notes=notes) == "" and notes
    coarse = make_image(sitk.GetArrayFromImage(mask)[::2, ::2, ::2].copy(), spacing=(2.0, 2.0, 2.0))
    reason = check_scan(str(folder / "img.nii.gz"), _write(folder, "coarse.nii.gz", coarse))
    assert "spacing (2.0, 2.0, 2.0) vs image (1.0, 1.0, 1.0)" in reason and "size (20, 20, 20)" in reason
    rotated = sitk.Image(mask)
    c, s = np.cos(0.1), np.sin(0.1)
    rotated.SetDirection((c, -s, 0, s, c, 0, 0, 0, 1))
    assert "direction" in check_scan(str(folder / "img.nii.gz"), _write(folder, "rot.nii.gz", rotated))


def test_region_outside_the_image_is_refused(case):
    folder, image, mask = case
    arr = np.zeros((50, 40, 40), np.uint8)
    arr[35:45, 10:20, 10:20] = 1  # slices 40-44 lie beyond the image's 40 slices
    reason = check_scan(str(folder / "img.nii.gz"), _write(folder, "long.nii.gz", make_image(arr)))
    assert "long.nii.gz does not match its image's voxel grid: size (40, 40, 50)" in reason
    assert "500 region voxel(s) lie outside the image" in reason


@pytest.mark.parametrize("kind, expected", [
    ("small", "has 2 voxels with label 1, fewer than the minimum 10 (extraction.min_voxels); check the mask, "
              "or lower extraction.min_voxels"),
    ("empty", "has no voxel with label 1 (labels present: [0]); set extraction.label or fix the mask"),
    ("nan", "has 1 NaN or infinite voxels; re-export it as a label image"),
    ("probability", "has non-integer values (e.g. 0.25): a probability map is not a mask; threshold it"),
    ("labels", "has no voxel with label 1 (labels present: [0, 2, 3])"),
])
def test_unusable_mask_content_is_named(case, kind, expected):
    folder, image, mask = case
    arr = np.zeros((40, 40, 40), np.float32)
    if kind == "small":
        arr[20, 20, 20:22] = 1
    elif kind == "nan":
        arr[20, 20, 20:30] = 1
        arr[0, 0, 0] = np.nan
    elif kind == "probability":
        arr[20, 20, 20:30] = 0.25
    elif kind == "labels":
        arr[20, 20, 20:30], arr[5, 5, 5:10] = 2, 3
    path = _write(folder, f"{kind}.mha", make_image(arr))  # MHA keeps NaN (NIfTI I/O reads it as 0)
    reason = check_scan(str(folder / "img.nii.gz"), path, min_voxels=10)
    assert reason.startswith(f"mask {path} ") and expected in reason, reason


def test_unusable_image_shape_is_named(case):
    folder, image, mask = case
    flat = _write(folder, "flat.nii.gz", sitk.GetImageFromArray(np.zeros((40, 40), np.float32)))
    assert f"image {flat} is 2D; the workflow needs a 3D volume" in check_scan(flat, str(folder / "img.nii.gz"))
    with pytest.raises(ImageError, match="mask is 2D but its image is 3D"):
        on_image_grid(sitk.GetImageFromArray(np.zeros((40, 40), np.uint8)), image)
