"""Domain-adversarial training (DANN; Ganin, Ustinova, Ajakan, Germain, Larochelle, Laviolette,
Marchand & Lempitsky 2016, "Domain-adversarial training of neural networks", JMLR 17(59):1-35).

The encoder (the backbone's penultimate-layer embedding, :meth:`DeepBiomarker.embed`) feeds two
heads: the outcome head, and a **site discriminator** (a small MLP) behind a **gradient reversal
layer** (GRL). The GRL is the identity in the forward pass and multiplies the gradient by
``-lambda`` in the backward pass (Ganin et al. 2016, eq. 13-14), so one optimiser step lowers
the outcome loss and the discriminator's loss while pushing the encoder to *raise* the latter:
towards an embedding from which the site cannot be told. ``lambda`` ramps from 0 to 1 with the
training progress p (0 to 1) as ``2 / (1 + exp(-gamma p)) - 1``, ``gamma = 10`` (Ganin et al. 2016,
section 5.2.2), which keeps the discriminator's noisy early signal away from the encoder.

Here the discriminator predicts the **site** among the training sites and the target cohorts
(multi-class cross-entropy; with one training site and one target cohort it is DANN's
source-vs-target classifier). Target crops are **unlabelled**: only their images and cohort name
enter training (transductive adaptation).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GAMMA", "dann_lambda", "grad_reverse", "gradient_reversal", "site_discriminator", "DannSetup"]

#: Steepness of the lambda schedule (Ganin et al. 2016: 10).
GAMMA = 10.0
#: Hidden units of the site discriminator (one hidden layer, ReLU; Ganin et al. 2016 used 100 for
#: the digit experiments).
HIDDEN = 100


def dann_lambda(progress: float, gamma: float = GAMMA) -> float:
    """Gradient-reversal weight ``2 / (1 + exp(-gamma p)) - 1`` at training progress ``p`` in [0, 1]."""
    p = min(max(float(progress), 0.0), 1.0)
    return float(2.0 / (1.0 + np.exp(-gamma * p)) - 1.0)


def gradient_reversal():
    """The gradient reversal layer as a ``torch.autograd.Function`` (``.apply(x, lambd)``).

    Forward: ``x`` unchanged (a view). Backward: the incoming gradient times ``-lambd``; no
    gradient for ``lambd``.
    """
    import torch  # heavy optional dependency: imported on first use

    class GradientReversal(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lambd):
            ctx.lambd = float(lambd)
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad_output):
            return -ctx.lambd * grad_output, None

    return GradientReversal


def grad_reverse(x, lambd: float):
    """Apply the gradient reversal layer to the tensor ``x`` with weight ``lambd``."""
    return gradient_reversal().apply(x, lambd)


def site_discriminator(embedding_dim: int, n_sites: int, hidden: int = HIDDEN):
    """The site discriminator: Linear(dim, hidden) - ReLU - Linear(hidden, n_sites) logits."""
    import torch.nn as nn  # heavy optional dependency: imported on first use

    if n_sites < 2:
        raise ValueError(f"the site discriminator needs at least 2 sites; got {n_sites}")
    return nn.Sequential(nn.Linear(int(embedding_dim), int(hidden)), nn.ReLU(), nn.Linear(int(hidden), int(n_sites)))


class DannSetup:
    """What :func:`acceflow.deep.train.fit` needs to train adversarially.

    Parameters
    ----------
    target_X : numpy.ndarray (M, C, D, H, W)
        Unlabelled crops of the target cohorts (raw intensities; normalised with the source's
        channel statistics inside ``fit``).
    target_sites : array (M,) of str
        Cohort of each target crop.
    source_sites : array (N,) of str
        Site of each training (source) crop, aligned with the ``X`` given to ``fit``.

    Attributes
    ----------
    sites : list of str, every site (sorted): the discriminator's classes
    """

    def __init__(self, target_X: np.ndarray, target_sites, source_sites):
        self.target_X = np.asarray(target_X, dtype=np.float32)
        self.target_sites = np.asarray(target_sites).astype(str)
        self.source_sites = np.asarray(source_sites).astype(str)
        if len(self.target_X) == 0:
            raise ValueError("DANN needs target images: the target cohorts have no usable crop")
        if len(self.target_X) != len(self.target_sites):
            raise ValueError("DANN: one target site per target crop is needed")
        overlap = sorted(set(self.target_sites) & set(self.source_sites))
        if overlap:
            raise ValueError(f"DANN: cohort(s) {overlap} are both training and target domains")
        self.sites = sorted(set(self.source_sites) | set(self.target_sites))

    def codes(self, sites) -> np.ndarray:
        """Class index of each site name (into :attr:`sites`)."""
        index = {s: i for i, s in enumerate(self.sites)}
        return np.array([index[str(s)] for s in sites], dtype=np.int64)

    def subset(self, rows) -> "DannSetup":
        """The same targets with the source restricted to ``rows`` (a cross-validation fold)."""
        return DannSetup(self.target_X, self.target_sites, self.source_sites[rows])

    def describe(self) -> dict:
        counts = {s: int((self.target_sites == s).sum()) for s in sorted(set(self.target_sites))}
        return {"method": "DANN (Ganin et al. 2016): gradient reversal layer and site discriminator on the "
                          "encoder's latent vector",
                "schedule": f"lambda = 2/(1+exp(-{GAMMA:g} p)) - 1, p = training progress (iterations / "
                            "(epochs x batches per epoch))",
                "discriminator": f"MLP {HIDDEN} hidden units (ReLU), {len(self.sites)} sites, cross-entropy",
                "sites": self.sites, "target_cases": counts,
                "target_data": "images only (transductive); target outcomes are never read"}
