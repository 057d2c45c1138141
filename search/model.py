"""The torch model of a spiking transformer, built and run from its topology (hqflow.models.topology_of:
the Spikformer, Zhou et al., ICLR 2023, as the official CIFAR10-DVS model builds it, below; or the
Spike-driven Transformer, hqflow/topology_sdt.py).

Each step's modules are created in execution order, and the forward pass runs the steps in that order,
each by its op's TorchOp (search/layers.py: its modules and forward). Plain containers hold the modules
under their official names (`sps.conv0`, `blocks.0.attn.q_bn`, ...), which are the state_dict keys.

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
detach_reset, run by search/lif.py's fused LIFNode (a subclass, bitwise the same numbers, faster on
CPU). Each forward pass starts from a reset membrane, so a caller never has to reset.
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
from hqflow.search.layers import TORCH_OPS  # noqa: E402
from hqflow.models import topology_of  # noqa: E402
from hqflow.topology import Topology  # noqa: E402


class Spikformer(nn.Module):
    """Frames [B, T, 2, H, W] (event counts) -> logits [B, classes], built and run from its topology: the
    Spikformer or, with model.family sdt, the Spike-driven Transformer (hqflow.models)."""

    def __init__(self, cfg: ModelConfig, topology: Topology | None = None):
        """`topology` defaults to topology_of(cfg); cfg gives the LIF neurons' tau."""
        super().__init__()
        if cfg.num_classes < 1:  # 0 means "the data set's": loading the data set resolves it
            raise UserError(f"model.num_classes: {cfg.num_classes}; set it, or let train / search take the data set's")
        self.cfg = cfg
        self.topology = topology_of(cfg) if topology is None else topology
        missing = [s.name for s in self.topology.steps if s.op not in TORCH_OPS]
        if missing:
            raise ValueError(f"the torch Spikformer has no forward for step {missing[0]!r} "
                             f"(op {self.topology.step(missing[0]).op!r}); add its TorchOp to search/layers.py")
        created = set()
        for step in self.topology.steps:  # creation order = execution order (it fixes the RNG draws)
            for name, module in zip(step.modules, TORCH_OPS[step.op].modules(step, cfg)):
                if name not in created:  # the pools share one module
                    parent, _, leaf = name.rpartition(".")
                    self._container(parent).add_module(leaf, module)
                    created.add(name)
        self._neurons = [m for m in self.modules() if isinstance(m, neuron.BaseNode)]
        # after each step, drop the outputs that no later step reads
        last_use = {name: i for i, step in enumerate(self.topology.steps) for name in step.inputs}
        self._done = [tuple(n for n in dict.fromkeys(step.inputs) if last_use[n] == i)
                      for i, step in enumerate(self.topology.steps)]
        self.apply(_init_weights)

    def _container(self, path: str) -> nn.Module:
        """The module at dotted `path` ("" the model), plain containers made on the way (sps, blocks.0.attn, ...)."""
        module = self
        for part in filter(None, path.split(".")):
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        return module

    def reset(self) -> None:
        """Set every membrane back to its reset value (forward does this itself)."""
        for m in self._neurons:
            m.reset()

    def run(self, frames: Tensor, until: str | None = None, record: dict[str, Tensor] | None = None) -> Tensor:
        """The output of step `until` (default: the last, the logits [B, classes]) for frames
        [B, T, 2, H, W]; intermediate outputs are time-major ([T, B, ...], search/layers.py). `record`:
        the outputs of the steps it names as keys are stored into it."""
        self.reset()
        values = {}
        for i, step in enumerate(self.topology.steps):
            args = [values[n] for n in step.inputs] if step.inputs else [frames]  # no inputs: the frames
            out = TORCH_OPS[step.op].forward(self, step, *args)
            if record is not None and step.name in record:
                record[step.name] = out
            if step.name == until:
                return out
            values[step.name] = out
            for name in self._done[i]:
                del values[name]
        if until is not None:
            raise KeyError(f"the Spikformer has no step {until!r}")
        return out

    def forward(self, frames: Tensor) -> Tensor:
        return self.run(frames)


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
