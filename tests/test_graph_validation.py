"""load_graph on broken exports: every file broken in every usual way, every field of every op and
every weight scheme out of its range, each a one-line UserError that names the file, the node and
the field; never a traceback. One small lowered graph (every format in use) is corrupted one way
per row."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hqflow.errors import UserError
from hqflow.export.lower import lower
from hqflow.ir import load_graph
from hqflow.sim.run import run

from conftest import GRAPH_CFG, MIXED_FORMATS, mixed_format_model, random_bytes, truncate

CFG, FORMATS = GRAPH_CFG, MIXED_FORMATS  # the i-th weight layer takes FORMATS[i % 7] (see conftest)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    model = mixed_format_model(5, gamma=(-0.5, 1.5), mean=(-0.5, 0.5))
    with torch.no_grad():
        graph = lower(model, CFG)
    folder = tmp_path_factory.mktemp("graph")
    graph.save(folder)
    return folder


def _node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["name"] == name)


def _attrs(doc: dict, name: str) -> dict:
    return _node(doc, name)["attrs"]


def _set(t: dict, key: str, index, value) -> None:
    array = t[key].astype(np.int64)
    array[index] = value
    t[key] = array.astype(t[key].dtype) if np.can_cast(np.min_scalar_type(value), t[key].dtype) else array


def _drop(doc: dict, name: str, key: str) -> None:
    del _node(doc, name)[key]


# (id, edit of (doc, tensors) or None, what a broken file is, the substrings the message must hold)
# Each row corrupts one thing; the message names the file, the node and the field.
EDITS = [
    # ---- graph.json: structure
    ("nodes-empty", lambda d, t: d.update(nodes=[]), None, ["graph.json", "nodes is an empty list"]),
    ("schema-missing", lambda d, t: d.pop("schema_version"), None, ["graph.json", "schema_version missing"]),
    ("time-steps-string", lambda d, t: d.update(time_steps="4"), None, ["graph.json", "time_steps '4'"]),
    ("time-steps-zero", lambda d, t: d.update(time_steps=0), None, ["graph.json", "time_steps 0"]),
    ("time-steps-other", lambda d, t: d.update(time_steps=3), None,
     ["graph.json", "node 'sps.conv0'", "attrs.frac_bits 20 must be bias_frac_bits 16 + T 3"]),
    ("num-classes-mismatch", lambda d, t: d.update(num_classes=7), None, ["graph.json", "num_classes 7"]),
    ("nodes-not-list", lambda d, t: d.update(nodes={"a": 1}), None, ["graph.json", "nodes is a dict; expected a non-empty list"]),
    ("nodes-missing", lambda d, t: d.pop("nodes"), None, ["graph.json", "nodes missing"]),
    ("node-not-object", lambda d, t: d["nodes"].__setitem__(3, "sps.pool0"), None, ["graph.json", "nodes[3]"]),
    ("node-without-name", lambda d, t: d["nodes"][2].pop("name"), None,
     ["graph.json", "nodes[2]", "key 'name' missing"]),
    ("node-without-op", lambda d, t: _drop(d, "sps.conv1", "op"), None,
     ["graph.json", "node 'sps.conv1'", "key 'op' missing"]),
    ("node-unknown-key", lambda d, t: _node(d, "tokens").update(kernel=3), None,
     ["graph.json", "node 'tokens'", "unknown key 'kernel'"]),
    ("op-unknown", lambda d, t: _node(d, "sps.conv0").update(op="conv3d"), None,
     ["graph.json", "node 'sps.conv0'", "unknown op 'conv3d'"]),
    ("op-not-string", lambda d, t: _node(d, "sps.conv0").update(op=["conv_lif"]), None,
     ["graph.json", "node 'sps.conv0'", "op ['conv_lif']"]),
    ("name-duplicate", lambda d, t: _node(d, "sps.pool1").update(name="sps.pool0"), None,
     ["graph.json", "node 'sps.pool0'", "a second node of this name"]),
    ("inputs-not-list", lambda d, t: _node(d, "tokens").update(inputs="sps.add"), None,
     ["graph.json", "node 'tokens'", "inputs 'sps.add'"]),
    ("inputs-unknown", lambda d, t: _node(d, "tokens").update(inputs=["nowhere"]), None,
     ["graph.json", "node 'tokens'", "input 'nowhere' is not an earlier node"]),
    ("inputs-arity", lambda d, t: _node(d, "sps.add").update(inputs=["sps.rpe"]), None,
     ["graph.json", "node 'sps.add'", "takes 2 input(s), got 1"]),
    ("shape-not-list", lambda d, t: _node(d, "sps.conv0").update(shape="4x16x16"), None,
     ["graph.json", "node 'sps.conv0'", "shape '4x16x16'", "list of integers"]),
    ("shape-not-ints", lambda d, t: _node(d, "sps.conv0").update(shape=[4, 16.0, 16]), None,
     ["graph.json", "node 'sps.conv0'", "shape [4, 16.0, 16]"]),
    ("shape-bool", lambda d, t: _node(d, "sps.pool0").update(shape=[4, True, 8]), None,
     ["graph.json", "node 'sps.pool0'", "shape [4, True, 8]"]),
    ("shape-conv-wrong", lambda d, t: _node(d, "sps.conv1").update(shape=[8, 8, 7]), None,
     ["graph.json", "node 'sps.conv1'", "shape [8, 8, 7]; expected [8, 8, 8]"]),
    ("shape-maxpool-wrong", lambda d, t: _node(d, "sps.pool0").update(shape=[4, 16, 16]), None,
     ["graph.json", "node 'sps.pool0'", "expected [4, 8, 8] (3x3 window, stride 2, padding 1)"]),
    ("shape-tokens-wrong", lambda d, t: _node(d, "tokens").update(shape=[32, 16]), None,
     ["graph.json", "node 'tokens'", "expected [16, 32]"]),
    ("attrs-not-object", lambda d, t: _node(d, "blocks.0.mlp.fc1").update(attrs=[1, 2]), None,
     ["graph.json", "node 'blocks.0.mlp.fc1'", "attrs [1, 2]; expected an object"]),
    ("head-not-last", lambda d, t: d["nodes"].append(d["nodes"][-3] | {"name": "extra"}), None,
     ["graph.json", "node 'head'", "the head must be the last node"]),
    ("meta-dataset-missing", lambda d, t: d["meta"].pop("dataset"), None, ["graph.json", "meta.dataset missing"]),
    ("meta-img-size", lambda d, t: d["meta"]["model"].update(img_size=32), None,
     ["graph.json", "meta.model.img_size 32; expected 16"]),
    # ---- the stored figures: each equal to what the op computes
    ("value-max-missing", lambda d, t: _drop(d, "sps.add", "value_max"), None,
     ["graph.json", "node 'sps.add'", "key 'value_max' missing"]),
    ("value-max-stale", lambda d, t: _node(d, "sps.add").update(value_max=3), None,
     ["graph.json", "node 'sps.add'", "value_max 3; the op computes 2", "a stale or edited figure"]),
    ("value-max-lif", lambda d, t: _node(d, "sps.conv1").update(value_max=2), None,
     ["graph.json", "node 'sps.conv1'", "value_max 2; the op computes 1"]),
    ("value-max-input", lambda d, t: _node(d, "input").update(value_max=255), None,
     ["graph.json", "node 'input'", "value_max 255; the op computes 32767"]),
    ("value-max-string", lambda d, t: _node(d, "tokens").update(value_max="2"), None,
     ["graph.json", "node 'tokens'", "value_max '2'; expected an integer >= 0"]),
    ("value-max-head", lambda d, t: _node(d, "head").update(value_max=_node(d, "head")["value_max"] + 1), None,
     ["graph.json", "node 'head'", "the op computes"]),
    ("logit-bits-stale", lambda d, t: _attrs(d, "head").update(logit_bits=_attrs(d, "head")["logit_bits"] + 1), None,
     ["graph.json", "node 'head'", "attrs.logit_bits", "a stale or edited figure"]),
    ("logit-bits-missing", lambda d, t: _attrs(d, "head").pop("logit_bits"), None,
     ["graph.json", "node 'head'", "attrs.logit_bits missing"]),
    ("logit-bits-bias", lambda d, t: _set(t, "head/bias_int", 0, 2**50), None,
     ["graph.json", "node 'head'", "attrs.logit_bits", "a stale or edited figure"]),
    ("schema-version-1", lambda d, t: d.update(schema_version=1), None,
     ["graph.json", "schema_version 1; this hqflow reads 2 (export the run again)"]),
    # ---- windows: declared in attrs, within what the simulator and the kernels implement
    ("conv-kernel-5", lambda d, t: _attrs(d, "sps.conv1").update(kernel_size=5), None,
     ["graph.json", "node 'sps.conv1'", "attrs.kernel_size 5; expected an integer in 3..3"]),
    ("conv-padding-missing", lambda d, t: _attrs(d, "sps.rpe").pop("padding"), None,
     ["graph.json", "node 'sps.rpe'", "attrs.padding missing"]),
    ("maxpool-stride", lambda d, t: _attrs(d, "sps.pool0").update(stride=1), None,
     ["graph.json", "node 'sps.pool0'", "attrs.stride 1; expected an integer in 2..2"]),
    # ---- attributes each op needs
    ("max-count-missing", lambda d, t: _attrs(d, "input").pop("max_count"), None,
     ["graph.json", "node 'input'", "attrs.max_count missing"]),
    ("format-missing", lambda d, t: _attrs(d, "sps.conv3").pop("format"), None,
     ["graph.json", "node 'sps.conv3'", "attrs.format missing"]),
    ("format-unknown", lambda d, t: _attrs(d, "sps.conv1").update(format="po2-9"), None,
     ["graph.json", "node 'sps.conv1'", "attrs.format", "'po2-9'"]),
    ("x-max-below-input", lambda d, t: _attrs(d, "sps.conv0").update(x_max=3), None,
     ["graph.json", "node 'sps.conv0'", "attrs.x_max 3; the op computes 32767", "a stale or edited figure"]),
    ("x-max-above-input", lambda d, t: _attrs(d, "blocks.0.mlp.fc1").update(x_max=4), None,
     ["graph.json", "node 'blocks.0.mlp.fc1'", "attrs.x_max 4; the op computes 3"]),
    ("x-max-ssa", lambda d, t: _attrs(d, "blocks.0.attn.attn").update(x_max=2), None,
     ["graph.json", "node 'blocks.0.attn.attn'", "attrs.x_max 2; the op computes 1"]),
    ("x-max-head", lambda d, t: _attrs(d, "head").update(x_max=5), None,
     ["graph.json", "node 'head'", "attrs.x_max 5; the op computes 256"]),
    ("x-max-string", lambda d, t: _attrs(d, "blocks.0.mlp.fc1").update(x_max="2"), None,
     ["graph.json", "node 'blocks.0.mlp.fc1'", "attrs.x_max '2'"]),
    ("acc-bits-small", lambda d, t: _attrs(d, "sps.conv0").update(acc_bits=4), None,
     ["graph.json", "node 'sps.conv0'", "attrs.acc_bits 4 cannot hold"]),
    ("acc-bits-over-64", lambda d, t: _attrs(d, "sps.conv0").update(acc_bits=65), None,
     ["graph.json", "node 'sps.conv0'", "attrs.acc_bits 65; expected an integer in 1..64"]),
    ("v-bits-missing", lambda d, t: _attrs(d, "sps.rpe").pop("v_bits"), None,
     ["graph.json", "node 'sps.rpe'", "attrs.v_bits missing"]),
    ("v-bits-small", lambda d, t: _attrs(d, "sps.conv0").update(v_bits=8), None,
     ["graph.json", "node 'sps.conv0'", "attrs.v_bits 8 cannot hold"]),
    ("frac-bits-float", lambda d, t: _attrs(d, "blocks.0.attn.q").update(frac_bits=20.0), None,
     ["graph.json", "node 'blocks.0.attn.q'", "attrs.frac_bits 20.0"]),
    ("zero-point-range", lambda d, t: _attrs(d, "sps.conv0").update(zero_point=4), None,
     ["graph.json", "node 'sps.conv0'", "attrs.zero_point 4; expected an integer in 0..3"]),
    ("zero-point-missing", lambda d, t: _attrs(d, "blocks.0.attn.q").pop("zero_point"), None,
     ["graph.json", "node 'blocks.0.attn.q'", "attrs.zero_point missing"]),
    ("num-heads-divide", lambda d, t: _attrs(d, "blocks.0.attn.attn").update(num_heads=3), None,
     ["graph.json", "node 'blocks.0.attn.attn'", "attrs.num_heads 3 does not divide the 32 channels"]),
    ("num-heads-missing", lambda d, t: _attrs(d, "blocks.0.attn.attn").pop("num_heads"), None,
     ["graph.json", "node 'blocks.0.attn.attn'", "attrs.num_heads missing"]),
    ("ssa-acc-bits", lambda d, t: _attrs(d, "blocks.0.attn.attn").update(acc_bits=5), None,
     ["graph.json", "node 'blocks.0.attn.attn'", "attrs.acc_bits 5 cannot hold the attention product"]),
    ("num-tokens-wrong", lambda d, t: _attrs(d, "head").update(num_tokens=4), None,
     ["graph.json", "node 'head'", "attrs.num_tokens 4; its input 'blocks.0.add2' has 16 tokens"]),
    ("bias-frac-bits-huge", lambda d, t: _attrs(d, "head").update(bias_frac_bits=70), None,
     ["graph.json", "node 'head'", "attrs.bias_frac_bits 70"]),
    # ---- tensors.npz: every scheme's codes, fixed point, LIF tables, head bias
    ("uniform-code-range", lambda d, t: _set(t, "sps.conv0/w_int", (0, 0, 1, 1), 4), None,
     ["tensors.npz", "node 'sps.conv0'", "tensor 'w_int' holds 4 at index (0, 0, 1, 1)", "uniform-2 codes in 0..3"]),
    ("uniform8-signed", lambda d, t: t.update({"blocks.0.attn.q/w_int": t["blocks.0.attn.q/w_int"].astype(np.int16)
                                               - 300}), None,
     ["tensors.npz", "node 'blocks.0.attn.q'", "tensor 'w_int' holds", "uniform-8 codes in 0..255"]),
    ("po2-sign-zero", lambda d, t: _set(t, "sps.conv1/w_sign", (1, 0, 0, 0), 0), None,
     ["tensors.npz", "node 'sps.conv1'", "tensor 'w_sign' holds 0 at index (1, 0, 0, 0)", "po2-2 has no zero level"]),
    ("po2-sign-two", lambda d, t: _set(t, "blocks.0.attn.proj/w_sign", (2, 3), 2), None,
     ["tensors.npz", "node 'blocks.0.attn.proj'", "tensor 'w_sign' holds 2 at index (2, 3)", "signs -1 or +1"]),
    ("po2-shift-range", lambda d, t: _set(t, "sps.conv1/w_shift", (0, 1, 2, 2), 2), None,
     ["tensors.npz", "node 'sps.conv1'", "tensor 'w_shift' holds 2", "po2-2 shifts in 0..1"]),
    ("po2z-shift-zero-code", lambda d, t: _set(t, "sps.conv2/w_shift", (3, 1, 0, 0), 7), None,
     ["tensors.npz", "node 'sps.conv2'", "tensor 'w_shift' holds 7", "po2z-4 shifts in 0..6", "zero level"]),
    ("po2z8-shift-range", lambda d, t: _set(t, "blocks.0.attn.k/w_shift", (0, 0), 127), None,
     ["tensors.npz", "node 'blocks.0.attn.k'", "tensor 'w_shift' holds 127", "po2z-8 shifts in 0..126"]),
    ("po2z-zero-with-shift", lambda d, t: (_set(t, "blocks.0.mlp.fc1/w_sign", (5, 7), 0),
                                           _set(t, "blocks.0.mlp.fc1/w_shift", (5, 7), 3)), None,
     ["tensors.npz", "node 'blocks.0.mlp.fc1'", "tensor 'w_shift' holds 3 at index (5, 7) where w_sign is 0"]),
    ("po2-shift-float", lambda d, t: t.update({"sps.conv1/w_shift": t["sps.conv1/w_shift"].astype(np.float64)}), None,
     ["tensors.npz", "node 'sps.conv1'", "tensor 'w_shift' has dtype float64"]),
    ("fixed-point-32-bits", lambda d, t: _set(t, "sps.rpe/w_fx", (1, 2, 0, 0), 2**31), None,
     ["tensors.npz", "node 'sps.rpe'", "tensor 'w_fx' holds 2147483648", "32-bit signed fixed point"]),
    ("fixed-point-head", lambda d, t: _set(t, "head/w_fx", (9, 0), -(2**31) - 1), None,
     ["tensors.npz", "node 'head'", "tensor 'w_fx' holds -2147483649"]),
    ("weights-shape", lambda d, t: t.update({"sps.conv3/w_int": t["sps.conv3/w_int"][:, :, :2]}), None,
     ["tensors.npz", "node 'sps.conv3'", "tensor 'w_int' has shape (32, 16, 2, 3), expected (32, 16, 3, 3)"]),
    ("weights-missing", lambda d, t: t.pop("blocks.0.attn.v/w_int"), None,
     ["tensors.npz", "node 'blocks.0.attn.v'", "tensor 'w_int' missing"]),
    ("weights-other-scheme", lambda d, t: _attrs(d, "blocks.0.attn.v").update(format="po2-2"), None,
     ["tensors.npz", "node 'blocks.0.attn.v'", "tensor 'w_sign' missing"]),
    ("bias-membrane-64", lambda d, t: _set(t, "sps.conv3/bias_int", 5, 2**60), None,
     ["tensors.npz", "node 'sps.conv3'", "the membrane", "needs more than 64 bits"]),
    ("bias-membrane-vbits", lambda d, t: _set(t, "blocks.0.mlp.fc2/bias_int", 0, 2**40), None,
     ["graph.json", "node 'blocks.0.mlp.fc2'", "attrs.v_bits", "cannot hold the membrane"]),
    ("threshold-negative", lambda d, t: _set(t, "sps.conv2/thr_int", 0, -5), None,
     ["tensors.npz", "node 'sps.conv2'", "tensor 'thr_int' holds -5 at index (0,)"]),
    ("threshold-beyond-int64", lambda d, t: t.update({"sps.conv2/thr_int": t["sps.conv2/thr_int"].astype(np.uint64)
                                                      + np.uint64(2**63)}), None,
     ["tensors.npz", "node 'sps.conv2'", "tensor 'thr_int' holds"]),
    ("threshold-membrane", lambda d, t: _set(t, "blocks.0.attn.attn/thr_int", 0, 2**40), None,
     ["graph.json", "node 'blocks.0.attn.attn'", "attrs.v_bits", "cannot hold the membrane"]),
    ("sign-range", lambda d, t: _set(t, "sps.conv2/sign", 1, 2), None,
     ["tensors.npz", "node 'sps.conv2'", "tensor 'sign' holds 2 at index (1,); expected values -1, 0 or 1"]),
    ("lif-table-shape", lambda d, t: t.update({"blocks.0.attn.attn/thr_int": np.array([64, 64])}), None,
     ["tensors.npz", "node 'blocks.0.attn.attn'", "tensor 'thr_int' has shape (2,), expected (1,)"]),
    ("head-bias-logits", lambda d, t: _set(t, "head/bias_int", 0, 2**63 - 1), None,
     ["tensors.npz", "node 'head'", "the logits", "more than 64 bits hold"]),
    ("head-bias-missing", lambda d, t: t.pop("head/bias_int"), None,
     ["tensors.npz", "node 'head'", "tensor 'bias_int' missing"]),
    ("tensor-bool", lambda d, t: t.update({"sps.conv0/sign": t["sps.conv0/sign"] > 0}), None,
     ["tensors.npz", "node 'sps.conv0'", "tensor 'sign' has dtype bool"]),
    ("tensor-extra", lambda d, t: t.update({"sps.pool0/w_int": np.zeros(3, np.uint8)}), None,
     ["tensors.npz", "tensor 'sps.pool0/w_int' belongs to no node"]),
]


def _pickled_member(path: Path) -> None:
    with np.load(path) as npz:
        tensors = {k: npz[k] for k in npz.files}
    tensors["sps.conv0/w_int"] = np.array([{"payload": 1}], dtype=object)
    np.savez(path, **tensors)


def _single_npy(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.arange(4))


def _non_npy_member(path: Path) -> None:
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.npy", b"not an array")


def _damaged_member(path: Path) -> None:
    """Flip bytes inside one member's data: the archive opens, that member fails its CRC."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("blocks.0.mlp.fc1/w_sign.npy")
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 200
    raw[start:start + 16] = bytes(255 - b for b in raw[start:start + 16])
    path.write_bytes(bytes(raw))


