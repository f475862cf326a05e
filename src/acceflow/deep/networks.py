"""MONAI backbones (DenseNet121, ResNet10/18; 3D, or 2D on axial slices) and the fusion of modalities and clinical data.

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

Dimensions (``deep.dimensions``, :mod:`acceflow.deep.slices`): ``3d`` (the crop, (N, C, D, H, W));
``2d`` and ``2.5d``: the same backbones with ``spatial_dims=2`` on S axial slices per case, given
as (N, S x C', H, W) with C' = C (2D) or C x n neighbouring slices (2.5D); a slice of NaN is
padding (a lesion with fewer than S slices). Each real slice is embedded alone; the case's
embedding is the mean of its slices' embeddings and, the head being linear, the case's logit is
the **mean of its slices' logits** (exactly, in evaluation mode).

Multi-task (``deep.multitask``): a segmentation decoder on the shared encoder's deepest feature
map (1x1 convolution to 32 channels, then x2 up-sampling + 3x3 convolution + instance norm + ReLU
stages to the input size, 1x1 convolution to two classes: background, lesion), beside the
classification / Cox head; :meth:`segment` gives its logits (N, 2, *spatial) (2D: per real slice,
(M, 2, H, W)). Only early fusion (one encoder) has a decoder.
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


DIMENSIONS = ("3d", "2.5d", "2d")


def backbone(network: str, in_channels: int, spatial_dims: int = 3):
    """A MONAI backbone returning its penultimate-layer embedding.

    Parameters
    ----------
    network : str
        ``densenet121``, ``resnet10`` or ``resnet18``.
    in_channels : int
    spatial_dims : int
        3 (crops (N, C, D, H, W)) or 2 (slices (N, C, H, W)).

    Returns
    -------
    (torch.nn.Module, int)
        The backbone (input (N, in_channels, *spatial) -> (N, dim)) and its embedding size dim.

    Raises
    ------
    ValueError
        For an unknown network name.
    """
    import torch.nn as nn  # heavy optional dependency: imported on first use
    from monai.networks import nets  # heavy optional dependency: imported on first use

    if network == "densenet121":
        net = nets.DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1)
        dim = net.class_layers.out.in_features
        net.class_layers.out = nn.Identity()
        return net, dim
    if network in ("resnet10", "resnet18"):
        # stride-2 stem as in Med3D (Chen et al. 2019): MONAI's default stride 1 costs 8x the compute
        net = getattr(nets, network)(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=1, conv1_t_stride=2)
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, dim
    raise ValueError(f"unknown deep.network {network!r}: use one of {NETWORKS}")


def feature_map(net, x):
    """The deepest feature map of a backbone made by :func:`backbone` (before global pooling).

    DenseNet121: ``features`` then the ReLU of ``class_layers`` (1024 channels); ResNet: the stem
    and ``layer1``..``layer4`` (512 channels), as MONAI's ``forward`` runs them.
    """
    if hasattr(net, "features"):
        return net.class_layers.relu(net.features(x))
    x = net.act(net.bn1(net.conv1(x)))
    if not net.no_max_pool:
        x = net.maxpool(x)
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def pooled(net, fmap):
    """The embedding (N, dim) of a feature map of :func:`feature_map` (global average pooling, as the backbone's head)."""
    if hasattr(net, "features"):
        return net.class_layers.flatten(net.class_layers.pool(fmap))
    return net.avgpool(fmap).flatten(1)


def _decoder(in_channels: int, spatial_dims: int, width: int = 32):
    import torch.nn as nn  # heavy optional dependency: imported on first use
    import torch.nn.functional as F  # heavy optional dependency: imported on first use
    from monai.networks.blocks import Convolution  # heavy optional dependency: imported on first use

    class SegmentationDecoder(nn.Module):
        """Deepest feature map (N, in_channels, *s) -> lesion logits (N, 2, *size): x2 up-sampling stages."""

        def __init__(self):
            super().__init__()
            self.reduce = Convolution(spatial_dims, in_channels, width, kernel_size=1, norm=None, act="relu")
            self.up = nn.ModuleList([Convolution(spatial_dims, width, width, kernel_size=3, norm="instance", act="relu")
                                     for _ in range(6)])
            self.out = Convolution(spatial_dims, width, 2, kernel_size=1, conv_only=True)
            self.mode = "trilinear" if spatial_dims == 3 else "bilinear"

        def forward(self, fmap, size):
            x = self.reduce(fmap)
            for block in self.up:
                if min(a * 2 for a in x.shape[2:]) > max(size):
                    break
                x = block(F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=False))
            x = F.interpolate(x, size=tuple(size), mode=self.mode, align_corners=False)
            return self.out(x)

    return SegmentationDecoder()


