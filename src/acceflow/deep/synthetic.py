"""3D generators of lesion crops, image and mask as two channels: WGAN-GP and a label-conditioned GAN.

* ``wgan_gp``: Wasserstein GAN with gradient penalty (Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville
  2017, "Improved training of Wasserstein GANs", NeurIPS): the critic maximises
  ``E[D(real)] − E[D(fake)] − λ E[(||∇D(x̂)||₂ − 1)²]`` on random interpolates ``x̂``; ``n_critic`` critic
  steps per generator step; Adam (lr 1e-4, β = (0, 0.9)) as in the paper.
* ``cgan``: the same, conditioned on the outcome label (Mirza & Osindero 2014, "Conditional generative
  adversarial nets"): the one-hot label is appended to the generator's latent vector and given to the
  critic as constant extra channels, so each class is generated on request.

Networks are MONAI's ``Generator`` (a linear layer to a small start volume, then transposed-convolution
residual units) and ``Discriminator`` (strided residual units, no final sigmoid: a critic). Channel 0
is the intensity, in the units of the crops after the study's normalisation (HU, SUV, z-scores): the
network works on ``(x − mean) / sd`` of the training crops and :func:`sample` maps back; channel 1 is the
lesion mask (a probability, thresholded at 0.5). Seeded; CUDA with mixed precision (``torch.autocast``,
``GradScaler``; the gradient penalty in float32) when present, the CPU otherwise. A NaN or infinite loss
stops training with :class:`GeneratorDiverged`, the history so far attached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np
import torch
from monai.networks.nets import Discriminator, Generator

log = logging.getLogger(__name__)

__all__ = ["GanSettings", "GeneratorDiverged", "TrainedGenerator", "train_generator", "sample", "MIN_TRAINING_CROPS",
           "save_generators", "load_generators", "slice_grid"]

#: Fewest training crops (per class for the cGAN) a generator is trained on: below it a GAN copies.
MIN_TRAINING_CROPS = 8


class GeneratorDiverged(RuntimeError):
    """The generator's or critic's loss became NaN / infinite; ``history`` holds the iterations so far."""

    def __init__(self, message: str, history: list[dict]):
        super().__init__(message)
        self.history = history


@dataclass
class GanSettings:
    """Generator settings (the config's ``synthetic`` section supplies them in the workflow).

    kind : ``wgan_gp`` or ``cgan``; iterations : generator steps; n_critic : critic steps per generator
    step; batch_size; latent_dim; channels : feature maps per resolution, coarse to fine (the crop edge
    must be divisible by 2^len(channels)); learning_rate; gp_weight : λ; seed; device : ``auto``, ``cpu``
    or ``cuda``; amp : mixed precision on CUDA.
    """

    kind: str = "wgan_gp"
    iterations: int = 2000
    n_critic: int = 5
    batch_size: int = 16
    latent_dim: int = 64
    channels: tuple = (32, 16)
    learning_rate: float = 1e-4
    gp_weight: float = 10.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True


@dataclass
class TrainedGenerator:
    generator: torch.nn.Module
    settings: GanSettings
    shape: tuple
    intensity_mean: float
    intensity_sd: float
    n_classes: int
    history: list = field(default_factory=list)
    seconds: float = 0.0


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _networks(shape, s: GanSettings, n_classes: int):
    k = len(s.channels)
    if any(d % (2 ** k) for d in shape):
        raise ValueError(f"crop shape {tuple(shape)} must be divisible by 2^{k} (one halving per entry of channels)")
    cond = n_classes if s.kind == "cgan" else 0
    start = (s.channels[0], *[d // 2 ** k for d in shape])
    gen = Generator(latent_shape=(s.latent_dim + cond,), start_shape=start,
                    channels=[*s.channels[1:], 2], strides=[2] * k, num_res_units=1)
    critic = Discriminator(in_shape=(2 + cond, *shape), channels=list(reversed(s.channels)), strides=[2] * k,
                           num_res_units=1, dropout=None, last_act=None, norm="INSTANCE")
    return gen, critic


def _to_output(raw: torch.Tensor) -> torch.Tensor:
    """Generator output -> (intensity in normalised units, mask probability)."""
    return torch.cat([raw[:, :1], torch.sigmoid(raw[:, 1:2])], dim=1)


def _with_label(x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
    if onehot is None:
        return x
    extra = onehot[:, :, None, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, extra], dim=1)


def train_generator(images, masks, labels=None, settings: GanSettings | None = None) -> TrainedGenerator:
    """Fit a WGAN-GP (or cGAN) to lesion crops.

    Parameters
    ----------
    images : array (n, D, H, W), float
        Crops in the modality's units after the study's normalisation.
    masks : array (n, D, H, W), 0/1
        The lesion masks of the crops.
    labels : array (n,) of 0 .. n_classes−1, optional
        Outcome classes; required for ``cgan``.
    settings : GanSettings

    Returns
    -------
    TrainedGenerator
        The generator (eval mode), the intensity scaling, per-iteration history (``iteration``,
        ``critic_loss``, ``generator_loss``, ``gradient_penalty``, ``wasserstein``) and seconds.

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_TRAINING_CROPS` crops (per class for ``cgan``), a class without crops, or
        shapes that do not match.
    GeneratorDiverged
        A NaN / infinite loss (history attached).
    """
    s = settings or GanSettings()
    x = np.asarray(images, dtype=np.float32)
    m = np.asarray(masks, dtype=np.float32)
    if x.ndim != 4 or x.shape != m.shape:
        raise ValueError(f"images and masks must both be (n, D, H, W); got {x.shape} and {m.shape}")
    if len(x) < MIN_TRAINING_CROPS:
        raise ValueError(f"{len(x)} training crops; the generator needs at least {MIN_TRAINING_CROPS} (add training "
                         f"lesions or use synthetic.generator: smote)")
    n_classes = 0
    y = None
    if s.kind == "cgan":
        if labels is None:
            raise ValueError("the cGAN needs the outcome label of every crop")
        y = np.asarray(labels, dtype=int)
        n_classes = int(y.max()) + 1
        counts = np.bincount(y, minlength=n_classes)
        if counts.min() < MIN_TRAINING_CROPS:
            raise ValueError(f"class {int(np.argmin(counts))} has {int(counts.min())} training crops; the cGAN needs at "
                             f"least {MIN_TRAINING_CROPS} per class")
    elif s.kind != "wgan_gp":
        raise ValueError(f"generator kind {s.kind!r} unknown; use wgan_gp or cgan")
    device = _device(s.device)
    amp = bool(s.amp and device.type == "cuda")
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    mean, sd = float(x.mean()), float(x.std()) or 1.0
    data = torch.from_numpy(np.stack([(x - mean) / sd, m], axis=1)).to(device)
    onehot_all = torch.nn.functional.one_hot(torch.from_numpy(y), n_classes).float().to(device) if y is not None else None
    gen, critic = _networks(x.shape[1:], s, n_classes)
    gen, critic = gen.to(device), critic.to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=s.learning_rate, betas=(0.0, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=s.learning_rate, betas=(0.0, 0.9))
    scaler_g = torch.amp.GradScaler("cuda", enabled=amp)
    scaler_c = torch.amp.GradScaler("cuda", enabled=amp)
    history, start = [], perf_counter()
    bs = min(s.batch_size, len(data))

    def latent(onehot):
        z = torch.randn(len(onehot) if onehot is not None else bs, s.latent_dim, device=device)
        return z if onehot is None else torch.cat([z, onehot], dim=1)

    for it in range(1, s.iterations + 1):
        for _ in range(s.n_critic):
            idx = torch.from_numpy(rng.choice(len(data), bs, replace=False)).to(device)
            real = data[idx]
            oh = onehot_all[idx] if onehot_all is not None else None
            with torch.autocast(device.type, enabled=amp):
                fake = _to_output(gen(latent(oh))).detach()
                d_real = critic(_with_label(real, oh)).mean()
                d_fake = critic(_with_label(fake, oh)).mean()
            eps = torch.rand(bs, 1, 1, 1, 1, device=device)
            mix = (eps * real + (1 - eps) * fake.float()).requires_grad_(True)
            grad = torch.autograd.grad(critic(_with_label(mix, oh)).sum(), mix, create_graph=True)[0]
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss_c = d_fake.float() - d_real.float() + s.gp_weight * gp
            opt_c.zero_grad(set_to_none=True)
            scaler_c.scale(loss_c).backward()
            scaler_c.step(opt_c)
            scaler_c.update()
        idx = torch.from_numpy(rng.choice(len(data), bs, replace=False)).to(device)
        oh = onehot_all[idx] if onehot_all is not None else None
        with torch.autocast(device.type, enabled=amp):
            loss_g = -critic(_with_label(_to_output(gen(latent(oh))), oh)).mean()
        opt_g.zero_grad(set_to_none=True)
        scaler_g.scale(loss_g).backward()
        scaler_g.step(opt_g)
        scaler_g.update()
        row = {"iteration": it, "critic_loss": float(loss_c.detach()), "generator_loss": float(loss_g.detach()),
               "gradient_penalty": float(gp.detach()), "wasserstein": float((d_real - d_fake).detach())}
        history.append(row)
        if not all(np.isfinite(v) for v in row.values()):
            raise GeneratorDiverged(f"generator {s.kind} diverged at iteration {it} (loss {row}); the arm is excluded, "
                                    f"the history is kept: lower synthetic.gan.learning_rate or raise synthetic.gan.gp_weight", history)
        if it % max(1, s.iterations // 10) == 0 and it < s.iterations:  # progress of a long CPU run, in its log
            elapsed = perf_counter() - start
            log.info("generator %s: iteration %d/%d, %.1f s (%.2f it/s), critic loss %.4g, Wasserstein estimate %.4g",
                     s.kind, it, s.iterations, elapsed, it / elapsed, row["critic_loss"], row["wasserstein"])
    gen.eval()
    seconds = perf_counter() - start
    log.info("generator %s: %d iterations in %.1f s (%.2f it/s) on %s%s", s.kind, s.iterations, seconds,
             s.iterations / seconds, device, " with mixed precision" if amp else "")
    return TrainedGenerator(gen, s, tuple(x.shape[1:]), mean, sd, n_classes, history, seconds)


@torch.no_grad()
def sample(trained: TrainedGenerator, n_per_class: dict | int, seed: int = 0):
    """Synthetic crops: ``(images (n, D, H, W) in the training crops' units, masks (n, D, H, W) uint8,
    labels (n,))``; ``n_per_class`` an int for ``wgan_gp`` (labels −1: unconditioned) or
    ``{class: n}`` for ``cgan``. Masks that come out empty are returned too (the caller drops and
    counts them)."""
    s = trained.settings
    device = next(trained.generator.parameters()).device
    g = torch.Generator(device="cpu").manual_seed(seed)
    if trained.n_classes:
        labels = np.concatenate([[c] * int(n) for c, n in dict(n_per_class).items()]).astype(int)
        z = torch.randn(len(labels), s.latent_dim, generator=g)
        z = torch.cat([z, torch.nn.functional.one_hot(torch.from_numpy(labels), trained.n_classes).float()], dim=1)
    else:
        labels = np.full(int(n_per_class), -1)
        z = torch.randn(len(labels), s.latent_dim, generator=g)
    out = _to_output(trained.generator(z.to(device))).float().cpu().numpy()
    images = out[:, 0] * trained.intensity_sd + trained.intensity_mean
    masks = (out[:, 1] > 0.5).astype(np.uint8)
    return images, masks, labels


def save_generators(generators: dict, path) -> None:
    """Write trained generators (``{key: TrainedGenerator}``, e.g. one per outcome class for ``wgan_gp``,
    ``{"all": ...}`` for ``cgan``) to one ``.pt`` file of tensors and plain values only, so that
    :func:`load_generators` reads it with ``torch.load(weights_only=True)`` (no code is executed)."""
    payload = {}
    for key, t in generators.items():
        settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in t.settings.__dict__.items()}
        payload[str(key)] = {"state_dict": {k: v.detach().cpu() for k, v in t.generator.state_dict().items()},
                             "settings": settings, "shape": list(t.shape), "intensity_mean": float(t.intensity_mean),
                             "intensity_sd": float(t.intensity_sd), "n_classes": int(t.n_classes),
                             "seconds": float(t.seconds)}
    torch.save(payload, str(path))


def load_generators(path, device: str = "cpu") -> dict:
    """Read what :func:`save_generators` wrote (``torch.load(weights_only=True)``); ``{key: TrainedGenerator}``
    in eval mode on ``device`` (history empty)."""
    payload = torch.load(str(path), map_location=device, weights_only=True)
    out = {}
    for key, d in payload.items():
        s = GanSettings(**{k: (tuple(v) if k == "channels" else v) for k, v in d["settings"].items()})
        gen, _ = _networks(tuple(d["shape"]), s, int(d["n_classes"]))
        gen.load_state_dict(d["state_dict"])
        out[key] = TrainedGenerator(gen.to(device).eval(), s, tuple(d["shape"]), d["intensity_mean"],
                                    d["intensity_sd"], int(d["n_classes"]), [], d["seconds"])
    return out


def _lesion_slice(mask: np.ndarray) -> int:
    """Axial index (axis 0) with the largest lesion area; the centre slice when the mask is empty."""
    area = mask.reshape(mask.shape[0], -1).sum(axis=1)
    return int(np.argmax(area)) if area.any() else mask.shape[0] // 2


def window_of(pairs, margin: int = 3) -> tuple[float, float]:
    """Grey window (low, high) of a list of (image, mask) crops: 1st-99th percentile of the voxels in
    each lesion dilated by ``margin`` voxels (the whole crop when its mask is empty); (0, 1) for no crop."""
    from scipy import ndimage

    values = []
    for image, mask in pairs:
        image, mask = np.asarray(image, dtype=float), np.asarray(mask) > 0
        near = ndimage.binary_dilation(mask, iterations=margin) if mask.any() else np.ones_like(mask)
        values.append(image[near])
    if not values:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(np.concatenate(values), [1, 99]))
    return lo, (hi if hi > lo else lo + 1.0)


def slice_grid(real: dict, synthetic: dict, path, units: str = "", n: int = 4) -> None:
    """Write a PNG: per outcome class, a row of real and a row of synthetic lesion crops.

    Parameters
    ----------
    real, synthetic : dict class -> list of (image (D, H, W), mask (D, H, W)) pairs
        Crops in the modality's units; the first ``n`` of each list are drawn.
    path : output PNG.
    units : the intensity unit for the colour bar label (e.g. ``HU``).

    Each panel is the axial slice with the largest lesion area, lesion contour in orange; one grey
    window for all panels, so intensities compare across panels: the 1st-99th percentile of the real
    crops' voxels in their lesions and the 3 voxels around them (:func:`window_of`; the crops'
    constant padding outside the scan does not stretch it).
    """
    import matplotlib  # heavy optional dependency: imported on first use

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy optional dependency: imported on first use

    classes = sorted(set(real) | set(synthetic), key=str)
    lo, hi = window_of([pair for c in real for pair in real[c][:n]])
    rows = [(c, kind, src.get(c, [])[:n]) for c in classes for kind, src in (("real", real), ("synthetic", synthetic))]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n + 0.8, 1.7 * len(rows)), dpi=100, squeeze=False)
    im_handle = None
    for r, (c, kind, items) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.axis("off")
            if j < len(items):
                image, mask = items[j]
                z = _lesion_slice(np.asarray(mask))
                im_handle = ax.imshow(image[z], cmap="gray", vmin=lo, vmax=hi, origin="lower")
                if np.asarray(mask)[z].any():
                    ax.contour(np.asarray(mask)[z], levels=[0.5], colors="#E69F00", linewidths=0.8, origin="lower")
            if j == 0:
                ax.set_title(f"class {c}: {kind}", fontsize=7, loc="left")
    if im_handle is not None:
        fig.colorbar(im_handle, ax=axes, shrink=0.6, label=units or "intensity")
    fig.savefig(str(path))
    plt.close(fig)
