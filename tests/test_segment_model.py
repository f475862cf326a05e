"""MONAI segmentation (acceflow.imaging.segment_model) on a tiny volume on CPU, and the quality
metrics (acceflow.metrics.segmentation.segmentation_quality) on two offset spheres whose
Dice, HD95, ASSD and surface Dice are worked out by hand."""
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from acceflow.metrics.segmentation import segmentation_agreement, segmentation_quality, summarise_quality
from acceflow.study.settings import section_settings

warnings.filterwarnings("ignore", category=FutureWarning)


def _sphere(shape, spacing, centre_mm, r):
    z, y, x = np.indices(shape).astype(float)
    sx, sy, sz = spacing
    return (((x * sx - centre_mm[0]) ** 2 + (y * sy - centre_mm[1]) ** 2 + (z * sz - centre_mm[2]) ** 2)
            <= r * r).astype(np.uint8)


def _image(arr, spacing):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    return img


@pytest.mark.parametrize("spacing, shape, axis", [((1.0, 1.0, 1.0), (56, 56, 64), 0),
                                                  ((1.0, 1.0, 2.0), (28, 56, 64), 2)])
def test_offset_spheres_known_answers(spacing, shape, axis):
    # Two spheres of radius r = 20 mm, centres d mm apart. By hand (continuous shapes):
    #   intersection volume pi (4r + d)(2r - d)^2 / 12 -> Dice = (4r + d)(2r - d)^2 / (16 r^3);
    #   a point of sphere A at angle theta from the offset axis lies |sqrt(r^2 + d^2 - 2 r d cos theta) - r|
    #   from B's surface; cos theta is uniform on the sphere (Archimedes), which makes that distance
    #   uniform on [0, d]: HD95 = 0.95 d, ASSD = d / 2, surface Dice at tolerance t = t / d.
    r, d = 20.0, 6.0 if axis == 0 else 8.0
    centre = np.array([shape[2] * spacing[0], shape[1] * spacing[1], shape[0] * spacing[2]]) / 2
    centre[axis] -= d / 2
    shifted = centre.copy()
    shifted[axis] += d
    a = _image(_sphere(shape, spacing, centre, r), spacing)
    b = _image(_sphere(shape, spacing, shifted, r), spacing)
    q = segmentation_quality(a, b, tolerance_mm=d / 2)
    voxel = max(spacing)
    assert q["dice"] == pytest.approx((4 * r + d) * (2 * r - d) ** 2 / (16 * r ** 3), abs=0.01)
    assert q["hd95_mm"] == pytest.approx(0.95 * d, abs=0.5 * voxel)   # surfaces are voxelised
    assert q["assd_mm"] == pytest.approx(d / 2, abs=0.5 * voxel)
    assert q["surface_dice"] == pytest.approx(0.5, abs=0.07 * voxel)  # distances quantised by voxels
    # MONAI's distance-transform distances agree with the k-d tree ones of segmentation_agreement
    ref = segmentation_agreement(a, b)
    assert q["hd95_mm"] == pytest.approx(ref["hd95_mm"], rel=1e-5)
    assert q["assd_mm"] == pytest.approx(ref["msd_mm"], rel=1e-5)
    same = segmentation_quality(a, a)
    assert (same["dice"], same["hd95_mm"], same["assd_mm"], same["surface_dice"]) == (1.0, 0.0, 0.0, 1.0)


def test_quality_empty_prediction_and_grid_mismatch():
    a = _image(_sphere((20, 20, 20), (1, 1, 1), (10, 10, 10), 5), (1, 1, 1))
    empty = _image(np.zeros((20, 20, 20), np.uint8), (1, 1, 1))
    q = segmentation_quality(a, empty)
    assert q["dice"] == 0.0 and np.isnan(q["hd95_mm"])
    with pytest.raises(ValueError, match="same grid"):
        segmentation_quality(a, _image(np.zeros((20, 20, 20), np.uint8), (2, 1, 1)))


def test_summarise_quality_bootstrap_ci():
    t = pd.DataFrame({"cohort": ["a"] * 5 + ["b"] * 3, "dice": [0.5, 0.6, 0.7, 0.8, 0.9, 0.1, 0.2, np.nan],
                      "hd95_mm": 1.0, "assd_mm": 1.0, "surface_dice": 1.0})
    s = summarise_quality(t).set_index(["cohort", "metric"])
    assert s.loc[("a", "dice"), "mean"] == pytest.approx(0.7)
    assert s.loc[("a", "dice"), "ci_low"] < 0.7 < s.loc[("a", "dice"), "ci_high"]
    assert s.loc[("b", "dice"), "n"] == 2 and s.loc[("b", "dice"), "median"] == pytest.approx(0.15)


def _toy_cases(n, seed=0):
    from acceflow.imaging.segment_model import SegmentationCase

    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        centre = rng.uniform(9, 15, size=3)
        m = _sphere((24, 24, 24), (2.0, 2.0, 2.0), centre * 2, rng.uniform(8, 11))
        img = m * 2.0 + rng.normal(0, 0.3, m.shape)
        cases.append(SegmentationCase(f"c{i}", _image(img.astype(np.float32), (2.0, 2.0, 2.0)),
                                      _image(m, (2.0, 2.0, 2.0))))
    return cases


