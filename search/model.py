"""Spikformer (Zhou et al., ICLR 2023), as the official CIFAR10-DVS model builds it.

Shapes: frames enter as [B, T, 2, H, W] (the data loader's layout) and run time-major inside:
the tokenizer works on [T, B, C, H, W], the encoder on tokens [T, B, N, C], the head returns
logits [B, classes].

    SPS:    4 x (Conv3x3 -> BN -> LIF [-> MaxPool 3/2/1]), channels 2 -> D/8 -> D/4 -> D/2 -> D;
            x = x + LIF(BN(RPEConv3x3(x)))
    Block:  x = x + SSA(x);  x = x + MLP(x)
    SSA:    q, k, v = LIF(BN(Linear(x)));  y = LIF_0.5((q @ k^T @ v) * scale);  LIF(BN(proj(y)))
    MLP:    LIF(BN(fc2(LIF(BN(fc1(x))))))
    Head:   mean over tokens -> Linear(D, classes) -> mean over T

Every convolution and linear layer has a stable name (`sps.conv0`, `sps.rpe`, `blocks.0.attn.q`,
`blocks.0.mlp.fc2`, `head`, ...): these are the keys of the quantization plan. The layers that a
BN follows carry no bias (the BN's shift absorbs it); the head keeps its bias.

Neurons are spikingjelly's multi-step LIF with tau = 2, hard reset to 0, decay_input and
detach_reset. Each forward pass starts from a reset membrane, so a caller never has to reset.
"""

from __future__ import annotations

import logging

import torch

# torch logs a warning about the missing GPU compiler when spikingjelly imports; it is noise on CPU.
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)

from spikingjelly.activation_based import neuron  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from hqflow.config import ModelConfig  # noqa: E402
from hqflow.errors import UserError  # noqa: E402


def lif(cfg: ModelConfig, v_threshold: float | None = None) -> neuron.LIFNode:
    """Multi-step LIF: H = V + (X - V) / tau;  S = H >= V_th;  V = H * (1 - S)."""
    return neuron.LIFNode(
        tau=float(cfg.tau),
        v_threshold=cfg.v_threshold if v_threshold is None else v_threshold,
        v_reset=0.0,
        decay_input=True,
        detach_reset=True,
        step_mode="m",
    )


def _per_step(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a stateless layer to a time-major tensor [T, B, ...] by folding T into the batch."""
    y = module(x.flatten(0, 1))
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


class SPS(nn.Module):
    """Spiking patch splitting: [T, B, 2, H, W] frames -> [T, B, N, D] tokens."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.embed_dim
        channels = [cfg.in_channels, d // 8, d // 4, d // 2, d]
        for i in range(4):
            setattr(self, f"conv{i}", nn.Conv2d(channels[i], channels[i + 1], 3, 1, 1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(channels[i + 1]))
            setattr(self, f"lif{i}", lif(cfg))
        self.pools = tuple(cfg.pools)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.rpe = nn.Conv2d(d, d, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(d)
        self.rpe_lif = lif(cfg)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(4):
            conv, bn, neurons = getattr(self, f"conv{i}"), getattr(self, f"bn{i}"), getattr(self, f"lif{i}")
            x = neurons(_per_step(lambda z: bn(conv(z)), x))
            if self.pools[i]:
                x = _per_step(self.maxpool, x)
        x = x + self.rpe_lif(_per_step(lambda z: self.rpe_bn(self.rpe(z)), x))
        return x.flatten(3).transpose(2, 3).contiguous()  # [T, B, N, D]


def _token_bn(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    """BatchNorm1d over the channel axis of tokens [T, B, N, C]."""
    return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class SSA(nn.Module):
    """Spiking self-attention: no softmax, spikes in, spikes out, on [T, B, N, D].

    y = (q @ k^T @ v) * scale per head, then an LIF with threshold attn_threshold (0.5).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.scale = cfg.attn_scale
        for name in ("q", "k", "v"):
            setattr(self, name, nn.Linear(d, d, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm1d(d))
            setattr(self, f"{name}_lif", lif(cfg))
        self.attn_lif = lif(cfg, v_threshold=cfg.attn_threshold)
        self.proj = nn.Linear(d, d, bias=False)
        self.proj_bn = nn.BatchNorm1d(d)
        self.proj_lif = lif(cfg)

    def _heads(self, name: str, x: Tensor) -> Tensor:
        """Spiking q, k or v: [T, B, N, D] -> [T, B, heads, N, D / heads]."""
        s = getattr(self, f"{name}_lif")(_token_bn(getattr(self, f"{name}_bn"), getattr(self, name)(x)))
        t, b, n, d = s.shape
        return s.reshape(t, b, n, self.num_heads, d // self.num_heads).transpose(2, 3)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._heads("q", x), self._heads("k", x), self._heads("v", x)
        y = (q @ k.transpose(-2, -1) @ v) * self.scale  # [T, B, heads, N, D / heads]
        y = self.attn_lif(y.transpose(2, 3).flatten(3))  # [T, B, N, D]
        return self.proj_lif(_token_bn(self.proj_bn, self.proj(y)))


class MLP(nn.Module):
    """fc1 D -> ratio*D -> BN -> LIF, fc2 -> D -> BN -> LIF, on [T, B, N, D]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, h = cfg.embed_dim, cfg.embed_dim * cfg.mlp_ratio
        self.fc1, self.fc1_bn, self.fc1_lif = nn.Linear(d, h, bias=False), nn.BatchNorm1d(h), lif(cfg)
        self.fc2, self.fc2_bn, self.fc2_lif = nn.Linear(h, d, bias=False), nn.BatchNorm1d(d), lif(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1_lif(_token_bn(self.fc1_bn, self.fc1(x)))
        return self.fc2_lif(_token_bn(self.fc2_bn, self.fc2(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = SSA(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(nn.Module):
    """Frames [B, T, 2, H, W] (event counts) -> logits [B, classes]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.num_classes < 1:  # 0 means "the data set's": loading the data set resolves it
            raise UserError(f"model.num_classes: {cfg.num_classes}; set it, or let train / search take the data set's")
        self.cfg = cfg
        self.sps = SPS(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self._neurons = [m for m in self.modules() if isinstance(m, neuron.BaseNode)]
        self.apply(_init_weights)

    def reset(self) -> None:
        """Set every membrane back to its reset value (forward does this itself)."""
        for m in self._neurons:
            m.reset()

    def forward(self, frames: Tensor) -> Tensor:
        self.reset()
        x = self.sps(frames.transpose(0, 1).float())  # [T, B, N, D]
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(2)).mean(0)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def quant_layers(model: Spikformer) -> dict[str, nn.Module]:
    """The model's convolution and linear layers by stable name, in execution order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def spike_rates(model: Spikformer, frames: Tensor) -> dict[str, float]:
    """Mean firing rate of every LIF layer on a batch [B, T, 2, H, W] (for reports)."""
    rates: dict[str, float] = {}
    hooks = [
        m.register_forward_hook(lambda mod, _i, out, name=name: rates.__setitem__(name, out.mean().item()))
        for name, m in model.named_modules()
        if isinstance(m, neuron.BaseNode)
    ]
    try:
        model(frames)
    finally:
        for h in hooks:
            h.remove()
    return rates
