"""IBSI chapter 1 preprocessing with known answers: grid alignment, interpolation, rounding,
re-segmentation, discretisation, normalisation and N4 (acceflow.imaging.preprocess / extract)."""
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO, make_image, need

from acceflow.imaging.extract import extract_features, resegmentation_range, scan_params
from acceflow.imaging.preprocess import (
    interpolator_name,
    n4_correct,
    normalise,
    preprocess,
    resample,
    resample_mask,
    resampled_grid,
    round_intensities,
)
from acceflow.study.settings import ConfigError, check_config

FIRSTORDER = {"setting": {"binWidth": 25, "label": 1}, "imageType": {"Original": {}},
              "featureClass": {"firstorder": None, "shape": ["VoxelVolume"]}}


def centre(image):
    """World position (mm) of the grid centre."""
    size = np.asarray(image.GetSize(), float)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist()))


# --- interpolation grid (IBSI 2.4, align grid centers) -------------------------------------------

def test_grid_matches_ibsi_worked_example():
    """IBSI manual: a 4 x 4 grid at 3 mm resampled to 2 mm gives 6 x 6, origin 0.5 mm earlier."""
    img = make_image(np.zeros((4, 4, 4), np.float32), spacing=(3.0, 3.0, 3.0), origin=(10.0, 20.0, 30.0))
    size, origin = resampled_grid(img, (2.0, 2.0, 2.0))
    assert size == [6, 6, 6]
    np.testing.assert_allclose(origin, [9.5, 19.5, 29.5])


def test_grid_rounds_up_and_keeps_the_centre_under_any_direction():
    img = make_image(np.zeros((60, 201, 204), np.float32), spacing=(0.977, 0.977, 3.0), origin=(-5.0, 7.0, 1.0))
    img.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))   # rotated 90 deg about z
    # IBSI CT phantom, configurations C-E: 204 x 201 x 60 at 0.977 x 0.977 x 3 mm -> 100 x 99 x 90 at 2 mm
    # (ceil: 201 * 0.977 / 2 = 98.2 -> 99, where rounding would give 98)
    out = resample(img, (2.0, 2.0, 2.0), "trilinear")
    assert out.GetSize() == (100, 99, 90)
    np.testing.assert_allclose(centre(out), centre(img), atol=1e-9)
    # the float32 spacing of a NIfTI header (0.8 mm stored as 0.800000012) does not add a voxel
    f32 = make_image(np.zeros((16, 50, 50), np.float32), spacing=(float(np.float32(0.8)),) * 2 + (2.5,))
    assert resampled_grid(f32, (1.0, 1.0, 1.0))[0] == [40, 40, 40]
    # None keeps an axis (IBSI configuration B: 2 x 2 mm in-plane, slices unchanged)
    out = resample(img, (2.0, 2.0, None), "trilinear")
    assert out.GetSize() == (100, 99, 60) and out.GetSpacing()[2] == 3.0
    with pytest.raises(ValueError, match="positive"):
        resampled_grid(img, (2.0, 0.0, None))


def test_interpolator_aliases_follow_ibsi_names(sphere_case):
    image, _ = sphere_case
    for alias, name in [("trilinear", "linear"), ("tricubic_spline", "bspline"), ("nearest_neighbour", "nearest")]:
        assert interpolator_name(alias) == name
        a = sitk.GetArrayFromImage(resample(image, (1.5, 1.5, 1.5), alias))
        np.testing.assert_array_equal(a, sitk.GetArrayFromImage(resample(image, (1.5, 1.5, 1.5), name)))
    with pytest.raises(ValueError, match="tricubic_convolution"):
        interpolator_name("tricubic_convolution")


def test_linear_mask_interpolation_uses_the_partial_volume_threshold():
    """A 10 mm cube on a 2 mm grid resampled to 1.5 mm: the ROI grows as the threshold falls."""
    arr = np.zeros((20, 20, 20), np.uint8)
    arr[5:10, 5:10, 5:10] = 1
    arr[12:16, 12:16, 12:16] = 3                 # a second label keeps its value
    mask = make_image(arr, spacing=(2.0, 2.0, 2.0))
    ref = resample(make_image(arr.astype(np.float32), spacing=(2.0, 2.0, 2.0)), (1.5, 1.5, 1.5), "linear")
    vols = {}
    for t in (0.25, 0.5, 1.0):
        out = sitk.GetArrayFromImage(resample_mask(mask, ref, "trilinear", t))
        assert set(np.unique(out)) == {0, 1, 3}
        vols[t] = (out == 1).sum() * 1.5 ** 3
    assert vols[0.25] > vols[0.5] > vols[1.0]
    assert abs(vols[0.5] - 1000.0) / 1000.0 < 0.15   # 10 mm cube: 1000 mm3
    nearest = sitk.GetArrayFromImage(resample_mask(mask, ref, "nearest"))
    assert set(np.unique(nearest)) == {0, 1, 3}
    with pytest.raises(ValueError, match="nearest neighbour or trilinear"):
        resample_mask(mask, ref, "bspline")
    with pytest.raises(ValueError, match="threshold"):
        resample_mask(mask, ref, "linear", 0.0)


