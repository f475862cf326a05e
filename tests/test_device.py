"""acceflow.device: device choice, mixed precision only on CUDA, seeding."""

import pytest
import torch

from acceflow.device import autocast, describe, grad_scaler, seed_everything, select_device, use_amp


def test_auto_is_cpu_without_cuda_and_cuda_refused_with_the_fix():
    if torch.cuda.is_available():
        assert select_device("auto").type == "cuda"
    else:
        assert select_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="device: auto"):
            select_device("cuda")
    assert select_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")


def test_mixed_precision_never_on_cpu():
    cpu = torch.device("cpu")
    assert not use_amp(cpu, True)
    assert not grad_scaler(cpu, True).is_enabled()
    with autocast(cpu, True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert describe(cpu)["device"] == "cpu"


def test_seeding_repeats_a_network_initialisation():
    seed_everything(7)
    a = torch.nn.Linear(4, 3).weight.detach().clone()
    seed_everything(7)
    b = torch.nn.Linear(4, 3).weight.detach().clone()
    assert torch.equal(a, b)


@pytest.mark.gpu
def test_mixed_precision_training_step_on_cuda():
    """On a CUDA device: autocast runs the matmul in float16 and a scaled step gives finite weights."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (run on a GPU machine with: pytest -m gpu)")
    cuda = select_device("cuda")
    assert use_amp(cuda, True)
    seed_everything(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).to(cuda)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    scaler = grad_scaler(cuda, True)
    x, y = torch.randn(64, 16, device=cuda), torch.randn(64, 1, device=cuda)
    with autocast(cuda, True):
        out = net(x)
        assert out.dtype == torch.float16
        loss = torch.nn.functional.mse_loss(out.float(), y)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert describe(cuda)["device"].startswith("cuda")
