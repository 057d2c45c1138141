"""The host side of a board design (hqflow_board.v): test images out, logits and the circuit's own
latency count back, over a serial port (a board's USB serial, or the co-simulation's pseudo-terminal).

The protocol (hqflow_board.v says it too), for an export whose top takes `elements` input elements of
`in_width` bits (T event counts of `x_bits` each, step t at bits [t*x_bits, (t+1)*x_bits)) and returns
`classes` logits of `logit_bits`:

    host -> board   elements * in_bytes bytes, in_bytes = ceil(in_width / 8), each element least
                    significant byte first, in the top's input order (data/frames.txt)
    board -> host   classes * out_bytes bytes, out_bytes = ceil(logit_bits / 8), two's complement, least
                    significant byte first; then 4 bytes (unsigned, least significant first): the cycles from
                    the image's first element into the top to its last logit out (the latency)

One image at a time: `run` sends the next image once the reply of the last is in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hqflow.errors import UserError
from hqflow.io import atomic_text

__all__ = ["Link", "link_of", "run", "run_lines"]

COUNT_BYTES = 4


@dataclass(frozen=True)
class Link:
    """The byte shapes of an export's board protocol (see the module's docstring)."""
    in_width: int
    x_bits: int
    elements: int
    classes: int
    logit_bits: int

    @property
    def in_bytes(self) -> int:
        return (self.in_width + 7) // 8

    @property
    def out_bytes(self) -> int:
        return (self.logit_bits + 7) // 8

    @property
    def image_bytes(self) -> int:
        return self.elements * self.in_bytes

    @property
    def reply_bytes(self) -> int:
        return self.classes * self.out_bytes + COUNT_BYTES

    @property
    def steps(self) -> int:
        return self.in_width // self.x_bits

    def encode(self, values: np.ndarray) -> bytes:
        """An image's input values [elements, T] (non-negative counts below 2**x_bits) as the bytes the board
        takes; ValueError for a value out of range."""
        values = np.asarray(values, np.int64).reshape(self.elements, self.steps)
        if values.min(initial=0) < 0 or values.max(initial=0) >= 1 << self.x_bits:
            raise ValueError(f"input values must lie in [0, 2**{self.x_bits})")
        packed = np.zeros(self.elements, dtype=object)
        for t in range(self.steps):
            packed += values[:, t].astype(object) << (t * self.x_bits)
        return b"".join(int(v).to_bytes(self.in_bytes, "little") for v in packed)

    def decode(self, reply: bytes) -> tuple[np.ndarray, int]:
        """A reply's bytes: (logits [classes] int64, the latency in cycles)."""
        n = self.out_bytes
        logits = [int.from_bytes(reply[k * n:(k + 1) * n], "little", signed=True) for k in range(self.classes)]
        cycles = int.from_bytes(reply[self.classes * n:self.classes * n + COUNT_BYTES], "little")
        return np.array(logits, np.int64), cycles


def link_of(manifest: dict, folder: Path) -> Link:
    """The protocol of an rtl/ folder's top (its manifest's `io`); UserError for the layer-sequential top
    or an export older than the board design."""
    if manifest.get("arch") != "stream":
        raise UserError(f"{folder}: the board design wraps the streaming top (--arch stream); this export is "
                        f"{manifest.get('arch', 'sequential')}")
    if "io" not in manifest:
        raise UserError(f"{folder / 'top.json'}: no `io` (an export older than the board design); export again "
                        f"with --force")
    io = manifest["io"]
    return Link(int(io["in_width"]), int(io["x_bits"]), int(io["elements"]), int(io["classes"]), int(io["logit_bits"]))


def _ints(path: Path) -> np.ndarray:
    return np.array(path.read_text().split(), np.int64)


