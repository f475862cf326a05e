"""nnU-Net v2 as a segmentation backend (``segmentation.source: nnunet``), through its own API.

Method: nnU-Net (Isensee et al. 2021, Nat Methods 18:203-211), the self-configuring U-Net: a
dataset fingerprint fixes target spacing, patch size, batch size and normalisation
(``nnUNetPlans.json``); training is nnU-Net's own ``nnUNetTrainer`` (Dice + cross-entropy, deep
supervision, SGD with poly learning rate, its data augmentation); inference is its sliding-window
``nnUNetPredictor`` (Gaussian weighting, mirroring test-time augmentation, the mean softmax of the
folds as the ensemble). Nothing of nnU-Net is copied here: this module writes its raw dataset,
calls ``nnunetv2.experiment_planning.plan_and_preprocess_api``, ``nnunetv2.run.run_training`` and
``nnunetv2.inference.predict_from_raw_data.nnUNetPredictor``, and checks what goes in and out.

One dataset per modality (single channel, named after the modality: ``CT`` selects nnU-Net's CT
normalisation, any other name its z-score), as the MONAI backend trains one network per modality.
The study's own folds are written to nnU-Net's ``splits_final.json``, so the fold of every case is
known and each training case is segmented by the fold model that did not see it; external cohorts
by the ensemble of the fold models.

Paths: ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` are set in ``os.environ`` by
:func:`set_environment` (from the results folder) before nnunetv2 is imported; never by the user's
shell.

Checkpoints: nnU-Net loads ``checkpoint_final.pth`` with ``torch.load(..., weights_only=False)``
(nnunetv2 2.8: ``nnUNetPredictor.initialize_from_trained_model_folder``, ``nnUNetTrainer.
load_checkpoint``), i.e. an unpickler that can run code. :func:`predict` therefore reads every
checkpoint once, checks its SHA-256 against the one our own training job recorded
(:func:`acceflow.runtime.read_verified`), writes the verified bytes into a private temporary model
folder and lets nnU-Net load only that copy, so a file swapped after the check is never loaded.
Resuming an interrupted training (:func:`train_fold`) loads nnU-Net's ``checkpoint_latest.pth``
only after its SHA-256 matched the one recorded when nnU-Net wrote it (:data:`CHECKPOINT_RECORD`),
likewise from a private copy of the verified bytes; nothing is loaded unverified. Inference loads
the network once per batch of scans (:func:`load_predictor`, :func:`segment_scans`).

Arrays are ``(z, y, x)`` (SimpleITK order). Masks are binary: the ROI label becomes nnU-Net label 1.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from acceflow.runtime import read_verified, sha256_file

__all__ = ["NnunetError", "DATASET_ID", "DATASET_NAME", "CONFIGURATIONS", "require_nnunet", "set_environment",
           "write_raw_dataset", "plan_and_preprocess", "train_fold", "load_predictor", "predict_file", "predict",
           "segment_scans", "model_folder", "case_table", "CHECKPOINT_RECORD"]

#: nnU-Net dataset id and name (one dataset per modality, each under its own nnU-Net folders).
DATASET_ID = 900
DATASET_NAME = f"Dataset{DATASET_ID:03d}_acceflow"
CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")
INSTALL_HINT = ("install it with `make setup` (pyproject.toml lists nnunetv2) or "
                "`pip install nnunetv2 -c constraints.txt` in the workflow's environment")


class NnunetError(ValueError):
    """An nnU-Net input cannot be used; the message names the case, the file and the fix."""


def require_nnunet() -> str:
    """The installed nnunetv2 version; :class:`NnunetError` naming the install command when missing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nnunetv2")
    except PackageNotFoundError as exc:
        raise NnunetError(f"segmentation.source: nnunet needs nnU-Net v2, which is not installed: "
                          f"{INSTALL_HINT}") from exc


