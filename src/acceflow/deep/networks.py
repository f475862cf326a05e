"""MONAI 3D backbones (DenseNet121, ResNet10/18) and the fusion of modalities and clinical data.

Fusion is named as the multimodal-learning literature names it (Baltrusaitis et al. 2019, IEEE
TPAMI 41:423; Huang et al. 2020, npj Digit Med 3:136, "early / joint (intermediate) / late"):

* **Early fusion** (``early``): the modalities, resampled onto one grid
  (:mod:`acceflow.deep.crops`), are the input channels of one backbone.
* **Intermediate (joint) fusion** (``intermediate``): one backbone per modality (one input channel
  each) and, with clinical covariates, a small MLP encoder of them; the latent vectors are
  concatenated into one shared linear head, trained end to end with one loss. (Before issue 19
  this network was called ``late``.)
* **Late fusion** (``late``): a separate model per source whose predictions a meta-learner
  combines (stacking); that is not one network, see :mod:`acceflow.deep.stacking`. Each
  modality's model there is an ``early`` network with one channel.

Backbones: ``monai.networks.nets.DenseNet121`` (Huang et al. 2017, densely connected
convolutional networks) and ``monai.networks.nets.resnet10`` / ``resnet18`` (He et al. 2016; the
3D variants of Chen et al. 2019, Med3D). Their classification layer is replaced by the identity
so that the backbone returns its embedding (DenseNet121: 1024 values after global average
pooling; ResNet10/18: 512).
"""

from __future__ import annotations

NETWORKS = ("densenet121", "resnet10", "resnet18")
FUSIONS = ("early", "intermediate", "late")
#: The fusions that are one network (late fusion is several models and a meta-learner).
NETWORK_FUSIONS = ("early", "intermediate")

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
        """Backbone(s), optional clinical MLP encoder, linear head; ``embed`` gives the concatenated latent vector.

        Input (N, C, D, H, W) float and, with clinical covariates, (N, K) standardised covariates;
        output (N, n_outputs) logits (binary: one logit; survival: one log-risk).
        """

        def __init__(self, network: str, in_channels: int, fusion: str = "early", n_outputs: int = 1,
                     dropout: float = 0.0, n_clinical: int = 0, clinical_dim: int = 16):
            super().__init__()
            if fusion not in NETWORK_FUSIONS:
                raise ValueError(f"deep.fusion {fusion!r} is not one network: use early or intermediate (late "
                                 f"fusion stacks separate models, acceflow.deep.stacking)")
            if in_channels < 1:
                raise ValueError("a deep model needs at least one input channel (modality)")
            if n_clinical and fusion != "intermediate":
                raise ValueError("clinical covariates enter a network under intermediate fusion only "
                                 "(deep.fusion: intermediate), or as a separate model under late fusion")
            self.network, self.fusion, self.in_channels = network, fusion, in_channels
            self.n_clinical = int(n_clinical)
            per_modality = fusion == "intermediate"
            made = [backbone(network, 1 if per_modality else in_channels)
                    for _ in range(in_channels if per_modality else 1)]
            self.branches = nn.ModuleList([m for m, _ in made])
            self.embedding_dim = sum(d for _, d in made)
            if self.n_clinical:
                # small MLP encoder of the clinical covariates (two layers, ReLU)
                self.clinical = nn.Sequential(nn.Linear(self.n_clinical, clinical_dim), nn.ReLU(),
                                              nn.Linear(clinical_dim, clinical_dim), nn.ReLU())
                self.embedding_dim += clinical_dim
            self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
            self.head = nn.Linear(self.embedding_dim, n_outputs)

        def embed(self, x, clinical=None):
            if x.shape[1] != self.in_channels:
                raise ValueError(f"input has {x.shape[1]} channels, the network expects {self.in_channels}")
            if self.fusion == "intermediate":
                parts = [b(x[:, i:i + 1]) for i, b in enumerate(self.branches)]
            else:
                parts = [self.branches[0](x)]
            if self.n_clinical:
                if clinical is None or clinical.shape[-1] != self.n_clinical:
                    raise ValueError(f"the network expects {self.n_clinical} clinical covariates per case, got "
                                     f"{None if clinical is None else clinical.shape[-1]}")
                parts.append(self.clinical(clinical.to(parts[0].dtype)))
            return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

        def forward(self, x, clinical=None):
            return self.head(self.dropout(self.embed(x, clinical)))

    return DeepBiomarker


def build_network(network: str, in_channels: int, fusion: str = "early", n_outputs: int = 1, dropout: float = 0.0,
                  n_clinical: int = 0, clinical_dim: int = 16):
    """The deep biomarker network (early or intermediate fusion).

    Parameters
    ----------
    network : str
        ``densenet121``, ``resnet10`` or ``resnet18``.
    in_channels : int
        Number of modalities C.
    fusion : str
        ``early`` (one backbone, C input channels) or ``intermediate`` (C backbones, one channel
        each, and the clinical encoder; latent vectors concatenated: embedding size C x dim
        (+ clinical_dim)).
    n_outputs : int
        Output units (1: a logit for binary outcomes, a log-risk for survival).
    dropout : float
        Dropout before the head.
    n_clinical : int
        Number K of clinical covariates (intermediate fusion only; 0: none).
    clinical_dim : int
        Width of the clinical MLP encoder (two ReLU layers) and of its latent vector.

    Returns
    -------
    torch.nn.Module
        ``forward(x, clinical=None)``: (N, C, D, H, W) [, (N, K)] -> (N, n_outputs);
        ``embed(x, clinical=None)`` -> (N, embedding_dim).

    Raises
    ------
    ValueError
        Unknown network, ``late`` (not one network), clinical covariates outside intermediate
        fusion, or no channel.
    """
    return _module()(network, in_channels, fusion, n_outputs, dropout, n_clinical, clinical_dim)


def gradcam_layer(network: str, fusion: str, layer: str | None = None, crop_size: int | None = None,
                  min_voxels: int = 4) -> str:
    """Full module name of the Grad-CAM layer.

    ``layer`` when given (not ``auto``); otherwise the deepest stage of :data:`GRADCAM_LAYERS`
    whose map keeps at least ``min_voxels`` voxels per axis of a ``crop_size`` crop (the last
    stage when ``crop_size`` is None), in the first branch (intermediate fusion: the first modality's).
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
