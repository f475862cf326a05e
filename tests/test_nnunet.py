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
