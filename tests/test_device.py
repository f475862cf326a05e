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