# the complete segmentation section: the schema's defaults, these keys overridden
TINY = section_settings("segmentation", {
    "network": "unet", "channels": [4, 8], "dropout": 0.2, "patch_size": [16, 16, 16], "batch_size": 2,
    "samples_per_case": 2, "iterations": 30, "validation_interval": 10, "validation_fraction": 0.25,
    "patience": 10, "learning_rate": 0.01, "device": "cpu", "uncertainty": {"method": "mc_dropout", "samples": 3},
    "target_spacing": None})


@pytest.fixture(scope="module")
def trained():
    import torch

    torch.set_num_threads(1)
    from acceflow.imaging.segment_model import train_segmenter

    cases = _toy_cases(6)
    return cases, train_segmenter(cases[:4], TINY, seed=7, log=lambda *_: None)


def test_training_learns_and_is_repeatable(trained):
    import torch

    from acceflow.imaging.segment_model import infer_mask, train_segmenter

    cases, (model, card) = trained
    assert card["iterations_run"] == 30 and len(card["history"]) == 3
    assert set(card["validation_cases"]) | set(card["train_cases"]) == {"c0", "c1", "c2", "c3"}
    assert len(card["validation_cases"]) == 1
    # a bright sphere in noise: the network learns it (unseen case)
    q = segmentation_quality(cases[5].mask, infer_mask(model, cases[5].image, TINY))
    assert q["dice"] > 0.6
    # same seed, same thread count -> the same weights
    model2, _ = train_segmenter(cases[:4], TINY, seed=7, log=lambda *_: None)
    for p1, p2 in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(p1, p2)


def test_inference_grid_component_samples_and_saving(trained, tmp_path):
    from acceflow.imaging.segment_model import infer_mask, load_model, sample_masks, save_model, to_original_grid

    cases, (model, card) = trained
    image = cases[4].image
    mask = infer_mask(model, image, TINY)
    assert mask.GetSize() == image.GetSize() and mask.GetSpacing() == image.GetSpacing()
    n_comp = sitk.ConnectedComponentImageFilter()
    n_comp.SetFullyConnected(True)
    n_comp.Execute(mask)
    assert n_comp.GetObjectCount() <= 1
    samples = sample_masks(model, image, TINY, seed=1)
    assert len(samples) == 3 and all(s.GetSize() == image.GetSize() for s in samples)
    again = sample_masks(model, image, TINY, seed=1)
    assert all(np.array_equal(sitk.GetArrayFromImage(x), sitk.GetArrayFromImage(y)) for x, y in zip(samples, again))
    tta = sample_masks(model, image, {**TINY, "uncertainty": {"method": "tta", "samples": 2}})
    assert len(tta) == 2
    # original grid: 1 mm spacing, twice the size along each axis
    original = sitk.Image([48, 48, 48], sitk.sitkFloat32)
    original.SetSpacing((1.0, 1.0, 1.0))
    original.SetOrigin((-0.5, -0.5, -0.5))
    on_original = to_original_grid(mask, original)
    assert on_original.GetSize() == (48, 48, 48)
    vol = lambda m: sitk.GetArrayFromImage(m).sum() * np.prod(m.GetSpacing())  # noqa: E731
    assert vol(on_original) == pytest.approx(vol(mask), rel=0.02)
    sha = save_model(model, card, tmp_path / "model.pt")
    loaded, card2 = load_model(tmp_path / "model.pt", sha)
    assert card2["settings"]["channels"] == [4, 8]
    assert np.array_equal(sitk.GetArrayFromImage(infer_mask(loaded, image, TINY)), sitk.GetArrayFromImage(mask))


def test_bad_training_input_names_the_case():
    from acceflow.imaging.segment_model import SegmentationCase, SegmentationError, assign_folds, train_segmenter

    img = _image(np.zeros((8, 8, 8), np.float32), (1, 1, 1))
    with pytest.raises(SegmentationError, match="case x1.*no voxel"):
        train_segmenter([SegmentationCase("x1", img, _image(np.zeros((8, 8, 8), np.uint8), (1, 1, 1)))], TINY)
    # no defaults in the library: a partial section is refused, naming what is missing
    partial = {k: v for k, v in TINY.items() if k not in ("iterations", "uncertainty")}
    with pytest.raises(ValueError, match="segmentation settings lacks iterations, uncertainty.*section_settings"):
        train_segmenter([SegmentationCase("x1", img, img)], partial)
    from acceflow.imaging.segment_model import infer_mask, sample_masks

    with pytest.raises(ValueError, match="lacks overlap"):
        infer_mask(None, img, {k: v for k, v in TINY.items() if k != "overlap"})
    with pytest.raises(ValueError, match="lacks uncertainty"):
        sample_masks(None, img, partial)
    folds = assign_folds(["a", "b", "c", "d", "e", "a"], 2, seed=3)
    assert sorted(folds) == ["a", "b", "c", "d", "e"] and sorted(np.bincount(list(folds.values()))) == [2, 3]
    assert folds == assign_folds(["e", "d", "c", "b", "a"], 2, seed=3)
    with pytest.raises(ValueError, match="cv_folds"):
        assign_folds(["a"], 2, seed=0)


