"""Integrated gradients of the deep biomarker (acceflow.deep.attribution): completeness on tiny networks."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from acceflow.deep.attribution import display_map, integrated_gradients_maps

torch.set_num_threads(1)


def _crops(n=3, c=2, size=6, seed=0):
    return np.random.default_rng(seed).normal(5.0, 2.0, size=(n, c, size, size, size)).astype(np.float32)


def test_integrated_gradients_of_a_linear_net_are_weight_times_input_difference():
    torch.manual_seed(0)
    X = _crops()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(X[0].size, 1))
    mean, sd = np.array([5.0, 4.0]), np.array([2.0, 1.0])
    ig = integrated_gradients_maps({"model": net, "mean": mean, "sd": sd}, X, n_steps=4)
    z = (X - mean[None, :, None, None, None]) / sd[None, :, None, None, None]  # the baseline is z = 0
    w = net[1].weight.detach().numpy().reshape(X.shape[1:])
    np.testing.assert_allclose(ig["attributions"], z * w[None], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ig["maps"], (z * w[None]).sum(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ig["baseline_output"], net[1].bias.item(), atol=1e-6)


def test_integrated_gradients_completeness_on_a_tiny_nonlinear_net():
    torch.manual_seed(1)
    X = _crops(n=2, size=8)
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.Softplus(), torch.nn.Conv3d(4, 4, 3),
                              torch.nn.Tanh(), torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 1))
    fitted = {"model": net, "mean": np.array([5.0, 5.0]), "sd": np.array([2.0, 2.0])}
    ig = integrated_gradients_maps(fitted, X, n_steps=64)
    total = ig["attributions"].reshape(len(X), -1).sum(axis=1)
    gap = ig["output"] - ig["baseline_output"]
    assert np.all(np.abs(gap) > 1e-3)  # a non-trivial check
    np.testing.assert_allclose(total, gap, rtol=1e-3, atol=1e-4)  # sum of attributions = f(x) - f(baseline)
    np.testing.assert_allclose(ig["delta"], total - gap, atol=1e-4)
    assert ig["maps"].shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients_maps(fitted, X, n_steps=1)
    with pytest.raises(ValueError, match="N, C, D, H, W"):
        integrated_gradients_maps(fitted, X[0])


def test_display_map_scales_by_percentile():
    m, scale = display_map(np.array([-4.0, 1.0, 2.0, 0.0]), percentile=50)
    assert scale == 1.5
    np.testing.assert_allclose(m, [1.0, 2 / 3, 1.0, 0.0])
    assert display_map(np.zeros(3))[1] == 0.0
