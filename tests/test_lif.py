"""The fused multi-step LIF (search/lif.py) against spikingjelly's LIFNode: bitwise equal spikes,
membranes and gradients, both implementations (the numba kernels and the torch-ops fallback), and the
whole Spikformer's logits and parameter gradients."""

from __future__ import annotations

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

from hqflow.config import ModelConfig
from hqflow.search import lif as fused_lif
from hqflow.search.lif import LIFNode
from hqflow.search.model import Spikformer, spike_rates

SHAPES = [(1, 3), (4, 8, 16), (8, 5, 7, 3), (4, 3, 6, 5, 5), (16, 2, 50), (3, 5003)]  # 5003: chunks and a tail


@pytest.fixture(params=["kernels", "torch-ops"])
def impl(request, monkeypatch):
    """Run a test with the numba kernels, then with the torch-ops fallback."""
    if request.param == "torch-ops":
        monkeypatch.setattr(fused_lif, "_kernels", None)
    elif fused_lif._kernels is None:
        pytest.skip("numba is not installed")
    return request.param


def node(cls, v_threshold=1.0, **kw):
    settings = dict(tau=2.0, v_threshold=v_threshold, v_reset=0.0, decay_input=True, detach_reset=True, step_mode="m")
    return cls(**{**settings, **kw})


def run(n, x, g, calls=1):
    """`calls` forward passes without a reset (the membrane carries over), backward with dL/dS = g:
    -> (spikes of the last call, final membrane, dL/dx, dL/dx's strides as the layer below gets it)."""
    leaf = x.clone().requires_grad_()
    x = leaf * 1.0  # not a leaf: its gradient keeps the layout the LIF gave it (x.grad would not)
    seen = []
    x.register_hook(seen.append)
    n.reset()
    outs = [n(x) for _ in range(calls)]
    (outs[0] if calls == 1 else outs[0] + outs[1]).backward(g)
    return outs[-1], n.v, leaf.grad, seen[0].stride()


def inputs(shape, seed, v_th=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen) * 2
    x.view(-1)[::7] = 2 * v_th  # H = X / 2 == V_th exactly at step 0: must fire
    return x, torch.randn(*shape, generator=gen)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("v_th", [1.0, 0.5])
def test_equal_to_spikingjelly(impl, shape, v_th):
    x, g = inputs(shape, seed=len(shape) + int(v_th * 10), v_th=v_th)
    ref, new = node(neuron.LIFNode, v_th), node(LIFNode, v_th)
    assert new._fused(x)
    for calls in (1, 2):  # 2: the second call starts from the first's membrane, BPTT through both
        s0, v0, g0, _ = run(ref, x, g, calls)
        s1, v1, g1, _ = run(new, x, g, calls)
        assert torch.equal(s0, s1) and torch.equal(v0, v1) and torch.equal(g0, g1)
        assert s1.dtype == torch.float32 and s1.shape == x.shape and (0 < s1.mean() < 1 or x.numel() < 10)
        if calls == 1:
            assert s1.view(-1)[0] == 1.0


def test_gradient_layout_follows_spikingjelly(impl):
    """A transposed upstream gradient (as the model's tokens step gives one): the input gradient gets the
    same strides as spikingjelly's, since the layers below reduce over it in a layout-dependent order."""
    x, _ = inputs((4, 3, 8, 5, 6), seed=1)
    for g in (torch.randn(4, 3, 5, 6, 8).permute(0, 1, 4, 2, 3),  # channels last per step (the model's)
              torch.randn(4, 3, 8, 6, 5).transpose(3, 4),  # another permutation
              torch.randn(3, 4, 8, 5, 6).transpose(0, 1),  # T not outermost
              torch.randn(4, 3, 8, 5, 1).expand(4, 3, 8, 5, 6)):  # broadcast: not dense
        (_, _, g0, st0), (_, _, g1, st1) = (run(node(c), x, g) for c in (neuron.LIFNode, LIFNode))
        assert torch.equal(g0, g1) and st0 == st1, (g.stride(), st0, st1)
        if g.stride()[2] == 1:  # channels last: the gradient is not contiguous either (the test sees layouts)
            assert st1 != x.stride()
    assert run(node(LIFNode), x, g.contiguous())[3] == x.stride()


