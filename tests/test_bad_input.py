"""The bad-input catalogue: every command, every file it reads, broken in the usual ways.

Each row runs the CLI and must end with exit status 2, exactly one line `error: ...` naming the
file or option at fault (the row's `expect`), no traceback, and no output folder left behind.
The rows share one tiny trained run and one export, made once for the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.config import config_from_dict
from hqflow.search.trainer import train

from conftest import copy_path, random_bytes, truncate, write_file

TINY = {
    "model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "pools": [True, True, False, False]},
    "data": {"dataset": "digits-dvs", "time_steps": 2, "max_train_samples": 16},
    "train": {"epochs": 1, "batch_size": 16, "warmup_epochs": 0, "seed": 0},
    "search": {"epochs": 1},
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A trained tiny fp32 run, its plan (every layer uniform-4) and its numpy export."""
    root = tmp_path_factory.mktemp("catalogue")
    run = root / "fp32"
    train(config_from_dict(TINY), run, progress=False)
    export = root / "export"
    result = CliRunner().invoke(main, ["export", str(run), "-o", str(export)])
    assert result.exit_code == 0, result.output
    from hqflow.numerics import Candidate
    from hqflow.plan import uniform_plan
    from hqflow.search.model import quant_layers
    from hqflow.search.checkpoint import load_checkpoint

    names = list(quant_layers(load_checkpoint(run)[1]))
    plan = uniform_plan(names, Candidate.parse("uniform-4")).to_dict()
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "config.yaml").write_text(json.dumps(TINY))  # JSON is YAML
    return root


