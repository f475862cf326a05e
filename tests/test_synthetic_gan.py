"""The GAN image path (synthetic.generator wgan_gp / cgan; acceflow.study.synthetic): the generator is
trained on the lesion crops of the split's generator_train cases only (never the holdout, never an
external cohort), saved and re-read without executing code, samples labelled crops in the crops'
units, and their features come from the extract_case rule's own pyradiomics call (known answers on
a constant-intensity ball); the slice grid is drawn; a GAN config builds its DAG (dry run)."""
import numpy as np
import pandas as pd
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("radiomics")

from acceflow.deep.crops import load_crop, save_crop
from acceflow.deep.synthetic import load_generators, sample, save_generators, slice_grid
from acceflow.study.settings import ConfigError, _check_synthetic
from acceflow.study.synthetic import crop_features, sample_gan, slice_grid_crops, train_gan
from conftest import REPO, run_snakemake, write_config

SIZE, SPACING = 8, 2.0
PARAMS = str(REPO / "config/radiomics/default.yaml")


def ball(radius, value, noise=0.0, seed=0):
    """A SIZE³ crop: a centred ball of ``radius`` voxels at ``value`` (background 0, Gaussian noise SD ``noise``)."""
    g = np.indices((SIZE,) * 3) - (SIZE - 1) / 2
    mask = (np.sqrt((g ** 2).sum(0)) <= radius).astype(np.uint8)
    rng = np.random.default_rng(seed)
    return (value * mask + rng.normal(0, noise, mask.shape)).astype(np.float32), mask


def study(tmp_path, n_per_class=10):
    """A feature table of 2 x n_per_class training cases (class 0: balls at 100, class 1 at 300) and 4
    external cases whose crop files do not exist (reading one would fail), and the case -> crop map."""
    rows, crops = [], {}
    for i in range(2 * n_per_class):
        label = i % 2
        image, mask = ball(2.2 + 0.3 * (i % 3), 100.0 + 200 * label, noise=5, seed=i)
        path = tmp_path / f"c{i:02d}.npz"
        save_crop({"image": image[None], "mask": mask, "modalities": np.array(["CT"]), "spacing_mm": SPACING}, path)
        crops[f"c{i:02d}"] = str(path)
        rows.append({"case_id": f"c{i:02d}", "cohort": "A", "outcome": label, "f1": float(i)})
    for i in range(4):
        crops[f"x{i}"] = str(tmp_path / "missing" / f"x{i}.npz")
        rows.append({"case_id": f"x{i}", "cohort": "B", "outcome": i % 2, "f1": 0.0})
    config = {"seed": 3, "cohorts": {"train": ["A"], "external": ["B"]},
              "outcome": {"type": "binary", "column": "outcome", "positive": 1}, "clinical": [], "features": None,
              "input": {"images": "manifest.tsv"},
              "synthetic": {"enabled": True, "generator": "wgan_gp", "n_synthetic": 6, "class_ratio": "balanced",
                            "gan": {"iterations": 3, "n_critic": 1, "batch_size": 4, "latent_dim": 4,
                                    "channels": [4, 2], "learning_rate": 1e-3, "device": "cpu"}}}
    return pd.DataFrame(rows), crops, config


@pytest.mark.parametrize("kind", ["wgan_gp", "cgan"])
def test_the_generator_sees_the_generator_training_crops_only_and_samples_labelled_crops(tmp_path, kind):
    torch.set_num_threads(1)
    table, crops, config = study(tmp_path)
    config["synthetic"]["generator"] = kind
    split, generators, history, card = train_gan(table, crops, config)
    train_ids = set(split.loc[split["role"] == "generator_train", "case_id"])
    assert len(split) == 20 and len(train_ids) == 16 and not train_ids & {"x0", "x1", "x2", "x3"}
    assert card["n_training_crops"] == 16 and card["n_training_crops_per_class"] == {"0": 8, "1": 8}
    # the training crops' lesion intensities (balls at 100 and 300, noise SD 5), the range the audit checks against
    assert 70 < card["intensity_range"][0] < 100 and 300 < card["intensity_range"][1] < 330
    lesions = sorted(int((load_crop(crops[c])["mask"] > 0).sum()) for c in train_ids)
    assert card["lesion_voxels_range"] == [lesions[0], lesions[-1]]  # the implausible-volume guard's reference
    assert sorted(generators) == (["0", "1"] if kind == "wgan_gp" else ["all"])
    assert len(history) == 3 * len(generators) and set(history["generator"]) == set(generators)
    # saved as tensors and plain values, re-read with weights_only=True: the same samples
    save_generators(generators, tmp_path / "gen.pt")
    again = load_generators(tmp_path / "gen.pt")
    key = sorted(generators)[0]
    n = {0: 2, 1: 2} if kind == "cgan" else 2
    assert np.array_equal(sample(generators[key], n, seed=1)[0], sample(again[key], n, seed=1)[0])
    out = sample_gan(again, split, config)
    kept, dropped = len(out["case_id"]), len(out["dropped"])
    assert kept + dropped == 6 and out["image"].shape == (kept, SIZE, SIZE, SIZE)
    assert (out["mask"].reshape(kept, -1).sum(axis=1) > 0).all()  # empty masks dropped, and counted
    ids = np.r_[out["case_id"], out["dropped"]]
    assert sorted(ids) == [f"syn_{i:05d}" for i in range(1, 7)]
    assert set(out["label"]) <= {0, 1} and len(out["label"]) == kept