# (id, file, how it is broken, the substrings the message must hold)
FILES = [
    ("graph-missing", "graph.json", lambda p: p.unlink(), ["graph.json: not found"]),
    ("graph-empty", "graph.json", lambda p: p.write_text(""), ["graph.json: empty file"]),
    ("graph-truncated", "graph.json", truncate, ["graph.json: not valid JSON at line"]),
    ("graph-random-bytes", "graph.json", random_bytes, ["graph.json: not a text file"]),
    ("graph-a-folder", "graph.json", lambda p: p.unlink() or p.mkdir(), ["graph.json: is a folder"]),
    ("graph-nan", "graph.json", lambda p: p.write_text(p.read_text().replace('"time_steps": 4', '"time_steps": NaN')),
     ["graph.json: NaN is not a number JSON allows"]),
    ("graph-list", "graph.json", lambda p: p.write_text("[1, 2]"), ["graph.json: holds a JSON list"]),
    ("tensors-missing", "tensors.npz", lambda p: p.unlink(), ["tensors.npz: not found"]),
    ("tensors-empty", "tensors.npz", lambda p: p.write_bytes(b""), ["tensors.npz: empty file"]),
    ("tensors-truncated", "tensors.npz", truncate, ["tensors.npz: not a readable .npz archive"]),
    ("tensors-random-bytes", "tensors.npz", random_bytes, ["tensors.npz: not a NumPy .npz archive"]),
    ("tensors-pickled-object", "tensors.npz", _pickled_member,
     ["tensors.npz: tensor 'sps.conv0/w_int' is an object array"]),
    ("tensors-single-npy", "tensors.npz", _single_npy, ["tensors.npz: a single .npy array"]),
    ("tensors-non-npy-member", "tensors.npz", _non_npy_member, ["tensors.npz: member 'notes' is not a NumPy array"]),
    ("tensors-damaged-member", "tensors.npz", _damaged_member,
     ["tensors.npz: tensor 'blocks.0.mlp.fc1/w_sign' cannot be read"]),
]