def test_plan_known_answer_nnunet_rules():
    from acceflow.imaging.segment_model import plan_segmentation

    # five 100 x 80 x 30 voxel images, 1 x 1 mm in plane, slices of 3, 4, 4, 5, 6 mm. By hand:
    #   median spacing (1, 1, 4); z is more than 3x the finest -> its 10th percentile, 3 + 0.4 * (4 - 3) = 3.4 mm;
    #   z extents 90, 120, 120, 150, 180 mm -> median 120 mm = 35.29 voxels of 3.4 mm; median shape (35.3, 80, 100);
    #   4 levels -> multiples of 8: (40, 80, 104) = 332,800 voxels > 100,000, so the axis of largest extent in mm
    #   shrinks by 8 voxels in turn: z 136 -> z 108.8 -> x 104 -> x 96 -> x 88 -> z 81.6 -> y (tie 80 = 80, z y x
    #   order) giving (16, 72, 80) = 92,160 voxels.
    images = []
    for dz in (3, 4, 4, 5, 6):
        img = sitk.Image([100, 80, 30], sitk.sitkFloat32)
        img.SetSpacing((1.0, 1.0, float(dz)))
        images.append(img)
    s = {"target_spacing": "auto", "patch_size": "auto", "max_patch_voxels": 100_000, "channels": [4, 8, 16, 32]}
    plan = plan_segmentation(images, s)
    assert plan["target_spacing"] == [1.0, 1.0, 3.4] and plan["median_spacing"] == [1.0, 1.0, 4.0]
    assert plan["median_shape"] == [35.3, 80.0, 100.0] and plan["divisor"] == 8
    assert plan["patch_size"] == [16, 72, 80]
    # given values are kept; the images' own grid needs them on one spacing
    given = plan_segmentation(images[1:3], {**s, "target_spacing": None, "patch_size": [24, 24, 24]})
    assert given["target_spacing"] is None and given["patch_size"] == [24, 24, 24]
    from acceflow.imaging.segment_model import SegmentationError

    with pytest.raises(SegmentationError, match="target_spacing: null.*one spacing.*auto"):
        plan_segmentation(images, {**s, "target_spacing": None})


def test_dynunet_deep_supervision_on_a_planned_grid(tmp_path):
    """The default recipe (DynUNet, deep supervision, 1/3 foreground patches, planned spacing and patch)
    on toy spheres whose spacings differ (2 and 2.5 mm): it trains on the median grid, and the masks come
    back on each image's own grid; the planned values travel in the card and through save / load."""
    import torch

    from acceflow.imaging.segment_model import infer_mask, load_model, planned_settings, save_model, train_segmenter

    torch.set_num_threads(1)
    cases = _toy_cases(6, seed=3)
    for c in cases[1::2]:  # every other case on a 2.5 mm grid (same voxels: a larger field of view)
        c.image.SetSpacing((2.5, 2.5, 2.5))
        c.mask.SetSpacing((2.5, 2.5, 2.5))
    settings = section_settings("segmentation", {
        "network": "dynunet", "channels": [4, 8, 16], "dropout": 0.0, "batch_size": 2, "samples_per_case": 2,
        "iterations": 40, "validation_fraction": 0, "validation_interval": 40, "learning_rate": 0.01,
        "max_patch_voxels": 16 ** 3, "device": "cpu"})
    model, card = train_segmenter(cases[:5], settings, seed=5, log=lambda *_: None)
    # median spacing of 2, 2.5, 2, 2.5, 2 -> 2 mm; median field of view 48 mm = 24 voxels -> patch shrunk to 16^3
    assert card["plan"]["target_spacing"] == [2.0, 2.0, 2.0] and card["plan"]["patch_size"] == [16, 16, 16]
    assert "deep supervision (1 heads)" in card["method"] and card["settings"]["patch_size"] == "auto"
    model.train()
    assert model(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 2, 2, 16, 16, 16)  # full resolution + one lower head
    with pytest.raises(Exception, match="planned_settings"):
        infer_mask(model, cases[5].image, settings)
    s = planned_settings(settings, card)
    image = cases[5].image  # an unseen 2.5 mm case: resampled to 2 mm and its mask brought back
    mask = infer_mask(model, image, s)
    assert mask.GetSize() == image.GetSize() and mask.GetSpacing() == image.GetSpacing()
    assert segmentation_quality(cases[5].mask, mask)["dice"] > 0.6
    sha = save_model(model, card, tmp_path / "model.pt")
    loaded, card2 = load_model(tmp_path / "model.pt", sha)
    assert card2["plan"] == card["plan"]
    assert np.array_equal(sitk.GetArrayFromImage(infer_mask(loaded, image, planned_settings(settings, card2))),
                          sitk.GetArrayFromImage(mask))