def test_too_few_generator_training_crops_name_the_minimum(tmp_path):
    table, crops, config = study(tmp_path, n_per_class=9)  # 7 per class after the 20% holdout
    with pytest.raises(ValueError, match="class 0 has 7 generator-training crops; the generator needs at least 8"):
        train_gan(table, crops, config)
    with pytest.raises(ConfigError, match="feature table only"):
        _check_synthetic({**config, "input": {"images": None, "features": "f.tsv"}})
    # a rule's config subset without the input section (train_synthetic's) is not a feature-table study
    _check_synthetic({k: v for k, v in config.items() if k != "input"})


def test_synthetic_crop_features_come_from_the_extract_case_call_with_known_answers(tmp_path):
    """Balls (intensity 100 / 250, noise SD 5): firstorder Mean = the mean of the lesion voxels (by hand),
    VoxelVolume = voxels x spacing³; an empty mask and a one-voxel lesion (below minimumROISize) are
    dropped and counted, the rest go on."""
    (i1, m1), (i2, m2) = ball(2.6, 100.0, noise=5, seed=1), ball(3.2, 250.0, noise=5, seed=2)
    tiny = np.zeros_like(m1)
    tiny[4, 4, 4] = 1
    crops = {"case_id": np.array(["syn_00001", "syn_00002", "syn_00004"]), "label": np.array([0, 1, 1]),
             "image": np.stack([i1, i2, i1]), "mask": np.stack([m1, m2, tiny]), "dropped": np.array(["syn_00003"])}
    columns = ["original_firstorder_Mean", "original_shape_VoxelVolume", "original_glcm_Contrast", "not_extracted"]
    features, qc = crop_features(crops, SPACING, PARAMS, None, 1, columns)
    assert list(features.columns) == ["case_id", "label", *columns]
    assert list(features["case_id"]) == ["syn_00001", "syn_00002"] and list(features["label"]) == [0, 1]
    assert features["original_firstorder_Mean"].tolist() == pytest.approx([i1[m1 > 0].mean(), i2[m2 > 0].mean()],
                                                                          rel=1e-5)
    assert features["original_shape_VoxelVolume"].tolist() == pytest.approx([m1.sum() * 8.0, m2.sum() * 8.0])
    assert features["not_extracted"].isna().all()
    assert dict(zip(qc["case_id"], qc["status"])) == {"syn_00001": "ok", "syn_00002": "ok", "syn_00003": "dropped",
                                                      "syn_00004": "dropped"}
    # on the preprocessing grid (1 mm, as the real scans): 8 times the voxels, the volume kept (nearest-
    # neighbour mask), the intensity in its units (linear interpolation: partial volume at the edge lowers the mean)
    resampled, _ = crop_features(crops, SPACING, PARAMS, None, 1, columns[:2],
                                 {"spacing": [1.0, 1.0, 1.0], "image_interpolator": "linear"})
    assert resampled["original_shape_VoxelVolume"].tolist() == pytest.approx(features["original_shape_VoxelVolume"],
                                                                             rel=0.25)
    for got, value in zip(resampled["original_firstorder_Mean"], (100.0, 250.0)):
        assert 0.5 * value < got < 1.05 * value