def run(export: str | Path, port: str, baud: int, samples: int | None = None, timeout: float = 10.0,
        clock_mhz: float | None = None, serial_factory=None, simulated: str | None = None) -> dict:
    """Send the export's test samples (the first `samples`; None: all) through `port` at `baud` one at a time,
    read each reply within `timeout` seconds; compare each sample's logits with the NumPy simulator's
    (data/logits.txt, integers, exactly) and its prediction with its label (data/labels.txt, if the export
    has it). Writes rtl/board/run.json; returns it: per sample the logits equal or not and the latency the
    circuit counted; mismatches, accuracy, inferences per second over the host's wall clock (the serial
    line included) and, at `clock_mhz`, the latency in microseconds. `serial_factory(port, baud, timeout)`
    opens the port (default: pyserial's serial.Serial). `simulated`: what the port is when it is no board's
    (the co-simulation: no baud rate reported)."""
    from hqflow.export.rtl.project import LABELS, load_manifest, rtl_dir

    folder = rtl_dir(export)
    manifest = load_manifest(folder)
    link = link_of(manifest, folder)
    total = int(manifest["samples"])
    n = total if samples is None else min(samples, total)
    if n < 1:
        raise UserError(f"--samples {samples}: expected at least 1")
    frames = _ints(folder / "data/frames.txt").reshape(total, link.elements, link.steps)
    golden = _ints(folder / "data/logits.txt").reshape(total, link.classes)
    labels = _ints(folder / LABELS) if (folder / LABELS).is_file() else None
    if serial_factory is None:
        try:
            import serial
        except ImportError:
            raise UserError("pyserial is missing: install the rtl extra (pip install -e '.[rtl]', `make venv`)") from None

        def serial_factory(port, baud, timeout):
            try:
                return serial.Serial(port, baud, timeout=timeout)
            except serial.SerialException as error:
                raise UserError(f"--port {port}: {error}") from None
    rows, start = [], time.perf_counter()
    with serial_factory(port, baud, timeout) as line:
        line.reset_input_buffer()
        for b in range(n):
            line.write(link.encode(frames[b]))
            reply = line.read(link.reply_bytes)
            if len(reply) < link.reply_bytes:
                raise UserError(f"--port {port}: sample {b}: {len(reply)} of {link.reply_bytes} reply bytes within "
                                f"{timeout:g} s (is the bitstream loaded, the baud rate {baud}, the reset released?)")
            logits, cycles = link.decode(reply)
            rows.append({"sample": b, "logits_equal": bool(np.array_equal(logits, golden[b])),
                         "prediction": int(np.argmax(logits)), "label": None if labels is None else int(labels[b]),
                         "cycles": cycles, "logits": logits.tolist()})
    wall = time.perf_counter() - start
    mismatches = sum(not r["logits_equal"] for r in rows)
    cycles = [r["cycles"] for r in rows]
    result = {"port": f"{port} ({simulated})" if simulated else port, "baud": None if simulated else baud,
              "samples": n, "mismatches": mismatches,
              "accuracy": None if labels is None else float(np.mean([r["prediction"] == r["label"] for r in rows])),
              "wall_s": round(wall, 3), "inferences_per_s": round(n / wall, 3),
              "latency_cycles": {"mean": float(np.mean(cycles)), "min": min(cycles), "max": max(cycles)},
              "clock_mhz": clock_mhz,
              "latency_us": None if clock_mhz is None else round(float(np.mean(cycles)) / clock_mhz, 2),
              "image_bytes": link.image_bytes, "reply_bytes": link.reply_bytes, "rows": rows}
    (folder / "board").mkdir(exist_ok=True)
    atomic_text(folder / "board" / "run.json", json.dumps(result, indent=1) + "\n")
    return result


def run_lines(result: dict) -> list[str]:
    """A board run's report: each mismatching sample, the figures, last `mismatches: N`."""
    lines = [f"mismatch sample {r['sample']}: logits {r['logits']}" for r in result["rows"] if not r["logits_equal"]]
    lat = result["latency_cycles"]
    at = f" = {result['latency_us']:.1f} us at {result['clock_mhz']:g} MHz" if result["clock_mhz"] else ""
    baud = f" at {result['baud']:,} baud" if result["baud"] else ""
    lines.append(f"samples: {result['samples']} over {result['port']}{baud}: {result['image_bytes']:,} bytes an "
                 f"image, {result['reply_bytes']} a reply")
    if result["accuracy"] is not None:
        lines.append(f"accuracy: {result['accuracy']:.4f} (the board's predictions against the labels)")
    lines.append(f"latency counted by the circuit: {lat['mean']:.0f} cycles (min {lat['min']}, max {lat['max']}){at}")
    lines.append(f"inferences per second: {result['inferences_per_s']:.2f} (host wall clock, {result['wall_s']:.1f} s, "
                 f"the serial line included)")
    lines.append(f"mismatches: {result['mismatches']}")
    return lines
