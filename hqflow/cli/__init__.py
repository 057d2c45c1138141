"""The `hqflow` command line: each command is a thin wrapper over one library function.

Mistakes in the input (a missing file, a bad config key, an existing output folder) print one
line `error: ...` and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from hqflow.cli import board, deploy, train
from hqflow.cli.options import fail
from hqflow.errors import UserError


class _Group(click.Group):
    """Every mistake in the input, the library's (UserError) or click's (a bad option value, a
    missing argument), ends as one line `error: ...` on stderr and exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UserError as err:
            fail(str(err))
        except click.exceptions.NoArgsIsHelpError as err:  # plain `hqflow`: the help, as click prints it
            err.show()
            sys.exit(err.exit_code)
        except click.MissingParameter as err:
            fail(err.format_message())
        except click.BadParameter as err:
            name = "/".join(err.param.opts) if err.param is not None and err.param.opts else err.param_hint
            fail(f"{name}: {err.message}" if name else err.message)
        except click.ClickException as err:
            fail(err.format_message())
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)



@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hqflow")
def main() -> None:
    """hqflow: quantized spiking vision transformers, from PyTorch to bit-exact HLS C++.

    \b
    The flow:
      hqflow train    --config configs/tiny.yaml -o runs/fp32        fp32 Spikformer
      hqflow evaluate runs/fp32                                      test accuracy of a run
      hqflow search   --from runs/fp32 --lambda 0.5 -o runs/l0.5     per-layer formats -> plan.json
      hqflow finetune --plan runs/l0.5/plan.json -o runs/l0.5/qat    QAT with the plan fixed
      hqflow report   runs/l0.5                                      accuracy, bits, energy, storage
      hqflow hwreport runs/l0.5                                      + FPGA resources, cycles, device fit
      hqflow sweep    --from runs/fp32 --lambdas 0.1,0.5,2 -o runs/sweep   Pareto front
      hqflow export   runs/l0.5/qat --target hls -o out/l0.5         integer DeployGraph + HLS C++
      hqflow sim      out/l0.5                                       NumPy integer simulator
      hqflow metrics  out/l0.5                                       NeuroBench's metrics of the integer model
      hqflow csim     out/l0.5                                       C simulation, bit for bit
      hqflow export   runs/l0.5/qat --target rtl -o out/rtl          + the whole model as a Verilog top
      hqflow rtlsim   out/rtl                                        Verilator, bit for bit; cycles, latency
      hqflow synth    out/rtl                                        Yosys resources per core, device fit
      hqflow pnr      out/rtl                                        ECP5 place and route: post-route Fmax
      hqflow bitstream out/rtl --board ulx3s-85f                     the top behind a UART bridge: a .bit
      hqflow board run out/rtl --port /dev/ttyUSB0                   test samples through the board
      hqflow board sim out/rtl                                       the same through a simulated board

    A mistake in the input (a file, an option, a folder) ends with one line `error: ...` and exit
    status 2. Every command that writes a folder leaves a complete result or none.
    """


for command in (train.train, train.evaluate, train.search, train.finetune, train.report, train.hwreport_cmd,
                train.cost_cmd, train.sweep, train.figures_cmd, train.table_cmd, train.paper_cmd, deploy.export_cmd,
                deploy.csim_cmd, deploy.rtlsim_cmd, deploy.synth_cmd, deploy.pnr_cmd, deploy.sim_cmd, deploy.metrics_cmd,
                board.bitstream_cmd, board.board_group):
    main.add_command(command)