def _copy(base: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(base, folder)
    return folder


def _expect(folder: Path, needles: list[str]) -> str:
    with pytest.raises(UserError) as info:
        load_graph(folder)
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


@pytest.mark.parametrize(("edit", "needles"), [row[1:2] + row[3:] for row in EDITS], ids=[row[0] for row in EDITS])
def test_corrupted_field(base, tmp_path, edit, needles):
    folder = _copy(base, tmp_path)
    doc = json.loads((folder / "graph.json").read_text())
    with np.load(folder / "tensors.npz") as npz:
        tensors = {k: npz[k] for k in npz.files}
    edit(doc, tensors)
    (folder / "graph.json").write_text(json.dumps(doc))
    np.savez(folder / "tensors.npz", **tensors)
    message = _expect(folder, needles)
    assert str(folder) in message  # the file is named with its path


@pytest.mark.parametrize(("file", "breaks", "needles"), [row[1:] for row in FILES], ids=[row[0] for row in FILES])
def test_broken_file(base, tmp_path, file, breaks, needles):
    folder = _copy(base, tmp_path)
    breaks(folder / file)
    _expect(folder, needles)


def test_the_table_covers_every_scheme_and_file():
    rows = {row[0] for row in EDITS} | {row[0] for row in FILES}
    assert len(EDITS) + len(FILES) >= 25
    assert {"uniform-code-range", "po2-sign-zero", "po2z-shift-zero-code", "fixed-point-32-bits",
            "graph-truncated", "tensors-pickled-object"} <= rows


def test_unmodified_graph_loads(base, tmp_path):
    """The control: the same round trip without an edit loads, and runs."""
    folder = _copy(base, tmp_path)
    doc = json.loads((folder / "graph.json").read_text())
    with np.load(folder / "tensors.npz") as npz:
        tensors = {k: npz[k] for k in npz.files}
    (folder / "graph.json").write_text(json.dumps(doc))
    np.savez(folder / "tensors.npz", **tensors)
    graph = load_graph(folder)
    assert graph.time_steps == 4 and len(graph.nodes) == len(doc["nodes"])
    assert {n.attrs.get("format") for n in graph.nodes} >= set(FORMATS)
    x = np.random.default_rng(0).poisson(0.7, (2, 4, 2, 16, 16)).astype(np.int16)
    assert run(graph, x)[0].shape == (2, 10)


def test_loaded_tensors_take_the_field_dtypes(base, tmp_path):
    """A file that stores a field in another integer type (in range) loads as the canonical dtype, so that
    the simulator's shifts cannot wrap in a narrow type."""
    folder = _copy(base, tmp_path)
    with np.load(folder / "tensors.npz") as npz:
        tensors = {k: npz[k] for k in npz.files}
    reference = load_graph(folder)
    tensors["sps.conv0/bias_int"] = tensors["sps.conv0/bias_int"].astype(np.int32)
    tensors["sps.conv1/w_shift"] = tensors["sps.conv1/w_shift"].astype(np.int64)
    np.savez(folder / "tensors.npz", **tensors)
    graph = load_graph(folder)
    assert graph.tensors["sps.conv0/bias_int"].dtype == np.int64 and graph.tensors["sps.conv1/w_shift"].dtype == np.uint8
    for key, value in reference.tensors.items():
        np.testing.assert_array_equal(graph.tensors[key], value)


def test_pickled_payload_never_runs(base, tmp_path):
    """An object array whose unpickling would create a file is refused without unpickling it."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = _copy(base, tmp_path)
    with np.load(folder / "tensors.npz") as npz:
        tensors = {k: npz[k] for k in npz.files}
    payload = np.empty(1, dtype=object)
    payload[0] = Payload()
    tensors["head/bias_int"] = payload
    np.savez(folder / "tensors.npz", **tensors)
    assert b"system" in (folder / "tensors.npz").read_bytes()  # the payload is in the file
    _expect(folder, ["tensors.npz: tensor 'head/bias_int' is an object array"])
    assert not marker.exists()
    with np.load(folder / "tensors.npz", allow_pickle=True) as npz:  # the control: the payload is live
        npz["head/bias_int"]
    assert marker.exists()


def test_not_a_folder(tmp_path):
    _expect(tmp_path / "nothing", ["nothing: not found or not a folder"])
