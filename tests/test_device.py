"""--device and --amp: device names, checkpoints that load anywhere, mixed precision that never reaches a
quantized weight, the Gumbel noise drawn on the CPU, and scripts/gpu_check.sh without CUDA.

The tests run on the CPU (conftest hides any GPU); the CUDA paths are exercised by scripts/gpu_check.sh.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT
from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.numerics import DEFAULT_CANDIDATES
from hqflow.search import supernet
from hqflow.search.checkpoint import load_checkpoint, save_checkpoint
from hqflow.search.distributed import autocast, resolve_device, to_cpu
from hqflow.search.model import Spikformer

TINY = config_from_dict({
    "model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "pools": [True, True, False, False],
              "num_classes": 10},
    "data": {"dataset": "digits-dvs", "time_steps": 2},
})


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")  # no CUDA in the tests
    for bad in ("gpu", "cuda:x", "cuda:-1", "cuda:01", "CPU", ""):
        with pytest.raises(UserError, match=f"^--device {bad}: not a device; expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    for absent in ("cuda", "cuda:0"):
        with pytest.raises(UserError, match=f"^--device {absent}: CUDA is not available"):
            resolve_device(absent)


def test_checkpoint_is_cpu_tensors_and_loads_onto_a_device(tmp_path):
    torch.manual_seed(0)
    model = supernet.to_supernet(Spikformer(TINY.model), DEFAULT_CANDIDATES)
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 2, 2, 16, 16)).sum().backward()
    opt.step()
    state = {"config": TINY.to_dict(), "candidates": [c.name for c in DEFAULT_CANDIDATES],
             "model": model.state_dict(), "optimizer": opt.state_dict()}
    assert to_cpu(state)["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]  # structure kept
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True, map_location="meta")
    assert raw["model"]["sps.conv0.alpha"].device.type == "meta"  # map_location is honoured: a negative control
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # no map_location: as saved
    saved = [t for t in raw["model"].values()] + [t for s in raw["optimizer"]["state"].values() for t in s.values()]
    assert saved and all(t.device.type == "cpu" for t in saved)
    _, loaded, _ = load_checkpoint(tmp_path, device="cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert all(p.device.type == "cpu" for p in loaded.parameters())


def test_gumbel_noise_from_the_cpu_generator_is_torch_gumbel_softmax_bit_for_bit():
    alpha = torch.tensor([0.3, -1.2, 0.0, 2.5, 0.7], requires_grad=True)
    for hard in (True, False):
        for tau in (5.0, 0.37):
            torch.manual_seed(11)
            ours = supernet.gumbel_softmax(alpha, tau, hard)
            torch.manual_seed(11)
            theirs = F.gumbel_softmax(alpha, tau=tau, hard=hard)
            assert torch.equal(ours, theirs)
            ga, = torch.autograd.grad((ours * torch.arange(5.0)).sum(), alpha)
            gb, = torch.autograd.grad((theirs * torch.arange(5.0)).sum(), alpha)
            assert torch.equal(ga, gb)
    torch.manual_seed(11)
    other = supernet.gumbel_softmax(alpha, 0.37, False)
    torch.manual_seed(12)
    assert not torch.equal(other, supernet.gumbel_softmax(alpha, 0.37, False))  # the noise is drawn


def test_amp_never_reaches_a_quantized_weight():
    """Under bf16 autocast every layer's Q(w) (each format, and the Gumbel mixture) is bitwise the fp32 one."""
    torch.manual_seed(3)
    model = supernet.to_supernet(Spikformer(TINY.model), DEFAULT_CANDIDATES)
    layers = supernet.searchable(model)
    cpu = torch.device("cpu")
    for hard, learn_alpha in ((True, True), (False, False), (False, True)):
        supernet.set_sampling(model, 0.8, hard=hard, learn_alpha=learn_alpha)
        for name, layer in layers.items():
            for choice in (None, *range(len(layer.candidates))):
                layer.choice = choice
                torch.manual_seed(5)
                plain = layer.quant_weight()
                torch.manual_seed(5)
                with autocast(cpu, True):
                    mixed = layer.quant_weight()
                    product = F.linear(torch.ones(1, 4), torch.ones(3, 4))
                assert mixed.dtype == torch.float32 and torch.equal(mixed, plain), (name, choice)
            layer.choice = None
    assert product.dtype == torch.bfloat16  # the autocast was on: a negative control


def test_amp_search_step_keeps_fp32_parameters():
    torch.manual_seed(0)
    model = supernet.to_supernet(Spikformer(TINY.model), DEFAULT_CANDIDATES)
    supernet.set_sampling(model, 1.0, hard=True)
    with autocast(torch.device("cpu"), True):
        loss = F.cross_entropy(model(torch.rand(2, 2, 2, 16, 16)), torch.tensor([1, 2]))
    loss.backward()
    assert loss.dtype == torch.float32  # cross-entropy runs in fp32 under autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())
    alphas = supernet.alpha_parameters(model)
    assert all(a.grad is not None and a.grad.dtype == torch.float32 for a in alphas)


def _gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_refuses_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--steps", "1"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "CUDA is not available" in result.stderr and "nothing compared" in result.stderr


def test_gpu_check_steps_are_deterministic_on_one_device():
    """The check's own steps (run here on the CPU twice): same batches, same losses, same plan."""
    check = _gpu_check_module()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.poisson(torch.full((2, 2, 2, 16, 16), 0.3), generator=g), torch.randint(0, 10, (2,), generator=g))
               for _ in range(4)]
    a = check._run(TINY, torch.device("cpu"), batches, 2)
    b = check._run(TINY, torch.device("cpu"), batches, 2)
    assert list(a["losses"]) == ["train 0", "train 1", "search 0 alpha", "search 0 weight", "search 1 alpha",
                                 "search 1 weight"]
    assert a["losses"] == b["losses"] and a["plan"] == b["plan"]
    assert len(set(a["losses"].values())) == len(a["losses"])  # the steps change the model


def test_the_processor_is_described():
    """`hqflow train` ends with it: the CPU's model, the instruction set torch's CPU kernels use, the threads."""
    from hqflow.search.distributed import describe_processor

    text = describe_processor("cpu")
    assert f"torch's CPU kernels {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads" in text
    assert not text.startswith(",")
