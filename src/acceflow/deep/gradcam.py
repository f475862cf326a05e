"""Grad-CAM heat maps of the deep biomarker (Selvaraju et al. 2017) with MONAI's ``GradCAM``.

The map is computed at the resolution of the chosen layer's output (e.g. DenseNet121's last dense
block: the crop edge / 32 voxels per axis) and up-sampled (trilinear) to the crop grid for the
overlay; :func:`gradcam_maps` reports both, so that a caption can state the true resolution.
"""

from __future__ import annotations

import numpy as np

from acceflow.deep.train import normalise


def gradcam_maps(fitted: dict, X: np.ndarray, layer: str) -> dict:
    """Grad-CAM maps of crops for the model's single output (logit or log-risk).

    Parameters
    ----------
    fitted : dict
        A fitted network (:func:`acceflow.deep.train.fit` / ``load_model``).
    X : numpy.ndarray, shape (N, C, D, H, W)
        Raw crops (normalised here with the model's channel statistics).
    layer : str
        Full module name (:func:`acceflow.deep.networks.gradcam_layer`), e.g.
        ``branches.0.class_layers.relu``.

    Returns
    -------
    dict
        ``maps`` float array (N, D, H, W) in [0, 1] (up-sampled to the crop grid);
        ``layer_shape`` (d, h, w): the layer's spatial size, i.e. the map's true resolution;
        ``layer_voxel_mm``: crop spacing x crop size / layer size per axis (mm).

    Raises
    ------
    ValueError
        When ``layer`` names no module of the network (the message lists candidates).
    """
    import torch  # heavy optional dependency: imported on first use
    from monai.visualize import GradCAM  # heavy optional dependency: imported on first use


    model = fitted["model"]
    names = dict(model.named_modules())
    if layer not in names:
        convs = [n for n in names if n.startswith("branches.0.") and n.count(".") <= 3][-8:]
        raise ValueError(f"deep.gradcam.layer {layer!r} is not a module of the network; e.g. {convs}")
    device = next(model.parameters()).device
    x = torch.as_tensor(normalise(X, fitted["mean"], fitted["sd"])).to(device)
    model.eval()
    cam = GradCAM(nn_module=model, target_layers=layer)
    raw = cam.compute_map(x, class_idx=0, layer_idx=-1)  # (N, 1, d, h, w) at the layer's resolution
    layer_shape = tuple(int(s) for s in raw.shape[2:])
    maps = cam(x, class_idx=0)  # up-sampled to the input size, scaled to [0, 1] per case
    maps = maps.detach().cpu().numpy()[:, 0] if hasattr(maps, "detach") else np.asarray(maps)[:, 0]
    size = np.array(X.shape[2:], dtype=float)
    return {"maps": maps.astype(np.float32), "layer_shape": layer_shape, "layer_size_voxels": layer_shape,
            "scale": (size / np.array(layer_shape)).tolist()}


def overlay_png(crop: dict, heat: np.ndarray, path: str, title: str = "") -> None:
    """Write a PNG: the axial slice through the crop centre (the lesion centre) of the first
    modality, the Grad-CAM map over it and the lesion contour.

    Parameters
    ----------
    crop : dict
        As from :func:`acceflow.deep.crops.load_crop` (``image`` (C, D, H, W), ``mask``).
    heat : numpy.ndarray (D, H, W)
        Grad-CAM map on the crop grid, in [0, 1].
    path : str
        Output PNG.
    title : str
    """
    import matplotlib  # heavy optional dependency: imported on first use

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy optional dependency: imported on first use

    z = crop["image"].shape[1] // 2
    image = crop["image"][0, z]
    fig, ax = plt.subplots(figsize=(3.2, 3.4), dpi=100)
    lo, hi = np.percentile(image, [1, 99])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower")
    ax.imshow(heat[z], cmap="jet", alpha=0.35, vmin=0, vmax=1, origin="lower")
    if crop["mask"][z].any():
        ax.contour(crop["mask"][z], levels=[0.5], colors="white", linewidths=0.8, origin="lower")
    ax.set_title(title, fontsize=7)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
