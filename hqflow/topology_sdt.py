"""The Spike-driven Transformer's topology (Yao et al., NeurIPS 2023, "Spike-driven Transformer"; its
membrane-shortcut model, as the official code names its modules), described once like the Spikformer's
(hqflow/topology.py): every step of one inference, in execution order. Core module: no torch.

The residual path carries BN outputs, signed fixed-point values (the membrane shortcut), not spikes: a
layer whose output joins it is a conv_bn / linear_bn (no LIF), and each branch starts with a LIF of its
own (op lif). Shapes per step as in hqflow/topology.py; D = embed_dim, r = mlp_ratio.

    input                        [2, S, S]   event counts
    patch_embed.proj_conv        conv_lif  2 -> D/8     BN proj_bn,  LIF proj_lif   [-> patch_embed.pool]
    patch_embed.proj_conv1       conv_lif  D/8 -> D/4   BN proj_bn1, LIF proj_lif1  [-> patch_embed.pool1]
    patch_embed.proj_conv2       conv_lif  D/4 -> D/2   BN proj_bn2, LIF proj_lif2  [-> patch_embed.pool2]
    patch_embed.proj_conv3       conv_bn   D/2 -> D     BN proj_bn3 (no LIF)  [-> patch_embed.pool3] = x_feat
    patch_embed.proj_lif3        lif       spikes of x_feat
    patch_embed.rpe_conv         conv_bn   D -> D       BN rpe_bn
    patch_embed.add              x_feat + rpe
    tokens                       [D, G, G] -> [N, D]
    for block i (p = block.i), x the tokens or the previous block's add2:
      p.attn.shortcut_lif        lif of x
      p.attn.q_conv, k_conv, v_conv   linear_lif D -> D, BN q_bn ..., LIF q_lif ...
      p.attn.attn                sdsa: q AND LIF_attn_threshold(sum_n k AND v), LIF p.attn.talking_heads_lif
      p.attn.proj_conv           linear_bn D -> D, BN proj_bn
      p.add1                     x + proj
      p.mlp.fc1_lif              lif of add1
      p.mlp.fc1_conv             linear_lif D -> rD, BN fc1_bn, LIF fc2_lif (the official name)
      p.mlp.fc2_conv             linear_bn rD -> D, BN fc2_bn
      p.add2                     add1 + fc2
    head_lif                     lif of the last add2
    head                         mean over tokens -> linear D -> classes (with bias) -> mean over T

What hqflow changes from the paper's model: its 1x1 convolutions are linear layers over the tokens (the
same arithmetic); the attention's talking-heads LIF has the threshold model.attn_threshold (the paper's
0.5). The stage-3 max pool takes BN outputs, signed fixed-point values (the streaming hardware pools
spikes only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hqflow.config import ModelConfig
from hqflow.topology import (CONV_WINDOW, INPUT, LINEAR_WINDOW, TOKENS, LifStep, Step, Topology, WeightLayer,
                             Walk)

PREFIX = "patch_embed"


@dataclass(frozen=True, kw_only=True)
class Neuron(LifStep):
    """A LIF alone (op lif) on the residual path's fixed-point values: the torch module `lif`."""


@dataclass(frozen=True, kw_only=True)
class SpikeAttention(LifStep):
    """Spike-driven self-attention (op sdsa) on spikes q, k, v [N, D]: q AND LIF(sum_n k AND v), its LIF the
    torch module `lif` with threshold `threshold`."""


class SdtWalk(Walk):
    def conv_bn(self, name: str, bn: str, source: str, c_out: int, group: str = "tokenizer") -> str:
        c_in, side, _ = self.shape(source)
        side = CONV_WINDOW.out(side)
        return self.add(WeightLayer(
            name=name, op="conv_bn", inputs=(source,), shape=(c_out, side, side), c_in=c_in, c_out=c_out,
            **asdict(CONV_WINDOW), group=group, bias=False, bn=bn, lif=None, theta=None,
            pool=None))

    def linear_bn(self, name: str, bn: str, group: str, source: str, c_out: int) -> str:
        tokens, c_in = self.shape(source)
        return self.add(WeightLayer(
            name=name, op="linear_bn", inputs=(source,), shape=(tokens, c_out), c_in=c_in, c_out=c_out,
            **asdict(LINEAR_WINDOW), group=group, bias=False, bn=bn, lif=None, theta=None,
            pool=None))

    def linear_lif(self, name: str, bn: str, lif: str, group: str, source: str, c_out: int) -> str:
        tokens, c_in = self.shape(source)
        return self.add(WeightLayer(
            name=name, op="linear_lif", inputs=(source,), shape=(tokens, c_out), c_in=c_in, c_out=c_out,
            **asdict(LINEAR_WINDOW), group=group, bias=False, bn=bn, lif=lif,
            theta=self.cfg.v_threshold, pool=None))

    def neuron(self, name: str, source: str) -> str:
        return self.add(Neuron(name=name, op="lif", inputs=(source,), shape=self.shape(source), lif=name,
                               threshold=self.cfg.v_threshold))


