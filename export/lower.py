"""Lowering: a trained Spikformer (fp32, or QAT with a plan) -> DeployGraph (integers only).

It walks the model's topology (`model.topology`, hqflow.topology): each step becomes the node of
the same name, op, inputs and shape, built by its op (hqflow.ops) through the lowering rule of the
op's torch side (search/layers.py TorchOp.lower: the BN and LIF folds, the attention's and the
head's constants) and this module's builder (the weights' formats and code tables):
    figures   the op (hqflow.ops, through ir.make_node) computes the node's output range
              (value_max), x_max (the largest input value), acc_bits and v_bits
The SSA product and its LIF are exact (`ssa`) for any attn_scale and attn_threshold > 0 (the
threshold attn_threshold / attn_scale is compared exactly, in rational arithmetic), max pooling
of spikes is an OR, the residual adds are integer adds, the head sums over tokens and steps.
Unquantized layers (an fp32 run) lower as 32-bit fixed point.

What the integer model implements, and what the lowering therefore refuses (a UserError naming the
config key or the module, never a graph that computes something else): LIF neurons with tau = 2,
decay_input, hard reset to 0 and a threshold > 0 (model.tau, model.v_threshold,
model.attn_threshold); an attention scale > 0 (model.attn_scale); 2 input channels, the ON and OFF
event counts of hqflow's frames (model.in_channels); finite weights and BN statistics; constants and
widths within 64 bits.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hqflow import numerics
from hqflow.config import Config
from hqflow.errors import UserError
from hqflow.io import replace_dir, require_complete
from hqflow.ir import DeployGraph, Node, make_node, validate
from hqflow.numerics import Candidate
from hqflow.ops import OPS
from hqflow.search.checkpoint import load_checkpoint
from hqflow.search.layers import TORCH_OPS
from hqflow.search.model import Spikformer
from hqflow.topology import Step

LIF_TAU = 2.0  # the integer LIF's charge H = (V + X) / 2 is a shift
INPUT_CHANNELS = 2  # hqflow's event frames: OFF and ON counts


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_semantics(model: Spikformer, cfg: Config) -> None:
    """Refuse a model whose semantics the integer model does not implement exactly (module docstring):
    the config's keys, then each LIF and attention module of the model's topology."""
    model_cfg = cfg.model
    if model_cfg.tau != LIF_TAU:
        raise UserError(f"model.tau: {model_cfg.tau}; the integer LIF implements tau = 2 only (its charge (V + X) / 2 "
                        "is a shift); retrain with model.tau 2")
    for key in ("v_threshold", "attn_threshold", "attn_scale"):
        if not _positive(getattr(model_cfg, key)):
            raise UserError(f"model.{key}: {getattr(model_cfg, key)!r}; the integer model needs a finite value > 0")
    if model_cfg.in_channels != INPUT_CHANNELS:
        raise UserError(f"model.in_channels: {model_cfg.in_channels}; the deployed input is hqflow's event frames "
                        f"[T, {INPUT_CHANNELS}, H, W] (OFF and ON counts)")
    if model_cfg.num_classes < 1:
        raise UserError(f"model.num_classes: {model_cfg.num_classes}; the head needs at least one class")
    if model.cfg != model_cfg:  # the graph records cfg; the lowering reads the model's topology (from model.cfg)
        raise ValueError(f"the model was built from another model config than the one given: {model.cfg} != "
                         f"{model_cfg}")
    modules = dict(model.named_modules())
    for name, theta in model.topology.lif_thresholds().items():
        module = modules.get(name)
        found = {key: getattr(module, key, None) for key in ("tau", "decay_input", "v_reset", "v_threshold")}
        found["type"] = type(module).__name__
        wanted = {"type": "LIFNode", "tau": LIF_TAU, "decay_input": True, "v_reset": 0.0, "v_threshold": theta}
        for key, value in wanted.items():
            if found[key] != value:
                raise UserError(f"module {name}: {key} {found[key]!r}; the integer LIF implements {key} {value!r}")


def _format(layer: nn.Module) -> tuple[Candidate, dict]:
    """The layer's deployed format and its quantizer parameters for the current weight."""
    if hasattr(layer, "candidates"):
        if layer.choice is None:
            raise UserError("a searched supernet has no single format per layer: export its finetuned run "
                            "(`hqflow finetune --plan ...`)")
        quantizer = layer.quantizers[layer.choice]
        return layer.candidates[layer.choice], quantizer.params(layer.weight.detach())
    return Candidate("fp32", 32), {}


