"""What the `hqflow` commands share: the one-line error exit, number types, --device / --amp, a run folder's
-o / --resume / --force / --quiet, torchrun."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import click

def fail(message: str) -> None:
    click.echo("error: " + " ".join(message.split()), err=True)
    sys.exit(2)


class _Number(click.ParamType):
    """A finite int or float option of at least `minimum` (above it if `strict`; NaN, infinities and
    values out of range refused)."""

    def __init__(self, kind: type, minimum: float, strict: bool = False):
        self.kind, self.minimum, self.strict = kind, minimum, strict
        self.name = "integer" if kind is int else "number"

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if number < self.minimum or (self.strict and number == self.minimum):
            self.fail(f"{value} must be {'>' if self.strict else '>='} {self.minimum:g}", param, ctx)
        return number


COUNT = _Number(int, 1)  # sample counts, batch sizes, epochs, limits, reuse factor
NATURAL = _Number(int, 0)  # seeds, optional counts
WEIGHT = _Number(float, 0.0)  # lambdas
POSITIVE = _Number(float, 0.0, strict=True)  # clock frequencies
DATA_ROOT = click.Path(path_type=Path, exists=True, file_okay=False)


def device_option(command):
    """--device auto|cpu|cuda|cuda:N (checked by the library: a bad or missing device is one error line)."""
    return click.option("--device", default="auto", show_default=True,
                        help="Where to run: auto (CUDA when present, else the CPU), cpu, cuda (under torchrun: "
                             "each rank's own GPU) or cuda:N.")(command)


def run_folder_options(what: str, resume_help: str):
    """-o/--out (the `what` folder to write), --resume (`resume_help`), --force and --quiet; --resume with
    --force is an error before the command runs."""
    def decorate(command):
        @functools.wraps(command)
        def checked(*args, **kwargs):
            if kwargs.get("resume") and kwargs.get("force"):
                from hqflow.errors import UserError

                raise UserError("--resume and --force exclude each other")
            return command(*args, **kwargs)

        for option in (click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines."),
                       click.option("--force", is_flag=True, help="Replace --out if it exists."),
                       click.option("--resume", is_flag=True, help=resume_help),
                       click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
                                    help=f"{what} folder to write.")):
            checked = option(checked)
        return checked
    return decorate


def amp_option(command):
    return click.option("--amp", is_flag=True,
                        help="Mixed precision: the forward under bf16 autocast (the fake quantizers, the Gumbel "
                             "sample and the hardware cost stay fp32). Off by default; meant for CUDA.")(command)


def distributed(call):
    """(call(), whether this is the process that prints); under torchrun the process group is ended
    afterwards (at once, without waiting for the others, when call() fails)."""
    from hqflow.search.distributed import is_main_process, shutdown_distributed

    try:
        result = call()
    except BaseException:
        shutdown_distributed(wait=False)
        raise
    main_process = is_main_process()
    shutdown_distributed()
    return result, main_process
