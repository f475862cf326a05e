"""The lesion generators (acceflow.deep.synthetic): a tiny WGAN-GP trained on CPU learns a sphere
(image and mask channels together), a cGAN generates the class it is asked for, bad input is named."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from acceflow.deep.synthetic import MIN_TRAINING_CROPS, GanSettings, GeneratorDiverged, sample, train_generator

SIZE = 8


def spheres(n, seed=0, value=100.0):
    """Crops of SIZE³ voxels: a centred ball of radius 1.8-2.6 voxels at ``value`` (noise SD 5), its mask."""
    rng = np.random.default_rng(seed)
    g = np.indices((SIZE,) * 3) - (SIZE - 1) / 2
    r = rng.uniform(0.22 * SIZE, 0.32 * SIZE, n)
    masks = (np.sqrt((g ** 2).sum(0))[None] <= r[:, None, None, None]).astype(np.float32)
    return (value * masks + rng.normal(0, 5, masks.shape)).astype(np.float32), masks


TINY = dict(iterations=150, n_critic=2, batch_size=8, latent_dim=8, channels=(8, 4), learning_rate=2e-3, device="cpu")


def test_a_tiny_wgan_gp_trained_on_cpu_learns_a_sphere():
    torch.set_num_threads(1)
    images, masks = spheres(32)
    trained = train_generator(images, masks, settings=GanSettings(seed=0, **TINY))
    assert len(trained.history) == 150 and np.isfinite(trained.history[-1]["critic_loss"])
    im, mk, labels = sample(trained, 32, seed=1)
    assert im.shape == mk.shape == (32, SIZE, SIZE, SIZE) and (labels == -1).all()
    vol = mk.reshape(32, -1).sum(axis=1)
    real_vol = masks.reshape(32, -1).sum(axis=1)
    assert (vol > 0).mean() >= 0.9  # masks are not empty
    assert 0.5 * real_vol.mean() < np.median(vol) < 2 * real_vol.mean()  # about the real lesions' volume
    g = np.indices((SIZE,) * 3) - (SIZE - 1) / 2
    centroid = [np.abs([(g[a] * k).sum() / k.sum() for a in range(3)]).max() for k in mk if k.sum()]
    assert np.median(centroid) < 1.5  # centred, as the crops are lesion-centred
    inside = np.median([i[k == 1].mean() for i, k in zip(im, mk) if k.sum()])
    outside = np.median([i[k == 0].mean() for i, k in zip(im, mk)])
    assert inside > 50 > outside  # the intensity channel follows its mask, in the crops' units (0 / 100)


def test_generation_is_seeded_and_bad_input_is_named(caplog):
    images, masks = spheres(MIN_TRAINING_CROPS)
    s = GanSettings(seed=3, **{**TINY, "iterations": 2})
    with caplog.at_level("INFO", logger="acceflow.deep.synthetic"):
        a, b = train_generator(images, masks, settings=s), train_generator(images, masks, settings=s)
    assert "iteration 1/2" in caplog.text  # progress in the log of a long CPU run
    assert np.array_equal(sample(a, 4, seed=0)[0], sample(b, 4, seed=0)[0])
    with pytest.raises(ValueError, match=f"needs at least {MIN_TRAINING_CROPS}"):
        train_generator(images[:3], masks[:3], settings=s)
    with pytest.raises(ValueError, match="class 1 has 2 training crops"):
        train_generator(images, masks, np.r_[np.zeros(6), np.ones(2)].astype(int),
                        GanSettings(kind="cgan", **{**TINY, "iterations": 1}))
    with pytest.raises(GeneratorDiverged, match="diverged at iteration 1.*synthetic.gan.learning_rate") as err:
        train_generator(images, masks, settings=GanSettings(seed=0, gp_weight=float("inf"), **{**TINY, "iterations": 3}))
    assert len(err.value.history) == 1


def test_a_cgan_makes_the_class_it_is_asked_for():
    torch.set_num_threads(1)
    dim, _ = spheres(16, seed=1, value=30.0)
    bright, masks = spheres(16, seed=2, value=150.0)
    images = np.concatenate([dim, bright])
    masks = np.concatenate([masks, masks])
    labels = np.r_[np.zeros(16), np.ones(16)].astype(int)
    trained = train_generator(images, masks, labels, GanSettings(kind="cgan", seed=0, **TINY))
    im, mk, y = sample(trained, {0: 16, 1: 16}, seed=1)
    assert list(np.bincount(y)) == [16, 16]
    inside = [np.median([i[k == 1].mean() for i, k, c in zip(im, mk, y) if c == cls and k.sum()]) for cls in (0, 1)]
    assert inside[1] - inside[0] > 50  # class 1 brighter, as in the training crops (150 vs 30)
