"""`hqflow bitstream` and `hqflow board run|sim`: a board's design, its bitstream and its host driver."""

from __future__ import annotations

from pathlib import Path

import click

from hqflow.cli.options import COUNT, POSITIVE
from hqflow.export.rtl.pnr import ROUTERS

BOARD_HELP = "The board (tables/boards.yaml): ulx3s-85f, ulx3s-45f, ulx3s-25f, ulx3s-12f."


@click.command(name="bitstream")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--board", "board_name", default="ulx3s-85f", show_default=True, help=BOARD_HELP)
@click.option("--router", type=click.Choice(ROUTERS), default="router2", show_default=True,
              help="nextpnr's router. A board's clock (25 MHz on the ULX3S) is far below the top's: congestion, not "
                   "timing, decides whether the design routes, and router2 routed the demo's board design in about 2 "
                   "minutes where router1 stalled.")
def bitstream_cmd(export_dir, board_name, router):
    """A bitstream of EXPORT_DIR's streaming top behind a UART bridge, for a board.

    Yosys synth_ecp5, nextpnr-ecp5 with the board's pins, ecppack: writes rtl/board/<board>/hqflow.bit
    and rtl/board/<board>.md / .json (the post-route clock against the board's oscillator, utilization,
    critical path, the serial line's time an inference). Its last line: `fmax_mhz: X`. Talk to the board
    with `hqflow board run EXPORT_DIR --port PORT`.
    """
    from hqflow.export.rtl.board import bitstream, board_markdown

    result = bitstream(export_dir, board_name, router=router)
    click.echo(board_markdown(result), nl=False)
    if not result["meets_target"]:
        click.echo(f"warning: the design does not meet the board's {result['target_mhz']:g} MHz clock: the "
                   f"bitstream would not run reliably", err=True)
    click.echo(f"fmax_mhz: {result['fmax_mhz']:.2f}")


@click.group(name="board")
def board_group():
    """The host side of a board design: test images out, logits and latency counts back."""


@board_group.command(name="run")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--port", required=True, help="The board's serial port (e.g. /dev/ttyUSB0).")
@click.option("--board", "board_name", default="ulx3s-85f", show_default=True,
              help=BOARD_HELP + " Its baud rate and clock (the latency in microseconds).")
@click.option("--samples", type=COUNT, help="Only the first N test samples (default: all of the export's).")
@click.option("--timeout", type=POSITIVE, default=10.0, show_default=True, help="Seconds a reply may take.")
def run_cmd(export_dir, port, board_name, samples, timeout):
    """Stream EXPORT_DIR's test samples to a board running its bitstream (`hqflow bitstream`).

    Every sample's logits are compared with the NumPy simulator's, bit for bit; prints the accuracy,
    the latency the circuit counted (cycles and microseconds at the board's clock) and the inferences per
    second the host measured (the serial line included). Writes rtl/board/run.json; last line
    `mismatches: N` (exit status 1 if N > 0).
    """
    from hqflow.export.rtl import board_link
    from hqflow.export.rtl.board import find_board

    board = find_board(board_name)
    result = board_link.run(export_dir, port, board.baud, samples, timeout, board.clock_mhz)
    _report(board_link.run_lines(result), result["mismatches"])


@board_group.command(name="sim")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--samples", type=COUNT, help="Only the first N test samples (default: all of the export's).")
@click.option("--clks-per-bit", type=click.IntRange(min=2), default=4, show_default=True,
              help="Clock cycles a serial bit in the simulation (the board's: its clock / its baud rate).")
@click.option("--board", "board_name", default="ulx3s-85f", show_default=True,
              help=BOARD_HELP + " Its clock gives the latency in microseconds.")
def sim_cmd(export_dir, samples, clks_per_bit, board_name):
    """The board design co-simulated, with no board: `hqflow board run` through a pseudo-terminal.

    Builds hqflow_board (the UART bridge and the top) with Verilator in rtl/board/sim/, exposes its serial
    line as a pseudo-terminal and runs the host driver against it: the same bytes a board would see, the
    logits compared with the NumPy simulator's bit for bit. Last line `mismatches: N`.
    """
    from hqflow.export.rtl import board_link
    from hqflow.export.rtl.board import find_board, simulate

    result = simulate(export_dir, samples, clks_per_bit, clock_mhz=find_board(board_name).clock_mhz)
    _report(board_link.run_lines(result), result["mismatches"])


def _report(lines: list[str], mismatches: int) -> None:
    for line in lines:
        click.echo(line)
    if mismatches:
        raise SystemExit(1)
