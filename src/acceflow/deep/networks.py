"""MONAI 3D backbones (DenseNet121, ResNet10/18) with early or late fusion of modalities.

* **Early fusion**: the modalities, resampled onto one grid (:mod:`acceflow.deep.crops`), are the
  input channels of one backbone.
* **Late fusion**: one backbone per modality (one input channel each); their penultimate-layer
  embeddings are concatenated before a linear head.

Backbones: ``monai.networks.nets.DenseNet121`` (Huang et al. 2017, densely connected
convolutional networks) and ``monai.networks.nets.resnet10`` / ``resnet18`` (He et al. 2016; the
3D variants of Chen et al. 2019, Med3D). Their classification layer is replaced by the identity
so that the backbone returns its embedding (DenseNet121: 1024 values after global average
pooling; ResNet10/18: 512).
"""

from __future__ import annotations

NETWORKS = ("densenet121", "resnet10", "resnet18")
FUSIONS = ("early", "late")

#: Grad-CAM candidate layers per network (relative to one backbone), deepest first, with the
#: factor by which each down-samples the crop (DenseNet121: stem /4, transitions /2 each; ResNet
#: with the stride-2 stem: layer1 /4 ... layer4 /32).
GRADCAM_LAYERS = {
    "densenet121": (("class_layers.relu", 32), ("features.denseblock3", 16), ("features.denseblock2", 8)),
    "resnet10": (("layer4", 32), ("layer3", 16), ("layer2", 8), ("layer1", 4)),
    "resnet18": (("layer4", 32), ("layer3", 16), ("layer2", 8), ("layer1", 4)),
}


def backbone(network: str, in_channels: int):
    """A MONAI 3D backbone returning its penultimate-layer embedding.

    Parameters
    ----------
    network : str
        ``densenet121``, ``resnet10`` or ``resnet18``.
    in_channels : int

    Returns
    -------
    (torch.nn.Module, int)
        The backbone (input (N, in_channels, D, H, W) -> (N, dim)) and its embedding size dim.

    Raises
    ------
    ValueError
        For an unknown network name.
    """
    import torch.nn as nn  # heavy optional dependency: imported on first use
    from monai.networks import nets  # heavy optional dependency: imported on first use

    if network == "densenet121":
        net = nets.DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=1)
        dim = net.class_layers.out.in_features
        net.class_layers.out = nn.Identity()
        return net, dim
    if network in ("resnet10", "resnet18"):
        # stride-2 stem as in Med3D (Chen et al. 2019): MONAI's default stride 1 costs 8x the compute
        net = getattr(nets, network)(spatial_dims=3, n_input_channels=in_channels, num_classes=1, conv1_t_stride=2)
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, dim
    raise ValueError(f"unknown deep.network {network!r}: use one of {NETWORKS}")


def _module():
    import torch  # heavy optional dependency: imported on first use
    import torch.nn as nn  # heavy optional dependency: imported on first use

    class DeepBiomarker(nn.Module):
        """Backbone(s) + linear head; ``embed`` gives the penultimate-layer embedding.

        Input (N, C, D, H, W) float; output (N, n_outputs) logits (binary: one logit; survival:
        one log-risk).
        """

        def __init__(self, network: str, in_channels: int, fusion: str = "early", n_outputs: int = 1,
                     dropout: float = 0.0):
            super().__init__()
            if fusion not in FUSIONS:
                raise ValueError(f"unknown deep.fusion {fusion!r}: use early or late")
            if in_channels < 1:
                raise ValueError("a deep model needs at least one input channel (modality)")
            self.network, self.fusion, self.in_channels = network, fusion, in_channels
            n_branches = in_channels if fusion == "late" else 1
            made = [backbone(network, 1 if fusion == "late" else in_channels) for _ in range(n_branches)]
            self.branches = nn.ModuleList([m for m, _ in made])
            self.embedding_dim = sum(d for _, d in made)
            self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
            self.head = nn.Linear(self.embedding_dim, n_outputs)

        def embed(self, x):
            if x.shape[1] != self.in_channels:
                raise ValueError(f"input has {x.shape[1]} channels, the network expects {self.in_channels}")
            if self.fusion == "late":
                return torch.cat([b(x[:, i:i + 1]) for i, b in enumerate(self.branches)], dim=1)
            return self.branches[0](x)

        def forward(self, x):
            return self.head(self.dropout(self.embed(x)))

    return DeepBiomarker


def build_network(network: str, in_channels: int, fusion: str = "early", n_outputs: int = 1, dropout: float = 0.0):
    """The deep biomarker network.

    Parameters
    ----------
    network : str
        ``densenet121``, ``resnet10`` or ``resnet18``.
    in_channels : int
        Number of modalities C.
    fusion : str
        ``early`` (one backbone, C input channels) or ``late`` (C backbones, embeddings
        concatenated: embedding size C x dim).
    n_outputs : int
        Output units (1: a logit for binary outcomes, a log-risk for survival).
    dropout : float
        Dropout before the head.

    Returns
    -------
    torch.nn.Module
        ``forward(x)``: (N, C, D, H, W) -> (N, n_outputs); ``embed(x)`` -> (N, embedding_dim).

    Raises
    ------
    ValueError
        Unknown network or fusion, or no channel.
    """
    return _module()(network, in_channels, fusion, n_outputs, dropout)


def gradcam_layer(network: str, fusion: str, layer: str | None = None, crop_size: int | None = None,
                  min_voxels: int = 4) -> str:
    """Full module name of the Grad-CAM layer.

    ``layer`` when given (not ``auto``); otherwise the deepest stage of :data:`GRADCAM_LAYERS`
    whose map keeps at least ``min_voxels`` voxels per axis of a ``crop_size`` crop (the last
    stage when ``crop_size`` is None), in the first branch (late fusion: the first modality's).
    A deeper layer is more class-specific, a shallower one finer (Selvaraju et al. 2017).
    """
    if layer and layer != "auto":
        return layer
    candidates = GRADCAM_LAYERS[network]
    name = candidates[0][0]
    if crop_size:
        fits = [n for n, factor in candidates if crop_size // factor >= min_voxels]
        name = fits[0] if fits else candidates[-1][0]
    return f"branches.0.{name}"
