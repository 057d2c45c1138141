"""The board design's host side and tables, without a simulator (tests/test_rtl_stream.py co-simulates the
design behind a pseudo-terminal; the bitstream runs under `slow` in tests/test_rtl_pnr.py).

The serial protocol packs an element's T counts as the top's in_tdata does and sign-extends logits; the
driver compares every sample's logits with the simulator's exactly and names a short reply; the board
table and its constraint file are checked with errors that name the file, the board and the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.errors import UserError
from hqflow.export.rtl import board, board_link

LINK = board_link.Link(in_width=60, x_bits=15, elements=6, classes=3, logit_bits=35)


def test_encode_packs_steps_like_in_tdata():
    values = np.array([[1, 2, 3, 4], [32767, 0, 0, 1], [0] * 4, [5, 0, 0, 0], [0, 0, 0, 32767], [7, 7, 7, 7]])
    data = LINK.encode(values)
    assert len(data) == LINK.image_bytes == 6 * 8
    for e, row in enumerate(values):
        word = int.from_bytes(data[8 * e:8 * e + 8], "little")
        assert [(word >> (15 * t)) & 0x7FFF for t in range(4)] == row.tolist()
        assert word >> 60 == 0
    with pytest.raises(ValueError):
        LINK.encode(values + 32768 * (values == 32767))
    with pytest.raises(ValueError):
        LINK.encode(-values - 1)


def test_decode_sign_extends_logits_and_reads_the_count():
    logits = [-(1 << 34), (1 << 34) - 1, -1]
    reply = b"".join((v & ((1 << 40) - 1)).to_bytes(5, "little") for v in logits) + (123456).to_bytes(4, "little")
    assert len(reply) == LINK.reply_bytes == 3 * 5 + 4
    got, cycles = LINK.decode(reply)
    np.testing.assert_array_equal(got, np.array(logits, np.int64))
    assert cycles == 123456


def _fake_export(folder: Path, logits: np.ndarray, labels: list[int]) -> Path:
    """An rtl/ folder with just what the driver reads: the manifest's io, frames, logits, labels."""
    rtl = folder / "rtl"
    (rtl / "data").mkdir(parents=True)
    (rtl / "tb").mkdir()
    (rtl / "tb" / "tb.cpp").write_text("")
    samples = len(logits)
    manifest = {"schema": 2, "arch": "stream", "cores": [], "sources": [], "testbench": "tb/tb.cpp", "clock_mhz": 100,
                "part": "x", "family": "xc7", "time_steps": 4, "streams": [], "interval_formula": 1,
                "samples": samples, "io": {"in_width": 60, "x_bits": 15, "elements": 6, "classes": 3, "logit_bits": 35}}
    (rtl / "top.json").write_text(json.dumps(manifest))
    frames = np.arange(samples * 6 * 4).reshape(samples, 6, 4) % 100
    (rtl / "data" / "frames.txt").write_text(" ".join(map(str, frames.ravel())))
    (rtl / "data" / "logits.txt").write_text(" ".join(map(str, logits.ravel())))
    (rtl / "data" / "labels.txt").write_text(" ".join(map(str, labels)))
    for name in ("tb.txt", "trace.txt"):
        (rtl / "data" / name).write_text("")
    return folder


class FakeBoard:
    """A serial port answering each whole image with `answers[k]` (logits) and a count of 1000 + k; `short`:
    the reply of that image is cut to 3 bytes."""

    def __init__(self, answers, short=None):
        self.answers, self.short, self.pending, self.got = answers, short, b"", b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def reset_input_buffer(self):
        self.pending = b""

    def write(self, data: bytes):
        self.got += data
        k = len(self.got) // LINK.image_bytes - 1
        reply = b"".join((int(v) & ((1 << 40) - 1)).to_bytes(5, "little") for v in self.answers[k])
        reply += (1000 + k).to_bytes(4, "little")
        self.pending = reply[:3] if k == self.short else reply

    def read(self, n: int) -> bytes:
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