def test_ct_rounding_after_interpolation(sphere_case):
    image, mask = sphere_case
    out, _ = preprocess(image, mask, spacing=(1.3, 1.3, 1.3), interpolator="bspline", rounding=True)
    arr = sitk.GetArrayFromImage(out)
    assert arr.dtype == np.float32 and np.array_equal(arr, np.rint(arr))
    unrounded = sitk.GetArrayFromImage(preprocess(image, mask, spacing=(1.3, 1.3, 1.3))[0])
    assert not np.array_equal(unrounded, np.rint(unrounded))
    np.testing.assert_array_equal(arr, np.rint(unrounded))
    assert np.array_equal(sitk.GetArrayFromImage(round_intensities(make_image(np.array([[[0.5, 1.5, -2.6]]],
                                                                                        np.float32)))),
                          [[[0.0, 2.0, -3.0]]])
    # float64 input is rounded at its own precision: -128.500007 is nearer -129 (float32 would hold -128.5)
    assert sitk.GetArrayFromImage(round_intensities(make_image(np.array([[[-128.500007]]]))))[0, 0, 0] == -129.0
    with pytest.raises(ValueError, match="rounding"):
        preprocess(image, mask, normalisation="zscore", rounding=True)


def test_ibsi_ct_phantom_interpolation_and_resegmentation_diagnostics(shared_data):
    """IBSI CT phantom, configurations C, D and E: our grid, trilinear / tricubic spline
    interpolation, trilinear mask with threshold 0.5, rounding and re-segmentation reproduce IBSI's
    diagnostic reference values (ibsi_1_reference_values_config_{C,D,E}.csv)."""
    folder = need(shared_data / "ibsi" / "data_sets" / "ibsi_1_ct_radiomics_phantom" / "nifti")
    image = sitk.ReadImage(str(folder / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(folder / "mask" / "mask.nii.gz"))
    settings = dict(spacing=(2.0, 2.0, 2.0), mask_interpolator="trilinear", mask_threshold=0.5, rounding=True)

    img, roi = preprocess(image, mask, interpolator="trilinear", **settings)
    a, r = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(roi) == 1
    assert img.GetSize() == (100, 99, 90)
    assert a.mean() == pytest.approx(-270, abs=3) and a.max() == pytest.approx(1854, abs=30)
    assert r.sum() == pytest.approx(45985, abs=100)                        # interpolated ROI, C and D
    assert a[r].mean() == pytest.approx(-48.9, abs=0.1)
    assert (a[r].min(), a[r].max()) == pytest.approx((-939, 521), abs=5)
    lo, hi = resegmentation_range(img, roi, 1, [-1000, 400])               # C: range
    assert ((a >= lo) & (a <= hi) & r).sum() == pytest.approx(45981, abs=300)
    lo, hi = resegmentation_range(img, roi, 1, None, 3)                     # D: outlier filter
    keep = (a >= lo) & (a <= hi) & r
    assert keep.sum() == pytest.approx(44465, abs=800) and a[keep].mean() == pytest.approx(-23.5, abs=3.9)

    img, roi = preprocess(image, mask, interpolator="tricubic_spline", **settings)   # E
    a, r = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(roi) == 1
    assert (a.min(), a.max()) == pytest.approx((-1111, 2637), abs=30)
    assert a[r].mean() == pytest.approx(-48.3, abs=0.1)
    # E: range [-1000, 400] HU and 3 SD, through pyradiomics (first-order only, to stay fast)
    params = scan_params(FIRSTORDER, img, roi, 1, resegment=[-1000, 400], outlier_sd=3)
    assert params["setting"]["resegmentMode"] == "absolute"
    features, diag = extract_features(img, roi, params)
    assert int(diag["diagnostics_Mask-resegmented_VoxelNum"]) == pytest.approx(44484, abs=800)
    assert features["original_firstorder_Mean"] == pytest.approx(-22.6, abs=4.1)
    assert features["original_shape_VoxelVolume"] == pytest.approx(r.sum() * 8.0)   # morphological mask


# --- re-segmentation and discretisation reach pyradiomics ----------------------------------------

@pytest.fixture
def two_level_roi():
    """A 20^3 ROI (8000 voxels at 1 mm) whose voxels alternate 0 and 100 HU."""
    z, y, x = np.mgrid[:30, :30, :30]
    inside = (z >= 5) & (z < 25) & (y >= 5) & (y < 25) & (x >= 5) & (x < 25)
    arr = np.where((x + y + z) % 2 == 0, 0.0, 100.0).astype(np.float32)
    return make_image(arr), make_image(inside.astype(np.uint8))


def test_range_resegmentation_changes_intensity_not_shape(two_level_roi):
    image, mask = two_level_roi
    plain, _ = extract_features(image, mask, scan_params(FIRSTORDER))
    params = scan_params(FIRSTORDER, resegment=[50, None])
    assert params["setting"]["resegmentRange"] == [50.0] and params["setting"]["resegmentMode"] == "absolute"
    reseg, diag = extract_features(image, mask, params)
    assert plain["original_firstorder_Mean"] == pytest.approx(50.0)
    assert reseg["original_firstorder_Mean"] == pytest.approx(100.0)       # the 0 HU half is excluded
    assert reseg["original_firstorder_Range"] == 0.0
    assert reseg["original_shape_VoxelVolume"] == plain["original_shape_VoxelVolume"] == 8000
    assert "'resegmentRange': [50.0]" in diag["diagnostics_Configuration_Settings"]   # recorded per scan
    assert int(diag["diagnostics_Mask-resegmented_VoxelNum"]) == 4000
    upper_only, _ = extract_features(image, mask, scan_params(FIRSTORDER, resegment=[None, 50]))
    assert upper_only["original_firstorder_Mean"] == 0.0                   # the 100 HU half is excluded


def test_outlier_filter_removes_mean_plus_3_sd():
    rng = np.random.default_rng(0)
    arr = rng.normal(40.0, 5.0, (20, 20, 20)).astype(np.float32)
    inside = np.zeros(arr.shape, bool)
    inside[2:18, 2:18, 2:18] = True                               # 4096 voxels
    arr[10, 10, 3:8] = 1000.0                                     # five outliers inside the ROI
    image, mask = make_image(arr), make_image(inside.astype(np.uint8))
    params = scan_params(FIRSTORDER, outlier_sd=3)
    assert params["setting"]["resegmentRange"] == [-3.0, 3.0] and params["setting"]["resegmentMode"] == "sigma"
    features, diag = extract_features(image, mask, params)
    values = arr[inside]
    expected = values[np.abs(values - values.mean()) <= 3 * values.std()]
    assert expected.size == inside.sum() - 5                       # exactly the five outliers go
    assert int(diag["diagnostics_Mask-resegmented_VoxelNum"]) == expected.size
    assert features["original_firstorder_Maximum"] < 100
    assert features["original_firstorder_Mean"] == pytest.approx(expected.mean(), rel=1e-6)


def test_bin_count_and_bin_width_give_the_expected_grey_levels():
    """ROI intensities 0..127, 8 voxels each: 32 fixed bins hold 4 values each (entropy log2 32 = 5
    bits); a fixed width of 16 gives 8 levels (3 bits)."""
    arr = np.repeat(np.arange(128, dtype=np.float32), 8).reshape(8, 8, 16)
    image = make_image(np.pad(arr, 2))
    mask = make_image(np.pad(np.ones(arr.shape, np.uint8), 2))
    by_count = scan_params(FIRSTORDER, discretisation={"bin_count": 32})
    assert by_count["setting"]["binCount"] == 32 and "binWidth" not in by_count["setting"]
    by_width = scan_params(by_count, discretisation={"bin_width": 16})
    assert by_width["setting"]["binWidth"] == 16 and "binCount" not in by_width["setting"]
    count, diag = extract_features(image, mask, by_count)
    width, _ = extract_features(image, mask, by_width)
    assert count["original_firstorder_Entropy"] == pytest.approx(5.0)
    assert count["original_firstorder_Uniformity"] == pytest.approx(1 / 32)
    assert width["original_firstorder_Entropy"] == pytest.approx(3.0)
    assert "'binCount': 32" in diag["diagnostics_Configuration_Settings"]
    assert FIRSTORDER["setting"] == {"binWidth": 25, "label": 1}    # the file's parameters are not modified


def test_scan_params_rejects_bad_settings(two_level_roi):
    image, mask = two_level_roi
    with pytest.raises(ValueError, match="one of bin_width or bin_count"):
        scan_params(FIRSTORDER, discretisation={"bin_width": 1, "bin_count": 8})
    with pytest.raises(ValueError, match="positive"):
        scan_params(FIRSTORDER, discretisation={"bin_count": 0})
    with pytest.raises(ValueError, match="image and mask"):
        scan_params(FIRSTORDER, resegment=[0, 50], outlier_sd=3)
    with pytest.raises(ValueError, match="empty"):
        scan_params(FIRSTORDER, resegment=[50, 0])
    with pytest.raises(ValueError, match="no voxel"):
        resegmentation_range(image, mask, 1, [200, 300], 3)
    assert scan_params(FIRSTORDER) == FIRSTORDER


# --- normalisation and N4 -------------------------------------------------------------------------

def test_reference_tissue_normalisation(sphere_case):
    image, mask = sphere_case
    arr = sitk.GetArrayFromImage(mask)
    arr[2:8, 2:8, 2:8] = 2                                          # reference tissue, background ~40
    labelled = make_image(arr)
    ref = arr == 2
    ratio = sitk.GetArrayFromImage(normalise(image, "reference", labelled, reference_label=2))
    assert ratio[ref].mean() == pytest.approx(1.0, abs=1e-6)
    z = sitk.GetArrayFromImage(normalise(image, "reference_zscore", labelled, reference_label=2))
    assert z[ref].mean() == pytest.approx(0.0, abs=1e-5) and z[ref].std() == pytest.approx(1.0, abs=1e-5)
    # lesion (~100) against reference (~40): ratio about 2.5
    assert ratio[arr == 1].mean() == pytest.approx(100 / 40, rel=0.05)
    # through preprocess with the IBSI mask interpolation: both labels survive resampling
    out_img, out_mask = preprocess(image, labelled, spacing=(2.0, 2.0, 2.0), normalisation="reference",
                                   reference_label=2, mask_interpolator="linear")
    assert set(np.unique(sitk.GetArrayViewFromImage(out_mask))) == {0, 1, 2}
    with pytest.raises(ValueError, match="absent"):
        normalise(image, "reference", labelled, reference_label=5)
    with pytest.raises(ValueError, match="reference_label"):
        normalise(image, "reference", None, reference_label=2)


def test_n4_removes_a_multiplicative_bias_field():
    """A uniform sphere (100 + 5 background) times a smooth bias (exp of a linear ramp plus a
    quadratic): the coefficient of variation inside the sphere drops from 16 % to about 1.5 %."""
    n = 48
    z, y, x = np.mgrid[:n, :n, :n].astype(float)
    obj = (x - 24) ** 2 + (y - 24) ** 2 + (z - 24) ** 2 <= 18 ** 2
    bias = np.exp(0.35 * (x - 24) / 18 + 0.2 * ((y - 24) / 18) ** 2)
    arr = ((100 * obj + 5) * bias + np.random.default_rng(1).normal(0, 1, obj.shape)).astype(np.float32)
    image = make_image(arr, spacing=(2.0, 2.0, 2.0))
    out = sitk.GetArrayFromImage(n4_correct(image, shrink=4))

    def cv(a):
        return a[obj].std() / a[obj].mean()

    assert cv(arr) > 0.15
    assert cv(out) < cv(arr) / 5
    via_preprocess = sitk.GetArrayFromImage(preprocess(image, None, n4=True, n4_shrink=4)[0])
    np.testing.assert_allclose(via_preprocess, out, rtol=1e-5)
    with pytest.raises(ValueError, match="shrink"):
        n4_correct(image, shrink=0)


# --- configuration ----------------------------------------------------------------------------------

def _config(**changes):
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for section, values in changes.items():
        config[section].update(values)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def test_new_keys_default_to_the_previous_behaviour_and_contradictions_are_refused():
    config = _config()
    pre, ext = config["preprocessing"], config["extraction"]
    assert (pre["mask_interpolator"], pre["round_intensities"], pre["n4"], pre["reference_label"]) == (
        "nearest", {}, {}, None)
    assert (ext["discretisation"], ext["resegment"], ext["outlier_sd"]) == ({}, {}, {})
    check_config(_config(preprocessing={"image_interpolator": "trilinear", "mask_interpolator": "trilinear",
                                        "round_intensities": {"CT": True}, "n4": {"MR": True},
                                        "normalisation": {"CT": "none", "MR": "reference"}, "reference_label": 2},
                         extraction={"discretisation": {"MR": {"bin_count": 32}},
                                     "resegment": {"CT": [-1000, 400]}, "outlier_sd": {"MR": 3}}))
    for changes, match in [({"preprocessing": {"normalisation": {"MR": "reference"}}}, "reference_label"),
                           ({"preprocessing": {"reference_label": 1}}, "extraction.label"),
                           ({"preprocessing": {"round_intensities": {"MR": True}}}, "round_intensities"),
                           ({"extraction": {"resegment": {"CT": [400, -1000]}}}, "lower <= upper")]:
        with pytest.raises(ConfigError, match=match):
            check_config(_config(**changes))