def test_gradients_are_sensitive(impl):
    """Negative control: another surrogate alpha or the reset's gradient kept changes dL/dx, so the
    equalities above would see a wrong surrogate or a reset that carried gradient."""
    x, g = inputs((4, 8, 16), seed=2)
    _, _, base, _ = run(node(LIFNode), x, g)
    for other in (node(neuron.LIFNode, surrogate_function=surrogate.Sigmoid(alpha=2.0)),
                  node(neuron.LIFNode, detach_reset=False)):
        assert not torch.equal(run(other, x, g)[2], base)


def test_other_settings_fall_back_to_spikingjelly():
    """Settings the fused path does not implement run spikingjelly's own code, with its results."""
    x, g = inputs((4, 8, 16), seed=3)
    for kw in ({"v_reset": None}, {"detach_reset": False}, {"decay_input": False},
               {"surrogate_function": surrogate.ATan()}):
        new = node(LIFNode, **kw)
        assert not new._fused(x)
        s0, v0, g0, _ = run(node(neuron.LIFNode, **kw), x, g)
        s1, v1, g1, _ = run(new, x, g)
        assert torch.equal(s0, s1) and torch.equal(v0, v1) and torch.equal(g0, g1)
    assert not node(LIFNode)._fused(x.double())


def test_torch_ops_and_kernels_agree(monkeypatch):
    if fused_lif._kernels is None:
        pytest.skip("numba is not installed")
    x, g = inputs((4, 32, 40), seed=4)
    first = run(node(LIFNode), x, g, calls=2)
    monkeypatch.setattr(fused_lif, "_kernels", None)
    second = run(node(LIFNode), x, g, calls=2)
    assert all(torch.equal(a, b) for a, b in zip(first[:3], second[:3]))


CFG = ModelConfig(img_size=16, embed_dim=32, num_heads=2, depth=1, pools=(True, True, False, False), num_classes=10)


def spikingjelly_model(model: Spikformer) -> Spikformer:
    """The same model run by spikingjelly's LIFNode (the class the model used before the fused one)."""
    for m in model.modules():
        if isinstance(m, LIFNode):
            m.__class__ = neuron.LIFNode
    return model


def test_whole_model_equal_to_spikingjelly(impl):
    """Spikformer with the fused LIF: the same logits, the same gradient of every parameter, the same
    state_dict keys, spike rates (forward hooks) and membrane reset as with spikingjelly's LIFNode."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (4, 4, 2, 16, 16), generator=gen).float()
    y = torch.randint(0, 10, (4,), generator=gen)
    models = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = Spikformer(CFG)
        models.append(model if fused else spikingjelly_model(model))
    old, new = models
    lifs = [m for m in new.modules() if isinstance(m, neuron.BaseNode)]
    assert lifs and all(type(m) is LIFNode and type(m).__name__ == "LIFNode" for m in lifs)
    assert not any(isinstance(m, LIFNode) for m in old.modules())
    assert list(old.state_dict()) == list(new.state_dict())
    results = []
    for model in models:
        logits = model(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
        results.append((logits, {n: p.grad for n, p in model.named_parameters()}))
    (l0, g0), (l1, g1) = results
    assert torch.equal(l0, l1)
    assert g0.keys() == g1.keys() and all(torch.equal(g0[n], g1[n]) for n in g0)
    assert spike_rates(old, x) == spike_rates(new, x)
    assert all(isinstance(m.v, torch.Tensor) for m in lifs)
    new.reset()
    assert all(m.v == 0.0 and not isinstance(m.v, torch.Tensor) for m in lifs)