def set_environment(root: str | os.PathLike, threads: int = 1) -> dict:
    """Point nnU-Net at ``root``/nnUNet_raw, nnUNet_preprocessed, nnUNet_results (``os.environ``).

    Call before importing nnunetv2 (its ``nnunetv2.paths`` reads these variables). ``threads``
    sets ``nnUNet_def_n_proc`` and ``nnUNet_n_proc_DA`` (at least 1: nnU-Net's planner passes it to
    ``torch.set_num_threads``; :func:`train_fold` sets the training's own). nnU-Net starts worker
    processes with the ``spawn`` method, so a calling script must guard its body with
    ``if __name__ == "__main__":``. Returns the variables set.
    """
    root = Path(root).resolve()
    env = {"nnUNet_raw": str(root / "nnUNet_raw"), "nnUNet_preprocessed": str(root / "nnUNet_preprocessed"),
           "nnUNet_results": str(root / "nnUNet_results"), "nnUNet_n_proc_DA": str(max(1, int(threads))),
           "nnUNet_def_n_proc": str(max(1, int(threads)))}
    os.environ.update(env)
    return env


def case_table(cases: pd.DataFrame) -> pd.DataFrame:
    """nnU-Net case ids for the study's scans: ``case_0000``.. in scan-id order.

    ``cases``: columns ``scan_id``, ``case_id``, ``fold`` (0..k-1). Returns those columns and
    ``nnunet_id`` (study ids can hold characters nnU-Net's file naming does not allow).
    """
    table = cases[["scan_id", "case_id", "fold"]].sort_values("scan_id").reset_index(drop=True)
    table["nnunet_id"] = [f"case_{i:04d}" for i in range(len(table))]
    table["fold"] = table["fold"].astype(int)
    return table


def _check_folds(table: pd.DataFrame, folds: int, modality: str) -> None:
    if int(folds) < 2:
        raise NnunetError(f"segmentation.nnunet.folds is {folds}: nnU-Net needs at least 2 folds so that every "
                          f"training case is segmented by a model that did not see it")
    counts = table["fold"].value_counts()
    empty = [f for f in range(int(folds)) if counts.get(f, 0) == 0]
    if len(table) < 2 * int(folds) or empty:
        raise NnunetError(f"modality {modality}: {len(table)} training scans with a reference mask for "
                          f"{folds} folds (empty folds: {empty or 'none'}); nnU-Net needs at least 2 cases per fold: "
                          f"lower segmentation.nnunet.folds or add training cases of this modality")


