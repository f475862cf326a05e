"""acceflow.imaging.nnunet without training: the raw dataset nnU-Net reads, the study's folds, and
bad input named with its fix (labels nnU-Net does not expect, too few cases, nnU-Net missing)."""
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from acceflow.imaging import nnunet
from acceflow.imaging.nnunet import NnunetError, write_raw_dataset


def _cases(tmp_path, n=6, label=1, mask_values=None):
    rng = np.random.default_rng(0)
    images, masks, rows = [], [], []
    for i in range(n):
        arr = np.zeros((8, 10, 12), np.uint8)
        arr[2:5, 3:6, 4:8] = label
        if mask_values is not None:
            arr[0, 0, 0] = mask_values
        img = sitk.GetImageFromArray(rng.normal(size=arr.shape).astype(np.float32))
        img.SetSpacing((0.8, 0.9, 2.0))
        msk = sitk.GetImageFromArray(arr)
        msk.CopyInformation(img)
        images.append(str(tmp_path / f"{i}_img.nii.gz"))
        masks.append(str(tmp_path / f"{i}_msk.nii.gz"))
        sitk.WriteImage(img, images[-1])
        sitk.WriteImage(msk, masks[-1])
        rows.append({"scan_id": f"P{i:02d}:CT", "case_id": f"P{i:02d}", "fold": i % 3})
    return pd.DataFrame(rows), images, masks


def test_raw_dataset_maps_ids_binarises_the_label_and_keeps_the_grid(tmp_path):
    cases, images, masks = _cases(tmp_path, label=3)
    table = write_raw_dataset(cases, images, masks, tmp_path / "raw", "CT", label=3, folds=3)
    root = tmp_path / "raw" / nnunet.DATASET_NAME
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"} and dataset["labels"] == {"background": 0, "roi": 1}
    assert dataset["numTraining"] == 6 and dataset["file_ending"] == ".nii.gz"
    assert list(table["nnunet_id"]) == [f"case_{i:04d}" for i in range(6)]
    assert list(table["scan_id"]) == sorted(cases["scan_id"]) and list(table["fold"]) == [0, 1, 2, 0, 1, 2]
    label = sitk.ReadImage(str(root / "labelsTr" / "case_0004.nii.gz"))
    image = sitk.ReadImage(str(root / "imagesTr" / "case_0004_0000.nii.gz"))
    arr = sitk.GetArrayFromImage(label)
    assert set(np.unique(arr)) == {0, 1} and arr.sum() == 3 * 3 * 4  # label 3 -> 1, voxel count kept
    assert image.GetSpacing() == pytest.approx((0.8, 0.9, 2.0)) and label.GetSize() == image.GetSize()


def test_masks_with_other_labels_are_refused_naming_the_scan(tmp_path):
    cases, images, masks = _cases(tmp_path, mask_values=2)
    with pytest.raises(NnunetError, match=r"scan P00:CT .*labels \[2\] besides .*extraction.label"):
        write_raw_dataset(cases, images, masks, tmp_path / "raw", "CT", label=1, folds=3)


def test_a_mask_without_the_roi_label_is_refused(tmp_path):
    cases, images, masks = _cases(tmp_path, label=1)
    with pytest.raises(NnunetError, match=r"no voxel of label 5"):
        write_raw_dataset(cases, images, masks, tmp_path / "raw", "CT", label=5, folds=3)


def test_too_few_cases_for_the_folds_names_the_modality_and_the_fix(tmp_path):
    cases, images, masks = _cases(tmp_path, n=5)
    with pytest.raises(NnunetError, match=r"modality MR: 5 training scans .* 3 folds.*lower segmentation.nnunet.folds"):
        write_raw_dataset(cases, images, masks, tmp_path / "raw", "MR", label=1, folds=3)
    with pytest.raises(NnunetError, match=r"at least 2 folds"):
        write_raw_dataset(cases, images, masks, tmp_path / "raw", "MR", label=1, folds=1)


def test_environment_points_under_the_results_folder(tmp_path, monkeypatch):
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_n_proc_DA", "nnUNet_def_n_proc"):
        monkeypatch.delenv(k, raising=False)
    env = nnunet.set_environment(tmp_path / "seg", threads=2)
    import os
    assert os.environ["nnUNet_raw"] == str((tmp_path / "seg" / "nnUNet_raw").resolve()) == env["nnUNet_raw"]
    assert os.environ["nnUNet_results"].startswith(str(tmp_path.resolve()))
    assert nnunet.model_folder("nnUNetTrainer", "2d").name == "nnUNetTrainer__nnUNetPlans__2d"


def test_missing_nnunet_says_how_to_install(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "version", missing)
    with pytest.raises(NnunetError, match=r"not installed: install it with `make setup`.*pip install nnunetv2"):
        nnunet.require_nnunet()


def test_unknown_configuration_is_refused():
    with pytest.raises(NnunetError, match="configuration '3d_cascade'"):
        nnunet.plan_and_preprocess(pd.DataFrame(), "3d_cascade", 3)


