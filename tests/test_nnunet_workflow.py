"""Integration: segmentation.source: nnunet through the real DAG on a tiny demo cohort (CPU, nnU-Net's
own trainer cut to one epoch of two iterations per fold): raw dataset with mapped case ids, plans and
the study's folds as splits_final.json, fold cards with checkpoint SHA-256, out-of-fold masks for the
training cohort and the fold ensemble for the external cohorts on the original grid, one inference job
per batch (fold or ensemble), the shared quality table and ICC, the dossier's segmentation section; then
a tampered checkpoint is refused before nnU-Net loads it, and an interrupted training resumes from
nnU-Net's latest checkpoint only while its SHA-256 matches the one recorded when nnU-Net wrote it."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import demo_config, run_snakemake, write_config

from acceflow.study.results import Results, fill

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_nnunet_segmentation_runs_to_the_dossier(tmp_path, monkeypatch):
    pytest.importorskip("nnunetv2")
    results = tmp_path / "results"
    # the demo segmentation setup of test_segmentation_workflow.py (16 training cases with 5 events,
    # external cohorts of 8 with 4 and 2)
    config = demo_config(results, "config/studies/demo_nnunet.yaml", n_train=16, n_external=(8, 8), n_retest=3)
    config["segmentation"]["nnunet"].update(folds=2, epochs=1, iterations=2, val_iterations=1, threads=1)
    config["segmentation"]["device"] = "cpu"
    config["validation"] = {"cv_folds": 3, "cv_repeats": 1, "n_bootstrap": 200, "optimism_bootstrap": 0,
                            "permutation_repeats": 2, "coefficient_bootstrap": 0}
    config["model"] = {"learner": "l1_logistic", "min_events": 3, "comparators": []}
    config["utility"] = {"curve_bootstrap": 20, "recalibration": []}
    config["ibsi"] = {"enabled": False}
    proc = run_snakemake(tmp_path, write_config(tmp_path / "nnunet.yaml", config))
    assert proc.returncode == 0, proc.stderr[-4000:]
    nn_root = results / "segmentation/nnunet/CT"
    folds = pd.read_csv(results / "segmentation/model/folds.tsv", sep="\t", dtype=str)
    cases = pd.read_csv(nn_root / "cases.tsv", sep="\t", dtype=str)
    assert set(cases["scan_id"]) == set(folds["scan_id"]) and cases["nnunet_id"].is_unique
    # nnU-Net's splits are the study's folds: fold f validates on exactly the cases of fold f
    splits = json.loads((nn_root / "nnUNet_preprocessed/Dataset900_acceflow/splits_final.json").read_text())
    fold_of = dict(zip(cases["nnunet_id"], cases["fold"]))
    assert len(splits) == 2
    for f, split in enumerate(splits):
        assert {fold_of[c] for c in split["val"]} == {str(f)} and str(f) not in {fold_of[c] for c in split["train"]}
    summary = json.loads((nn_root / "plans_summary.json").read_text())
    plans_file = nn_root / "nnUNet_preprocessed/Dataset900_acceflow/nnUNetPlans.json"
    from acceflow.runtime import sha256_file
    assert summary["plans_sha256"] == sha256_file(plans_file) and summary["nnunet_version"].startswith("2.")
    cards = {}
    for name in ("fold0", "fold1"):
        card = json.loads((results / f"segmentation/model/CT/{name}/model_card.json").read_text())
        assert card["backend"] == "nnunet" and card["epochs_run"] == 1 and card["iterations_per_epoch"] == 2
        assert card["device"] == "cpu" and card["checkpoint_sha256"] == sha256_file(nn_root / card["model_file"])
        cards[int(name[4:])] = card
    # masks on the original grid, the same quality table as the MONAI backend
    scans = pd.read_csv(results / "ingest/scans.tsv", sep="\t", dtype=str, keep_default_na=False)
    row = scans.iloc[0]
    mask = sitk.ReadImage(str(results / "segmentation/model" / row["scan_id"] / "mask.nii.gz"))
    image = sitk.ReadImage(row["image"])
    assert mask.GetSize() == image.GetSize() and np.allclose(mask.GetSpacing(), image.GetSpacing())
    # inference: one job per batch (each fold's out-of-fold scans, the ensemble's), every scan in one
    batches = {p.stem for p in (results / "benchmarks/nnunet_segment").glob("*.tsv")}
    assert batches == {"CT_fold0", "CT_fold1", "CT_ensemble"}
    status = pd.concat([pd.read_csv(nn_root / "predictions" / b[3:] / "batch.tsv", sep="\t") for b in batches])
    assert sorted(status["scan_id"]) == sorted(scans["scan_id"]) and set(status["status"]) == {"ok"}
    quality = pd.read_csv(results / "analytical/segmentation_quality.tsv", sep="\t", dtype={"fold": str})
    assert len(quality) == len(scans[scans["mask"] != ""]) and quality["dice"].between(0, 1).all()
    assert set(quality["evaluation"]) == {"out-of-fold", "external"}
    oof = quality[quality["evaluation"] == "out-of-fold"].merge(folds[["scan_id", "fold"]], on="scan_id",
                                                               suffixes=("", "_case"))
    assert (oof["fold"] == "fold" + oof["fold_case"]).all()  # each by the fold that did not see it
    assert set(quality.loc[quality["evaluation"] == "external", "fold"]) == {"ensemble"}
    icc = pd.read_csv(results / "analytical/reference_vs_model_icc.tsv", sep="\t")
    assert len(icc) and "contour_dependent" in icc
    html = (results / "report/dossier.html").read_text()
    assert 'id="segmentation"' in html and "nnU-Net v2" in html and "out-of-fold" in html

    from acceflow.imaging import nnunet
    nnunet.set_environment(nn_root)
    model_dir = nnunet.model_folder("nnUNetTrainer", "3d_fullres")
    # a checkpoint changed after training is refused before nnU-Net's torch.load(weights_only=False) sees it
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    with open(tampered / "fold_0/checkpoint_final.pth", "ab") as fh:
        fh.write(b"\0")
    preprocessed = sitk.ReadImage(str(results / fill(Results.PREPROCESSED_IMAGE, scan=row["scan_id"])))
    with pytest.raises(nnunet.NnunetError, match=r"SHA-256 .* differs .*re-run rule nnunet_train"):
        nnunet.predict(preprocessed, tampered, {0: cards[0]["checkpoint_sha256"]}, device="cpu", mirroring=False)
    # an interrupted training: nnU-Net writes checkpoint_latest.pth after epoch 0 (save_every 1), whose
    # SHA-256 is recorded; the run then dies. A changed latest checkpoint is refused before nnU-Net's
    # torch.load sees it; the recorded one is resumed from epoch 1.
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class Interrupted(Exception):
        pass

    def interrupted(self, end=nnUNetTrainer.on_epoch_end):
        end(self)
        raise Interrupted

    fold1 = model_dir / "fold_1"
    (fold1 / "checkpoint_final.pth").unlink()
    with monkeypatch.context() as m:
        m.setattr(nnUNetTrainer, "on_epoch_end", interrupted)
        with pytest.raises(Interrupted):
            nnunet.train_fold(1, "3d_fullres", epochs=2, iterations=1, val_iterations=1, device="cpu", save_every=1)
    latest = fold1 / "checkpoint_latest.pth"
    record = json.loads((fold1 / nnunet.CHECKPOINT_RECORD).read_text())
    assert record["sha256"] == sha256_file(latest) and record["epoch"] == 0
    good = latest.read_bytes()
    latest.write_bytes(good + b"\0")
    with pytest.raises(nnunet.NnunetError, match=r"fold_1/checkpoint_latest\.pth: refused .*differs .*delete"):
        nnunet.train_fold(1, "3d_fullres", epochs=2, iterations=1, val_iterations=1, device="cpu")
    latest.write_bytes(good)
    resumed = nnunet.train_fold(1, "3d_fullres", epochs=2, iterations=1, val_iterations=1, device="cpu")
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_run"] == 1 and resumed["epochs"] == 2
    assert (fold1 / "checkpoint_final.pth").is_file() and not latest.exists()
    assert not (fold1 / nnunet.CHECKPOINT_RECORD).exists()
