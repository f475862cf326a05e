"""Multi-task learning of the deep biomarker: segmentation loss, PCGrad, gradient cosine, Dice.

* Segmentation loss: MONAI ``DiceCELoss`` (soft Dice + cross-entropy, each weighted 1; Milletari
  et al. 2016 for the Dice loss) on the decoder's two-class logits (background, lesion) against
  the crop's lesion mask; the multi-task loss is task loss + ``deep.multitask_weight`` x this.
* PCGrad (Yu et al. 2020, "Gradient surgery for multi-task learning", NeurIPS, Algorithm 1) on the
  shared encoder's parameters: when the two tasks' gradients conflict (g1 . g2 < 0), each is
  projected onto the normal plane of the other, g1 <- g1 - (g1 . g2 / |g2|^2) g2 (and likewise
  g2 against the original g1); otherwise both are left unchanged; the encoder's update is their
  sum. Task-specific parameters (head, decoder) get their own task's gradient only.
* The cosine between the two tasks' gradients on the shared encoder, recorded per batch (before
  any projection) and averaged per epoch in the training history (``grad_cosine``).
"""

from __future__ import annotations

import numpy as np


def segmentation_loss():
    """MONAI ``DiceCELoss`` for two-class logits (N, 2, *spatial) and a label map (N, 1, *spatial) of 0/1.

    Softmax over the classes, the label one-hot encoded; Dice over both classes (background
    included), mean over the batch, plus the mean cross-entropy. Voxels labelled 255 (padding
    slices of 2D inputs) must be removed before (the slices are not passed).
    """
    from monai.losses import DiceCELoss  # heavy optional dependency: imported on first use

    return DiceCELoss(to_onehot_y=True, softmax=True)


def pcgrad(g1, g2):
    """PCGrad of two flattened gradients (torch tensors (P,)): the projected pair (Yu et al. 2020).

    Returns
    -------
    (g1', g2')
        When g1 . g2 < 0: g1' = g1 - (g1 . g2 / |g2|^2) g2 and g2' = g2 - (g2 . g1 / |g1|^2) g1;
        otherwise (g1, g2) unchanged. A zero gradient is never projected on.
    """
    dot = (g1 * g2).sum()
    if float(dot) >= 0:
        return g1, g2
    n1, n2 = (g1 * g1).sum(), (g2 * g2).sum()
    p1 = g1 - dot / n2 * g2 if float(n2) > 0 else g1
    p2 = g2 - dot / n1 * g1 if float(n1) > 0 else g2
    return p1, p2


def cosine(g1, g2) -> float:
    """Cosine between two flattened gradients; NaN when one is zero."""
    n = float(g1.norm() * g2.norm())
    return float((g1 * g2).sum()) / n if n > 0 else float("nan")


def flat_grads(loss, params, retain_graph=True):
    """The gradient of ``loss`` w.r.t. ``params`` as one flat tensor (unused parameters: zeros)."""
    import torch  # heavy optional dependency: imported on first use

    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


def assign_flat(params, flat) -> None:
    """Write a flat gradient into ``p.grad`` of each parameter (shapes in order)."""
    i = 0
    for p in params:
        n = p.numel()
        p.grad = flat[i:i + n].view_as(p).clone()
        i += n


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|A n B| / (|A| + |B|) of two binary masks; 1 when both are empty."""
    a, b = np.asarray(pred) > 0, np.asarray(truth) > 0
    s = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / s) if s else 1.0