def _module():
    import torch  # heavy optional dependency: imported on first use
    import torch.nn as nn  # heavy optional dependency: imported on first use

    class DeepBiomarker(nn.Module):
        """Backbone(s), optional clinical MLP encoder, linear head; ``embed`` gives the concatenated latent vector.

        Input (N, C, D, H, W) float (2D / 2.5D: (N, S x C', H, W), NaN slices = padding) and, with
        clinical covariates, (N, K) standardised covariates; output (N, n_outputs) logits (binary:
        one logit; survival: one log-risk).
        """

        def __init__(self, network: str, in_channels: int, fusion: str = "early", n_outputs: int = 1,
                     dropout: float = 0.0, n_clinical: int = 0, clinical_dim: int = 16, dimensions: str = "3d",
                     slices: int = 1, neighbours: int = 1, multitask: bool = False):
            super().__init__()
            if fusion not in NETWORK_FUSIONS:
                raise ValueError(f"deep.fusion {fusion!r} is not one network: use early or intermediate (late "
                                 f"fusion stacks separate models, acceflow.deep.stacking)")
            if in_channels < 1:
                raise ValueError("a deep model needs at least one input channel (modality)")
            if n_clinical and fusion != "intermediate":
                raise ValueError("clinical covariates enter a network under intermediate fusion only "
                                 "(deep.fusion: intermediate), or as a separate model under late fusion")
            if dimensions not in DIMENSIONS:
                raise ValueError(f"unknown deep.dimensions {dimensions!r}: use one of {DIMENSIONS}")
            if multitask and fusion != "early":
                raise ValueError("deep.multitask needs one shared encoder: deep.fusion: early")
            self.network, self.fusion, self.in_channels = network, fusion, in_channels
            self.dimensions, self.multitask = dimensions, bool(multitask)
            self.spatial_dims = 3 if dimensions == "3d" else 2
            self.slices = 1 if dimensions == "3d" else int(slices)
            self.neighbours = int(neighbours) if dimensions == "2.5d" else 1
            self.n_clinical = int(n_clinical)
            per_modality = fusion == "intermediate"
            made = [backbone(network, self.neighbours * (1 if per_modality else in_channels), self.spatial_dims)
                    for _ in range(in_channels if per_modality else 1)]
            self.branches = nn.ModuleList([m for m, _ in made])
            self.embedding_dim = sum(d for _, d in made)
            if self.multitask:
                self.decoder = _decoder(made[0][1], self.spatial_dims)
            if self.n_clinical:
                # small MLP encoder of the clinical covariates (two layers, ReLU)
                self.clinical = nn.Sequential(nn.Linear(self.n_clinical, clinical_dim), nn.ReLU(),
                                              nn.Linear(clinical_dim, clinical_dim), nn.ReLU())
                self.embedding_dim += clinical_dim
            self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
            self.head = nn.Linear(self.embedding_dim, n_outputs)

        def _slices(self, x):
            """2D: (N, S x C', H, W) -> real slices (M, C', H, W), their case index (M,), counts (N,)."""
            n = x.shape[0]
            per = self.in_channels * self.neighbours
            if x.shape[1] != self.slices * per:
                raise ValueError(f"input has {x.shape[1]} channels, the {self.dimensions} network expects "
                                 f"{self.slices} slices x {per} channels = {self.slices * per}")
            s = x.reshape(n, self.slices, per, *x.shape[2:])
            valid = torch.isfinite(s).flatten(2).all(dim=2)  # (N, S): padding slices are NaN
            counts = valid.sum(dim=1)
            if bool((counts == 0).any()):
                raise ValueError("a case has no lesion slice (every slice is padding): see acceflow.deep.slices")
            case = torch.arange(n, device=x.device).repeat_interleave(self.slices)[valid.flatten()]
            return s.flatten(0, 1)[valid.flatten()], case, counts

        def _encode(self, x):
            """Per branch: (deepest feature map, embedding) of x (N, C, ...) (one entry per modality under intermediate)."""
            if self.fusion == "intermediate":
                step = self.neighbours
                inputs = [x[:, i * step:(i + 1) * step] for i in range(len(self.branches))]
            else:
                inputs = [x]
            out = []
            for b, xi in zip(self.branches, inputs):
                fmap = feature_map(b, xi)
                out.append((fmap, pooled(b, fmap)))
            return out

        def _image_embedding(self, x, with_maps=False):
            if self.spatial_dims == 2:
                flat, case, counts = self._slices(x)
                enc = self._encode(flat)
                emb = torch.cat([e for _, e in enc], dim=1) if len(enc) > 1 else enc[0][1]
                # mean over each case's real slices: the head is linear, so the case logit is the mean of slice logits
                total = torch.zeros(x.shape[0], emb.shape[1], dtype=emb.dtype, device=emb.device).index_add(0, case, emb)
                mean = total / counts[:, None].to(emb.dtype)
                return (mean, enc, flat) if with_maps else mean
            if x.shape[1] != self.in_channels:
                raise ValueError(f"input has {x.shape[1]} channels, the network expects {self.in_channels}")
            enc = self._encode(x)
            emb = torch.cat([e for _, e in enc], dim=1) if len(enc) > 1 else enc[0][1]
            return (emb, enc, x) if with_maps else emb

        def _with_clinical(self, emb, clinical):
            if not self.n_clinical:
                return emb
            if clinical is None or clinical.shape[-1] != self.n_clinical:
                raise ValueError(f"the network expects {self.n_clinical} clinical covariates per case, got "
                                 f"{None if clinical is None else clinical.shape[-1]}")
            return torch.cat([emb, self.clinical(clinical.to(emb.dtype))], dim=1)

        def embed(self, x, clinical=None):
            return self._with_clinical(self._image_embedding(x), clinical)

        def forward(self, x, clinical=None):
            return self.head(self.dropout(self.embed(x, clinical)))

        def forward_multitask(self, x, clinical=None):
            """(logits (N, n_outputs), segmentation logits (N, 2, *spatial); 2D: (M, 2, H, W) of the real slices)."""
            if not self.multitask:
                raise ValueError("the network has no segmentation decoder (deep.multitask: false)")
            emb, enc, inp = self._image_embedding(x, with_maps=True)
            seg = self.decoder(enc[0][0], inp.shape[2:])
            return self.head(self.dropout(self._with_clinical(emb, clinical))), seg

        def segment(self, x):
            """Segmentation logits of the decoder (see :meth:`forward_multitask`)."""
            return self.forward_multitask(x)[1]

        def shared_parameters(self):
            """The shared encoder's parameters (the backbone branches): where PCGrad projects."""
            return [p for p in self.branches.parameters() if p.requires_grad]

    return DeepBiomarker