class _Evil:
    """Unpickling this would create the file `target`: a checkpoint must never run it."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


# ----------------------------------------------------------------------------- file breakers


def _edit_json(path: Path, change: Callable[[dict], None]) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def _edit_checkpoint(run: Path, change: Callable[[dict], object]) -> Path:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)  # in place
    torch.save(state, run / "checkpoint.pt")
    return run


def _plan(s: Path, t: Path, change: Callable[[dict], None]) -> Path:
    return _edit_json(copy_path(s / "plan.json", t / "p" / "plan.json"), change)


def _config(t: Path, text: str) -> Path:
    return write_file(t / "c.yaml", text)


# ----------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Row:
    """`args` are formatted with {s} (the shared folder), {t} (this row's folder) and {out}
    (an output folder that must not exist afterwards); `prepare(s, t)` breaks a file first."""

    id: str
    args: str
    expect: str
    prepare: Callable[[Path, Path], object] | None = None


def _lay(layer: str, **change) -> Callable[[dict], None]:
    return lambda d: d["layers"][layer].update(change)


ROWS = [
    # train: config files
    Row("train-no-config", "train -o {out}", "--config is required"),
    Row("config-missing", "train --config {t}/none.yaml -o {out}", "none.yaml: not found; expected a config"),
    Row("config-folder", "train --config {t} -o {out}", "is a folder; expected a config"),
    Row("config-empty", "train --config {t}/c.yaml -o {out}", "c.yaml: empty file", lambda s, t: _config(t, "")),
    Row("config-binary", "train --config {t}/c.yaml -o {out}", "c.yaml: not a text file",
        lambda s, t: random_bytes(t / "c.yaml")),
    Row("config-truncated", "train --config {t}/c.yaml -o {out}", "c.yaml: not valid YAML at line",
        lambda s, t: _config(t, "model: {img_size: 16, embed_dim: [16\n")),
    Row("config-not-mapping", "train --config {t}/c.yaml -o {out}", "c.yaml: a config must be a mapping",
        lambda s, t: _config(t, "- 1\n- 2\n")),
    Row("config-unknown-key", "train --config {t}/c.yaml -o {out}", "unknown key 'train.epoch'",
        lambda s, t: _config(t, "train: {epoch: 3}\n")),
    Row("config-wrong-type", "train --config {t}/c.yaml -o {out}", "train: epochs: expected int, got 'ten'",
        lambda s, t: _config(t, "train: {epochs: ten}\n")),
    Row("config-negative-lr", "train --config {t}/c.yaml -o {out}", "c.yaml: train.lr: must be > 0.0, got -1.0",
        lambda s, t: _config(t, "train: {lr: -1}\n")),
    Row("config-nan", "train --config {t}/c.yaml -o {out}", "c.yaml: train.lr: must be a finite number, got nan",
        lambda s, t: _config(t, "train: {lr: .nan}\n")),
    Row("config-zero-heads", "train --config {t}/c.yaml -o {out}", "c.yaml: model.num_heads: must be >= 1, got 0",
        lambda s, t: _config(t, "model: {num_heads: 0}\n")),
    Row("config-min-lr", "train --config {t}/c.yaml -o {out}", "finetune.min_lr: 0.1 exceeds finetune.lr",
        lambda s, t: _config(t, "finetune: {min_lr: 0.1}\n")),
    Row("config-warmup-start-lr", "train --config {t}/c.yaml -o {out}",
        "c.yaml: train.warmup_start_lr: 0.01 exceeds train.lr 0.001", lambda s, t: _config(t, "train: {warmup_start_lr: 0.01}\n")),
    Row("config-finetune-warmup-start-negative", "train --config {t}/c.yaml -o {out}",
        "c.yaml: finetune.warmup_start_lr: must be >= 0.0, got -1.0", lambda s, t: _config(t, "finetune: {warmup_start_lr: -1}\n")),
    Row("config-alpha-sample", "train --config {t}/c.yaml -o {out}",
        "c.yaml: search.alpha_sample: 'gumbel'; expected one of hard, soft",
        lambda s, t: _config(t, "search: {alpha_sample: gumbel}\n")),
    Row("config-weight-schedule", "train --config {t}/c.yaml -o {out}",
        "c.yaml: search.weight_schedule: 'step'; expected one of constant, cosine",
        lambda s, t: _config(t, "search: {weight_schedule: step}\n")),
    Row("config-weight-warmup-constant", "train --config {t}/c.yaml -o {out}",
        "c.yaml: search.weight_warmup_epochs: 5 has no effect with search.weight_schedule 'constant'",
        lambda s, t: _config(t, "search: {weight_warmup_epochs: 5}\n")),
    Row("config-weight-min-lr", "train --config {t}/c.yaml -o {out}",
        "c.yaml: search.weight_min_lr: 0.1 exceeds search.weight_lr 0.0005",
        lambda s, t: _config(t, "search: {weight_schedule: cosine, weight_min_lr: 0.1}\n")),
    # train: options
    Row("train-epochs-zero", "train --config {s}/config.yaml --epochs 0 -o {out}", "--epochs: 0 must be >= 1"),
    Row("train-epochs-word", "train --config {s}/config.yaml --epochs ten -o {out}", "--epochs: 'ten' is not an integer"),
    Row("train-batch-negative", "train --config {s}/config.yaml --batch-size -4 -o {out}", "--batch-size: -4 must be >= 1"),
    Row("train-time-steps-zero", "train --config {s}/config.yaml --time-steps 0 -o {out}", "--time-steps: 0 must be >= 1"),
    Row("train-seed-negative", "train --config {s}/config.yaml --seed -1 -o {out}", "--seed: -1 must be >= 0"),
    Row("train-unknown-dataset", "train --config {s}/config.yaml --dataset mnist -o {out}", "unknown data set 'mnist'"),
    Row("train-data-root-missing", "train --config {s}/config.yaml --data-root {t}/nowhere -o {out}",
        "--data-root: Directory"),
    Row("train-resume-nothing", "train --resume -o {out}", "nothing to resume"),
    Row("train-resume-config", "train --resume --config {s}/config.yaml -o {out}", "--config cannot change"),
    Row("train-resume-force", "train --resume --force -o {out}", "exclude each other"),
    Row("train-unknown-option", "train --config {s}/config.yaml --epochz 3 -o {out}", "No such option '--epochz'"),
    # checkpoints (evaluate, export, search --from)
    Row("run-missing", "evaluate {t}/none", "none: no such run folder"),
    Row("run-no-checkpoint", "evaluate {t}", "checkpoint.pt: checkpoint not found"),
    Row("checkpoint-empty", "evaluate {t}/r", "checkpoint.pt: empty file",
        lambda s, t: write_file(t / "r" / "checkpoint.pt", b"")),
    Row("checkpoint-random", "evaluate {t}/r", "checkpoint.pt: not a readable checkpoint",
        lambda s, t: random_bytes(t / "r" / "checkpoint.pt")),
    Row("checkpoint-truncated", "evaluate {t}/r", "checkpoint.pt: not a readable checkpoint",
        lambda s, t: truncate(copy_path(s / "fp32", t / "r") / "checkpoint.pt")),
    Row("checkpoint-pickle", "evaluate {t}/r", "checkpoint.pt: refused: the checkpoint pickles the object",
        lambda s, t: _edit_checkpoint(copy_path(s / "fp32", t / "r"), lambda st: st.update(x=_Evil(t / "pwned")))),
    Row("checkpoint-no-model", "export {t}/r -o {out}", "checkpoint.pt: not an hqflow checkpoint (entry 'model'",
        lambda s, t: _edit_checkpoint(copy_path(s / "fp32", t / "r"), lambda st: st.pop("model"))),
    Row("checkpoint-model-type", "evaluate {t}/r", "entry 'model' is a list, expected a dict",
        lambda s, t: _edit_checkpoint(copy_path(s / "fp32", t / "r"), lambda st: st.update(model=[1]))),
    Row("checkpoint-nan-weight", "export {t}/r -o {out}", "model tensor 'head.weight' holds NaN",
        lambda s, t: _edit_checkpoint(copy_path(s / "fp32", t / "r"),
                                      lambda st: st["model"]["head.weight"].fill_(float("nan")))),
    Row("checkpoint-config-key", "evaluate {t}/r", "checkpoint.pt: config: unknown key 'model.depht'",
        lambda s, t: _edit_checkpoint(copy_path(s / "fp32", t / "r"),
                                      lambda st: st["config"]["model"].update(depht=1))),
    Row("checkpoint-shapes", "evaluate {t}/r", "checkpoint does not fit this model config",
        lambda s, t: _edit_checkpoint(copy_path(s / "fp32", t / "r"),
                                      lambda st: st["config"]["model"].update(embed_dim=24))),
    Row("evaluate-batch-zero", "evaluate {s}/fp32 --batch-size 0", "--batch-size: 0 must be >= 1"),
    Row("evaluate-split", "evaluate {s}/fp32 --split val", "--split: 'val' is not one of"),
    # --device (the tests hide any GPU: conftest)
    Row("train-device-index", "train --config {s}/config.yaml --device cuda:x -o {out}",
        "--device cuda:x: not a device; expected auto, cpu, cuda or cuda:N"),
    Row("train-device-no-cuda", "train --config {s}/config.yaml --device cuda -o {out}",
        "--device cuda: CUDA is not available"),
    Row("evaluate-device", "evaluate {s}/fp32 --device gpu", "--device gpu: not a device"),
    Row("search-device-no-cuda", "search --from {s}/fp32 --device cuda:0 --amp -o {out}",
        "--device cuda:0: CUDA is not available"),
    Row("finetune-device", "finetune --plan {s}/plan.json --from {s}/fp32 --device cuda:-1 -o {out}",
        "--device cuda:-1: not a device"),
    Row("sweep-device", "sweep --from {s}/fp32 --lambdas 1 --device tpu -o {out}", "--device tpu: not a device"),
    Row("report-device", "report {t}/none --device cuda", "--device cuda: CUDA is not available"),
    # search
    Row("search-no-source", "search -o {out}", "give --from"),
    Row("search-lambda-nan", "search --from {s}/fp32 --lambda nan -o {out}", "--lambda: 'nan' is not a finite number"),
    Row("search-lambda-inf", "search --from {s}/fp32 --lambda inf -o {out}", "--lambda: 'inf' is not a finite number"),
    Row("search-lambda-negative", "search --from {s}/fp32 --lambda -1 -o {out}", "--lambda: -1 must be >= 0"),
    Row("search-epochs-zero", "search --from {s}/fp32 --epochs 0 -o {out}", "--epochs: 0 must be >= 1"),
    Row("search-resume-lambda", "search --resume --lambda 2 -o {out}", "--lambda cannot change"),
    Row("energy-missing", "search --from {s}/fp32 --energy-table {t}/e.yaml -o {out}",
        "e.yaml: not found; expected an energy table"),
    Row("energy-key-missing", "search --from {s}/fp32 --energy-table {t}/e.yaml -o {out}",
        "e.yaml: energy table lacks key(s) fp32_add", lambda s, t: write_file(t / "e.yaml", "fp32_mult: 3.7\n")),
    Row("energy-negative", "search --from {s}/fp32 --energy-table {t}/e.yaml -o {out}",
        "e.yaml: int8_add: expected a finite, non-negative number of pJ, got -1",
        lambda s, t: write_file(t / "e.yaml", "fp32_mult: 3.7\nfp32_add: 0.9\nint32_mult: 3.1\nint8_mult: 0.2\n"
                                          "int32_add: 0.1\nint8_add: -1\ndram_per_bit: 20\n")),
    Row("energy-list", "search --from {s}/fp32 --energy-table {t}/e.yaml -o {out}",
        "e.yaml: an energy table is a mapping", lambda s, t: write_file(t / "e.yaml", "- 1\n")),
    Row("search-cost-option", "search --from {s}/fp32 --cost gpu -o {out}", "--cost: 'gpu' is not one of"),
    Row("search-cost-config", "search --config {t}/c.yaml -o {out}", "search.cost: 'gpu'; expected one of energy, fpga",
        lambda s, t: _config(t, json.dumps({**TINY, "search": {"epochs": 1, "cost": "gpu"}}))),
    Row("fpga-table-key-missing", "search --config {t}/c.yaml -o {out}", "f.yaml: (top level): lacks key(s)",
        lambda s, t: (write_file(t / "f.yaml", "schema_version: 1\nfamily: xc7\n"),
                      _config(t, json.dumps({**TINY, "search": {"epochs": 1, "cost": "fpga",
                                                                "fpga_table": str(t / "f.yaml")}})))),
    # finetune: plan files
    Row("plan-missing", "finetune --plan {t}/plan.json --from {s}/fp32 -o {out}", "plan.json: not found; expected a plan"),
    Row("plan-empty", "finetune --plan {t}/plan.json --from {s}/fp32 -o {out}", "plan.json: empty file",
        lambda s, t: write_file(t / "plan.json", "\n")),
    Row("plan-binary", "finetune --plan {t}/plan.json --from {s}/fp32 -o {out}", "plan.json: not a text file",
        lambda s, t: random_bytes(t / "plan.json")),
    Row("plan-truncated", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}", "plan.json: not valid JSON at line",
        lambda s, t: truncate(copy_path(s / "plan.json", t / "p" / "plan.json"))),
    Row("plan-nan", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}", "NaN is not a number JSON allows",
        lambda s, t: write_file(t / "p" / "plan.json", '{"schema_version": 1, "hw_lambda": NaN}')),
    Row("plan-format", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}", "layers.head.format",
        lambda s, t: _plan(s, t, _lay("head", format="int-4"))),
    Row("plan-format-type", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}",
        "layers.head: needs a 'format' string", lambda s, t: _plan(s, t, _lay("head", format=4))),
    Row("plan-macs", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}",
        "layers.head.macs: expected a non-negative integer, got 'many'", lambda s, t: _plan(s, t, _lay("head", macs="many"))),
    Row("plan-probability", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}",
        "layers.head.probabilities.fp32: expected a finite number >= 0 and <= 1.0, got 3",
        lambda s, t: _plan(s, t, _lay("head", probabilities={"fp32": 3}))),
    Row("plan-layer-missing", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}", "no format for layer(s) head",
        lambda s, t: _plan(s, t, lambda d: d["layers"].pop("head"))),
    Row("plan-schema", "finetune --plan {t}/p/plan.json --from {s}/fp32 -o {out}", "schema_version 9",
        lambda s, t: _plan(s, t, lambda d: d.update(schema_version=9))),
    Row("finetune-epochs-zero", "finetune --plan {s}/plan.json --from {s}/fp32 --epochs 0 -o {out}",
        "--epochs: 0 must be >= 1"),
    Row("finetune-resume-from", "finetune --plan {s}/plan.json --from {s}/fp32 --resume -o {out}", "--from cannot change"),
    # sweep
    Row("sweep-lambdas-empty-entry", "sweep --from {s}/fp32 --lambdas 0.1,,2 -o {out}", "--lambdas: '0.1,,2' has an empty"),
    Row("sweep-lambdas-word", "sweep --from {s}/fp32 --lambdas 0.1,big -o {out}", "'big' is not a number"),
    Row("sweep-lambdas-nan", "sweep --from {s}/fp32 --lambdas 0.1,nan -o {out}", "'nan' is not a finite number"),
    Row("sweep-lambdas-repeat", "sweep --from {s}/fp32 --lambdas 0.5,0.5 -o {out}", "repeat a value"),
    Row("sweep-finetune-negative", "sweep --from {s}/fp32 --lambdas 1 --finetune-epochs -1 -o {out}",
        "--finetune-epochs: -1 must be >= 0"),
    # paper
    Row("paper-no-config", "paper -o {out}", "--config"),
    Row("paper-data-root-missing", "paper --config {s}/config.yaml --data-root {t}/nowhere -o {out}", "--data-root: Directory"),
    Row("paper-data-root-empty", "paper --config {t}/c.yaml --data-root {t} -o {out}",
        "DVSGesture: found 0 *.npy files and no archive ibmGestureTrain.tar.gz",
        lambda s, t: _config(t, "data: {dataset: dvs128-gesture}\n")),
    Row("paper-no-data-root", "paper --config {t}/c.yaml -o {out}", "dvs128-gesture expects <data_root>/DVSGesture",
        lambda s, t: _config(t, "data: {dataset: dvs128-gesture}\n")),
    Row("paper-set-malformed", "paper --config {s}/config.yaml --set epochs=3 -o {out}",
        "--set 'epochs=3': expected section.key=value"),
    Row("paper-set-unknown-key", "paper --config {s}/config.yaml --set train.epoch=3 -o {out}",
        "--set 'train.epoch=3': unknown key 'train.epoch' (did you mean 'epochs'?)"),
    Row("paper-set-bad-value", "paper --config {s}/config.yaml --set search.alpha_sample=both -o {out}",
        "--set 'search.alpha_sample=both': search.alpha_sample: 'both'; expected one of hard, soft"),
    Row("paper-lambdas-repeat", "paper --config {s}/config.yaml --lambdas 1,1 -o {out}", "--lambdas: [1.0, 1.0] repeat a value"),
    Row("paper-nproc-zero", "paper --config {s}/config.yaml --nproc 0 -o {out}", "--nproc: 0 must be >= 1"),
    Row("paper-target", "paper --config {s}/config.yaml --target vhdl -o {out}", "--target: 'vhdl' is not one of"),
    Row("paper-device", "paper --config {s}/config.yaml --device tpu -o {out}", "--device tpu: not a device"),
    # export
    Row("export-tb-zero", "export {s}/fp32 --target hls --tb-samples 0 -o {out}", "--tb-samples: 0 must be >= 1"),
    Row("export-trace-more", "export {s}/fp32 --target hls --tb-samples 2 --trace-samples 3 -o {out}",
        "--trace-samples 3 exceeds --tb-samples 2"),
    Row("export-reuse-zero", "export {s}/fp32 --target hls --reuse-factor 0 -o {out}", "--reuse-factor: 0 must be >= 1"),
    Row("export-name", "export {s}/fp32 --target hls --name 1st -o {out}", "'1st': must be a C identifier"),
    Row("export-target", "export {s}/fp32 --target vhdl -o {out}", "--target: 'vhdl' is not one of"),
    Row("export-clock-zero", "export {s}/fp32 --target hls --clock-mhz 0 -o {out}", "--clock-mhz: 0 must be > 0"),
    Row("export-clock-nan", "export {s}/fp32 --target hls --clock-mhz nan -o {out}",
        "--clock-mhz: 'nan' is not a finite number"),
    Row("export-part", "export {s}/fp32 --target hls --part xc7;rm -o {out}", "FPGA part 'xc7;rm': expected a part name"),
    Row("export-run-missing", "export {t}/none -o {out}", "none: no such run folder"),
    # sim: the DeployGraph files
    Row("sim-not-export", "sim {t}", "graph.json: not found"),
    Row("sim-graph-empty", "sim {t}/x", "graph.json: empty file",
        lambda s, t: write_file(copy_path(s / "export", t / "x") / "graph.json", "")),
    Row("sim-graph-truncated", "sim {t}/x", "graph.json: not valid JSON",
        lambda s, t: truncate(copy_path(s / "export", t / "x") / "graph.json")),
    Row("sim-tensors-random", "sim {t}/x", "tensors.npz",
        lambda s, t: random_bytes(copy_path(s / "export", t / "x") / "tensors.npz")),
    Row("sim-tensors-truncated", "sim {t}/x", "tensors.npz",
        lambda s, t: truncate(copy_path(s / "export", t / "x") / "tensors.npz")),
    Row("sim-time-steps-type", "sim {t}/x", "time_steps",
        lambda s, t: _edit_json(copy_path(s / "export", t / "x") / "graph.json", lambda d: d.update(time_steps="2"))),
    Row("sim-node-op", "sim {t}/x", "unknown op 'conv'",
        lambda s, t: _edit_json(copy_path(s / "export", t / "x") / "graph.json", lambda d: d["nodes"][1].update(op="conv"))),
    Row("sim-compare-other-run", "sim {s}/export --compare-torch {t}/r", "not the run",
        lambda s, t: _edit_checkpoint(copy_path(s / "fp32", t / "r"), lambda st: st["config"]["model"].update(v_threshold=0.5))),
    Row("sim-limit-zero", "sim {s}/export --limit 0", "--limit: 0 must be >= 1"),
    Row("sim-batch-zero", "sim {s}/export --batch-size 0", "--batch-size: 0 must be >= 1"),
    # metrics: a run or an export
    Row("metrics-neither", "metrics {t}", "neither an export folder (graph.json) nor a run (checkpoint.pt)"),
    Row("metrics-graph-truncated", "metrics {t}/x", "graph.json: not valid JSON",
        lambda s, t: truncate(copy_path(s / "export", t / "x") / "graph.json")),
    Row("metrics-limit-zero", "metrics {s}/export --limit 0", "--limit: 0 must be >= 1"),
    # csim, report
    Row("csim-not-export", "csim {t}", "{t}"),
    Row("csim-no-hls", "csim {s}/export", "hls"),
    Row("csim-static-check-no-hls", "csim {s}/export --static-check", "hls"),
    Row("report-missing", "report {t}/none", "none"),
    # figures, table ({s}: plan.json and config.yaml, no search log, no metrics)
    Row("figures-missing", "figures {t}/none -o {out}", "none: no such search or sweep folder"),
    Row("figures-not-search", "figures {s} -o {out}", "not a search folder (no search_log.jsonl)"),
    Row("figures-sweep-no-points", "figures {t}/w -o {out}", "sweep.json: points: expected a non-empty list",
        lambda s, t: write_file(t / "w" / "sweep.json", '{"fp32": null, "points": []}')),
    Row("figures-layer-unknown", "figures {t}/r --layer blocks.9.attn.q -o {out}",
        "--layer: no layer blocks.9.attn.q in",
        lambda s, t: (copy_path(s / "plan.json", t / "r" / "plan.json"), copy_path(s / "config.yaml", t / "r" / "config.yaml"),
                      write_file(t / "r" / "checkpoint.pt", "x"),
                      write_file(t / "r" / "search_log.jsonl", json.dumps(
                          {"step": 0, "tau": 1, "weight_ce": 1, "alpha_ce": 1, "energy_pct": 50,
                           "probabilities": {"sps.conv0": [1.0]}}) + "\n"))),
    Row("table-nothing", "table -o {out}/t", "table: give at least one sweep or search folder"),
    Row("table-missing", "table {t}/none -o {out}/t", "none: no such sweep or search folder"),
    Row("table-plan-no-summary", "table {s} -o {out}/t", "plan.json: summary lacks avg_weight_bits, energy_pct"),
    Row("table-sweep-lambda-word", "table {t}/w -o {out}/t", "sweep.json: points[0].lambda: expected a number, got 'x'",
        lambda s, t: write_file(t / "w" / "sweep.json", '{"points": [{"lambda": "x", "accuracy": 0.5}]}')),
    # hwreport ({s} holds config.yaml and plan.json: a search folder without metrics)
    Row("hwreport-missing", "hwreport {t}/none -o {out}", "none: search folder not found"),
    Row("hwreport-no-plan", "hwreport {t}/r -o {out}", "plan.json: not found; expected a plan",
        lambda s, t: copy_path(s / "config.yaml", t / "r" / "config.yaml")),
    Row("hwreport-lanes-zero", "hwreport {s} --lanes 0 -o {out}", "--lanes: 0 must be >= 1"),
    Row("hwreport-clock-nan", "hwreport {s} --clock-mhz nan -o {out}", "--clock-mhz: 'nan' is not a finite number"),
    Row("hwreport-part-unknown", "hwreport {s} --part ep4ce22f17c6 -o {out}",
        "--part 'ep4ce22f17c6': not a Xilinx part"),
    Row("hwreport-part-syntax", "hwreport {s} --part xc7;rm -o {out}", "--part 'xc7;rm': expected a part name"),
    Row("hwreport-cycles-missing", "hwreport {s} --cycles {t}/c.json -o {out}", "c.json: not found; expected a cycles file"),
    Row("hwreport-cycles-key", "hwreport {s} --cycles {t}/c.json -o {out}", "c.json: lacks key(s) total_cycles",
        lambda s, t: write_file(t / "c.json", '{"clock_mhz": 100, "part": "xc7a100t", "nodes": {}}')),
    Row("hwreport-cycles-negative", "hwreport {s} --cycles {t}/c.json -o {out}",
        "c.json: nodes.head.cycles_per_inference: expected a number of cycles >= 0, got -1",
        lambda s, t: write_file(t / "c.json", '{"clock_mhz": 100, "part": "xc7a100t", "total_cycles": 5, '
                                              '"nodes": {"head": {"cycles_per_inference": -1}}}')),
    Row("hwreport-devices-source", "hwreport {s} --devices {t}/d.yaml -o {out}", "d.yaml: devices[0]: lacks key(s) source",
        lambda s, t: write_file(t / "d.yaml", "schema_version: 1\ndevices:\n- {part: xc7a35t, name: A, family: xc7, "
                                              "lut: 1, ff: 1, dsp: 1, bram36: 1}\n")),
    Row("hwreport-fpga-table-missing", "hwreport {s} --fpga-table {t}/f.yaml -o {out}", "f.yaml: not found"),
    # rtl: export --target rtl, rtlsim, synth
    Row("export-lanes-zero", "export {s}/fp32 --target rtl --lanes 0 -o {out}", "--lanes: 0 must be >= 1"),
    Row("export-rtl-unknown-part", "export {s}/fp32 --target rtl --part xc9z999 -o {out}", "--part 'xc9z999': not a Xilinx part"),
    Row("export-lanes-too-many", "export {s}/fp32 --target rtl --lanes 257 -o {out}", "--lanes 257: expected 1 to 256 "
        "(--arch stream)"),
    Row("export-lanes-too-many-seq", "export {s}/fp32 --target rtl --arch sequential --lanes 65 -o {out}",
        "--lanes 65: expected 1 to 64 (--arch sequential)"),
    Row("export-target-fps-seq", "export {s}/fp32 --target rtl --arch sequential --target-fps 10 -o {out}",
        "--target-fps folds the streaming architecture"),
    Row("export-target-fps-zero", "export {s}/fp32 --target rtl --target-fps 0 -o {out}", "--target-fps"),
    Row("rtlsim-not-export", "rtlsim {t}", "no rtl/top.json there"),
    Row("rtlsim-no-rtl", "rtlsim {s}/export", "no rtl/top.json (an export with another --target"),
    Row("rtlsim-samples-zero", "rtlsim {s}/export --samples 0", "--samples: 0 must be >= 1"),
    Row("synth-no-rtl", "synth {s}/export", "no rtl/top.json (an export with another --target"),
    Row("synth-unknown-part", "synth {s}/export --part xc9z999", "--part 'xc9z999': not a Xilinx part"),
    Row("pnr-no-rtl", "pnr {s}/export", "no rtl/top.json (an export with another --target"),
    Row("pnr-unknown-device", "pnr {s}/export --device 99k", "--device 99k: expected one of 12k, 25k"),
    Row("bitstream-no-rtl", "bitstream {s}/export", "no rtl/top.json (an export with another --target"),
    Row("bitstream-unknown-board", "bitstream {s}/export --board ulx3s", "--board ulx3s: expected one of ulx3s-85f"),
    Row("board-run-no-rtl", "board run {s}/export --port /dev/null", "no rtl/top.json (an export with another"),
    Row("board-sim-no-rtl", "board sim {s}/export", "no rtl/top.json (an export with another --target"),
    # cost: the fp32 model's energy and storage per group
    Row("cost-config-missing", "cost {t}/none.yaml", "none.yaml: not found; expected a config"),
    Row("cost-config-bad", "cost {t}/c.yaml", "model.embed_dim",
        lambda s, t: _config(t, json.dumps({**TINY, "model": {**TINY["model"], "embed_dim": 2}}))),
    Row("cost-table-unknown", "cost {s}/config.yaml --energy-table papr", "unknown energy table 'papr': expected one of"),
    Row("cost-table-missing", "cost {s}/config.yaml --energy-table {t}/e.yaml", "e.yaml: not found; expected an energy table"),
    Row("cost-table-weight-reads", "cost {s}/config.yaml --energy-table {t}/e.yaml",
        "e.yaml: weight_reads: expected one of per_inference, per_step, got 'always'",
        lambda s, t: write_file(t / "e.yaml", "fp32_mult: 3.7\nfp32_add: 0.9\nint32_mult: 3.1\nint8_mult: 0.2\n"
                                          "int32_add: 0.1\nint8_add: 0.03\ndram_per_bit: 20\nweight_reads: always\n")),
    Row("cost-table-accumulate-only", "cost {s}/config.yaml --energy-table {t}/e.yaml",
        "e.yaml: accumulate_only: expected true or false, got 'yes please'",
        lambda s, t: write_file(t / "e.yaml", "fp32_mult: 3.7\nfp32_add: 0.9\nint32_mult: 3.1\nint8_mult: 0.2\n"
                                          "int32_add: 0.1\nint8_add: 0.03\ndram_per_bit: 20\n"
                                          "accumulate_only: yes please\n")),
    Row("search-energy-table-unknown", "search --from {s}/fp32 --energy-table papr -o {out}",
        "unknown energy table 'papr'"),
]


def _argv(row: Row, s: Path, t: Path, out: Path) -> list[str]:
    return [a.format(s=s, t=t, out=out) for a in row.args.split()]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_clean_line(shared, tmp_path, row):
    out = tmp_path / "out"
    if row.prepare is not None:
        row.prepare(shared, tmp_path)
    result = CliRunner().invoke(main, _argv(row, shared, tmp_path, out))
    lines = result.output.splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert row.expect.format(s=shared, t=tmp_path) in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not out.exists(), "an output folder was left behind"
    assert not (tmp_path / "pwned").exists(), "a checkpoint ran code"


def test_catalogue_covers_every_command():
    commands = {r.args.split()[0] for r in ROWS}
    assert set(main.commands) <= commands, set(main.commands) - commands
    assert len(ROWS) >= 40


def test_export_names_the_part_and_clock(shared, tmp_path):
    """--part and --clock-mhz reach build_prj.tcl (set_part, create_clock in ns) and the project README."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["export", str(shared / "fp32"), "--target", "hls", "--tb-samples", "1",
                                       "--part", "xc7a100tcsg324-1", "--clock-mhz", "125", "-o", str(out)])
    assert result.exit_code == 0, result.output
    tcl = (out / "hls" / "build_prj.tcl").read_text()
    assert "set_part {xc7a100tcsg324-1}" in tcl and "create_clock -period 8 -name default" in tcl
    assert "part xc7a100tcsg324-1, clock 8 ns (125 MHz)" in (out / "hls" / "README.md").read_text()


def test_existing_output_is_kept(shared, tmp_path):
    out = tmp_path / "out"
    write_file(out / "keep.txt", "x")
    result = CliRunner().invoke(main, ["export", str(shared / "fp32"), "-o", str(out)])
    assert result.exit_code == 2 and "pass --force" in result.output
    assert (out / "keep.txt").read_text() == "x" and len(list(out.iterdir())) == 1


def test_installed_entry_point_prints_one_line(shared, tmp_path):
    """The real console script (not the in-process runner): one line on stderr, status 2."""
    row = next(r for r in ROWS if r.id == "checkpoint-pickle")
    row.prepare(shared, tmp_path)
    exe = Path(sys.executable).with_name("hqflow")
    proc = subprocess.run([str(exe), *_argv(row, shared, tmp_path, tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "pwned").exists()