@pytest.mark.parametrize("name", ["demo_nnunet", "sts_nnunet"])
def test_study_configs_validate_against_the_schema(name):
    import jsonschema
    import yaml
    from conftest import REPO

    from acceflow.io.schemas import load_schema
    from acceflow.study.settings import section_settings

    config = yaml.safe_load((REPO / f"config/studies/{name}.yaml").read_text())
    jsonschema.validate(config, load_schema("config"))
    seg = section_settings("segmentation", config["segmentation"])
    assert seg["source"] == "nnunet" and seg["nnunet"]["configuration"] == "3d_fullres"
    assert seg["nnunet"]["folds"] == (5 if name == "sts_nnunet" else 3)
    if name == "sts_nnunet":  # the real thing: nnU-Net's default trainer, untouched epochs
        assert seg["nnunet"]["trainer"] == "nnUNetTrainer" and seg["nnunet"]["epochs"] is None


def test_uncertainty_with_nnunet_is_refused():
    from acceflow.study.settings import ConfigError, check_config

    with pytest.raises(ConfigError, match="uncertainty.method: none with source: nnunet"):
        check_config({"segmentation": {"source": "nnunet", "uncertainty": {"method": "mc_dropout"}},
                      "input": {"images": "x"}})


def _sphere(path, radius=8):
    """A 40^3 image (1 mm) with a bright sphere (~100 on ~40, noise SD 5) and its mask, written to path_*."""
    z, y, x = np.mgrid[:40, :40, :40]
    inside = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= radius ** 2
    arr = (40 + 60 * inside + np.random.default_rng(0).normal(0, 5, inside.shape)).astype(np.float32)
    image, mask = sitk.GetImageFromArray(arr), sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(image)
    sitk.WriteImage(image, f"{path}_image.nii.gz")
    sitk.WriteImage(mask, f"{path}_mask.nii.gz")
    return f"{path}_image.nii.gz", f"{path}_mask.nii.gz"


def test_a_batch_loads_once_and_one_failing_scan_loses_no_other(tmp_path, monkeypatch):
    """segment_scans with nnU-Net's predictor replaced by a threshold (the known answer: the sphere,
    Dice 1): the predictor is loaded once; a scan whose prediction fails gets the empty-mask fallback,
    flagged in its quality row; a scan whose original image is gone gets no files; the others are
    segmented and scored; on_case_error: stop re-raises."""
    loads = []
    monkeypatch.setattr(nnunet, "load_predictor", lambda *a, **k: loads.append(a) or "predictor")

    def fake_predict(predictor, image_path, workdir):
        assert predictor == "predictor"
        if "bad" in str(image_path):
            raise RuntimeError("nnU-Net could not preprocess this image")
        image = sitk.ReadImage(str(image_path))
        return sitk.Cast(image > 70, sitk.sitkUInt8)

    monkeypatch.setattr(nnunet, "predict_file", fake_predict)
    settings = {"series_uid": "", "roi": "", "label": 1, "tolerance": 0.01}
    scans = []
    for name in ("good", "bad", "lost"):
        image, mask = _sphere(tmp_path / name)
        scans.append({"scan_id": name, "image": image, "original": image if name != "lost" else str(tmp_path / "x"),
                      "reference": mask, "mask": settings, "model": "segmentation/model/CT/ensemble/model_card.json"})
    out = tmp_path / "batch"
    table = nnunet.segment_scans(scans, tmp_path, {0: "sha"}, out, device="cpu", tolerance_mm=1.0)
    assert len(loads) == 1
    assert dict(zip(table["scan_id"], table["status"])) == {"good": "ok", "bad": "fallback", "lost": "failed"}
    assert pd.read_csv(out / "batch.tsv", sep="\t")["status"].tolist() == ["ok", "fallback", "failed"]
    good = pd.read_csv(out / "good/quality.tsv", sep="\t", keep_default_na=False)
    assert good.loc[0, "dice"] == pytest.approx(1.0) and good.loc[0, "error"] == ""
    bad = pd.read_csv(out / "bad/quality.tsv", sep="\t", keep_default_na=False)
    assert bad.loc[0, "error"] == "segmentation failed: nnU-Net could not preprocess this image"
    empty = sitk.ReadImage(str(out / "bad/preprocessed_mask.nii.gz"))
    assert sitk.GetArrayFromImage(empty).sum() == 0 and empty.GetSize() == (40, 40, 40)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(out / "bad/mask.nii.gz"))).sum() == 0
    assert not (out / "lost").exists() and "x" in table.set_index("scan_id").loc["lost", "error"]
    with pytest.raises(RuntimeError, match="could not preprocess"):
        nnunet.segment_scans(scans[1:2], tmp_path, {0: "sha"}, tmp_path / "stop", device="cpu", on_error="stop")


def test_resuming_needs_the_sha256_recorded_when_nnunet_wrote_the_checkpoint(tmp_path):
    latest = tmp_path / "fold_1" / "checkpoint_latest.pth"
    latest.parent.mkdir()
    latest.write_bytes(b"weights of epoch 3")
    with pytest.raises(NnunetError, match=r"checkpoint_latest\.pth: refused .*no SHA-256 was recorded.*delete"):
        nnunet._verified_latest(latest, 1)
    nnunet._record_latest(latest, 3)
    assert nnunet._verified_latest(latest, 1) == b"weights of epoch 3"
    latest.write_bytes(b"weights of epoch 3, changed")
    with pytest.raises(NnunetError, match=r"fold_1/checkpoint_latest\.pth: refused .*differs .*epoch 3.*delete .*"
                                          r"retrain fold 1"):
        nnunet._verified_latest(latest, 1)
