"""The Spikformer: shapes, stable layer names, the official size, and the LIF update."""

import pytest
import torch

from hqflow.config import ModelConfig, load_config
from hqflow.search.layers import lif
from hqflow.search.model import Spikformer, count_parameters, quant_layers, spike_rates

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_tiny_forward_shapes_and_names():
    cfg = load_config(REPO / "configs" / "tiny.yaml").replace("model", num_classes=10).model
    model = Spikformer(cfg)
    logits = model(torch.rand(3, 4, 2, cfg.img_size, cfg.img_size))
    assert logits.shape == (3, cfg.num_classes)
    names = list(quant_layers(model))
    assert names[:5] == ["sps.conv0", "sps.conv1", "sps.conv2", "sps.conv3", "sps.rpe"]
    block = ["attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2"]
    assert names[5:] == [f"blocks.{i}.{n}" for i in range(cfg.depth) for n in block] + ["head"]


def test_tokens_and_spikes():
    cfg = ModelConfig(img_size=32, embed_dim=32, num_heads=2, depth=1, pools=(True, True, True, False), num_classes=10)
    model = Spikformer(cfg)
    tokens = model.run(torch.rand(1, 2, 2, 32, 32) * 3, until="tokens")  # frames [B, T, 2, H, W]
    assert tokens.shape == (2, 1, 16, 32)  # [T, B, N, D]: 32 / 2^3 = 4 -> 16 tokens
    # LIF outputs spikes; the RPE residual makes the tokens integers in {0, 1, 2}
    assert set(tokens.unique().tolist()) <= {0.0, 1.0, 2.0}
    rates = spike_rates(model, torch.rand(1, 2, 2, 32, 32) * 3)
    assert "sps.lif0" in rates and "blocks.0.attn.attn_lif" in rates
    assert all(0.0 <= r <= 1.0 for r in rates.values())


def test_paper_config_one_sample():
    cfg = load_config(REPO / "configs" / "paper.yaml").replace("model", num_classes=10).model
    model = Spikformer(cfg).eval()
    assert cfg.num_tokens == 64
    # the official CIFAR10-DVS Spikformer has 2.57 M parameters; it keeps biases on fc1, fc2 and
    # proj that the BN after them makes redundant (2 blocks x 1,536 of them)
    assert abs(count_parameters(model) + 2 * 1536 - 2.57e6) < 0.01e6
    with torch.no_grad():
        tokens = model.run(torch.rand(1, 1, 2, 128, 128), until="tokens")  # one time step of one sample
    assert tokens.shape == (1, 1, 64, 256)


def test_forward_resets_state():
    cfg = ModelConfig(img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False), num_classes=10)
    model = Spikformer(cfg).eval()
    x = torch.rand(2, 3, 2, 16, 16) * 2
    with torch.no_grad():
        first, second = model(x), model(x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def lif_reference(x_seq, tau, v_th):
    """H = V + (X - V) / tau;  S = [H >= V_th];  V = H (1 - S)  (hard reset to 0)."""
    v = torch.zeros_like(x_seq[0])
    spikes = []
    for x in x_seq:
        h = v + (x - v) / tau
        s = (h >= v_th).float()
        v = h * (1 - s)
        spikes.append(s)
    return torch.stack(spikes)


@pytest.mark.parametrize("v_th", [1.0, 0.5])
def test_spikingjelly_lif_matches_reference(v_th):
    cfg = ModelConfig(img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False))
    node = lif(cfg, v_threshold=v_th)
    g = torch.Generator().manual_seed(0)
    x_seq = torch.randn(8, 5, 7, generator=g) * 2
    # exact thresholds: values that hit H == V_th exactly must spike
    x_seq[0, 0, 0] = 2 * v_th
    spikes = node(x_seq)
    torch.testing.assert_close(spikes, lif_reference(x_seq, 2.0, v_th), rtol=0, atol=0)
    assert spikes[0, 0, 0] == 1.0
