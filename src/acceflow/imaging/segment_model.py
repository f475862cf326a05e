"""Deep-learning segmentation with MONAI: train a 3D network on reference masks, infer masks.

Method: a 3D U-Net (Ronneberger et al. 2015, MICCAI; 3D: Çiçek et al. 2016, MICCAI) as MONAI's
``DynUNet`` (the nnU-Net architecture: two conv-instance-norm-leaky-ReLU per level, deep supervision
of the decoder's lower outputs; Isensee et al. 2021, nnU-Net, Nat Methods 18:203), MONAI's
residual-unit ``UNet`` (Kerfoot et al. 2018) or SegResNet (Myronenko 2018, BrainLes); the target
spacing and the patch size planned from the training images' headers as nnU-Net's planner does
(:func:`plan_segmentation`: median spacing, median shape capped by a voxel budget); patches sampled
with foreground oversampling (MONAI ``RandCropByPosNegLabeld``: by default 1/3 centred on the region
of interest, as nnU-Net); loss Dice + cross-entropy (``DiceCELoss``, summed over the deep-supervision
outputs with weights 1, 1/2, 1/4, ... by ``DeepSupervisionLoss``); Adam, early stopping on the
validation Dice of held-out cases. Inference: sliding-window
(Gaussian-weighted patches, ``sliding_window_inference``), argmax, optionally the largest
connected component of the foreground (SimpleITK ``ConnectedComponent``).
Uncertainty: Monte Carlo dropout (Gal & Ghahramani 2016, ICML) or test-time augmentation by
flips (Wang et al. 2019, Neurocomputing 338:34); each sample mask acts as a reader.

Images come in as SimpleITK images (the preprocessed grid of the pipeline); arrays are
``(z, y, x)`` (SimpleITK order) with a channel axis in front. Every mask this module returns is
a SimpleITK ``UInt8`` image on the input image's grid with label 1 (or ``label``).
CPU runs are the reference and are bit-identical for one seed and one thread count
(:func:`acceflow.device.seed_everything`); on CUDA, mixed precision is used when asked for.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from acceflow.device import autocast, describe, grad_scaler, seed_everything, select_device, use_amp
from acceflow.runtime import atomic_write_bytes, read_verified, require_keys, sha256_bytes, to_jsonable

__all__ = ["SETTINGS_KEYS", "INFERENCE_KEYS", "SegmentationCase", "build_network", "plan_segmentation",
           "planned_settings", "train_segmenter", "infer_mask",
           "sample_masks", "to_original_grid", "assign_folds", "save_model", "load_model", "load_model_with_card",
           "SegmentationError", "empty_mask", "segment_or_empty", "mask_on_original", "write_quality_row"]

_log = logging.getLogger(__name__)

#: The keys of the ``segmentation`` config section this module reads (and records in the model card,
#: in this order). Their defaults live in the config schema only (workflow/schemas/config.schema.yaml).
SETTINGS_KEYS = ("network", "channels", "dropout", "patch_size", "batch_size", "samples_per_case", "iterations",
                 "validation_interval", "validation_fraction", "patience", "learning_rate", "largest_component",
                 "overlap", "cache_rate", "device", "mixed_precision", "uncertainty", "target_spacing",
                 "max_patch_voxels", "foreground_fraction", "deep_supervision")
#: The keys inference reads (:func:`infer_mask`; :func:`sample_masks` also reads ``dropout``, ``uncertainty``).
#: ``patch_size`` and ``target_spacing`` are the model's planned values (:func:`planned_settings`).
INFERENCE_KEYS = ("patch_size", "target_spacing", "batch_size", "overlap", "largest_component", "device",
                  "mixed_precision")
#: nnU-Net's threshold of anisotropy: an axis whose median spacing is more than 3 times the finest one's
#: takes the 10th percentile of its spacings as target (Isensee et al. 2021, Methods: target spacing).
ANISOTROPY_RATIO = 3.0


class SegmentationError(ValueError):
    """A segmentation input cannot be used; the message names the case, the file and the fix."""


@dataclass
class SegmentationCase:
    """One training / inference case: an id, the image and (for training) its reference mask."""

    case_id: str
    image: sitk.Image
    mask: sitk.Image | None = None


def _settings(settings, keys) -> dict:
    """The ``segmentation`` settings as given, checked to hold ``keys`` (no defaults are filled here)."""
    return dict(require_keys(settings, keys, "the segmentation settings",
                             "e.g. acceflow.study.settings.section_settings('segmentation', {...}) fills the "
                             "schema's defaults"))


def deep_supervision_heads(network: str, channels, deep_supervision: bool) -> int:
    """How many lower decoder outputs are supervised besides the full-resolution one: DynUNet with
    ``deep_supervision`` supervises every decoder output: ``len(channels) - 2`` lower ones besides the
    full-resolution one (the most DynUNet allows; the bottleneck is not supervised), 0 otherwise."""
    return max(0, len(channels) - 2) if network == "dynunet" and deep_supervision else 0


def build_network(network: str = "unet", channels=(16, 32, 64, 128), dropout: float = 0.1,
                  deep_supervision: bool = False):
    """A MONAI 3D segmentation network with one input channel and two output classes.

    Parameters
    ----------
    network : ``dynunet`` (MONAI ``DynUNet``, the nnU-Net architecture: kernels 3, stride 2
        between levels, instance norm, leaky ReLU, transposed-convolution upsampling; widths
        ``channels``), ``unet`` (MONAI ``UNet``: the widths ``channels``, stride 2 between levels,
        one residual unit per level) or ``segresnet`` (MONAI ``SegResNet`` with ``init_filters =
        channels[0]`` and ``len(channels)`` levels)
    channels : feature widths per level (at least 2)
    dropout : dropout probability (used by MC-dropout sampling)
    deep_supervision : ``dynunet`` only: in training mode the network also returns the lower
        decoder outputs (:func:`deep_supervision_heads` of them, upsampled), stacked on axis 1 as
        ``(B, 1 + heads, 2, z, y, x)``; in eval mode it returns the full-resolution logits only

    Returns
    -------
    torch.nn.Module mapping ``(B, 1, z, y, x)`` to logits ``(B, 2, z, y, x)`` (each spatial size a
    multiple of ``2 ** (len(channels) - 1)``; sliding-window inference pads to the patch size).

    Raises
    ------
    ValueError for an unknown network or fewer than 2 levels.
    """
    from monai.networks.nets import DynUNet, SegResNet, UNet  # heavy optional dependency: imported on first use

    channels = [int(c) for c in channels]
    if len(channels) < 2:
        raise ValueError(f"segmentation.channels needs at least 2 levels, got {channels}")
    if network == "dynunet":
        levels, heads = len(channels), deep_supervision_heads(network, channels, deep_supervision)
        return DynUNet(spatial_dims=3, in_channels=1, out_channels=2, kernel_size=[3] * levels,
                       strides=[1] + [2] * (levels - 1), upsample_kernel_size=[2] * (levels - 1), filters=channels,
                       dropout=float(dropout) or None, norm_name=("INSTANCE", {"affine": True}),
                       deep_supervision=heads > 0, deep_supr_num=max(1, heads))
    if network == "unet":
        return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=channels,
                    strides=[2] * (len(channels) - 1), num_res_units=1, dropout=float(dropout))
    if network == "segresnet":
        blocks = tuple([1] + [2] * (len(channels) - 1))
        return SegResNet(spatial_dims=3, in_channels=1, out_channels=2, init_filters=channels[0],
                         blocks_down=blocks, blocks_up=tuple([1] * (len(channels) - 1)),
                         dropout_prob=float(dropout))
    raise ValueError(f"unknown segmentation.network {network!r}: use dynunet, unet or segresnet")


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(np.float32)[None]


def _label_array(case: SegmentationCase, label: int) -> np.ndarray:
    if case.mask is None:
        raise SegmentationError(f"case {case.case_id}: no reference mask to train on")
    if case.mask.GetSize() != case.image.GetSize():
        raise SegmentationError(
            f"case {case.case_id}: mask size {case.mask.GetSize()} differs from image size "
            f"{case.image.GetSize()}; resample the mask onto the image grid (rule preprocess does)")
    arr = (sitk.GetArrayFromImage(case.mask) == label).astype(np.float32)[None]
    if not arr.any():
        raise SegmentationError(f"case {case.case_id}: the reference mask has no voxel of label {label}")
    return arr


def _transforms(s: dict, train: bool):
    from monai.transforms import (
        Compose,
        NormalizeIntensityd,
        RandCropByPosNegLabeld,
        RandFlipd,
        SpatialPadd,  # heavy optional dependency: imported on first use
    )

    patch = [int(p) for p in s["patch_size"]]
    base = [NormalizeIntensityd(keys="image"), SpatialPadd(keys=["image", "label"], spatial_size=patch)]
    if not train:
        return Compose(base)
    # foreground oversampling: a share foreground_fraction of the patches is centred on a voxel of the
    # region of interest, the rest on a background voxel (nnU-Net: 1/3 forced foreground)
    fg = float(s["foreground_fraction"])
    return Compose(base + [
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=patch, pos=fg, neg=1.0 - fg,
                               num_samples=int(s["samples_per_case"])),
        RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=2),
    ])


def _normalised(image: sitk.Image):
    from monai.transforms import NormalizeIntensity  # heavy optional dependency: imported on first use

    return NormalizeIntensity()(_array(image))


def plan_segmentation(images, settings: dict) -> dict:
    """The target spacing and patch size of a segmenter, planned from its training images' headers as
    nnU-Net's experiment planner does (Isensee et al. 2021, Nat Methods 18:203, Methods: "rule-based
    parameters").

    Target spacing (``target_spacing: auto``): the median spacing of the training images per axis;
    where that axis is anisotropic (its median more than :data:`ANISOTROPY_RATIO` times the finest
    axis's), the 10th percentile of its spacings instead, as nnU-Net does, so that few cases are
    upsampled along it. ``null`` keeps the grid the images come on (they are resampled only when their
    spacings differ); a list ``[x, y, z]`` in mm is taken as given.

    Patch size (``patch_size: auto``): the median image shape on the target grid, each axis rounded up
    to a multiple of ``2 ** (len(channels) - 1)`` (what the network's down-sampling needs); while the
    patch holds more than ``max_patch_voxels`` voxels, the axis with the largest extent in mm shrinks
    by that multiple (the patch tends to a cube in mm, nnU-Net's rule for its GPU-memory budget). A
    list ``[z, y, x]`` in voxels is taken as given.

    Parameters
    ----------
    images : the training images (SimpleITK; only the headers are read: spacing and size)
    settings : the ``segmentation`` section (``target_spacing``, ``patch_size``, ``max_patch_voxels``,
        ``channels``)

    Returns
    -------
    dict with ``target_spacing`` (mm, x y z; None: the images' own grid, which is then one spacing),
    ``patch_size`` (voxels, z y x), ``median_spacing`` (mm, x y z), ``median_shape`` (voxels on the
    target grid, z y x), ``divisor`` (the multiple each patch axis has), ``n_images`` and ``rule`` (how
    each value was chosen, in words).

    Raises
    ------
    SegmentationError when there are no images, or ``target_spacing: null`` with images on different
    spacings (the network would see voxels of different sizes).
    """
    if not images:
        raise SegmentationError("no training image to plan the segmenter on")
    spacings = np.array([img.GetSpacing() for img in images], dtype=float)  # x y z
    sizes = np.array([img.GetSize() for img in images], dtype=float)        # x y z
    median_spacing = np.median(spacings, axis=0)
    rule = []
    given = settings["target_spacing"]
    if given == "auto":
        target = median_spacing.copy()
        finest = target.min()
        for axis in range(3):
            if target[axis] > ANISOTROPY_RATIO * finest:
                target[axis] = max(np.percentile(spacings[:, axis], 10), finest)
        rule.append("target spacing: median of the training images' spacings (10th percentile along an axis "
                    f"more than {ANISOTROPY_RATIO:g}x coarser than the finest)")
    elif given is None:
        if np.ptp(spacings, axis=0).max() > 1e-3 * spacings.max():
            raise SegmentationError(
                "segmentation.target_spacing: null needs the training images on one spacing, found "
                f"{sorted({tuple(np.round(sp, 3)) for sp in spacings})[:4]} (mm): set target_spacing: auto (the "
                "median spacing, as nnU-Net) or preprocessing.spacing")
        target = None
        rule.append("target spacing: the images' own grid")
    else:
        target = np.array([float(v) for v in given])
        rule.append("target spacing: given")
    grid = target if target is not None else median_spacing
    shapes = sizes * spacings / grid                                      # x y z voxels on the target grid
    median_shape = np.median(shapes, axis=0)[::-1]                        # z y x
    divisor = 2 ** (len(settings["channels"]) - 1)
    if settings["patch_size"] == "auto":
        patch = np.maximum(divisor, np.ceil(median_shape / divisor) * divisor).astype(int)
        budget, mm = int(settings["max_patch_voxels"]), grid[::-1]       # z y x
        while np.prod(patch) > budget and (patch > divisor).any():
            extent = np.where(patch > divisor, patch * mm, -1.0)
            patch[int(np.argmax(extent))] -= divisor
        rule.append(f"patch size: median shape on the target grid rounded up to multiples of {divisor}, the "
                    f"largest extent in mm shrunk while above {budget} voxels")
    else:
        patch = np.array([int(p) for p in settings["patch_size"]])
        rule.append("patch size: given")
    return {"target_spacing": None if target is None else [round(float(v), 4) for v in target],
            "patch_size": [int(p) for p in patch], "median_spacing": [round(float(v), 4) for v in median_spacing],
            "median_shape": [round(float(v), 1) for v in median_shape], "divisor": divisor,
            "n_images": len(images), "rule": "; ".join(rule)}


def planned_settings(settings: dict, card: dict) -> dict:
    """The ``segmentation`` settings with the model's planned ``patch_size`` and ``target_spacing``
    (``card["plan"]`` of :func:`train_segmenter`), i.e. what inference must use. A card without a
    plan (a model trained before planning existed) keeps the settings' patch size and its own grid."""
    s = dict(settings)
    plan = card.get("plan")
    if plan:
        s.update(patch_size=plan["patch_size"], target_spacing=plan["target_spacing"])
    else:
        s.setdefault("target_spacing", None)
        s["target_spacing"] = None if s["target_spacing"] == "auto" else s["target_spacing"]
    return s


def _on_spacing(image: sitk.Image, spacing, interpolator) -> sitk.Image:
    """``image`` resampled to ``spacing`` (mm, x y z) over the same physical extent (the grids' centres
    aligned); the image itself when it is already on that spacing or ``spacing`` is None."""
    if spacing is None or np.allclose(image.GetSpacing(), spacing, rtol=1e-3, atol=0):
        return image
    old_sp, old_size = np.array(image.GetSpacing()), np.array(image.GetSize())
    size = np.maximum(1, np.round(old_size * old_sp / np.array(spacing))).astype(int)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint(((old_size - 1) / 2).tolist()))
    origin = centre - direction @ ((size - 1) / 2 * np.array(spacing))
    return sitk.Resample(image, [int(v) for v in size], sitk.Transform(), interpolator, origin.tolist(),
                         [float(v) for v in spacing], image.GetDirection(), 0.0, image.GetPixelID())


def assign_folds(case_ids, k: int, seed: int) -> dict:
    """Case-level fold numbers (0..k-1) for k-fold cross-validation: no case in two folds.

    Parameters
    ----------
    case_ids : iterable of case ids (patients; duplicates are one case)
    k : number of folds (>= 2, <= number of cases)
    seed : shuffling seed (``numpy.random.default_rng``)

    Returns
    -------
    dict case_id -> fold; folds differ in size by at most one case.

    Raises
    ------
    ValueError when ``k < 2`` or there are fewer cases than folds.
    """
    cases = sorted(set(map(str, case_ids)))
    if k < 2 or len(cases) < k:
        raise ValueError(f"segmentation.cv_folds {k}: needs 2 <= k <= the number of cases ({len(cases)})")
    order = np.random.default_rng(seed).permutation(len(cases))
    return {cases[i]: int(rank % k) for rank, i in enumerate(order)}


def _split(cases, fraction: float, seed: int):
    n_val = int(round(fraction * len(cases))) if fraction > 0 else 0
    if len(cases) - n_val < 1:
        n_val = len(cases) - 1
    order = np.random.default_rng(seed).permutation(len(cases))
    val = {int(i) for i in order[:n_val]}
    return [c for i, c in enumerate(cases) if i not in val], [c for i, c in enumerate(cases) if i in val]


def _predict_logits(model, x, s, device, amp):
    import torch  # heavy optional dependency: imported on first use
    from monai.inferers import sliding_window_inference  # heavy optional dependency: imported on first use

    with torch.no_grad(), autocast(device, amp):
        return sliding_window_inference(x.to(device), roi_size=[int(p) for p in s["patch_size"]],
                                        sw_batch_size=int(s["batch_size"]), predictor=model,
                                        overlap=float(s["overlap"]), mode="gaussian").float()


def train_segmenter(cases: list[SegmentationCase], settings: dict | None = None, seed: int = 42,
                    label: int = 1, log=print):
    """Train a 3D segmentation network on images and their reference masks.

    Parameters
    ----------
    cases : the training cases (image and reference mask on the same grid, e.g. the
        preprocessed grid; any spacing in mm, isotropic recommended)
    settings : the complete ``segmentation`` section (at least :data:`SETTINGS_KEYS`), e.g.
        ``acceflow.study.settings.section_settings('segmentation', {...})``; no defaults are filled
        here. It reads ``network``,
        ``channels``, ``dropout``, ``patch_size`` (voxels, z y x), ``batch_size`` (cases per
        step; each gives ``samples_per_case`` patches, half centred on the ROI), ``iterations``
        (optimiser steps at most), ``validation_interval`` (steps between validations),
        ``validation_fraction`` (cases held out, by case), ``patience`` (validations without
        improvement before stopping), ``learning_rate`` (Adam), ``cache_rate`` (MONAI
        ``CacheDataset``), ``device``, ``mixed_precision``
    seed : seeds the validation split, patch sampling, weight initialisation and shuffling
    label : the reference masks' ROI label
    log : where progress lines go

    Returns
    -------
    (model, card): the network with the weights of the best validation Dice (the last weights
    when nothing is held out), in eval mode on CPU; ``card`` a dict with the settings, the
    training and validation case ids, ``history`` (per validation: iteration, mean training loss,
    validation Dice), ``best_iteration``, ``best_val_dice``, ``iterations_run``,
    ``iterations_per_s``, ``train_seconds`` and the device description.

    Raises
    ------
    SegmentationError when there are no cases, a mask is empty or not on its image's grid.
    ValueError when ``settings`` lacks keys of :data:`SETTINGS_KEYS` (the message names them).
    """
    import torch  # heavy optional dependency: imported on first use
    from monai.data import CacheDataset, DataLoader  # heavy optional dependency: imported on first use
    from monai.losses import DeepSupervisionLoss, DiceCELoss  # heavy optional dependency: imported on first use
    from monai.metrics import DiceMetric  # heavy optional dependency: imported on first use

    s = _settings(settings, SETTINGS_KEYS)
    if not cases:
        raise SegmentationError("no training case with a reference mask: segmentation.source: model needs "
                                "reference masks in the training cohorts")
    device = select_device(s["device"])
    amp = use_amp(device, s["mixed_precision"])
    seed_everything(seed)
    for c in cases:
        _label_array(c, label)  # a bad mask is named before anything is resampled
    plan = plan_segmentation([c.image for c in cases], s)
    s = dict(s, patch_size=plan["patch_size"], target_spacing=plan["target_spacing"])
    log(f"plan: target spacing {plan['target_spacing']} mm (median {plan['median_spacing']}), patch "
        f"{plan['patch_size']} voxels (median shape {plan['median_shape']}); {plan['rule']}")
    cases = [SegmentationCase(c.case_id, _on_spacing(sitk.Cast(c.image, sitk.sitkFloat32), s["target_spacing"],
                                                     sitk.sitkLinear),
                              _on_spacing(c.mask, s["target_spacing"], sitk.sitkNearestNeighbor)) for c in cases]
    train_cases, val_cases = _split(cases, float(s["validation_fraction"]), seed)
    data = [{"image": _array(c.image), "label": _label_array(c, label)} for c in train_cases]
    tf = _transforms(s, train=True)
    tf.set_random_state(seed=seed)
    ds = CacheDataset(data, transform=tf, cache_rate=float(s["cache_rate"]), num_workers=0, progress=False)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=int(s["batch_size"]), shuffle=True, num_workers=0, generator=gen)
    val = [(c.case_id, torch.as_tensor(_normalised(c.image))[None], torch.as_tensor(_label_array(c, label))[None])
           for c in val_cases]
    model = build_network(s["network"], s["channels"], s["dropout"], s["deep_supervision"]).to(device)
    heads = deep_supervision_heads(s["network"], s["channels"], s["deep_supervision"])
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
    if heads:  # the full-resolution output and the lower ones, weights 1, 1/2, 1/4, ... (MONAI "exp")
        supervised = DeepSupervisionLoss(dice_ce, weight_mode="exp")

        def loss_fn(out, y):
            return supervised(list(torch.unbind(out, dim=1)), y)
    else:
        loss_fn = dice_ce
    opt = torch.optim.Adam(model.parameters(), lr=float(s["learning_rate"]))
    scaler = grad_scaler(device, amp)
    metric = DiceMetric(include_background=False, reduction="mean")
    n_iter, interval = int(s["iterations"]), max(1, int(s["validation_interval"]))
    history, best, best_it, best_state, stale, it, losses = [], -1.0, 0, None, 0, 0, []
    start = time.perf_counter()
    log(f"training {s['network']} ({heads} deep-supervision heads) on {len(train_cases)} cases ({len(val_cases)} for "
        f"validation), up to {n_iter} "
        f"iterations of batch {int(s['batch_size'])}, validation every {interval}, device {describe(device)}")
    while it < n_iter:
        for batch in loader:
            model.train()
            x, y = batch["image"].to(device), batch["label"].to(device)
            opt.zero_grad(set_to_none=True)
            with autocast(device, amp):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
            it += 1
            if it % interval == 0 or it == n_iter:
                entry = {"iteration": it, "train_loss": float(np.mean(losses))}
                losses = []
                if val:
                    model.eval()
                    for _, vx, vy in val:
                        pred = _predict_logits(model, vx, s, device, amp).argmax(1, keepdim=True).cpu()
                        metric(y_pred=torch.nn.functional.one_hot(pred[:, 0].long(), 2).permute(0, 4, 1, 2, 3),
                               y=torch.nn.functional.one_hot(vy[:, 0].long(), 2).permute(0, 4, 1, 2, 3))
                    entry["val_dice"] = float(metric.aggregate().item())
                    metric.reset()
                    if entry["val_dice"] > best:
                        best, best_it, stale = entry["val_dice"], it, 0
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        stale += 1
                history.append(entry)
                log(f"iteration {it}/{n_iter}: " + ", ".join(f"{k} {v:.4f}" for k, v in entry.items()
                                                             if k != "iteration")
                    + f", elapsed {time.perf_counter() - start:.1f} s")
                if val and stale >= int(s["patience"]):
                    log(f"early stop: no better validation Dice for {stale} validations")
                    n_iter = it
            if it >= n_iter:
                break
    seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model = model.cpu().eval()
    card = {"method": f"MONAI {s['network']}, DiceCE loss" + (f" with deep supervision ({heads} heads)" if heads else "")
            + f", Adam, patch sampling (RandCropByPosNegLabeld, {float(s['foreground_fraction']):.2f} foreground)"
            + (", target spacing / patch size planned from the training images (nnU-Net's rules)"
               if "auto" in (settings["target_spacing"], settings["patch_size"]) else ""),
            "settings": {k: settings[k] for k in SETTINGS_KEYS}, "plan": plan, "seed": seed,
            "train_cases": [c.case_id for c in train_cases], "validation_cases": [c.case_id for c in val_cases],
            "history": history, "best_iteration": best_it if best_state is not None else it,
            "best_val_dice": best if best_state is not None else None, "iterations_run": it,
            "train_seconds": seconds, "iterations_per_s": it / seconds if seconds > 0 else None,
            "device": describe(device)}
    return model, card


def _mask_image(labels: np.ndarray, reference: sitk.Image, label: int) -> sitk.Image:
    out = sitk.GetImageFromArray((labels > 0).astype(np.uint8) * np.uint8(label))
    out.CopyInformation(reference)
    return out


def _largest_component(labels):
    """Keep the largest 26-connected foreground component of a ``(1, z, y, x)`` label tensor
    (SimpleITK ``ConnectedComponent`` + ``RelabelComponent``, which orders components by size)."""
    import torch  # heavy optional dependency: imported on first use

    arr = np.asarray(labels[0]).astype(np.uint8)
    if not arr.any():
        return labels
    cc = sitk.ConnectedComponent(sitk.GetImageFromArray(arr), True)
    largest = sitk.GetArrayFromImage(sitk.RelabelComponent(cc, sortByObjectSize=True)) == 1
    return torch.as_tensor(largest.astype(np.int64))[None]


def _labels(model, image: sitk.Image, s: dict, device, amp, dims=None):
    """Argmax labels ``(1, z, y, x)`` of ``image`` on its own grid: the image resampled to the planned
    ``target_spacing`` (linear), sliding-window logits there (flipped along ``dims`` and back, for
    test-time augmentation), and, when the grids differ, the foreground probability resampled back
    (linear) and thresholded at 0.5 (= argmax of two classes), as nnU-Net exports its predictions."""
    import torch  # heavy optional dependency: imported on first use

    target = s["target_spacing"]
    if s["patch_size"] == "auto" or target == "auto":
        raise SegmentationError("the segmentation settings hold patch_size / target_spacing 'auto': inference "
                                "needs the values planned at training, planned_settings(settings, card)")
    work = _on_spacing(sitk.Cast(image, sitk.sitkFloat32), target, sitk.sitkLinear)
    x = torch.as_tensor(_normalised(work))[None]
    if dims:
        x = torch.flip(x, dims)
    logits = _predict_logits(model, x, s, device, amp)
    if dims:
        logits = torch.flip(logits, dims)
    if work.GetSize() == image.GetSize() and np.allclose(work.GetSpacing(), image.GetSpacing()):
        return logits.argmax(1).cpu()
    prob = sitk.GetImageFromArray(torch.softmax(logits, 1)[0, 1].cpu().numpy().astype(np.float32))
    prob.CopyInformation(work)
    back = sitk.Resample(prob, image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return torch.as_tensor((sitk.GetArrayFromImage(back) > 0.5).astype(np.int64))[None]


def infer_mask(model, image: sitk.Image, settings: dict | None = None, label: int = 1) -> sitk.Image:
    """The network's mask of one image: sliding-window inference, argmax, largest component.

    Parameters
    ----------
    model : a network from :func:`train_segmenter` / :func:`load_model`
    image : the image, on the grid the network was trained on (same spacing in mm)
    settings : the complete ``segmentation`` section with the model's planned patch size and target
        spacing, ``planned_settings(section, card)`` (no defaults are filled here); it reads
        :data:`INFERENCE_KEYS`: ``patch_size`` (the sliding window), ``target_spacing`` (the image is
        resampled to it and the mask comes back on the image's grid), ``batch_size``, ``overlap``
        (sliding-window overlap fraction), ``largest_component`` (keep only the largest
        26-connected foreground component), ``device``, ``mixed_precision``
    label : the value given to the foreground

    Returns
    -------
    SimpleITK.Image (UInt8) on ``image``'s grid; empty when the network finds nothing.

    Raises
    ------
    ValueError when ``settings`` lacks keys of :data:`INFERENCE_KEYS` (the message names them).
    SegmentationError when they hold ``auto`` instead of the planned values.
    """
    s = _settings(settings, INFERENCE_KEYS)
    device = select_device(s["device"])
    model = model.to(device).eval()
    labels = _labels(model, image, s, device, use_amp(device, s["mixed_precision"]))
    if s["largest_component"]:
        labels = _largest_component(labels)
    return _mask_image(np.asarray(labels[0]), image, label)


def sample_masks(model, image: sitk.Image, settings: dict | None = None, seed: int = 42,
                 label: int = 1) -> list[sitk.Image]:
    """Several plausible masks of one image (segmentation uncertainty), each acting as a reader.

    Parameters
    ----------
    model, image, settings, label : as :func:`infer_mask`; ``settings["uncertainty"]`` holds
        ``method`` (``mc_dropout``: dropout layers kept active at inference, one forward pass per
        sample, Gal & Ghahramani 2016; ``tta``: flips along the axes combinations (x, y, xy,
        z, ...) and the prediction flipped back, Wang et al. 2019) and ``samples`` (N)
    seed : seeds the dropout masks (MC dropout)

    Returns
    -------
    list of N SimpleITK masks on ``image``'s grid.

    Raises
    ------
    ValueError for method ``none`` or an unknown method, MC dropout with a network whose
    dropout is 0, or ``settings`` without the keys it reads (:data:`INFERENCE_KEYS`, ``dropout``,
    ``uncertainty``).
    """
    import torch  # heavy optional dependency: imported on first use

    s = _settings(settings, (*INFERENCE_KEYS, "dropout", "uncertainty"))
    method, n = s["uncertainty"]["method"], int(s["uncertainty"]["samples"])
    device = select_device(s["device"])
    amp = use_amp(device, s["mixed_precision"])
    model = model.to(device).eval()
    outs = []
    if method == "mc_dropout":
        drops = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
        if not drops or float(s["dropout"]) <= 0:
            raise ValueError("uncertainty.method mc_dropout needs segmentation.dropout > 0")
        seed_everything(seed)
        for m in drops:
            m.train()
        try:
            for _ in range(n):
                outs.append(_labels(model, image, s, device, amp))
        finally:
            model.eval()
    elif method == "tta":
        flips = [(4,), (3,), (3, 4), (2,), (2, 4), (2, 3), (2, 3, 4)]
        for i in range(n):
            outs.append(_labels(model, image, s, device, amp, dims=flips[i % len(flips)]))
    else:
        raise ValueError(f"segmentation.uncertainty.method {method!r}: use mc_dropout or tta")
    if s["largest_component"]:
        outs = [_largest_component(o) for o in outs]
    return [_mask_image(np.asarray(o[0]), image, label) for o in outs]


def empty_mask(image: sitk.Image) -> sitk.Image:
    """An all-zero ``UInt8`` mask on ``image``'s grid (size, spacing in mm, origin, direction)."""
    mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(image)
    return mask


def segment_or_empty(segment, image: sitk.Image, row: dict, on_error: str = "exclude") -> sitk.Image:
    """One scan's mask from ``segment()``, or the fallback when segmentation fails (both backends).

    Parameters
    ----------
    segment : callable
        No arguments; returns the scan's mask on ``image``'s grid (e.g. a closure over
        :func:`infer_mask` or an nnU-Net predictor).
    image : SimpleITK.Image
        The scan on the preprocessed grid (the fallback mask takes its grid).
    row : dict
        The scan's quality row (``scan_id``, ``model``, ``error``); on failure ``row["error"]`` becomes
        ``"segmentation failed: <reason>"``, which :func:`mask_on_original` leaves unscored and the
        quality table shows.
    on_error : {"exclude", "stop"}
        ``stop`` re-raises the failure (the job fails); ``exclude`` logs the reason and traceback
        (logger ``acceflow.imaging.segment_model``) and returns :func:`empty_mask`, so the scan's
        extraction then fails and is listed while the other scans go on.

    Returns
    -------
    SimpleITK.Image (UInt8) on ``image``'s grid.
    """
    try:
        return segment()
    except Exception as exc:  # noqa: BLE001 - the scan's extraction then fails and is listed, others go on
        if on_error == "stop":
            raise
        _log.exception("scan %s: segmentation failed, empty mask written (on_case_error: exclude): %s: %s",
                       row.get("scan_id"), type(exc).__name__, exc)
        row["error"] = f"segmentation failed: {exc}"
        return empty_mask(image)


def to_original_grid(mask: sitk.Image, original: sitk.Image) -> sitk.Image:
    """A mask resampled (nearest neighbour) onto another image's grid, e.g. the original image.

    Parameters
    ----------
    mask : label mask on the preprocessed grid
    original : the image whose grid (size, spacing in mm, origin, direction) the result takes

    Returns
    -------
    SimpleITK.Image (UInt8) on ``original``'s grid (0 outside the mask's extent).
    """
    return sitk.Cast(sitk.Resample(mask, original, sitk.Transform(), sitk.sitkNearestNeighbor, 0), sitk.sitkUInt8)


def mask_on_original(mask: sitk.Image, row: dict, original_path, reference_path, settings: dict,
                     tolerance_mm: float, on_error: str = "exclude") -> sitk.Image:
    """A model's mask moved onto the original image's grid and, where the scan has a reference mask,
    scored against it; shared by the MONAI and nnU-Net segmentation rules.

    Parameters
    ----------
    mask : SimpleITK.Image
        The model's label mask on the preprocessed grid.
    row : dict
        The scan's quality row (``scan_id``, ``model``, ``error``); updated in place with the columns of
        :data:`acceflow.metrics.segmentation.QUALITY_COLUMNS` (Dice, HD95 and ASSD in mm, surface Dice at
        ``tolerance_mm``, volumes in mL), or with ``error`` when the evaluation fails. Left unscored when
        ``row["error"]`` is already set (the segmentation itself failed) or ``reference_path`` is None.
    original_path : str or Path
        The scan's original image (its grid is the deliverable's).
    reference_path : str, Path or None
        The scan's reference mask, if any.
    settings : dict
        ``series_uid``, ``roi``, ``label`` and ``tolerance`` (geometry tolerance in mm) of the scan's mask.
    tolerance_mm : float
        Surface Dice tolerance in mm.
    on_error : {"exclude", "stop"}
        ``stop`` re-raises an evaluation failure; ``exclude`` records it in ``row["error"]``.

    Returns
    -------
    SimpleITK.Image (UInt8) on the original image's grid.
    """
    from acceflow.io.images import read_image, read_mask
    from acceflow.metrics.segmentation import segmentation_quality

    original = read_image(original_path, series_uid=settings["series_uid"] or None)
    on_original = to_original_grid(mask, original)
    if reference_path is not None and not row["error"]:
        try:
            reference = read_mask(reference_path, original, roi=settings["roi"] or None, label=settings["label"],
                                  tolerance=settings["tolerance"])
            row.update(segmentation_quality(reference, on_original, label=settings["label"],
                                            tolerance_mm=tolerance_mm))
        except Exception as exc:  # noqa: BLE001 - recorded in the row; the other scans go on
            if on_error == "stop":
                raise
            row["error"] = f"evaluation failed: {exc}"
    return on_original


def write_quality_row(row: dict, path) -> None:
    """One scan's segmentation quality row as a one-line TSV (``scan_id``, ``model``, ``error`` and
    :data:`acceflow.metrics.segmentation.QUALITY_COLUMNS`)."""
    import csv

    from acceflow.metrics.segmentation import QUALITY_COLUMNS

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["scan_id", "model", "error", *QUALITY_COLUMNS], delimiter="\t",
                           lineterminator="\n")
        w.writeheader()
        w.writerow(row)


def save_model(model, card: dict, path) -> str:
    """Save the weights and the card (settings needed to rebuild the network), atomically; return the
    file's SHA-256 (record it as ``model_sha256`` in the card written beside it).

    The file holds only the ``state_dict`` (tensors) and the card as plain JSON values, so that
    :func:`load_model` reads it with ``torch.load(weights_only=True)``: no pickled objects, no code.
    """
    import torch  # heavy optional dependency: imported on first use

    blob = io.BytesIO()
    torch.save({"format": "acceflow.segmentation/1", "state_dict": model.state_dict(), "card": _plain(card)},
               blob)
    data = blob.getvalue()
    atomic_write_bytes(data, path)
    return sha256_bytes(data)


def _plain(value):
    """``value`` as plain JSON types only (str subclasses such as torch's version string become str)."""
    return json.loads(json.dumps(to_jsonable(value)))


def load_model(path, sha256: str):
    """Rebuild a network saved by :func:`save_model`; returns ``(model, card)`` (CPU, eval mode).

    The file is read once; its SHA-256 must equal ``sha256`` (``model_sha256`` of the model card
    beside it); the same bytes are then read with ``torch.load(weights_only=True)``, which builds
    tensors and plain containers only, so a replaced file cannot run code.

    Raises
    ------
    SegmentationError when the file is missing, its hash differs from ``sha256`` (or none is
    given), or it is not a weights-only segmentation model written by :func:`save_model`.
    """
    import torch  # heavy optional dependency: imported on first use

    data = read_verified(path, sha256, error=SegmentationError)
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        s = saved["card"]["settings"]
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError) as exc:
        raise SegmentationError(f"{path}: refused: not a weights-only segmentation model written by save_model "
                                f"({type(exc).__name__}: {exc}); delete it and re-run the training rule") from exc
    model = build_network(s["network"], s["channels"], s["dropout"], s.get("deep_supervision", False))
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved["card"]


def load_model_with_card(path, card_path=None):
    """:func:`load_model` with the hash taken from the model card beside the file
    (``model_card.json`` in the same folder, or ``card_path``); returns ``(model, card)``."""
    card_path = Path(card_path) if card_path else Path(path).with_name("model_card.json")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SegmentationError(f"{card_path}: cannot read the segmentation model card ({exc}); "
                                "re-run the training rule") from exc
    return load_model(path, card.get("model_sha256"))
