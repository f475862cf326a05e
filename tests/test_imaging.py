"""Readers, geometry checks, preprocessing, Otsu baseline and pyradiomics extraction."""
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO, make_image, need

from acceflow.imaging.extract import extract_features, load_params
from acceflow.imaging.preprocess import normalise, preprocess, resample, resampled_grid
from acceflow.imaging.segment import otsu_segment
from acceflow.io.images import ImageError, geometry_mismatch, mask_voxels, read_image, write_image


def dice(a, b):
    a, b = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_read_write_roundtrip(tmp_path, sphere_case):
    image, _ = sphere_case
    write_image(image, tmp_path / "a.nii.gz")
    back = read_image(tmp_path / "a.nii.gz")
    assert back.GetSpacing() == image.GetSpacing()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert not list(tmp_path.glob(".tmp_*"))


def test_read_missing_and_corrupt(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "nope.nii.gz")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="cannot be read"):
        read_image(bad)


def test_read_real_nrrd(shared_data):
    img = read_image(need(shared_data / "pyradiomics" / "brain1_image.nrrd"))
    mask = read_image(shared_data / "pyradiomics" / "brain1_label.nrrd")
    assert img.GetDimension() == 3 and geometry_mismatch(img, mask) == []
    assert mask_voxels(mask, 1) > 0


def test_geometry_mismatch_names_the_property(sphere_case):
    image, mask = sphere_case
    shifted = sitk.Image(mask)
    shifted.SetOrigin((0.0, 0.0, 2.0))
    problems = geometry_mismatch(image, shifted)
    assert len(problems) == 1 and problems[0].startswith("origin")
    assert geometry_mismatch(image, mask) == []


def test_resampled_grid_keeps_extent_and_centre():
    img = make_image(np.zeros((10, 20, 20), np.float32), spacing=(0.5, 0.5, 2.0), origin=(1.0, 2.0, 3.0))
    size, origin = resampled_grid(img, (1.0, 1.0, 1.0))
    assert size == [10, 10, 20]
    # centre of the old grid: origin + (n - 1) * spacing / 2
    old_centre = np.array([1.0, 2.0, 3.0]) + (np.array([20, 20, 10]) - 1) * np.array([0.5, 0.5, 2.0]) / 2
    new_centre = np.array(origin) + (np.array(size) - 1) * 1.0 / 2
    np.testing.assert_allclose(new_centre, old_centre)


def test_preprocess_mask_stays_binary_and_aligned(sphere_case):
    image, mask = sphere_case
    img2, mask2 = preprocess(image, mask, spacing=(2.0, 2.0, 2.0))
    assert img2.GetSpacing() == (2.0, 2.0, 2.0) and geometry_mismatch(img2, mask2) == []
    assert set(np.unique(sitk.GetArrayViewFromImage(mask2))) <= {0, 1}
    # volume preserved to within the partial-volume error of a 2 mm grid (sphere of 8 mm: 2145 mm3)
    vol = mask_voxels(mask2) * 8.0
    assert abs(vol - 4 / 3 * np.pi * 8 ** 3) / (4 / 3 * np.pi * 8 ** 3) < 0.15
    # B-spline keeps the lesion's mean intensity (~100 HU) inside the mask
    inside = sitk.GetArrayViewFromImage(img2)[sitk.GetArrayViewFromImage(mask2) > 0]
    assert 90 < inside.mean() < 105


def test_zscore_normalisation(sphere_case):
    image, _ = sphere_case
    out = sitk.GetArrayFromImage(normalise(image, "zscore"))
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="unknown"):
        normalise(image, "minmax")
    assert normalise(image, "none") is image


def test_resample_rejects_bad_arguments(sphere_case):
    image, _ = sphere_case
    with pytest.raises(ValueError, match="interpolator"):
        resample(image, (1, 1, 1), "cubic")
    with pytest.raises(ValueError, match="positive"):
        resample(image, (0, 1, 1))


def test_otsu_recovers_sphere(sphere_case):
    image, mask = sphere_case
    seg = otsu_segment(image, mask, margin_mm=5)
    assert dice(seg, mask) > 0.95
    seg_box = otsu_segment(image, box_mm=[8, 8, 8, 32, 32, 32])
    assert dice(seg_box, mask) > 0.95
    with pytest.raises(ValueError, match="box"):
        otsu_segment(image)


def test_extract_shape_of_a_sphere(sphere_case):
    image, mask = sphere_case
    features, diagnostics = extract_features(image, mask, load_params(REPO / "config/radiomics/default.yaml"))
    assert all(k.startswith("original_") for k in features)
    assert all(k.startswith("diagnostics_") for k in diagnostics)
    assert features["original_shape_VoxelVolume"] == mask_voxels(mask)
    assert features["original_shape_Sphericity"] > 0.9
    assert 95 < features["original_firstorder_Mean"] < 105
    assert len(features) > 90 and all(np.isfinite(list(features.values())))

