"""The Spikformer's topology, described once: every step of one inference, in execution order.

`spikformer(cfg)` derives it from a ModelConfig. The torch model (search/model.py) creates its
modules and runs its forward pass from it, the cost model (hqflow/cost.py) counts MACs and
weights from it, the lowering (export/lower.py) walks it to build the DeployGraph, and the
comparison (export/compare.py) finds the LIF module behind each spiking node in it. A change of
the model (another depth, pool pattern, a tokenizer without RPE) is a change here only.

Each step is one DeployGraph node: `name` (the node name; for a weight layer also the torch
module's name, the state_dict prefix and the plan's key), `op` (the DeployGraph op), `inputs`
(the steps it reads), `shape` (its output for one sample and one time step). Shapes below are
per step: [C, H, W] for feature maps, [N, C] for N tokens of C channels; D = embed_dim,
r = mlp_ratio, N = grid^2 tokens, T time steps around everything.

    input                [2, S, S]     event counts (S = img_size)
    sps.conv0   conv3x3  2 -> D/8      BN sps.bn0, LIF sps.lif0   [-> sps.pool0  MaxPool 3/2/1]
    sps.conv1   conv3x3  D/8 -> D/4    BN sps.bn1, LIF sps.lif1   [-> sps.pool1]
    sps.conv2   conv3x3  D/4 -> D/2    BN sps.bn2, LIF sps.lif2   [-> sps.pool2]
    sps.conv3   conv3x3  D/2 -> D      BN sps.bn3, LIF sps.lif3   [-> sps.pool3]   = x  [D, G, G]
    sps.rpe     conv3x3  D -> D        BN sps.rpe_bn, LIF sps.rpe_lif    reads x
    sps.add     x + sps.rpe                                              [D, G, G], values 0..2
    tokens      [D, G, G] -> [N, D]    (token n = pixel n in row-major order)
    for block i in 0 .. depth-1 (p = blocks.i), x = the tokens or the previous block's add2:
      p.attn.q, p.attn.k, p.attn.v   linear D -> D, BN p.attn.q_bn ..., LIF p.attn.q_lif ...
      p.attn.attn  SSA per head h: LIF_attn_threshold((q_h @ k_h^T @ v_h) * attn_scale), LIF p.attn.attn_lif
      p.attn.proj  linear D -> D, BN p.attn.proj_bn, LIF p.attn.proj_lif
      p.add1       x + p.attn.proj
      p.mlp.fc1    linear D -> rD, BN p.mlp.fc1_bn, LIF p.mlp.fc1_lif        reads p.add1
      p.mlp.fc2    linear rD -> D, BN p.mlp.fc2_bn, LIF p.mlp.fc2_lif
      p.add2       p.add1 + p.mlp.fc2
    head        mean over tokens -> linear D -> classes (with bias) -> mean over T   [classes]

The layers that a BN follows carry no bias (the BN's shift absorbs it). The LIFs all share
model.tau and reset; their thresholds are model.v_threshold, the attention LIF's attn_threshold.
The max pools are one stateless torch module, `sps.maxpool`. The windows (conv 3x3 stride 1 padding
1, max pool 3x3 stride 2 padding 1) are those of the conv_lif and maxpool ops (`hqflow.ops`, the
geometry their backends implement). Core module: no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hqflow.config import ModelConfig
from hqflow.ops import OPS, Window

GROUPS = ("tokenizer", "attention", "mlp", "head")  # the cost model's groups of weight layers
INPUT = "input"
TOKENS = "tokens"
MAXPOOL_MODULE = "sps.maxpool"
CONV_WINDOW: Window = OPS["conv_lif"].window  # the tokenizer's convolutions (same size out)
POOL_WINDOW: Window = OPS["maxpool"].window  # its max pools (half size out, rounded up)
LINEAR_WINDOW = Window(kernel_size=1, stride=1, padding=0)  # a linear layer as a window: one position


@dataclass(frozen=True, kw_only=True)
class Step:
    """One node of the computation: `shape` is its output for one sample and one time step."""

    name: str
    op: str  # the DeployGraph op: input, conv_lif, linear_lif, maxpool, add, tokens, ssa, head
    inputs: tuple[str, ...]
    shape: tuple[int, ...]

    @property
    def modules(self) -> tuple[str, ...]:
        """The torch modules this step runs, by name, in creation order."""
        return ()

    @property
    def neurons(self) -> dict[str, float]:
        """The LIF module whose spikes the step outputs -> its threshold (empty: it outputs no spikes)."""
        return {}


@dataclass(frozen=True, kw_only=True)
class WeightLayer(Step):
    """A 3x3 convolution or a linear layer followed by BN and LIF (op conv_lif / linear_lif), or the head.

    A conv's weight is [c_out, c_in, kernel_size, kernel_size], a linear's [c_out, c_in]. Its op counts its
    weights (`params`) and its outputs per channel and time step (`positions`: pixels, tokens, 1 for the head,
    which averages the tokens first): Op.weight_counts.
    """

    c_in: int
    c_out: int
    kernel_size: int  # side of the square window (1 for linear)
    stride: int
    padding: int
    group: str  # one of GROUPS
    bias: bool
    bn: str | None  # the BN module after it (None: the head)
    lif: str | None  # the LIF module after the BN (None: the head)
    theta: float | None  # that LIF's threshold
    pool: str | None  # the maxpool step that follows the LIF, if any

    @property
    def source(self) -> str:
        return self.inputs[0]

    @property
    def window(self) -> Window:
        """The convolution's window (a linear layer's is 1x1, stride 1, no padding)."""
        return Window(self.kernel_size, self.stride, self.padding)

    @property
    def taps(self) -> int:
        """Weights per input channel and output channel: kernel_size^2."""
        return self.kernel_size * self.kernel_size

    @property
    def params(self) -> int:
        """Number of weights (the bias excluded)."""
        return OPS[self.op].weight_counts(self)[0]

    @property
    def positions(self) -> int:
        """Outputs per output channel and time step: a MAC count is T * params * positions."""
        return OPS[self.op].weight_counts(self)[1]

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(module for module in (self.name, self.bn, self.lif) if module is not None)

    @property
    def neurons(self) -> dict[str, float]:
        return {} if self.lif is None else {self.lif: self.theta}


@dataclass(frozen=True, kw_only=True)
class MaxPool(Step):
    """Max pooling of spikes over square windows (an OR), by `module` (stateless, shared)."""

    module: str
    kernel_size: int
    stride: int
    padding: int

    @property
    def window(self) -> Window:
        return Window(self.kernel_size, self.stride, self.padding)

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.module,)


@dataclass(frozen=True, kw_only=True)
class LifStep(Step):
    """A step whose one torch module is the LIF `lif` (threshold `threshold`) that gives its spikes."""

    lif: str
    threshold: float

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.lif,)

    @property
    def neurons(self) -> dict[str, float]:
        return {self.lif: self.threshold}


@dataclass(frozen=True, kw_only=True)
class Attention(LifStep):
    """Spiking self-attention on spikes q, k, v [N, D] (inputs in that order), no softmax.

    Per head h (channels h * head_dim ...): y_h = (q_h @ k_h^T @ v_h) * scale [N, head_dim];
    the heads concatenated [N, D] charge the LIF `lif` with threshold `threshold` (model.attn_threshold).
    """

    num_heads: int
    head_dim: int  # D / num_heads
    num_tokens: int
    scale: float  # model.attn_scale


@dataclass(frozen=True)
class Topology:
    """The steps of one Spikformer in execution order (module docstring), and its sizes."""

    img_size: int
    in_channels: int
    embed_dim: int
    num_classes: int
    depth: int
    grid: int  # side of the token grid
    steps: tuple[Step, ...]

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    @property
    def layers(self) -> tuple[WeightLayer, ...]:
        """The weight layers (conv3x3 and linear, the head last), in execution order."""
        return tuple(step for step in self.steps if isinstance(step, WeightLayer))

    @property
    def attentions(self) -> tuple[Attention, ...]:
        """The SSA step of each block, block 0 first."""
        return tuple(step for step in self.steps if isinstance(step, Attention))

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"the Spikformer has no step {name!r}")

    def lif_modules(self) -> dict[str, str]:
        """Spiking step name -> the LIF module whose spikes it outputs."""
        return {step.name: lif for step in self.steps for lif in step.neurons}

    def lif_thresholds(self) -> dict[str, float]:
        """LIF module name -> its threshold, in creation order."""
        return {lif: theta for step in self.steps for lif, theta in step.neurons.items()}


class Walk:
    """Appends steps in execution order; each method returns the name of the step it added."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.steps: list[Step] = []

    def add(self, step: Step) -> str:
        self.steps.append(step)
        return step.name

    def shape(self, name: str) -> tuple[int, ...]:
        return next(step for step in self.steps if step.name == name).shape

    def conv(self, name: str, bn: str, lif: str, source: str, c_out: int, pool: str | None) -> str:
        """A convolution (CONV_WINDOW) with BN and LIF on the output of step `source`."""
        c_in, side, _ = self.shape(source)
        side = CONV_WINDOW.out(side)
        return self.add(WeightLayer(
            name=name, op="conv_lif", inputs=(source,), shape=(c_out, side, side), c_in=c_in,
            c_out=c_out, **asdict(CONV_WINDOW),
            group="tokenizer", bias=False, bn=bn, lif=lif, theta=self.cfg.v_threshold, pool=pool))

    def maxpool(self, name: str, source: str, module: str = MAXPOOL_MODULE) -> str:
        """Max pooling (POOL_WINDOW) of the spikes of step `source`, by the torch module `module`."""
        channels, side, _ = self.shape(source)
        side = POOL_WINDOW.out(side)
        return self.add(MaxPool(name=name, op="maxpool", inputs=(source,), shape=(channels, side, side),
                                module=module, **asdict(POOL_WINDOW)))

    def linear(self, name: str, group: str, source: str, c_out: int) -> str:
        """A linear layer with BN and LIF (`name`_bn, `name`_lif) on the tokens of step `source` [N, c_in]."""
        tokens, c_in = self.shape(source)
        return self.add(WeightLayer(
            name=name, op="linear_lif", inputs=(source,), shape=(tokens, c_out), c_in=c_in,
            c_out=c_out, **asdict(LINEAR_WINDOW), group=group, bias=False, bn=f"{name}_bn",
            lif=f"{name}_lif", theta=self.cfg.v_threshold, pool=None))

    def head(self, source: str) -> str:
        """The classifier on the tokens of step `source`: their mean, then a linear layer with bias."""
        _, c_in = self.shape(source)
        return self.add(WeightLayer(
            name="head", op="head", inputs=(source,), shape=(self.cfg.num_classes,), c_in=c_in,
            c_out=self.cfg.num_classes, **asdict(LINEAR_WINDOW), group="head", bias=True, bn=None,
            lif=None, theta=None, pool=None))