def test_run_compares_every_sample_and_counts_accuracy(tmp_path):
    logits = np.array([[5, -3, 2], [-1, -7, -2], [0, 9, 9], [-(1 << 34), 3, 4]])
    export = _fake_export(tmp_path / "export", logits, [0, 2, 1, 2])
    fake = FakeBoard(logits.copy())
    result = board_link.run(export, "fake", 1_000_000, clock_mhz=25.0, serial_factory=lambda *a: fake)
    assert result["mismatches"] == 0 and result["samples"] == 4
    assert result["accuracy"] == 0.75  # predictions 0, 0, 1, 2 (the first largest) against 0, 2, 1, 2
    assert [r["cycles"] for r in result["rows"]] == [1000, 1001, 1002, 1003]
    assert result["latency_us"] == round(1001.5 / 25.0, 2)
    frames = np.array((export / "rtl/data/frames.txt").read_text().split(), np.int64).reshape(4, 6, 4)
    assert fake.got == b"".join(LINK.encode(f) for f in frames)
    assert json.loads((export / "rtl/board/run.json").read_text())["mismatches"] == 0
    lines = board_link.run_lines(result)
    assert lines[-1] == "mismatches: 0" and "= 40.1 us at 25 MHz" in "\n".join(lines)

    wrong = logits.copy()
    wrong[2, 1] += 1
    result = board_link.run(export, "fake", 1_000_000, serial_factory=lambda *a: FakeBoard(wrong))
    assert result["mismatches"] == 1 and not result["rows"][2]["logits_equal"]
    assert board_link.run_lines(result)[0].startswith("mismatch sample 2: logits")
    with pytest.raises(UserError, match=r"--port fake: sample 1: 3 of 19 reply bytes within 10 s"):
        board_link.run(export, "fake", 1_000_000, serial_factory=lambda *a: FakeBoard(logits, short=1))


def test_link_of_refuses_the_sequential_top_and_old_exports(tmp_path):
    with pytest.raises(UserError, match="wraps the streaming top"):
        board_link.link_of({"arch": "sequential"}, tmp_path)
    with pytest.raises(UserError, match=r"top.json: no `io`.*export again"):
        board_link.link_of({"arch": "stream"}, tmp_path)


def test_board_table_and_constraints():
    boards = board.load_boards()
    ulx3s = boards["ulx3s-85f"]
    assert (ulx3s.device, ulx3s.package, ulx3s.speed, ulx3s.clks_per_bit) == ("85k", "CABGA381", 6, 25)
    lpf = board.lpf_text(ulx3s)
    for port, site in [("clk", "G2"), ("rst_n", "D6"), ("uart_rx", "M1"), ("uart_tx", "L4"), ("led[7]", "H3")]:
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf
    assert 'FREQUENCY PORT "clk" 25 MHZ;' in lpf
    assert {b.device for b in boards.values()} == {"85k", "45k", "25k", "12k"}


@pytest.mark.parametrize("edit, message", [
    (lambda row: row.pop("baud"), r"board bad: missing baud"),
    (lambda row: row.update(baud=3_000_000), r"board bad: baud 3000000 is 25 MHz / 8.33"),
    (lambda row: row["pins"].pop("uart_tx"), r"board bad: pins must name clk, rst_n, uart_rx, uart_tx, led"),
    (lambda row: row.update(device="99k"), r"--device 99k: expected one of"),
])
def test_bad_board_rows_are_named(tmp_path, edit, message):
    row = {"title": "t", "device": "85k", "package": "CABGA381", "speed": 6, "clock_mhz": 25, "baud": 1_000_000,
           "pins": {"clk": "G2", "rst_n": "D6", "uart_rx": "M1", "uart_tx": "L4", "led": ["A1"] * 8}}
    edit(row)
    path = tmp_path / "boards.yaml"
    path.write_text(json.dumps({"schema_version": 1, "boards": {"bad": row}}))
    with pytest.raises(UserError, match=message):
        board.load_boards(path)


def test_cli_names_an_unknown_board_and_a_missing_export(tmp_path):
    result = CliRunner().invoke(main, ["bitstream", str(tmp_path), "--board", "nope"])
    assert result.exit_code == 2 and "--board nope: expected one of ulx3s-85f" in result.output
    result = CliRunner().invoke(main, ["board", "run", str(tmp_path / "none"), "--port", "/dev/null"])
    assert result.exit_code == 2 and "no such folder" in result.output