def sdt(cfg: ModelConfig) -> Topology:
    """The topology of the Spike-driven Transformer that `cfg` describes (see the module docstring)."""
    walk = SdtWalk(cfg)
    dim = cfg.embed_dim
    stream = walk.add(Step(name=INPUT, op="input", inputs=(), shape=(cfg.in_channels, cfg.img_size, cfg.img_size)))
    for stage, c_out in enumerate((dim // 8, dim // 4, dim // 2)):
        suffix = str(stage) if stage else ""
        pool = f"{PREFIX}.pool{suffix}" if cfg.pools[stage] else None
        stream = walk.conv(f"{PREFIX}.proj_conv{suffix}", f"{PREFIX}.proj_bn{suffix}", f"{PREFIX}.proj_lif{suffix}",
                           stream, c_out, pool)
        if pool is not None:
            stream = walk.maxpool(pool, stream, module=f"{PREFIX}.maxpool")
    feat = walk.conv_bn(f"{PREFIX}.proj_conv3", f"{PREFIX}.proj_bn3", stream, dim)
    if cfg.pools[3]:  # the BN outputs pooled (signed fixed point: numerics.maxpool_int)
        feat = walk.maxpool(f"{PREFIX}.pool3", feat, module=f"{PREFIX}.maxpool3")
    spikes = walk.neuron(f"{PREFIX}.proj_lif3", feat)
    rpe = walk.conv_bn(f"{PREFIX}.rpe_conv", f"{PREFIX}.rpe_bn", spikes, dim)
    stream = walk.add(Step(name=f"{PREFIX}.add", op="add", inputs=(feat, rpe), shape=walk.shape(rpe)))
    _, grid, _ = walk.shape(stream)
    num_tokens = grid * grid
    stream = walk.add(Step(name=TOKENS, op="tokens", inputs=(stream,), shape=(num_tokens, dim)))
    for block in range(cfg.depth):
        p = f"block.{block}"
        x = walk.neuron(f"{p}.attn.shortcut_lif", stream)
        qkv = tuple(walk.linear_lif(f"{p}.attn.{part}_conv", f"{p}.attn.{part}_bn", f"{p}.attn.{part}_lif",
                                    "attention", x, dim) for part in "qkv")
        branch = walk.add(SpikeAttention(name=f"{p}.attn.attn", op="sdsa", inputs=qkv, shape=(num_tokens, dim),
                                         lif=f"{p}.attn.talking_heads_lif", threshold=cfg.attn_threshold))
        branch = walk.linear_bn(f"{p}.attn.proj_conv", f"{p}.attn.proj_bn", "attention", branch, dim)
        stream = walk.add(Step(name=f"{p}.add1", op="add", inputs=(stream, branch), shape=(num_tokens, dim)))
        x = walk.neuron(f"{p}.mlp.fc1_lif", stream)
        branch = walk.linear_lif(f"{p}.mlp.fc1_conv", f"{p}.mlp.fc1_bn", f"{p}.mlp.fc2_lif", "mlp", x,
                                 dim * cfg.mlp_ratio)
        branch = walk.linear_bn(f"{p}.mlp.fc2_conv", f"{p}.mlp.fc2_bn", "mlp", branch, dim)
        stream = walk.add(Step(name=f"{p}.add2", op="add", inputs=(stream, branch), shape=(num_tokens, dim)))
    walk.head(walk.neuron("head_lif", stream))
    return Topology(cfg.img_size, cfg.in_channels, dim, cfg.num_classes, cfg.depth, grid, tuple(walk.steps))
