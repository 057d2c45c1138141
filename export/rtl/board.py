"""A board's design: the streaming top behind a UART bridge (cores hqflow_board.v, hqflow_uart.v), its
bitstream, and its co-simulation behind a pseudo-terminal.

`bitstream(OUT, "ulx3s-85f")` works in OUT/rtl/board/<board>/ (pnr.route: synth_ecp5, nextpnr-ecp5 with the
board's pins; then ecppack):

    top.lpf                     the board's pins and oscillator (tables/boards.yaml)
    synth.ys yosys.log top.json nextpnr.log report.json top.config
    hqflow.bit                  the bitstream (load it with the board's programmer, over its USB JTAG)

and writes OUT/rtl/board/<board>.json and .md: the post-route clock against the board's oscillator (the
design runs on the oscillator's clock, no PLL), the utilization, the critical path, the serial line's
share of an inference. `simulate(OUT)` builds the same design (hqflow_board with the export's top) with
Verilator in OUT/rtl/board/sim/, its harness (tb/hqflow_board_tb.cpp) exposing the serial line as a
pseudo-terminal, and runs the host driver (board_link.run) through it: the whole bitstream design,
bridge included, against the NumPy simulator's logits, with no board at hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hqflow.devices import DEFAULT_TABLE
from hqflow.errors import UserError
from hqflow.export.rtl import board_link, pnr, verilator
from hqflow.export.rtl.paths import CORES, TEMPLATES
from hqflow.io import atomic_text, read_yaml

__all__ = ["BOARDS_TABLE", "Board", "bitstream", "board_markdown", "find_board", "load_boards", "lpf_text",
           "simulate"]

BOARDS_TABLE = DEFAULT_TABLE.with_name("boards.yaml")
TOP = "hqflow_board"
BRIDGE = ("hqflow_uart.v", "hqflow_board.v")
HARNESS = "hqflow_board_tb.cpp"
SIM_CLKS_PER_BIT = 4  # the co-simulation's serial line: 4 cycles a bit (the logic is the same at any rate)
PORTS = ("clk", "rst_n", "uart_rx", "uart_tx", "led")


@dataclass(frozen=True)
class Board:
    """A row of the board table: nextpnr-ecp5's device, package and speed grade, the oscillator, the baud rate,
    the pins of hqflow_board's ports (led: eight)."""
    name: str
    title: str
    device: str
    package: str
    speed: int
    clock_mhz: float
    baud: int
    pins: dict

    @property
    def clks_per_bit(self) -> int:
        return round(self.clock_mhz * 1e6 / self.baud)


def load_boards(path: str | Path | None = None) -> dict[str, Board]:
    """The board table (default tables/boards.yaml), each row checked: UserError naming the file, board and key."""
    path = Path(path or BOARDS_TABLE)
    raw = read_yaml(path, "a board table (YAML: schema_version, boards)")
    if not isinstance(raw, dict) or raw.get("schema_version") != 1 or not isinstance(raw.get("boards"), dict):
        raise UserError(f"{path}: expected schema_version: 1 and a mapping `boards`")
    boards = {}
    for name, row in raw["boards"].items():
        keys = ("title", "device", "package", "speed", "clock_mhz", "baud", "pins")
        missing = [k for k in keys if not isinstance(row, dict) or k not in row]
        if missing:
            raise UserError(f"{path}: board {name}: missing {', '.join(missing)}")
        pins = row["pins"]
        if not isinstance(pins, dict) or set(pins) != set(PORTS) or len(pins["led"]) != 8:
            raise UserError(f"{path}: board {name}: pins must name {', '.join(PORTS)} (led: eight pins)")
        board = Board(name, str(row["title"]), str(row["device"]), str(row["package"]), int(row["speed"]),
                      float(row["clock_mhz"]), int(row["baud"]), dict(pins))
        pnr.check_target(board.device, board.speed, board.clock_mhz)
        error = abs(board.clock_mhz * 1e6 / board.clks_per_bit / board.baud - 1)
        if board.clks_per_bit < 2 or error > 0.02:
            raise UserError(f"{path}: board {name}: baud {board.baud} is {board.clock_mhz:g} MHz / "
                            f"{board.clock_mhz * 1e6 / board.baud:.2f}: a serial line needs a whole number >= 2 "
                            f"of clock cycles a bit within 2 %")
        boards[name] = board
    return boards


def find_board(name: str) -> Board:
    boards = load_boards()
    if name not in boards:
        raise UserError(f"--board {name}: expected one of {', '.join(boards)}")
    return boards[name]


def lpf_text(board: Board) -> str:
    """The board's constraint file for hqflow_board's ports: sites, 3.3 V LVCMOS, the oscillator's frequency."""
    lines = [f"# hqflow_board on the {board.title}: its ports' pins", "BLOCK RESETPATHS;", "BLOCK ASYNCPATHS;"]

    def pin(port: str, site: str, pull: str, drive: bool = False):
        lines.append(f'LOCATE COMP "{port}" SITE "{site}";')
        lines.append(f'IOBUF PORT "{port}" PULLMODE={pull} IO_TYPE=LVCMOS33{" DRIVE=4" if drive else ""};')

    pin("clk", board.pins["clk"], "NONE")
    lines.append(f'FREQUENCY PORT "clk" {board.clock_mhz:g} MHZ;')
    pin("rst_n", board.pins["rst_n"], "UP")
    pin("uart_rx", board.pins["uart_rx"], "UP")
    pin("uart_tx", board.pins["uart_tx"], "UP", drive=True)
    for k, site in enumerate(board.pins["led"]):
        pin(f"led[{k}]", site, "NONE", drive=True)
    return "\n".join(lines) + "\n"