class _Builder:
    """The nodes and tensors of the graph being lowered; every node is built by its op (hqflow.ops),
    which computes its output range and widths."""

    def __init__(self, time_steps: int):
        self.time_steps = time_steps
        self.nodes: dict[str, Node] = {}
        self.tensors: dict[str, np.ndarray] = {}

    def add(self, step: Step, attrs: dict | None = None, tensors: dict[str, np.ndarray] | None = None,
            context: str = "", hint: str = "") -> Node:
        """Build the node of `step` (a window op gets the step's window as attrs); a width beyond 64 bits
        is a UserError naming the layer, `context` (the figures it came from) and `hint` (what the user
        can change)."""
        if OPS[step.op].window is not None:
            attrs = {**asdict(step.window), **(attrs or {})}
        try:
            node = make_node(step.op, step.name, [self.nodes[source] for source in step.inputs], step.shape,
                             self.time_steps, attrs, tensors)
        except ValueError as err:
            raise UserError(f"layer {step.name}{context}: {err}{hint}") from None
        self.nodes[step.name] = node
        self.tensors.update({f"{step.name}/{field}": value for field, value in (tensors or {}).items()})
        return node

    def weights(self, name: str, layer: nn.Module) -> tuple[dict, dict[str, np.ndarray], float]:
        """(attrs, code tables, weight_scale) of a conv / linear layer in its deployed format."""
        fmt, params = _format(layer)
        weight = layer.weight.detach().numpy().astype(np.float32)
        if not np.isfinite(weight).all():
            raise UserError(f"layer {name}: its weights hold NaN or infinity")
        try:
            codes = numerics.weight_codes(weight, fmt, params)
            _, weight_scale = numerics.effective_weight(weight, fmt, params)
        except ValueError as err:
            raise UserError(f"layer {name} ({fmt.name}): {err}") from None
        attrs = {"format": fmt.name, "weight_scale": weight_scale, "qkeras": fmt.qkeras()}
        if fmt.scheme == "uniform":
            attrs["zero_point"] = int(params["zero_point"])
        return attrs, codes, weight_scale


def lower(model: Spikformer, cfg: Config) -> DeployGraph:
    """The DeployGraph of `model` (eval mode: BN running statistics) for T = cfg.data.time_steps: one
    node per step of model.topology, in its order."""
    model = model.eval()
    check_semantics(model, cfg)
    builder = _Builder(cfg.data.time_steps)
    modules = dict(model.named_modules())
    for step in model.topology.steps:  # the torch model has refused any op outside OPS, which TORCH_OPS covers
        TORCH_OPS[step.op].lower(builder, step, modules)
    graph = DeployGraph(tuple(builder.nodes.values()), builder.tensors, cfg.data.time_steps, cfg.model.num_classes,
                        {"model": cfg.to_dict()["model"], "dataset": cfg.data.dataset,
                         "data_root": cfg.data.data_root})
    validate(graph, "lowered graph")
    return graph


def lowered(run: str | Path) -> tuple[Config, DeployGraph]:
    """(config, DeployGraph) of a finished run's checkpoint (an unfinished run is one error)."""
    require_complete(Path(run), "the run")
    cfg, model, _ = load_checkpoint(run)
    with torch.no_grad():
        return cfg, lower(model, cfg)


def export(run: str | Path, out: str | Path, target: str = "numpy", force: bool = False, tb_samples: int = 200,
           trace_samples: int = 2, data_root: str | Path | None = None, hls_options=None,
           rtl_options=None) -> tuple[DeployGraph, dict]:
    """Lower a run's checkpoint into folder `out` (built aside, moved into place): the DeployGraph
    (graph.json + tensors.npz); for target "hls" the C++ project in out/hls with testbench
    vectors for the first tb_samples test samples (every node traced for trace_samples of them);
    for target "rtl" the whole model as one Verilog top in out/rtl (export/rtl/project.py) with the
    same test vectors (logits of tb_samples samples, every node of trace_samples of them).
    Returns the graph and, for "hls", the testbench summary, for "rtl" the project's manifest."""
    out = Path(out)
    if target not in ("numpy", "hls", "rtl"):
        raise UserError(f"export target {target!r}: expected numpy, hls or rtl")
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: output folder exists; pass --force to replace it")
    if tb_samples < 1 or trace_samples < 0:
        raise UserError(f"--tb-samples {tb_samples} must be >= 1 and --trace-samples {trace_samples} >= 0")
    cfg, graph = lowered(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    summary: dict = {}
    try:
        graph.save(tmp)
        if target in ("hls", "rtl"):
            from hqflow.data import data_root_for, load_dataset

            root, which = data_root_for(data_root, cfg.data.data_root, f"{run}: config")
            frames = load_dataset(cfg.data.dataset, "test", cfg.data.time_steps, cfg.model.img_size, root)
        if target == "hls":
            from hqflow.export.hls import write_project

            items = [frames[index] for index in range(min(tb_samples, len(frames)))]
            summary = write_project(graph, tmp / "hls", np.stack([sample for sample, _ in items]),
                                    np.array([label for _, label in items]), trace_samples, hls_options)
        elif target == "rtl":
            from hqflow.export.rtl.project import RtlOptions, write_rtl

            rtl_options = rtl_options or RtlOptions()
            items = [frames[index] for index in range(min(tb_samples, len(frames)))]
            summary = write_rtl(graph, tmp / "rtl", np.stack([sample for sample, _ in items]), trace_samples,
                                rtl_options, labels=np.array([label for _, label in items]))
        if target in ("hls", "rtl"):
            summary["data_root"] = which
        replace_dir(tmp, out)  # the previous export stays until the new one is whole
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return graph, summary
