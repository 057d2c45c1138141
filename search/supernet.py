"""The supernet: every conv / linear layer weighs all candidate weight formats at once.

A searchable layer holds its fp32 weight w, one fake quantizer Q_k per candidate format k, and
selection logits alpha [K]. In search mode each forward draws Gumbel-softmax weights

    g = softmax((alpha + G) / tau),  G ~ Gumbel(0, 1)     (hard: one-hot of argmax, soft gradient)

and, because a convolution or matmul is linear in its weight,

    sum_k g_k * layer(x; Q_k(w))  ==  layer(x; sum_k g_k * Q_k(w))

so a step runs one convolution per layer, not K. In fixed mode the layer uses one format only
(QAT, export). The layers keep the names and state-dict keys of the plain model (`sps.conv0`
keeps `sps.conv0.weight`; `sps.conv0.alpha` is added), so an fp32 checkpoint loads into a
supernet and a plan's keys are the model's layer names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hqflow.config import ModelConfig
from hqflow.numerics import DEFAULT_CANDIDATES, Candidate
from hqflow.search.quantizers import make_quantizer, straight_through


def gumbel_softmax(alpha: Tensor, tau: float, hard: bool) -> Tensor:
    """F.gumbel_softmax(alpha, tau, hard) over alpha [K], its Gumbel noise drawn from torch's CPU generator
    whatever alpha's device: bit for bit F.gumbel_softmax on the CPU (the same draws and ops), and on a
    GPU the same noise as on the CPU, restored by a checkpoint's CPU RNG state, equal on every rank."""
    gumbels = -torch.empty(alpha.shape, dtype=alpha.dtype).exponential_().log()  # ~Gumbel(0, 1)
    y_soft = ((alpha + gumbels.to(alpha.device)) / tau).softmax(0)
    if not hard:
        return y_soft
    index = y_soft.max(0, keepdim=True)[1]  # straight through
    return torch.zeros_like(alpha).scatter_(0, index, 1.0) - y_soft.detach() + y_soft


class _Quantized:
    """Shared state and weight logic of QuantConv2d / QuantLinear (a mixin over the torch layer)."""

    candidates: tuple[Candidate, ...]
    choice: int | None  # fixed format index, or None in search mode
    tau: float
    hard: bool
    learn_alpha: bool  # True: gradient to alpha only (alpha step); False: to the weight only

    def _setup(self, candidates: tuple[Candidate, ...], choice: int | None) -> None:
        self.candidates = tuple(candidates)
        self.quantizers = nn.ModuleList(make_quantizer(c) for c in self.candidates)
        # a layer fixed to one format (QAT) never uses alpha: no gradient, which DDP needs to know
        self.alpha = nn.Parameter(torch.zeros(len(self.candidates)), requires_grad=choice is None)
        self.choice = choice
        self.tau, self.hard, self.learn_alpha = 1.0, False, True

    def probabilities(self) -> Tensor:
        """Selection probabilities softmax(alpha) [K]."""
        return self.alpha.softmax(0)

    def quant_weight(self) -> Tensor:
        """The weight the layer computes with: Q_choice(w), or the Gumbel mixture sum_k g_k Q_k(w).

        The mixture's gradient goes to alpha (through g) when learn_alpha, else to w: under the
        straight-through estimator d(sum_k g_k Q_k(w))/dw = sum_k g_k = 1, so the weight step
        passes the gradient straight through, with no autograd node per candidate.
        """
        if torch.is_autocast_enabled(self.weight.device.type):  # mixed precision never reaches Q(w) or g: fp32
            with torch.autocast(self.weight.device.type, enabled=False):
                return self._quant_weight()
        return self._quant_weight()

    def _quant_weight(self) -> Tensor:
        if self.choice is not None:
            return self.quantizers[self.choice](self.weight)
        with torch.no_grad():
            branches = [q(self.weight) for q in self.quantizers]
        if self.learn_alpha:
            g = gumbel_softmax(self.alpha, self.tau, self.hard)
            return sum(g[k] * b for k, b in enumerate(branches))
        with torch.no_grad():
            g = gumbel_softmax(self.alpha, self.tau, self.hard)
            mixed = sum(g[k] * b for k, b in enumerate(branches))
        return straight_through(self.weight, mixed)


