"""Training, internal validation, prediction and embeddings of the deep biomarker.

* Inputs: crops (N, C, D, H, W) from :mod:`acceflow.deep.crops`, normalised per channel by the
  training cases' mean and SD (fitted on the training data of each fit only).
* Training: AdamW, a stratified validation split (``validation_fraction``) for early stopping on
  the validation loss (``patience`` epochs), the best epoch's weights kept (Prechelt 1998).
  Binary: binary cross-entropy with the positive class weighted by n_negative / n_positive
  (``balance: class_weight``) or a class-balanced ``WeightedRandomSampler`` (``balance:
  sampler``). Survival: Cox partial-likelihood loss (:mod:`acceflow.deep.cox`; DeepSurv, Katzman
  et al. 2018), Breslow ties; a survival training set whose batches would mostly hold no event is
  refused (:func:`check_events_per_batch`). A network's log-risks are centred on their mean over
  its training cases and the Breslow baseline hazard of those centred log-risks is kept, so that
  the risk of the event by a horizon can be read. MONAI augmentation (random flips, 90-degree rotations in the axial plane, small
  affine, Gaussian noise, intensity scaling) when ``augmentation`` is on.
* Clinical covariates (intermediate fusion): missing values imputed by the median of the training
  part of each fit, then standardised by its mean and SD (both fitted on the training part only,
  applied unchanged to held-out and external cases).
* Dimensions (:mod:`acceflow.deep.slices`): ``3d`` trains on the crops; ``2d`` / ``2.5d`` on the
  ``slices_2d`` largest axial lesion slices of each crop (2.5D: with neighbouring slices as
  channels), normalised as 3D crops (per channel, training part) before slicing; every case is
  one sample (its slices together), its logit the mean of its slices' logits, so batches,
  class weights, the Cox loss and the folds are case-level as in 3D. 2D augmentation: in-plane
  flips, 90-degree rotations, small affine, noise, intensity scaling.
* Multi-task (:mod:`acceflow.deep.multitask`, ``multitask``): task loss + ``multitask_weight`` x
  Dice + cross-entropy of the decoder's lesion mask (the crop's mask, augmented with the image;
  2D: the chosen slices' masks); optional PCGrad on the shared encoder; per epoch the history
  records ``seg_loss``, ``grad_cosine`` (mean over batches, before projection) and ``val_dice``.
  Early stopping watches the task's validation loss.
* Internal validation: ``cv_folds``-fold stratified cross-validation by case (seeded): each fold's
  network is trained (with its own validation split) on the other folds and predicts the held-out
  fold: out-of-fold probabilities (risks).
* Determinism: :func:`acceflow.device.seed_everything` before every fit, seeded sampler and
  transforms, ``num_workers=0``; CPU runs with one thread count give identical tables.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
from time import perf_counter

import numpy as np
import pandas as pd
from lifelines.utils import concordance_index
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from acceflow.deep.cox import breslow_baseline, cox_partial_likelihood_loss
from acceflow.deep.networks import build_network
from acceflow.device import autocast, grad_scaler, seed_everything, select_device, use_amp
from acceflow.runtime import atomic_write_bytes, read_verified, require_keys, sha256_bytes, to_jsonable

#: The keys of the ``deep`` config section that training reads (:func:`fit`, :func:`cross_validate`).
#: Their defaults live in the config schema only (workflow/schemas/config.schema.yaml).
TRAINING_KEYS = ("network", "fusion", "dropout", "epochs", "batch_size", "learning_rate", "weight_decay",
                 "validation_fraction", "patience", "balance", "augmentation", "cv_folds", "device",
                 "mixed_precision", "dimensions", "slices_2d", "slices_2_5d", "multitask", "multitask_weight", "pcgrad")

_HINT = "e.g. acceflow.study.settings.section_settings('deep', {...}) fills the schema's defaults"


class DeepTrainingError(ValueError):
    """The deep model cannot be trained on these cases (too few, one class only, too few events)."""


def check_events_per_batch(event, batch_size: int, what: str = "the survival training set") -> None:
    """Refuse a survival training set whose Cox-loss batches would mostly hold no event.

    The partial likelihood of a batch without an event is empty (no gradient). With E events in N
    cases, a shuffled batch of B cases holds B * E / N events on average; below 1 most batches
    carry no information, and fewer than 2 events give no ordering to learn.

    Raises
    ------
    DeepTrainingError
        Naming the counts and the fix (a larger ``deep.batch_size``, or more events).
    """
    event = np.asarray(event, dtype=int)
    n, e, b = len(event), int(event.sum()), int(batch_size)
    if e < 2 or b * e / max(n, 1) < 1.0:
        need = int(np.ceil(n / max(e, 1)))
        raise DeepTrainingError(
            f"{what} has {e} event(s) in {n} cases: a batch of deep.batch_size = {b} holds {b * e / max(n, 1):.2f} "
            f"events on average, so most batches of the Cox partial-likelihood loss carry no information; set "
            f"deep.batch_size to at least {need} (or train on a cohort with more events; at least 2 are needed)")


def clinical_stats(C: np.ndarray):
    """Median (for imputation), mean and SD (after imputation) per column of covariates (N, K); SD 0 -> 1."""
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2 or C.shape[1] == 0:
        raise ValueError(f"clinical covariates must be an (N, K) array with K >= 1, got shape {C.shape}")
    empty = np.isnan(C).all(axis=0)
    if empty.any():
        raise DeepTrainingError(f"clinical covariate column(s) {np.flatnonzero(empty).tolist()} have no value in the "
                                f"training cases: nothing to impute from; drop them from deep.clinical_covariates")
    median = np.nanmedian(C, axis=0)
    filled = np.where(np.isnan(C), median, C)
    sd = filled.std(axis=0)
    return median, filled.mean(axis=0), np.where(sd > 0, sd, 1.0)


def clinical_normalise(C, median, mean, sd) -> np.ndarray:
    """Impute by the training median, then standardise by the training mean and SD: (N, K) float32."""
    C = np.asarray(C, dtype=np.float64)
    return ((np.where(np.isnan(C), median, C) - mean) / sd).astype(np.float32)


def _complete(settings) -> dict:
    """The ``deep`` section as given, checked to hold every key of :data:`TRAINING_KEYS`."""
    return dict(require_keys(settings, TRAINING_KEYS, "the deep settings", _HINT))


def channel_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and SD of crops (N, C, D, H, W) -> two arrays (C,); SD 0 becomes 1."""
    mean = X.mean(axis=(0, 2, 3, 4))
    sd = X.std(axis=(0, 2, 3, 4))
    return mean.astype(np.float32), np.where(sd > 0, sd, 1.0).astype(np.float32)