def write_raw_dataset(cases: pd.DataFrame, images, masks, raw_root: str | os.PathLike, modality: str, label: int,
                      folds: int) -> pd.DataFrame:
    """Write one modality's training scans as an nnU-Net v2 raw dataset.

    Parameters
    ----------
    cases : pandas.DataFrame
        ``scan_id``, ``case_id``, ``fold`` of the training scans of this modality.
    images, masks : sequences of paths
        The preprocessed image and reference mask of each row of ``cases`` (same order).
    raw_root : path
        ``nnUNet_raw``; the dataset goes to ``raw_root/Dataset900_acceflow``.
    modality : str
        Channel name (``CT`` gets nnU-Net's CT normalisation, others z-score).
    label : int
        The ROI label of the reference masks (``extraction.label``); it becomes nnU-Net label 1.
    folds : int
        ``segmentation.nnunet.folds``.

    Returns
    -------
    pandas.DataFrame
        :func:`case_table` (``scan_id``, ``case_id``, ``fold``, ``nnunet_id``).

    Raises
    ------
    NnunetError
        Too few cases for the folds; a mask whose grid differs from its image, that has no voxel
        of ``label``, or that holds other labels or non-integer values (named with the scan).
    """
    table = case_table(cases.assign(_image=list(images), _mask=list(masks)))
    paths = cases.assign(_image=list(images), _mask=list(masks)).set_index("scan_id")
    _check_folds(table, folds, modality)
    root = Path(raw_root) / DATASET_NAME
    if root.exists():
        shutil.rmtree(root)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for row in table.itertuples():
        image = sitk.ReadImage(str(paths.loc[row.scan_id, "_image"]))
        mask = sitk.ReadImage(str(paths.loc[row.scan_id, "_mask"]))
        where = f"scan {row.scan_id} ({paths.loc[row.scan_id, '_mask']})"
        if mask.GetSize() != image.GetSize():
            raise NnunetError(f"{where}: mask size {mask.GetSize()} differs from image size {image.GetSize()}; "
                              f"resample the mask onto the image grid (rule preprocess does)")
        arr = sitk.GetArrayFromImage(mask)
        values = np.unique(arr)
        if not np.all(np.equal(np.mod(values, 1), 0)):
            raise NnunetError(f"{where}: the reference mask holds non-integer values {values[:5].tolist()}; "
                              f"nnU-Net needs integer labels: give a label mask, not a probability map")
        if int(label) not in values:
            raise NnunetError(f"{where}: the reference mask has no voxel of label {label} (extraction.label)")
        other = sorted(set(values.astype(int).tolist()) - {0, int(label)})
        if other:
            raise NnunetError(f"{where}: the reference mask holds labels {other} besides background 0 and the ROI "
                              f"label {label} (extraction.label); this backend trains one foreground label: set "
                              f"extraction.label to the ROI's label and give masks holding that label only")
        binary = sitk.GetImageFromArray((arr == int(label)).astype(np.uint8))
        binary.CopyInformation(image)
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(root / "imagesTr" / f"{row.nnunet_id}_0000.nii.gz"))
        sitk.WriteImage(binary, str(root / "labelsTr" / f"{row.nnunet_id}.nii.gz"))
    dataset = {"channel_names": {"0": modality if modality != "all" else "image"},
               "labels": {"background": 0, "roi": 1}, "numTraining": len(table), "file_ending": ".nii.gz",
               "name": f"acceflow {modality}",
               "description": f"acceflow training scans of modality {modality}; case ids in cases.tsv"}
    (root / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return table


def plan_and_preprocess(cases: pd.DataFrame, configuration: str, folds: int, threads: int = 1) -> dict:
    """nnU-Net's fingerprint, experiment planning and preprocessing, then the study's folds as splits.

    Runs ``extract_fingerprints``, ``plan_experiments`` and ``preprocess`` (one ``configuration``)
    of ``nnunetv2.experiment_planning.plan_and_preprocess_api`` on the dataset of
    :func:`write_raw_dataset` (environment from :func:`set_environment`), and writes
    ``splits_final.json`` from ``cases`` (:func:`case_table`): fold f validates on the cases of
    fold f and trains on the others.

    Returns
    -------
    dict
        nnU-Net version, configuration, SHA-256 of ``nnUNetPlans.json``, the configuration's
        patch size, spacing, batch size, median shape and normalisation, and the splits.
    """
    if configuration not in CONFIGURATIONS:
        raise NnunetError(f"segmentation.nnunet.configuration {configuration!r}: use one of {list(CONFIGURATIONS)}")
    version = require_nnunet()
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    _check_folds(cases, folds, "this")
    extract_fingerprints([DATASET_ID], num_processes=threads, check_dataset_integrity=True, show_progress_bar=False)
    plan_experiments([DATASET_ID])
    base = Path(os.environ["nnUNet_preprocessed"]) / DATASET_NAME
    plans = json.loads((base / "nnUNetPlans.json").read_text())
    if configuration not in plans["configurations"]:
        raise NnunetError(f"nnU-Net planned no {configuration!r} configuration for this dataset (planned: "
                          f"{sorted(plans['configurations'])}; 3d_lowres exists only for large images): choose "
                          f"one of those in segmentation.nnunet.configuration")
    preprocess([DATASET_ID], configurations=[configuration], num_processes=[threads], show_progress_bar=False)
    splits = [{"train": sorted(cases.loc[cases["fold"] != f, "nnunet_id"]),
               "val": sorted(cases.loc[cases["fold"] == f, "nnunet_id"])} for f in range(int(folds))]
    (base / "splits_final.json").write_text(json.dumps(splits, indent=2))
    c = plans["configurations"][configuration]
    return {"nnunet_version": version, "configuration": configuration, "dataset": DATASET_NAME,
            "plans_sha256": sha256_file(base / "nnUNetPlans.json"),
            "plans": {k: c.get(k) for k in ("patch_size", "spacing", "batch_size", "median_image_size_in_voxels",
                                            "normalization_schemes")},
            "splits": [{"fold": f, "n_train": len(s["train"]), "n_val": len(s["val"])} for f, s in enumerate(splits)]}


def model_folder(trainer: str, configuration: str, plans: str = "nnUNetPlans") -> Path:
    """nnU-Net's training output folder of a trainer and configuration (under ``nnUNet_results``)."""
    return Path(os.environ["nnUNet_results"]) / DATASET_NAME / f"{trainer}__{plans}__{configuration}"


#: Written by :func:`train_fold` beside nnU-Net's ``checkpoint_latest.pth`` each time nnU-Net saves
#: it: ``{"file": "checkpoint_latest.pth", "sha256": ..., "epoch": ...}``; checked before a resume loads it.
CHECKPOINT_RECORD = "checkpoint_latest.sha256.json"


def _record_latest(path: Path, epoch: int) -> None:
    from acceflow.runtime import atomic_write_bytes

    record = {"file": path.name, "sha256": sha256_file(path), "epoch": int(epoch)}
    atomic_write_bytes(json.dumps(record, indent=2).encode(), path.with_name(CHECKPOINT_RECORD))


def _verified_latest(path: Path, fold: int) -> bytes:
    """The bytes of an interrupted training's ``checkpoint_latest.pth`` after its SHA-256 matched the
    one :func:`train_fold` recorded when nnU-Net wrote it; :class:`NnunetError` naming the file and the fix."""
    from acceflow.runtime import sha256_bytes

    fix = (f"delete {path} (and {path.with_name(CHECKPOINT_RECORD).name} beside it) to retrain fold {fold} "
           f"from its first epoch")
    try:
        record = json.loads(path.with_name(CHECKPOINT_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        record = {}
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if record.get("file") != path.name or not record.get("sha256"):
        raise NnunetError(f"{path}: refused to resume from it: no SHA-256 was recorded when nnU-Net wrote it "
                          f"({path.with_name(CHECKPOINT_RECORD).name} missing or unreadable; nnU-Net loads "
                          f"checkpoints with an unpickler that can run code): {fix}")
    if digest != record["sha256"]:
        raise NnunetError(f"{path}: refused to resume from it: SHA-256 {digest} differs from {record['sha256']} "
                          f"recorded when nnU-Net wrote it (epoch {record.get('epoch')}); the checkpoint was changed "
                          f"after the interrupted training: {fix}")
    return data


def train_fold(fold: int, configuration: str, trainer: str = "nnUNetTrainer", epochs: int | None = None,
               iterations: int | None = None, val_iterations: int | None = None, device: str = "auto",
               augmentation_workers: int = 0, save_every: int | None = None) -> dict:
    """Train one fold with nnU-Net's trainer; resume from its checkpoint when a run was interrupted.

    The trainer class is found by nnU-Net by name (``nnunetv2.training.nnUNetTrainer`` and the
    folders of ``nnUNet_extTrainer``). ``epochs``, ``iterations`` (per epoch) and ``val_iterations``
    replace the trainer's ``num_epochs`` / ``num_iterations_per_epoch`` /
    ``num_val_iterations_per_epoch`` before training (None keeps nnU-Net's: 1000 x 250, 50): a short
    run with nnU-Net's own trainer class, which the predictor then rebuilds by name. ``save_every``
    replaces how often (epochs) nnU-Net writes ``checkpoint_latest.pth`` (None keeps its 50).
    nnU-Net's own validation export is not run; the rules segment every validation case out-of-fold
    instead.

    Resuming: each time nnU-Net writes ``checkpoint_latest.pth``, its SHA-256 is recorded beside it
    (:data:`CHECKPOINT_RECORD`). A ``checkpoint_latest.pth`` without ``checkpoint_final.pth`` in the
    fold's folder (an interrupted run) is continued (nnU-Net's ``--c``) only after its bytes match
    that record; nnU-Net then loads the verified bytes from a private copy (its ``torch.load`` uses
    ``weights_only=False``). nnU-Net deletes the latest checkpoint when training ends, and so the record.

    Returns
    -------
    dict
        checkpoint path and SHA-256, epochs and iterations run, wall time, iterations/s, the
        trainer's final EMA pseudo-Dice, whether it resumed, device.

    Raises
    ------
    NnunetError
        A ``checkpoint_latest.pth`` to resume from whose SHA-256 was not recorded or differs from the
        record (the message names the file and the fix: delete it to retrain the fold).
    """
    require_nnunet()
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    os.environ["nnUNet_n_proc_DA"] = str(max(0, int(augmentation_workers)))
    dev = torch.device("cuda" if (device == "auto" and torch.cuda.is_available()) else
                       ("cpu" if device == "auto" else device))
    out = model_folder(trainer, configuration) / f"fold_{int(fold)}"
    latest = out / "checkpoint_latest.pth"
    resume = latest.is_file() and not (out / "checkpoint_final.pth").is_file()
    verified = _verified_latest(latest, int(fold)) if resume else None
    nn_trainer = get_trainer_from_args(str(DATASET_ID), configuration, int(fold), trainer, "nnUNetPlans",
                                       resume, device=dev)
    for attr, value in (("num_epochs", epochs), ("num_iterations_per_epoch", iterations),
                        ("num_val_iterations_per_epoch", val_iterations), ("save_every", save_every)):
        if value:
            setattr(nn_trainer, attr, int(value))
    save = nn_trainer.save_checkpoint

    def save_and_record(filename):  # nnU-Net's own save, then the SHA-256 of what it wrote
        save(filename)
        if Path(filename).name == latest.name and Path(filename).is_file():
            _record_latest(Path(filename), nn_trainer.current_epoch)

    nn_trainer.save_checkpoint = save_and_record
    if verified is not None:
        with tempfile.TemporaryDirectory(prefix="acceflow_nnunet_") as tmp:
            copy = Path(tmp) / latest.name
            copy.write_bytes(verified)
            nn_trainer.load_checkpoint(str(copy))
    start_epoch = int(nn_trainer.current_epoch)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    nn_trainer.run_training()
    wall = time.perf_counter() - t0
    if not latest.exists():
        (out / CHECKPOINT_RECORD).unlink(missing_ok=True)
    checkpoint = out / "checkpoint_final.pth"
    done = int(nn_trainer.num_epochs) - start_epoch
    ema = list(nn_trainer.logger.get_value("ema_fg_dice", step=None) or [None])
    return {"fold": int(fold), "trainer": trainer, "configuration": configuration,
            "checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
            "epochs": int(nn_trainer.num_epochs), "epochs_run": done,
            "iterations_per_epoch": int(nn_trainer.num_iterations_per_epoch),
            "wall_s": round(wall, 2), "iterations_per_s": round(done * nn_trainer.num_iterations_per_epoch / wall, 3)
            if wall > 0 else None, "ema_pseudo_dice": None if ema[-1] is None else float(ema[-1]),
            "resumed_from_epoch": start_epoch if resume else None, "device": str(dev),
            "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None}


def load_predictor(model_dir: str | os.PathLike, checkpoints: dict, device: str = "auto", mirroring: bool = True,
                   tile_step_size: float = 0.5):
    """nnU-Net's ``nnUNetPredictor`` with one fold or an ensemble of folds, each checkpoint verified first.

    Every checkpoint is read once and its SHA-256 checked against ``checkpoints`` before its bytes
    are written into a private temporary model folder, from which nnU-Net loads the weights (its
    ``torch.load(weights_only=False)`` never sees the file the check did not read; module docstring).
    The predictor holds the weights in memory, so one call serves a whole batch of scans.

    Parameters
    ----------
    model_dir : path
        :func:`model_folder` (holds ``plans.json``, ``dataset.json``, ``fold_N/``).
    checkpoints : dict
        fold (int) -> SHA-256 of its ``checkpoint_final.pth`` recorded by the training job (its card).
    device : ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``
    mirroring : bool
        nnU-Net's mirroring test-time augmentation.
    tile_step_size : float
        Sliding-window step as a fraction of the patch size (nnU-Net's default 0.5).

    Returns
    -------
    nnunetv2.inference.predict_from_raw_data.nnUNetPredictor

    Raises
    ------
    NnunetError
        A checkpoint missing or changed since training (re-run the training rule).
    """
    require_nnunet()
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    model_dir = Path(model_dir)
    dev = torch.device("cuda" if (device == "auto" and torch.cuda.is_available()) else
                       ("cpu" if device == "auto" else device))
    with tempfile.TemporaryDirectory(prefix="acceflow_nnunet_") as tmp:
        tmp = Path(tmp)
        for name in ("plans.json", "dataset.json"):
            shutil.copyfile(model_dir / name, tmp / name)
        for fold, sha in checkpoints.items():
            data = read_verified(model_dir / f"fold_{int(fold)}" / "checkpoint_final.pth", sha,
                                 rule=f"rule nnunet_train (fold {fold})", error=NnunetError)
            (tmp / f"fold_{int(fold)}").mkdir()
            (tmp / f"fold_{int(fold)}" / "checkpoint_final.pth").write_bytes(data)
        predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=mirroring,
                                    perform_everything_on_device=dev.type == "cuda", device=dev, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(tmp), use_folds=tuple(int(f) for f in checkpoints))
    return predictor


def predict_file(predictor, image_path: str | os.PathLike, workdir: str | os.PathLike) -> sitk.Image:
    """One scan segmented by a :func:`load_predictor` predictor, through nnU-Net's file API.

    nnU-Net reads ``image_path`` with its plans' reader (``SimpleITKIO``), preprocesses, predicts
    with the sliding window (the mean softmax of its folds) and writes the segmentation with its
    writer (``predict_from_files_sequential``: no worker processes); the result is read back.

    Parameters
    ----------
    predictor : nnUNetPredictor from :func:`load_predictor`
    image_path : path of the scan on the pipeline's preprocessed grid (NIfTI)
    workdir : an existing folder for nnU-Net's output (the segmentation is written there)

    Returns
    -------
    SimpleITK.Image
        UInt8 mask (1 = ROI) on the image's grid (its size, spacing in mm, origin, direction).
    """
    image = sitk.ReadImage(str(image_path))
    out = Path(workdir) / "prediction"
    ending = predictor.dataset_json["file_ending"]
    Path(str(out) + ending).unlink(missing_ok=True)
    predictor.predict_from_files_sequential([[str(image_path)]], [str(out)], save_probabilities=False,
                                            overwrite=True)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(out) + ending))
    mask = sitk.GetImageFromArray((seg > 0).astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def predict(image: sitk.Image, model_dir: str | os.PathLike, checkpoints: dict, device: str = "auto",
            mirroring: bool = True, tile_step_size: float = 0.5) -> sitk.Image:
    """Segment one image with nnU-Net's predictor: one fold, or the ensemble of several.

    :func:`load_predictor` then :func:`predict_file` on ``image`` (for a batch of scans, load the
    predictor once: :func:`segment_scans`).

    Parameters
    ----------
    image : SimpleITK.Image
        The scan on the pipeline's preprocessed grid (nnU-Net resamples to its plan internally).
    model_dir, checkpoints, device, mirroring, tile_step_size
        As :func:`load_predictor`.

    Returns
    -------
    SimpleITK.Image
        UInt8 mask (1 = ROI) on ``image``'s grid.

    Raises
    ------
    NnunetError
        A checkpoint missing or changed since training (re-run the training rule).
    """
    predictor = load_predictor(model_dir, checkpoints, device, mirroring, tile_step_size)
    with tempfile.TemporaryDirectory(prefix="acceflow_nnunet_") as tmp:
        path = Path(tmp) / "image_0000.nii.gz"
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(path))
        return predict_file(predictor, path, tmp)


#: Columns of :func:`segment_scans`' batch table (``batch.tsv`` beside the scans' folders).
BATCH_COLUMNS = ("scan_id", "status", "error", "seconds")


def segment_scans(scans, model_dir: str | os.PathLike, checkpoints: dict, out_dir: str | os.PathLike, *,
                  device: str = "auto", mirroring: bool = True, tolerance_mm: float = 1.0,
                  on_error: str = "exclude") -> pd.DataFrame:
    """Segment a batch of scans with one nnU-Net predictor (the network loaded once).

    For each scan: nnU-Net's mask on the preprocessed grid (:func:`predict_file`), or the shared
    fallback when its prediction fails (:func:`acceflow.imaging.segment_model.segment_or_empty`: an
    empty mask, ``error`` "segmentation failed: ..." in its quality row, the reason logged); the mask
    on the original grid and its quality against the reference mask
    (:func:`acceflow.imaging.segment_model.mask_on_original`).

    Parameters
    ----------
    scans : sequence of mappings
        One per scan: ``scan_id``; ``image`` (the preprocessed image, NIfTI); ``original`` (the
        original image); ``reference`` (its reference mask, or None); ``mask`` (``series_uid``,
        ``roi``, ``label``, ``tolerance`` of the scan's original mask, as :func:`mask_on_original`);
        ``model`` (the model named in the quality row: a fold card, or ``.../ensemble/model_card.json``).
    model_dir, checkpoints, device, mirroring
        As :func:`load_predictor`; a checkpoint that fails its SHA-256 check fails the whole batch
        (:class:`NnunetError`): a changed model is no case's problem.
    out_dir : path
        Receives ``{scan_id}/preprocessed_mask.nii.gz``, ``{scan_id}/mask.nii.gz`` (original grid),
        ``{scan_id}/quality.tsv`` (:func:`write_quality_row`), and ``batch.tsv``.
    tolerance_mm : float
        Surface Dice tolerance in mm.
    on_error : {"exclude", "stop"}
        ``stop`` re-raises the first failure. ``exclude``: a failed prediction is the fallback above;
        a scan whose files cannot be written at all (e.g. its original image unreadable) gets no
        folder and status ``failed``, and the batch goes on.

    Returns
    -------
    pandas.DataFrame
        :data:`BATCH_COLUMNS`: ``status`` ``ok`` / ``fallback`` / ``failed``, ``error``, ``seconds``
        (wall time of the scan); also written to ``out_dir/batch.tsv``.
    """
    import logging

    from acceflow.imaging.segment_model import mask_on_original, segment_or_empty, write_quality_row
    from acceflow.io.images import read_image, write_image

    log = logging.getLogger(__name__)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    predictor = load_predictor(model_dir, checkpoints, device, mirroring)
    log.info("nnU-Net folds %s loaded (verified) in %.1f s; %d scans to segment", sorted(checkpoints),
             time.perf_counter() - start, len(scans))
    rows = []
    with tempfile.TemporaryDirectory(prefix="acceflow_nnunet_") as tmp:
        for s in scans:
            t0 = time.perf_counter()
            scan = s["scan_id"]
            row = {"scan_id": scan, "model": s["model"], "error": ""}
            try:
                image = read_image(s["image"])
                mask = segment_or_empty(lambda path=s["image"]: predict_file(predictor, path, tmp), image, row, on_error)
                failed = bool(row["error"])
                on_original = mask_on_original(mask, row, s["original"], s["reference"], s["mask"], tolerance_mm,
                                               on_error)
                folder = out_dir / scan
                folder.mkdir(exist_ok=True)
                write_image(mask, folder / "preprocessed_mask.nii.gz")
                write_image(on_original, folder / "mask.nii.gz")
                write_quality_row(row, folder / "quality.tsv")
                status, error = ("fallback" if failed else "ok"), row["error"]
            except Exception as exc:  # noqa: BLE001 - this scan's files are missing; the batch goes on
                if on_error == "stop":
                    raise
                log.exception("scan %s: no mask written: %s: %s", scan, type(exc).__name__, exc)
                shutil.rmtree(out_dir / scan, ignore_errors=True)
                status, error = "failed", f"{type(exc).__name__}: {exc}"
            seconds = round(time.perf_counter() - t0, 2)
            log.info("scan %s: %s in %.1f s %s", scan, status, seconds, row)
            rows.append({"scan_id": scan, "status": status, "error": error, "seconds": seconds})
    table = pd.DataFrame(rows, columns=list(BATCH_COLUMNS))
    table.to_csv(out_dir / "batch.tsv", sep="\t", index=False)
    log.info("batch of %d scans: %s; %.1f s in all", len(table), table["status"].value_counts().to_dict(),
             time.perf_counter() - start)
    return table