class QuantConv2d(_Quantized, nn.Conv2d):
    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.quant_weight(), self.bias)


class QuantLinear(_Quantized, nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.quant_weight(), self.bias)


def _convert(layer: nn.Module, candidates: tuple[Candidate, ...], choice: int | None) -> nn.Module:
    if isinstance(layer, _Quantized):
        layer._setup(candidates, choice)
        return layer
    if isinstance(layer, nn.Conv2d):
        new = QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                          layer.padding, layer.dilation, layer.groups, layer.bias is not None)
    else:
        new = QuantLinear(layer.in_features, layer.out_features, layer.bias is not None)
    new.load_state_dict(layer.state_dict())
    new._setup(candidates, choice)
    return new


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's conv / linear layers by name, in execution order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def to_supernet(model: nn.Module, candidates: tuple[Candidate, ...]) -> nn.Module:
    """Make every conv / linear layer searchable over `candidates` (in place; returns model)."""
    for name, layer in weight_layers(model).items():
        _replace(model, name, _convert(layer, candidates, None))
    return model


def apply_formats(model: nn.Module, formats: dict[str, Candidate]) -> nn.Module:
    """Fix each layer to its format (QAT); `formats` must name every layer (in place)."""
    for name, layer in weight_layers(model).items():
        _replace(model, name, _convert(layer, (formats[name],), 0))
    return model


def random_quantized_model(model_cfg: ModelConfig, formats: tuple[Candidate, ...] | None = None, seed: int = 0,
                           gamma: tuple[float, float] = (0.5, 1.5), beta: tuple[float, float] = (-0.2, 0.6),
                           mean: tuple[float, float] | None = None) -> nn.Module:
    """An untrained Spikformer in eval mode, as a QAT run would export it, for tests and benchmarks of
    the integer model (its exactness and speed do not depend on training).

    The i-th weight layer gets formats[i % len(formats)]; by default the five DEFAULT_CANDIDATES
    starting after fp32 (an fp32 first layer fed by int16 event counts would need a membrane wider
    than 64 bits at T 16, which the lowering refuses). BN statistics are drawn uniformly: gamma,
    beta, running_mean (left at 0 when mean is None) and running_var in [0.05, 0.5].
    """
    from hqflow.search.model import Spikformer

    if formats is None:
        formats = DEFAULT_CANDIDATES[1:] + DEFAULT_CANDIDATES[:1]
    torch.manual_seed(seed)
    model = Spikformer(model_cfg)
    apply_formats(model, {n: formats[i % len(formats)] for i, n in enumerate(weight_layers(model))})
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(*gamma)
                m.bias.uniform_(*beta)
                if mean is not None:
                    m.running_mean.uniform_(*mean)
                m.running_var.uniform_(0.05, 0.5)
    return model.eval()


def searchable(model: nn.Module) -> dict[str, _Quantized]:
    return {n: m for n, m in model.named_modules() if isinstance(m, _Quantized)}


def set_sampling(model: nn.Module, tau: float, hard: bool, learn_alpha: bool = True) -> None:
    """Gumbel temperature, hard (one-hot, straight-through) or soft samples, alpha trainable or not."""
    for m in searchable(model).values():
        m.tau, m.hard, m.learn_alpha = tau, hard, learn_alpha


def set_argmax(model: nn.Module, on: bool) -> None:
    """Evaluate the derived plan (each layer's most probable format) instead of sampling."""
    for m in searchable(model).values():
        m.choice = int(m.alpha.argmax()) if on else None


def expected_energy(model: nn.Module, energy_pj: Tensor) -> Tensor:
    """sum over layers of sum_k softmax(alpha)_k * E[layer, k]; energy_pj [L, K] in layer order."""
    probs = torch.stack([m.probabilities() for m in searchable(model).values()])
    return (probs * energy_pj).sum()


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [m.alpha for m in searchable(model).values()]


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    alphas = {id(a) for a in alpha_parameters(model)}
    return [p for p in model.parameters() if id(p) not in alphas]