def _design(export: str | Path) -> tuple[Path, dict, board_link.Link, list[str]]:
    """The rtl/ folder, its manifest, its protocol and the board design's sources (the bridge's cores copied
    into rtl/board/)."""
    from hqflow.export.rtl.project import load_manifest, rtl_dir

    folder = rtl_dir(export).resolve()
    manifest = load_manifest(folder)
    link = board_link.link_of(manifest, folder)
    pnr.check_ecp5(manifest, folder)
    (folder / "board").mkdir(exist_ok=True)
    for name in BRIDGE:
        shutil.copyfile(CORES / name, folder / "board" / name)
    return folder, manifest, link, [*manifest["sources"], *(f"board/{name}" for name in BRIDGE)]


def _parameters(link: board_link.Link, clks_per_bit: int) -> dict[str, int]:
    return {"IN_BITS": link.in_width, "ELEMENTS": link.elements, "CLASSES": link.classes,
            "LOGIT_BITS": link.logit_bits, "CLKS_PER_BIT": clks_per_bit}


def bitstream(export: str | Path, board_name: str = "ulx3s-85f", timeout: float | None = None,
              router: str = "router2") -> dict:
    """Place and route the board design of the export for `board_name` and pack its bitstream
    (rtl/board/<board>/hqflow.bit); writes rtl/board/<board>.json and .md and returns the result (pnr.route's,
    with the board, the bitstream's path and size, and the serial protocol's figures). `router`: nextpnr's; router2
    by default: at a board's clock congestion, not timing, decides whether the design routes (router1 stalled
    on the demo's board design with 58,000 arcs left; router2 routed it in about 2 minutes)."""
    board = find_board(board_name)
    folder, _, link, sources = _design(export)
    work = folder / "board" / board.name
    result = pnr.route(folder, work, TOP, sources, board.device, board.package, board.speed, board.clock_mhz,
                       params=_parameters(link, board.clks_per_bit), lpf=lpf_text(board), timeout=timeout,
                       tmg_ripup=False, router=router)
    (work / "hqflow.bit").unlink(missing_ok=True)
    proc = subprocess.run([str(pnr.find_ecppack()), "--compress", "top.config", "hqflow.bit"], cwd=work,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not (work / "hqflow.bit").is_file():
        raise UserError(f"ecppack failed in {work}: {(proc.stderr or proc.stdout).strip()[-300:] or 'no output'}")
    line_s = (link.image_bytes + link.reply_bytes) * 10 / board.baud
    result.update({"board": board.name, "title": board.title, "baud": board.baud, "clks_per_bit": board.clks_per_bit,
                   "bitstream": (work / "hqflow.bit").relative_to(folder).as_posix(),
                   "bitstream_bytes": (work / "hqflow.bit").stat().st_size, "image_bytes": link.image_bytes,
                   "reply_bytes": link.reply_bytes, "serial_ms_per_image": round(line_s * 1e3, 2)})
    atomic_text(folder / "board" / f"{board.name}.json", json.dumps(result, indent=1) + "\n")
    atomic_text(folder / "board" / f"{board.name}.md", board_markdown(result))
    return result


def board_markdown(result: dict) -> str:
    """<board>.md: the bitstream, the serial protocol's figures, then pnr.md's clock, table and critical path."""
    head = [f"# Bitstream for the {result['title']}: {result['bitstream']} ({result['bitstream_bytes']:,} bytes)", "",
            f"The design (hqflow_board: the UART bridge and hqflow_top) runs on the board's {result['target_mhz']:g} MHz "
            f"oscillator, no PLL. Serial line {result['baud']:,} baud, 8N1 ({result['clks_per_bit']} cycles a bit): "
            f"{result['image_bytes']:,} bytes an image in, {result['reply_bytes']} bytes back, "
            f"{result['serial_ms_per_image']:.1f} ms of line time an inference. Routed with nextpnr's "
            f"{result.get('router', 'router1')}.", ""]
    body = pnr.pnr_markdown(result).split("\n", 2)[2]  # without pnr.md's title
    return "\n".join(head) + "\n" + body


def simulate(export: str | Path, samples: int | None = None, clks_per_bit: int = SIM_CLKS_PER_BIT,
             timeout: float = 120.0, clock_mhz: float | None = None) -> dict:
    """Build the board design of the export with Verilator (rtl/board/sim/; `clks_per_bit` cycles a serial bit),
    run it behind a pseudo-terminal and drive it with board_link.run over that port: returns board_link.run's
    result (`timeout`: seconds a reply may take, simulated)."""
    if clks_per_bit < 2:
        raise UserError(f"--clks-per-bit {clks_per_bit}: a serial bit needs at least 2 cycles")
    folder, _, link, sources = _design(export)
    work = folder / "board" / "sim"
    exe = verilator.build(TOP, [folder / s for s in sources], TEMPLATES / "tb" / HARNESS, work,
                          parameters=_parameters(link, clks_per_bit))
    proc = subprocess.Popen([str(exe), str(clks_per_bit)], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "port":
            raise UserError(f"the board co-simulation did not open its pseudo-terminal: {' '.join(first) or 'no output'}")
        return board_link.run(folder, first[1], 115200, samples, timeout, clock_mhz,  # a pty ignores the baud rate
                              simulated=f"the co-simulation's pseudo-terminal, {clks_per_bit} cycles a bit")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