def spikformer(cfg: ModelConfig) -> Topology:
    """The topology of the Spikformer that `cfg` describes (see the module docstring)."""
    walk = Walk(cfg)
    dim = cfg.embed_dim
    stream = walk.add(Step(name=INPUT, op="input", inputs=(), shape=(cfg.in_channels, cfg.img_size, cfg.img_size)))
    for stage, c_out in enumerate((dim // 8, dim // 4, dim // 2, dim)):
        pool = f"sps.pool{stage}" if cfg.pools[stage] else None
        stream = walk.conv(f"sps.conv{stage}", f"sps.bn{stage}", f"sps.lif{stage}", stream, c_out, pool)
        if pool is not None:
            stream = walk.maxpool(pool, stream)
    rpe = walk.conv("sps.rpe", "sps.rpe_bn", "sps.rpe_lif", stream, dim, None)
    stream = walk.add(Step(name="sps.add", op="add", inputs=(stream, rpe), shape=walk.shape(rpe)))
    _, grid, _ = walk.shape(stream)
    num_tokens = grid * grid
    stream = walk.add(Step(name=TOKENS, op="tokens", inputs=(stream,), shape=(num_tokens, dim)))
    for block in range(cfg.depth):
        prefix = f"blocks.{block}"
        qkv = tuple(walk.linear(f"{prefix}.attn.{part}", "attention", stream, dim) for part in ("q", "k", "v"))
        branch = walk.add(Attention(
            name=f"{prefix}.attn.attn", op="ssa", inputs=qkv, shape=(num_tokens, dim),
            num_heads=cfg.num_heads, head_dim=dim // cfg.num_heads, num_tokens=num_tokens, scale=cfg.attn_scale,
            threshold=cfg.attn_threshold, lif=f"{prefix}.attn.attn_lif"))
        branch = walk.linear(f"{prefix}.attn.proj", "attention", branch, dim)
        stream = walk.add(Step(name=f"{prefix}.add1", op="add", inputs=(stream, branch), shape=(num_tokens, dim)))
        branch = walk.linear(f"{prefix}.mlp.fc1", "mlp", stream, dim * cfg.mlp_ratio)
        branch = walk.linear(f"{prefix}.mlp.fc2", "mlp", branch, dim)
        stream = walk.add(Step(name=f"{prefix}.add2", op="add", inputs=(stream, branch), shape=(num_tokens, dim)))
    walk.head(stream)
    return Topology(cfg.img_size, cfg.in_channels, dim, cfg.num_classes, cfg.depth, grid, tuple(walk.steps))