def build_network(network: str, in_channels: int, fusion: str = "early", n_outputs: int = 1, dropout: float = 0.0,
                  n_clinical: int = 0, clinical_dim: int = 16, dimensions: str = "3d", slices: int = 1,
                  neighbours: int = 1, multitask: bool = False):
    """The deep biomarker network (early or intermediate fusion; 3D, 2.5D or 2D; optionally multi-task).

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
    dimensions : str
        ``3d`` (input (N, C, D, H, W)), ``2d`` or ``2.5d`` (input (N, S x C', H, W) of
        :func:`acceflow.deep.slices.slice_input`: S = ``slices`` per case, C' = C x
        ``neighbours`` (2.5D) or C (2D)).
    multitask : bool
        Add the segmentation decoder (early fusion only).

    Returns
    -------
    torch.nn.Module
        ``forward(x, clinical=None)``: input [, (N, K)] -> (N, n_outputs);
        ``embed(x, clinical=None)`` -> (N, embedding_dim); with ``multitask``,
        ``forward_multitask`` -> (logits, segmentation logits).

    Raises
    ------
    ValueError
        Unknown network or dimensions, ``late`` (not one network), clinical covariates outside
        intermediate fusion, multi-task outside early fusion, or no channel.
    """
    return _module()(network, in_channels, fusion, n_outputs, dropout, n_clinical, clinical_dim, dimensions,
                     slices, neighbours, multitask)


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
