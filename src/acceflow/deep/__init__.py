"""Deep-learning biomarker: a MONAI 3D classifier on a fixed-size crop around the lesion.

Modules: :mod:`~acceflow.deep.crops` (lesion-centred crops of every modality on one grid),
:mod:`~acceflow.deep.networks` (MONAI DenseNet121 / ResNet backbones, early and late fusion),
:mod:`~acceflow.deep.cox` (Cox partial-likelihood loss for survival outcomes),
:mod:`~acceflow.deep.train` (training with validation split and early stopping, out-of-fold
internal validation, prediction and penultimate-layer embeddings) and
:mod:`~acceflow.deep.gradcam` (Grad-CAM maps and overlays). The library never imports snakemake.
"""