def normalise(X: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(X - mean) / sd per channel (arrays of shape (C,)), float32."""
    return ((X - mean[None, :, None, None, None]) / sd[None, :, None, None, None]).astype(np.float32)


def augmentation_transform(seed: int, spatial_dims: int = 3, with_mask: bool = False):
    """MONAI dictionary transforms applied to ``image`` (C, D, H, W) (2D: (C, H, W)) of a training sample.

    With ``with_mask``, the spatial transforms move ``mask`` with the image (nearest neighbour).
    """
    from monai import transforms as T  # heavy optional dependency: imported on first use

    keys = ["image", "mask"] if with_mask else "image"
    affine = dict(mode=("bilinear", "nearest"), padding_mode=("border", "border")) if with_mask else \
        dict(padding_mode="border")
    if spatial_dims == 3:
        spatial = [T.RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
                   T.RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
                   T.RandFlipd(keys=keys, prob=0.5, spatial_axis=2),
                   T.RandRotate90d(keys=keys, prob=0.5, spatial_axes=(1, 2)),
                   T.RandAffined(keys=keys, prob=0.3, rotate_range=(0.2, 0.2, 0.2), scale_range=(0.1, 0.1, 0.1),
                                 **affine)]
    else:
        spatial = [T.RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
                   T.RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
                   T.RandRotate90d(keys=keys, prob=0.5, spatial_axes=(0, 1)),
                   T.RandAffined(keys=keys, prob=0.3, rotate_range=0.2, scale_range=(0.1, 0.1), **affine)]
    tr = T.Compose([
        *spatial,
        T.RandGaussianNoised(keys="image", prob=0.2, std=0.05),
        T.RandScaleIntensityd(keys="image", factors=0.1, prob=0.3),
        T.ToTensord(keys=keys, track_meta=False),
    ])
    tr.set_random_state(seed=seed)
    return tr


def _loader(X, target, settings, seed, train: bool, survival: bool, clinical=None, masks=None):
    import torch  # heavy optional dependency: imported on first use
    from monai import transforms as T  # heavy optional dependency: imported on first use
    from monai.data import DataLoader, Dataset  # heavy optional dependency: imported on first use

    data = [{"image": X[i], "target": target[i].astype(np.float32),
             **({"clinical": clinical[i]} if clinical is not None else {}),
             **({"mask": masks[i]} if masks is not None else {})} for i in range(len(X))]
    keys = ["image", "mask"] if masks is not None else "image"
    spatial_dims = X.ndim - 2
    transform = augmentation_transform(seed, spatial_dims, masks is not None) if train and settings["augmentation"] \
        else T.Compose([T.ToTensord(keys=keys, track_meta=False)])
    ds = Dataset(data, transform=transform)
    gen = torch.Generator().manual_seed(int(seed))
    sampler = None
    if train and not survival and settings["balance"] == "sampler":
        y = target[:, 0]
        w = np.where(y == 1, 1.0 / max(y.sum(), 1), 1.0 / max((1 - y).sum(), 1))
        sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double), len(y),
                                                         replacement=True, generator=gen)
    # survival: whole-set batches would be best for the Cox loss; batches of batch_size keep memory bounded
    return DataLoader(ds, batch_size=int(settings["batch_size"]), shuffle=train and sampler is None, sampler=sampler,
                      num_workers=0, generator=gen,
                      # a last batch of one case would break batch normalisation in training
                      drop_last=train and len(X) % int(settings["batch_size"]) == 1)


def model_input(Xn: np.ndarray, masks, settings, cases=None) -> np.ndarray:
    """The network's input from normalised crops (N, C, D, H, W): the crops (3d) or their lesion slices
    (2d / 2.5d, :func:`acceflow.deep.slices.slice_input`: (N, slices_2d x C', H, W))."""
    from acceflow.deep.slices import slice_input

    dims = settings.get("dimensions", "3d")
    if dims == "3d":
        return Xn
    if masks is None:
        raise ValueError(f"deep.dimensions: {dims} chooses slices by the lesion mask: pass the crops' masks")
    return slice_input(Xn, np.asarray(masks), dims, int(settings["slices_2d"]), int(settings["slices_2_5d"]), cases)


def _seg_targets(masks, settings, cases=None) -> np.ndarray:
    """The decoder's targets: (N, 1, D, H, W) 0/1 (3d) or (N, slices_2d, H, W) with padding slices 255 (2d / 2.5d)."""
    from acceflow.deep.slices import slice_masks

    if masks is None:
        raise ValueError("deep.multitask learns the lesion mask: pass the crops' masks")
    masks = np.asarray(masks)
    if settings["dimensions"] == "3d":
        return (masks > 0).astype(np.uint8)[:, None]
    return slice_masks(masks, int(settings["slices_2d"]), cases)


def _real_masks(mb, dims):
    """Decoder targets of a batch as (N, 1, ...) float: 3d as is; 2d: the real (non-padding) slices, (M, 1, H, W)."""
    if dims == "3d":
        return mb.float()
    flat = mb.flatten(0, 1)
    real = (flat != 255).flatten(1).any(dim=1)
    return flat[real][:, None].float()


def _dice_per_case(model, Xin, Mseg, settings, device, amp=False) -> np.ndarray:
    """Dice of the decoder's lesion mask (argmax) against the crop's mask, per case (2D: over its chosen slices)."""
    import torch  # heavy optional dependency: imported on first use

    from acceflow.deep.multitask import dice

    model.eval()
    out, bs = [], int(settings["batch_size"])
    with torch.no_grad():
        for start in range(0, len(Xin), bs):
            with autocast(device, amp):
                seg = model.segment(torch.as_tensor(Xin[start:start + bs]).to(device))
            seg = seg.float().argmax(1).cpu().numpy()
            i = 0
            for m in Mseg[start:start + bs]:
                if settings["dimensions"] == "3d":
                    out.append(dice(seg[i], m[0]))
                    i += 1
                else:
                    real = m[(m != 255).reshape(len(m), -1).any(axis=1)]
                    out.append(dice(seg[i:i + len(real)], real))
                    i += len(real)
    return np.asarray(out)


def segment_dice(fitted: dict, X: np.ndarray, masks: np.ndarray, cases=None) -> np.ndarray:
    """Per case, the Dice of a multi-task network's decoder (argmax of its two classes) against the crops' masks.

    Parameters
    ----------
    fitted : dict
        A fitted multi-task network (:func:`fit`).
    X : numpy.ndarray (N, C, D, H, W)
        Raw crops.
    masks : numpy.ndarray (N, D, H, W)
        Their lesion masks (2D / 2.5D: scored on the chosen slices).

    Returns
    -------
    numpy.ndarray (N,)
    """
    settings = fitted["settings"]
    device = next(fitted["model"].parameters()).device
    Xin = model_input(normalise(X, fitted["mean"], fitted["sd"]), masks, settings, cases)
    return _dice_per_case(fitted["model"], Xin, _seg_targets(masks, settings, cases), settings, device,
                          use_amp(device, settings["mixed_precision"]))


def _build(settings, in_channels: int, n_clinical: int = 0):
    """The network the settings describe (files written before issue 19 lack the dimension keys: 3D, one task)."""
    return build_network(settings["network"], in_channels, settings["fusion"], 1, float(settings["dropout"]),
                         n_clinical=n_clinical, dimensions=settings.get("dimensions", "3d"),
                         slices=int(settings.get("slices_2d", 1)), neighbours=int(settings.get("slices_2_5d", 1)),
                         multitask=bool(settings.get("multitask", False)))


def _loss_fn(survival: bool, y_train: np.ndarray, settings):
    import torch  # heavy optional dependency: imported on first use

    if survival:
        return lambda out, t: cox_partial_likelihood_loss(out[:, 0], t[:, 1], t[:, 2])
    pos = float(y_train.sum())
    weight = (len(y_train) - pos) / pos if settings["balance"] == "class_weight" and pos > 0 else 1.0
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([weight]))

    def loss(out, t):
        return bce(out[:, :1].float(), t[:, :1].to(out.device))
    loss.pos_weight = weight
    return loss


def _targets(y=None, time=None, event=None):
    """Targets (N, 3): outcome (binary) or NaN, time, event."""
    n = len(y if y is not None else time)
    t = np.full((n, 3), np.nan, dtype=np.float32)
    if y is not None:
        t[:, 0] = y
    if time is not None:
        t[:, 1], t[:, 2] = time, event
    return t


def _score(survival, target, out):
    if survival:
        if target[:, 2].sum() == 0:
            return float("nan")
        try:
            return float(concordance_index(target[:, 1], -out, target[:, 2]))
        except ZeroDivisionError:  # no comparable pair (e.g. a small validation split)
            return float("nan")
    y = target[:, 0]
    return float(roc_auc_score(y, out)) if 0 < y.sum() < len(y) else float("nan")


def fit(X: np.ndarray, y=None, settings: dict | None = None, seed: int = 42, device=None, time=None, event=None,
        log=print, domain=None, clinical=None, masks=None, cases=None):
    """Train one network with a validation split and early stopping.

    Parameters
    ----------
    X : numpy.ndarray, shape (N, C, D, H, W)
        Crops (raw intensities; normalised here by the training part's channel statistics).
    y : array (N,) of 0/1, optional
        Binary outcome (give ``y`` or ``time`` and ``event``).
    settings : dict
        The complete ``deep`` section (at least :data:`TRAINING_KEYS`), e.g.
        ``acceflow.study.settings.section_settings('deep', {...})``; no defaults are filled here.
    seed : int
    device : torch.device, optional
        Default: :func:`acceflow.device.select_device` of ``settings["device"]``.
    time, event : arrays (N,), optional
        Survival outcome (time in days, event 1/0): Cox partial-likelihood loss.
    log : callable
        Receives one line per epoch.
    domain : acceflow.deep.dann.DannSetup, optional
        Domain-adversarial training (DANN, :mod:`acceflow.deep.dann`): the unlabelled target
        crops and the site of every case of ``X``. Each training batch is joined by a batch of
        target crops; the site discriminator sees both embeddings through the gradient reversal
        layer (weight ``lambda`` on the schedule of :func:`acceflow.deep.dann.dann_lambda`); the
        outcome loss sees the training cases only; early stopping watches the outcome loss.
    clinical : numpy.ndarray, shape (N, K), optional
        Clinical covariates (NaN = missing) for the clinical encoder of intermediate fusion;
        imputed by the training part's median and standardised by its mean and SD.
    masks : numpy.ndarray, shape (N, D, H, W), optional
        The crops' lesion masks: needed by ``dimensions`` 2d / 2.5d (which slices) and by
        ``multitask`` (the decoder's target).
    cases : sequence of str, optional
        Case ids, for the messages of :mod:`acceflow.deep.slices`.

    Returns
    -------
    dict
        ``model`` (torch module, best epoch's weights, eval mode, on ``device``), ``mean``, ``sd``
        (channel statistics (C,)), ``history`` (list of dicts per epoch: epoch, train_loss,
        val_loss, val_auc (survival: val_c_index); with ``domain`` also lambda, domain_loss,
        domain_accuracy; with ``multitask`` also seg_loss, grad_cosine, val_dice), ``best_epoch``, ``stopped_epoch``, ``pos_weight``, ``n_train``,
        ``n_validation``, ``domain_adaptation`` (``domain.describe()`` or None), ``clinical`` (median,
        mean, sd per covariate, or None); survival: ``risk_offset`` (mean log-risk of the training
        cases, subtracted from every prediction) and ``baseline`` (Breslow: ``time``, ``cumhaz`` lists).

    Raises
    ------
    DeepTrainingError
        Fewer than 4 cases, a binary outcome with fewer than 2 cases of a class, or a survival
        training part with too few events for the Cox loss's batches (:func:`check_events_per_batch`).
    acceflow.deep.slices.SliceError
        2D / 2.5D: a case whose crop holds no lesion voxel (named).
    ValueError
        When ``settings`` lacks keys of :data:`TRAINING_KEYS` (the message names them), or 2D /
        2.5D / multi-task without ``masks``.
    """
    import torch  # heavy optional dependency: imported on first use


    settings = _complete(settings)
    survival = y is None
    device = device or select_device(settings["device"])
    target = _targets(y, time, event)
    strata = (target[:, 2] if survival else target[:, 0]).astype(int)
    if domain is not None:
        if len(domain.source_sites) != len(X):
            raise ValueError(f"DANN: {len(domain.source_sites)} source sites for {len(X)} training crops")
        target = np.c_[target, domain.codes(domain.source_sites).astype(np.float32)]  # column 3: site code
    if len(X) < 4 or (not survival and min(strata.sum(), len(strata) - strata.sum()) < 2):
        raise DeepTrainingError(f"{len(X)} training cases ({int(strata.sum())} positive/events): the deep model "
                                f"needs at least 4 cases and 2 of each class")
    if survival:
        check_events_per_batch(target[:, 2], settings["batch_size"])
    if domain is not None and settings["multitask"]:
        raise ValueError("deep.multitask is not combined with domain-adversarial training (DANN): set one of them off")
    seed_everything(seed)
    idx = np.arange(len(X))
    frac = float(settings["validation_fraction"])
    if frac > 0:
        n_val = max(2, int(round(frac * len(X))))
        strat = strata if min(np.bincount(strata, minlength=2)) >= 2 else None
        tr, va = train_test_split(idx, test_size=n_val, stratify=strat, random_state=seed)
    else:
        tr, va = idx, idx[:0]
    if survival:
        check_events_per_batch(target[tr, 2], settings["batch_size"],
                               f"the survival training part ({len(tr)} cases after the validation split)")
    mean, sd = channel_stats(X[tr])
    dims, multitask = settings["dimensions"], bool(settings["multitask"])
    Xn = model_input(normalise(X, mean, sd), masks, settings, cases)
    Mseg = _seg_targets(masks, settings, cases) if multitask else None
    cstats, Cn = None, None
    if clinical is not None:
        cstats = clinical_stats(np.asarray(clinical)[tr])
        Cn = clinical_normalise(clinical, *cstats)
    model = _build(settings, X.shape[1], 0 if Cn is None else Cn.shape[1]).to(device)
    params = list(model.parameters())
    if multitask:
        from acceflow.deep.multitask import assign_flat, cosine, flat_grads, pcgrad, segmentation_loss

        seg_fn, weight = segmentation_loss(), float(settings["multitask_weight"])
        shared = model.shared_parameters()
        shared_ids = {id(p) for p in shared}
        own = [p for p in params if id(p) not in shared_ids and p.requires_grad]
    if domain is not None:
        from acceflow.deep.dann import dann_lambda, grad_reverse, site_discriminator

        discriminator = site_discriminator(model.embedding_dim, len(domain.sites)).to(device)
        params += list(discriminator.parameters())
        target_loader = _loader(normalise(domain.target_X, mean, sd),
                                np.c_[domain.codes(domain.target_sites).astype(np.float32),
                                      np.full((len(domain.target_X), 2), np.nan, np.float32)],
                                {**settings, "balance": "class_weight"}, seed + 1, True, True)
        target_batches = iter(target_loader)
        site_loss = torch.nn.CrossEntropyLoss()
    opt = torch.optim.AdamW(params, lr=float(settings["learning_rate"]), weight_decay=float(settings["weight_decay"]))
    amp = use_amp(device, settings["mixed_precision"])
    scaler = grad_scaler(device, amp)
    loss_fn = _loss_fn(survival, target[tr, 0], settings)
    loader = _loader(Xn[tr], target[tr], settings, seed, True, survival, None if Cn is None else Cn[tr],
                     None if Mseg is None else Mseg[tr])
    history, best, best_state, best_epoch, wait = [], np.inf, None, 0, 0
    start, iterations, n_batches = perf_counter(), 0, len(loader)
    every = max(1, n_batches // 4) if n_batches >= 20 else 0  # long epochs: progress 4 times per epoch
    shape = "" if dims == "3d" and not multitask else f" ({dims}{', multi-task' if multitask else ''})"
    log(f"training {settings['network']}{shape} on {len(tr)} cases ({len(va)} for validation), {n_batches} batches of "
        f"{settings['batch_size']} per epoch, up to {int(settings['epochs'])} epochs (patience "
        f"{int(settings['patience'])}), device {device}")
    planned = max(1, int(settings["epochs"]) * n_batches)
    for epoch in range(1, int(settings["epochs"]) + 1):
        model.train()
        total, count = 0.0, 0
        d_total, d_right, d_count, lam = 0.0, 0, 0, 0.0
        seg_total, cosines = 0.0, []
        if domain is not None:
            discriminator.train()
        for i, batch in enumerate(loader, 1):
            if every and i % every == 0 and i < n_batches:
                log(f"epoch {epoch} iteration {i}/{n_batches}: running train_loss={total / max(count, 1):.4g} "
                    f"elapsed={perf_counter() - start:.1f}s")
            xb, tb = batch["image"].to(device), batch["target"].to(device)
            if survival and tb[:, 2].sum() == 0:
                continue  # a batch without events carries no partial-likelihood information
            opt.zero_grad(set_to_none=True)
            cb = batch["clinical"].to(device) if "clinical" in batch else None
            if multitask:
                with autocast(device, amp):
                    out, seg = model.forward_multitask(xb, cb)
                task_loss = loss_fn(out.float(), tb)
                seg_loss = seg_fn(seg.float(), _real_masks(batch["mask"].to(device), dims))
                g1 = flat_grads(scaler.scale(task_loss), shared)
                g2 = flat_grads(scaler.scale(weight * seg_loss), shared)
                cosines.append(cosine(g1, g2))  # before any projection
                if settings["pcgrad"]:
                    g1, g2 = pcgrad(g1, g2)
                loss = task_loss + weight * seg_loss
                scaler.scale(loss).backward(inputs=own)  # head and decoder: their own task's gradient
                assign_flat(shared, g1 + g2)  # shared encoder: the (projected) sum
                seg_total += float(seg_loss.detach()) * len(xb)
            elif domain is None:
                with autocast(device, amp):
                    out = model(xb, cb)
                loss = loss_fn(out.float(), tb)
            else:  # DANN (deep.clinical_covariates are refused with it: settings._check_dann)
                try:
                    tbatch = next(target_batches)
                except StopIteration:  # the target set is cycled as often as the training batches need
                    target_batches = iter(target_loader)
                    tbatch = next(target_batches)
                xt = tbatch["image"].to(device)
                lam = dann_lambda(iterations / planned)
                with autocast(device, amp):
                    emb = model.embed(torch.cat([xb, xt]))
                    out = model.head(model.dropout(emb[:len(xb)]))
                    logits = discriminator(grad_reverse(emb, lam))
                sites = torch.cat([tb[:, 3], tbatch["target"][:, 0].to(device)]).long()
                d_loss = site_loss(logits.float(), sites)
                loss = loss_fn(out.float(), tb)
                d_total += float(d_loss.detach()) * len(sites)
                d_right += int((logits.argmax(1) == sites).sum())
                d_count += len(sites)
                loss = loss + d_loss
            if not multitask:
                scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
            iterations += 1
        row = {"epoch": epoch, "train_loss": total / max(count, 1)}
        if multitask:  # train_loss: task + weight x segmentation loss (what the optimiser saw)
            row.update({"seg_loss": seg_total / max(count, 1),
                        "grad_cosine": float(np.nanmean(cosines)) if np.isfinite(cosines).any() else float("nan")})
        if domain is not None:  # train_loss: outcome + site loss (what the optimiser saw)
            row.update({"lambda": lam, "domain_loss": d_total / max(d_count, 1),
                        "domain_accuracy": d_right / max(d_count, 1)})
        if len(va):
            out = _forward(model, Xn[va], settings, device, amp, clinical=None if Cn is None else Cn[va])[0]
            with torch.no_grad():
                row["val_loss"] = float(loss_fn(torch.as_tensor(out[:, None]), torch.as_tensor(target[va])))
            row["val_c_index" if survival else "val_auc"] = _score(survival, target[va], out)
            if multitask:
                row["val_dice"] = float(np.mean(_dice_per_case(model, Xn[va], Mseg[va], settings, device, amp)))
            monitor = row["val_loss"]
        else:
            monitor = row["train_loss"]
        history.append(row)
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            + f" iterations={iterations} elapsed={perf_counter() - start:.1f}s")
        if monitor < best - 1e-6:
            best, best_epoch, wait = monitor, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if wait >= int(settings["patience"]):
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    fitted = {"model": model, "mean": mean, "sd": sd, "history": history, "best_epoch": best_epoch,
              "stopped_epoch": history[-1]["epoch"] if history else 0, "pos_weight": getattr(loss_fn, "pos_weight", None),
              "n_train": int(len(tr)), "n_validation": int(len(va)), "settings": settings, "survival": survival,
              "clinical": None if cstats is None else [c.tolist() for c in cstats], "risk_offset": 0.0, "baseline": None,
              "domain_adaptation": domain.describe() if domain is not None else None}
    if survival:
        # centre on the training cases (the Cox loss fixes no constant) and keep their Breslow baseline
        lp = _forward(model, Xn, settings, device, amp, clinical=Cn)[0].astype(np.float64)
        fitted["risk_offset"] = float(lp.mean())
        times, cumhaz = breslow_baseline(target[:, 1], target[:, 2], lp - fitted["risk_offset"])
        fitted["baseline"] = {"time": times.tolist(), "cumhaz": cumhaz.tolist()}
    return fitted


def _forward(model, Xn, settings, device, amp=False, embed=False, clinical=None):
    """Logits (N,) and, when ``embed``, embeddings (N, dim) of normalised crops (and covariates), in batches."""
    import torch  # heavy optional dependency: imported on first use


    model.eval()
    outs, embs = [], []
    with torch.no_grad():
        for start in range(0, len(Xn), int(settings["batch_size"])):
            stop = start + int(settings["batch_size"])
            xb = torch.as_tensor(Xn[start:stop]).to(device)
            cb = None if clinical is None else torch.as_tensor(clinical[start:stop]).to(device)
            with autocast(device, amp):
                e = model.embed(xb, cb)
                o = model.head(e)
            outs.append(o.float()[:, 0].cpu().numpy())
            if embed:
                embs.append(e.float().cpu().numpy())
    out = np.concatenate(outs) if outs else np.zeros(0)
    return out, (np.concatenate(embs) if embed and embs else None)


def predict(fitted: dict, X: np.ndarray, device=None, embed: bool = False, clinical=None, masks=None, cases=None):
    """Apply a fitted network (:func:`fit` / :func:`load_model`) to crops.

    Parameters
    ----------
    fitted : dict
        ``model``, ``mean``, ``sd``, ``settings``, ``survival``.
    X : numpy.ndarray, shape (N, C, D, H, W)
    device : torch.device, optional
    embed : bool
        Also return the penultimate-layer embeddings.
    clinical : numpy.ndarray (N, K), optional
        Raw clinical covariates (NaN = missing) when the network has a clinical encoder.
    masks : numpy.ndarray (N, D, H, W), optional
        The crops' lesion masks (2D / 2.5D networks: which slices; the case's logit is the mean of
        its slices' logits).
    cases : sequence of str, optional
        Case ids for the messages of :mod:`acceflow.deep.slices`.

    Returns
    -------
    scores : numpy.ndarray (N,)
        Binary: probability of the positive class (sigmoid of the logit); survival: log-risk
        centred on the training cases' mean.
    embeddings : numpy.ndarray (N, dim) or None
    """
    settings = fitted["settings"]
    device = device or next(fitted["model"].parameters()).device or select_device(settings["device"])
    if X.shape[1] != fitted["mean"].shape[0]:
        raise ValueError(f"crops have {X.shape[1]} channels, the model was trained on {fitted['mean'].shape[0]}")
    Cn = None
    if fitted.get("clinical") is not None:
        if clinical is None:
            raise ValueError("the network has a clinical encoder: pass the cases' clinical covariates")
        Cn = clinical_normalise(clinical, *(np.asarray(v) for v in fitted["clinical"]))
    Xin = model_input(normalise(X, fitted["mean"], fitted["sd"]), masks, settings, cases)
    out, emb = _forward(fitted["model"], Xin, settings, device,
                        use_amp(device, settings["mixed_precision"]), embed, clinical=Cn)
    scores = (out.astype(np.float64) - float(fitted.get("risk_offset") or 0.0) if fitted["survival"]
              else 1.0 / (1.0 + np.exp(-out.astype(np.float64))))
    return scores, emb


def cross_validate(X, y=None, settings=None, seed: int = 42, device=None, time=None, event=None, log=print,
                   domain=None, clinical=None, horizon: float | None = None, masks=None, cases=None):
    """Out-of-fold predictions of ``cv_folds``-fold stratified cross-validation (folds by case).

    Parameters
    ----------
    X, y, seed, device, time, event, log, domain, clinical, masks, cases : as :func:`fit` (with ``domain``, each
        fold's network is trained adversarially against the same target crops)
    horizon : float, optional
        Survival: also return each held-out case's risk of the event by ``horizon`` days, read
        from its fold network's Breslow baseline.
    settings : dict
        The complete ``deep`` section (at least :data:`TRAINING_KEYS`), e.g.
        ``acceflow.study.settings.section_settings('deep', {...})``; no defaults are filled here.

    Returns
    -------
    oof : numpy.ndarray (N,)
        Held-out probability (survival: log-risk centred on its fold's training cases) of every
        case; with ``horizon`` (survival), a tuple (log-risk, risk by the horizon).
    folds : pandas.DataFrame
        Per fold: ``fold, n, n_events, auc`` (survival: ``c_index``), ``best_epoch``, ``stopped_epoch``;
        multi-task: ``dice``, the decoder's mean Dice on the held-out cases.

    Raises
    ------
    DeepTrainingError
        Fewer cases of a class than ``cv_folds`` (or a fold's training part too small).
    ValueError
        When ``settings`` lacks keys of :data:`TRAINING_KEYS` (the message names them).
    """
    settings = _complete(settings)
    survival = y is None
    strata = np.asarray(event if survival else y).astype(int)
    k = int(settings["cv_folds"])
    if k < 2 or min(np.bincount(strata, minlength=2)) < k:
        raise DeepTrainingError(f"deep.cv_folds = {k} needs at least {k} cases of each class (have "
                                f"{np.bincount(strata, minlength=2).tolist()}); lower deep.cv_folds")
    oof = np.full(len(X), np.nan)
    at_horizon = np.full(len(X), np.nan)
    rows, start = [], perf_counter()
    for fold, (tr, te) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(X, strata), start=1):
        log(f"fold {fold}/{k}: {len(tr)} training, {len(te)} held-out cases, elapsed={perf_counter() - start:.1f}s")
        f = fit(X[tr], None if survival else np.asarray(y)[tr], settings, seed + fold, device,
                None if not survival else np.asarray(time)[tr], None if not survival else np.asarray(event)[tr], log,
                None if domain is None else domain.subset(tr),
                clinical=None if clinical is None else np.asarray(clinical)[tr],
                masks=None if masks is None else np.asarray(masks)[tr],
                cases=None if cases is None else np.asarray(cases)[tr])
        sub = {"masks": None if masks is None else np.asarray(masks)[te],
               "cases": None if cases is None else np.asarray(cases)[te]}
        oof[te], _ = predict(f, X[te], clinical=None if clinical is None else np.asarray(clinical)[te], **sub)
        if survival and horizon is not None:
            at_horizon[te] = risk_at_horizon(f, oof[te], horizon)
        tgt = _targets(None if survival else np.asarray(y)[te], None if not survival else np.asarray(time)[te],
                       None if not survival else np.asarray(event)[te])
        rows.append({"fold": fold, "n": len(te), "n_events": int(strata[te].sum()),
                     "c_index" if survival else "auc": _score(survival, tgt, oof[te]),
                     "best_epoch": f["best_epoch"], "stopped_epoch": f["stopped_epoch"],
                     **({"dice": float(np.mean(segment_dice(f, X[te], **sub)))} if settings["multitask"] else {})})
    return ((oof, at_horizon) if survival and horizon is not None else oof), pd.DataFrame(rows)


def risk_at_horizon(fitted: dict, risk, horizon: float) -> np.ndarray:
    """Risk of the event by ``horizon`` days for centred log-risks of a fitted survival network (Breslow baseline)."""
    from acceflow.deep.cox import risk_at

    b = fitted["baseline"]
    return risk_at(b["time"], b["cumhaz"], risk, horizon)


def _network_blob(fitted: dict) -> dict:
    mean, sd = np.asarray(fitted["mean"]), np.asarray(fitted["sd"])
    return {"format": "acceflow.deep/1", "state_dict": fitted["model"].state_dict(),
            "mean": mean.tolist(), "sd": sd.tolist(), "stats_dtype": str(mean.dtype),
            "settings": json.loads(json.dumps(to_jsonable(dict(fitted["settings"])))), "survival": bool(fitted["survival"]),
            "in_channels": int(mean.shape[0]),
            "clinical": fitted.get("clinical"), "risk_offset": float(fitted.get("risk_offset") or 0.0),
            "baseline": fitted.get("baseline")}


def save_model(fitted: dict, path) -> str:
    """Write the frozen network (or late-fusion stack) atomically; return its SHA-256 (for the model card and provenance).

    The file holds only tensors and plain values: the ``state_dict`` and, as lists / strings /
    numbers, the channel statistics, the clinical covariates' imputation and scaling, the
    survival baseline, the settings and the outcome kind, so that :func:`load_model` reads it
    with ``torch.load(weights_only=True)`` (no pickled objects, no code) and rebuilds the network
    from the settings. A late-fusion stack (:mod:`acceflow.deep.stacking`) is stored as its
    networks, its clinical model and meta-learner coefficients in one such file.
    """
    import torch  # heavy optional dependency: imported on first use

    blob = io.BytesIO()
    if fitted.get("late"):
        content = {"format": "acceflow.deep.late/1", "names": list(fitted["names"]),
                   "networks": {name: _network_blob(f) for name, f in fitted["networks"].items()},
                   "clinical_model": json.loads(json.dumps(to_jsonable(fitted["clinical_model"]))),
                   "meta": json.loads(json.dumps(to_jsonable(fitted["meta"]))),
                   "settings": json.loads(json.dumps(to_jsonable(dict(fitted["settings"])))),
                   "survival": bool(fitted["survival"])}
    else:
        content = _network_blob(fitted)
    torch.save(content, blob)
    data = blob.getvalue()
    atomic_write_bytes(data, path)
    return sha256_bytes(data)


def load_model(path, sha256: str, device=None) -> dict:
    """Read a network written by :func:`save_model`, from one read of the file.

    The bytes are read once; their SHA-256 must equal ``sha256`` (the model card's); the same
    bytes are then read with ``torch.load(weights_only=True)``, which builds tensors and plain
    containers only and refuses any other pickled object, so a replaced file cannot run code.

    Raises
    ------
    ValueError
        When ``sha256`` is empty, the file's hash differs from it (the file was changed or
        replaced), or the file is not a weights-only network file written by :func:`save_model`.
    """
    import torch  # heavy optional dependency: imported on first use

    data = read_verified(path, sha256, rule="the deep_train rule")
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if blob.get("format") == "acceflow.deep.late/1":
            return {"late": True, "names": blob["names"], "meta": blob["meta"], "clinical_model": blob["clinical_model"],
                    "settings": blob["settings"], "survival": blob["survival"],
                    "networks": {name: _from_blob(b, device) for name, b in blob["networks"].items()}}
        return _from_blob(blob, device)
    except (pickle.UnpicklingError, RuntimeError, KeyError, TypeError, ValueError, EOFError, AttributeError) as exc:
        raise ValueError(f"{path}: refused: not a weights-only network file written by acceflow's save_model "
                         f"({type(exc).__name__}: {exc}); re-run the deep_train rule") from exc


def _from_blob(blob: dict, device=None) -> dict:
    settings, dtype = blob["settings"], np.dtype(blob["stats_dtype"])
    device = device or select_device(settings["device"])
    fusion = settings["fusion"]
    if fusion == "late" and "meta_learner" not in settings:
        fusion = "intermediate"  # a file written before issue 19, whose "late" was today's intermediate fusion
    clinical = blob.get("clinical")
    model = _build({**settings, "fusion": fusion}, blob["in_channels"], 0 if clinical is None else len(clinical[0]))
    model.load_state_dict(blob["state_dict"])
    model.to(device).eval()
    return {"model": model, "mean": np.asarray(blob["mean"], dtype=dtype), "sd": np.asarray(blob["sd"], dtype=dtype),
            "settings": settings, "survival": blob["survival"], "clinical": clinical,
            "risk_offset": float(blob.get("risk_offset") or 0.0), "baseline": blob.get("baseline")}
