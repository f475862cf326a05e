"""Integrated gradients of the deep biomarker (Sundararajan, Taly & Yan 2017) with captum.

Beside Grad-CAM (:mod:`acceflow.deep.gradcam`), whose map has the resolution of one layer (a few
voxels per axis for the deepest layers, up-sampled for display), integrated gradients attribute
the network's output to every input voxel: the gradient of the output averaged along the straight
path from a baseline crop to the crop, times (crop − baseline). They satisfy completeness: the
attributions of a case sum to f(crop) − f(baseline), which :func:`integrated_gradients_maps`
reports as a check (captum's convergence delta). Per-voxel maps are noisy (gradients of deep
networks are), so they are read for where attribution concentrates, never voxel by voxel.
"""

from __future__ import annotations

import numpy as np

from acceflow.deep.train import normalise

__all__ = ["display_map", "integrated_gradients_maps"]


def integrated_gradients_maps(fitted: dict, X: np.ndarray, n_steps: int = 32, internal_batch_size: int = 8) -> dict:
    """Integrated gradients of crops for the network's single output (logit or log-risk).

    The baseline is the all-zero crop after the model's channel normalisation, i.e. a uniform
    crop at each channel's training mean intensity (no structure); the path integral is
    approximated by captum's Gauss–Legendre rule with ``n_steps`` points.

    Parameters
    ----------
    fitted : dict
        A fitted network (:func:`acceflow.deep.train.fit` / ``load_model``): ``model`` (a torch
        module with one output), ``mean`` and ``sd`` (shape (C,)) of the channel normalisation.
    X : numpy.ndarray, shape (N, C, D, H, W)
        Raw crops (normalised here with the model's channel statistics).
    n_steps : int
        Points of the path integral (>= 2); more points shrink the completeness error.
    internal_batch_size : int
        Path points evaluated per forward/backward pass (memory).

    Returns
    -------
    dict
        ``attributions`` float32 (N, C, D, H, W) on the normalised input (output units per
        voxel); ``maps`` float32 (N, D, H, W), the sum over channels; ``output`` (N,) f(crop);
        ``baseline_output`` (N,) f(baseline); ``delta`` (N,) completeness error
        sum(attributions) − (f(crop) − f(baseline)) (captum's convergence delta); ``n_steps``.

    Raises
    ------
    ValueError
        If ``X`` is not 5-dimensional or ``n_steps < 2``.

    References
    ----------
    Sundararajan M, Taly A, Yan Q (2017). Axiomatic attribution for deep networks. ICML,
    PMLR 70:3319-3328.
    Kokhlikyan N et al. (2020). Captum: a unified and generic model interpretability library for
    PyTorch. arXiv:2009.07896.
    """
    import torch  # heavy optional dependency: imported on first use
    from captum.attr import IntegratedGradients  # heavy optional dependency: imported on first use

    X = np.asarray(X)
    if X.ndim != 5:
        raise ValueError(f"X must be crops of shape (N, C, D, H, W); got shape {X.shape}")
    if int(n_steps) < 2:
        raise ValueError(f"deep.integrated_gradients.steps must be at least 2; got {n_steps}")
    model = fitted["model"]
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(normalise(X, np.asarray(fitted["mean"]), np.asarray(fitted["sd"]))).to(device)
    baseline = torch.zeros_like(x)

    def forward(inp):
        return model(inp).reshape(inp.shape[0], -1)[:, 0]

    ig = IntegratedGradients(forward)
    attributions, delta = ig.attribute(x, baselines=baseline, n_steps=int(n_steps), method="gausslegendre",
                                       internal_batch_size=int(internal_batch_size),
                                       return_convergence_delta=True)
    with torch.no_grad():
        out, base = forward(x), forward(baseline)
    a = attributions.detach().cpu().numpy().astype(np.float32)
    return {"attributions": a, "maps": a.sum(axis=1), "output": out.detach().cpu().numpy().astype(float),
            "baseline_output": base.detach().cpu().numpy().astype(float),
            "delta": delta.detach().cpu().numpy().astype(float), "n_steps": int(n_steps)}


def display_map(attribution: np.ndarray, percentile: float = 99.0) -> tuple[np.ndarray, float]:
    """|attribution| scaled to [0, 1] by its ``percentile`` (values above it clipped), for an overlay.

    Returns
    -------
    (numpy.ndarray, float)
        The scaled map (same shape) and the scale (the percentile of |attribution|; 0 for an
        all-zero map, which is then returned as zeros).
    """
    mag = np.abs(np.asarray(attribution, dtype=float))
    scale = float(np.percentile(mag, percentile))
    if not scale > 0:
        return np.zeros_like(mag, dtype=np.float32), 0.0
    return np.clip(mag / scale, 0.0, 1.0).astype(np.float32), scale