def test_the_slice_grid_draws_real_and_synthetic_lesions_per_class(tmp_path):
    table, crops, config = study(tmp_path)
    split = pd.DataFrame({"case_id": [f"c{i:02d}" for i in range(20)], "label": [i % 2 for i in range(20)],
                          "role": ["holdout" if i < 4 else "generator_train" for i in range(20)]})
    image, mask = ball(2.5, 200.0)
    synthetic = {"image": np.stack([image] * 3), "mask": np.stack([mask] * 3), "label": np.array([0, 1, 1])}
    real, fake = slice_grid_crops(split, crops, synthetic, n=3)
    assert [len(real[0]), len(real[1]), len(fake[0]), len(fake[1])] == [3, 3, 1, 2]
    slice_grid(real, fake, tmp_path / "grid.png", units="HU", n=3)
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_a_gan_generator_builds_the_image_path_dag(tmp_path):
    """Dry run of config/studies/demo_synthetic.yaml with synthetic.generator wgan_gp: the GAN rules
    replace synthetic_generate, training requests a GPU (resources gpu)."""
    cfg = yaml.safe_load((REPO / "config/studies/demo_synthetic.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["input"]["images"] = str(tmp_path / "results/demo/manifest.tsv")
    cfg["synthetic"]["generator"] = "wgan_gp"
    run = run_snakemake(tmp_path, write_config(tmp_path / "study.yaml", cfg), "-n", "-p",
                        str(tmp_path / "results/synthetic/features.tsv"), str(tmp_path / "results/analytical/synthetic_slices.png"))
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for rule in ("synthetic_gan_train", "synthetic_gan_sample", "synthetic_gan_features", "synthetic_slices"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, out[-3000:]
    assert "synthetic_generate" not in out
    train_job = out[out.index("rule synthetic_gan_train:"):].split("\n\n")[0]
    assert "gpu=1" in train_job, train_job


def test_the_dossier_section_shows_the_generator_the_dropped_lesions_and_the_slice_grid(tmp_path):
    import json

    from acceflow.report.synthetic_section import synthetic_section
    from acceflow.report.view import ResultsView
    from acceflow.study.results import Results

    for p in (Results.SYNTHETIC_SUMMARY, Results.SYNTHETIC_GENERATOR_CARD, Results.SYNTHETIC_SLICES):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / Results.SYNTHETIC_SUMMARY).write_text(json.dumps({"generator": "cgan", "faithful": False}))
    (tmp_path / Results.SYNTHETIC_GENERATOR_CARD).write_text(json.dumps({
        "generator": "cgan", "method": "3D label-conditioned WGAN-GP", "crop_shape": [8, 8, 8], "crop_spacing_mm": 2.0,
        "n_training_crops": 16, "n_training_crops_per_class": {"0": 8, "1": 8}, "excluded": {"c99": "no crop"},
        "settings": {"iterations": 3}, "device": "cpu", "mixed_precision": False, "iterations_per_second": 4.5}))
    pd.DataFrame({"case_id": ["syn_00001", "syn_00002", "syn_00003"], "label": [0, 1, ""],
                  "status": ["ok", "dropped", "dropped"],
                  "reason": ["", "extraction failed: too small", "empty lesion mask"]}).to_csv(
        tmp_path / Results.SYNTHETIC_EXTRACTION_QC, sep="\t", index=False)
    image, mask = ball(2.5, 200.0)
    slice_grid({0: [(image, mask)], 1: [(image, mask)]}, {0: [(image, mask)], 1: []}, tmp_path / Results.SYNTHETIC_SLICES)
    html = synthetic_section(ResultsView(tmp_path, {}, ["train"])).html
    assert "16 generator-training cases (8 of class 0, 8 of class 1; 1 without a usable crop left out)" in html
    assert "Synthetic lesions dropped: 2 (1 with an empty mask, 1 failed extraction" in html
    assert "Real and synthetic lesions per class" in html and html.count("<img") == 1
    # the same folder re-audited with SMOTE: the GAN's card and slice grid are an earlier run's, not shown
    (tmp_path / Results.SYNTHETIC_SUMMARY).write_text(json.dumps({"generator": "smote", "faithful": True}))
    html = synthetic_section(ResultsView(tmp_path, {}, ["train"])).html
    assert "generator-training cases (8 of class 0" not in html and "<img" not in html


def test_the_slice_grid_window_ignores_the_crops_padding():
    from acceflow.deep.synthetic import window_of

    image = np.full((12, 12, 12), -1000.0)  # padding outside the scan
    image[2:10, 2:10, 2:10] = 40.0  # tissue
    image[5:7, 5:7, 5:7] = 300.0  # a bright lesion
    mask = np.zeros_like(image, np.uint8)
    mask[5:7, 5:7, 5:7] = 1
    lo, hi = window_of([(image, mask)])
    assert lo == 40.0 and hi == 300.0
    assert window_of([]) == (0.0, 1.0)


def test_implausible_synthetic_lesion_masks_are_dropped_with_the_reason():
    """Real generator-training lesions of 10-40 voxels: kept within a factor 2 (5-80 voxels); an
    empty mask and masks of 4 and 81 voxels are dropped, each with its reason; no range: only empty."""
    from acceflow.study.synthetic import plausible_lesions

    masks = np.zeros((5, 6, 6, 6), np.uint8)
    for i, n in enumerate([0, 4, 5, 80, 81]):
        masks[i].reshape(-1)[:min(n, 216)] = 1
    masks[4] = 1  # 216 voxels: above 80
    keep, reasons = plausible_lesions(masks, [10, 40])
    assert keep.tolist() == [False, False, True, True, False]
    assert reasons[0] == "empty lesion mask" and reasons[2] == reasons[3] == ""
    assert "4 voxels" in reasons[1] and "216 voxels" in reasons[4] and "10-40" in reasons[4]
    assert "synthetic.gan.iterations" in reasons[1]
    assert plausible_lesions(masks, None)[0].tolist() == [False, True, True, True, True]


def test_no_extractable_synthetic_lesion_is_a_clear_error():
    crops = {"case_id": np.array([], dtype=str), "label": np.array([], dtype=int),
             "image": np.zeros((0, 4, 4, 4), np.float32), "mask": np.zeros((0, 4, 4, 4), np.uint8),
             "dropped": np.array(["syn_00001"]), "dropped_reason": np.array(["implausible lesion volume: 64 voxels"])}
    with pytest.raises(ValueError, match=r"1 dropped: implausible lesion volume; .*synthetic.gan.iterations"):
        crop_features(crops, SPACING, PARAMS, None, 1, ["original_firstorder_Mean"])
