"""The supernet: the mixed-weight layer equals the weighted sum of branches, with one conv."""

import pytest
import torch
import torch.nn.functional as F

from hqflow.config import ModelConfig
from hqflow.numerics import DEFAULT_CANDIDATES, Candidate
from hqflow.search import supernet
from hqflow.search.model import Spikformer

CFG = ModelConfig(img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False), num_classes=10)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_composite_equals_weighted_sum_of_branches_with_one_call(kind, monkeypatch):
    torch.manual_seed(0)
    if kind == "conv":
        layer, x, op = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False), torch.rand(2, 3, 6, 6), "conv2d"
    else:
        layer, x, op = torch.nn.Linear(7, 4, bias=False), torch.rand(2, 9, 7), "linear"
    model = torch.nn.Sequential(layer)
    supernet.to_supernet(model, DEFAULT_CANDIDATES)
    q = model[0]
    q.alpha.data = torch.randn(len(DEFAULT_CANDIDATES))
    q.tau, q.hard = 0.7, False

    g_seen = []
    real = supernet.gumbel_softmax  # F.gumbel_softmax with its noise from the CPU generator
    monkeypatch.setattr(supernet, "gumbel_softmax", lambda *a, **k: g_seen.append(real(*a, **k)) or g_seen[-1])
    calls = []
    real_op = getattr(F, op)
    monkeypatch.setattr(F, op, lambda *a, **k: calls.append(1) or real_op(*a, **k))
    out = q(x)
    assert len(calls) == 1  # one convolution / matmul for all five formats
    g = g_seen[0]
    kwargs = {"padding": 1} if kind == "conv" else {}
    branches = [real_op(x, quant(q.weight), **kwargs) for quant in q.quantizers]
    expected = sum(g[k] * b for k, b in enumerate(branches))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_hard_sample_is_one_hot_with_soft_gradient():
    torch.manual_seed(1)
    layer = torch.nn.Sequential(torch.nn.Linear(6, 3, bias=False))
    supernet.to_supernet(layer, DEFAULT_CANDIDATES)
    q = layer[0]
    q.tau, q.hard = 1.0, True
    g = F.gumbel_softmax(q.alpha, tau=1.0, hard=True)
    assert sorted(g.tolist()) == [0.0, 0.0, 0.0, 0.0, 1.0]
    q(torch.rand(4, 6)).sum().backward()
    # straight-through: every candidate's logit gets a gradient, not only the chosen one
    assert (q.alpha.grad != 0).sum() >= 2


def test_state_dict_keys_are_the_plain_models():
    plain = Spikformer(CFG)
    keys = set(plain.state_dict())
    net = supernet.to_supernet(Spikformer(CFG), DEFAULT_CANDIDATES)
    names = list(supernet.weight_layers(net))
    assert set(net.state_dict()) == keys | {f"{n}.alpha" for n in names}
    net.load_state_dict({**net.state_dict(), **plain.state_dict()})


def test_fixed_formats_and_argmax():
    torch.manual_seed(2)
    model = Spikformer(CFG)
    names = list(supernet.weight_layers(model))
    supernet.apply_formats(model, {n: Candidate("uniform", 2) for n in names})
    w = model.sps.conv1.quant_weight()
    assert len(torch.unique(w)) <= 4  # a 2-bit grid
    net = supernet.to_supernet(Spikformer(CFG), DEFAULT_CANDIDATES)
    for m in supernet.searchable(net).values():
        m.alpha.data = torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0])
    supernet.set_argmax(net, True)
    assert all(m.choice == 3 for m in supernet.searchable(net).values())
    x = torch.rand(2, 2, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)  # argmax mode is deterministic


def test_expected_energy_is_probability_weighted():
    net = supernet.to_supernet(Spikformer(CFG), DEFAULT_CANDIDATES)
    n = len(supernet.searchable(net))
    energy = torch.arange(n * 5, dtype=torch.float64).reshape(n, 5)
    uniform = supernet.expected_energy(net, energy)
    assert uniform.item() == pytest.approx(energy.mean(1).sum().item())
    uniform.backward()
    assert all(m.alpha.grad is not None for m in supernet.searchable(net).values())
