"""DeployGraph layers -> Verilog cores, their memory files, and Verilator / Yosys runs.

    verilator.py  find_verilator, build (a Verilator C++ model with its testbench), run
    memfiles.py   ROM words and LIF tables as $readmemh files (the layout of hqflow.numerics.rom)
    paths.py      where the Verilog cores and templates are (the package hqflow.rtl_templates)
    dev/          test and calibration tooling the product never imports: one layer or the spike-op
                  cores as Verilator projects (the core tests), the sequential cores' FPGA table
    yosys.py      find_yosys, synth (one module), synth_hierarchy (a top, per instance) -> Resources
    seq_ops.py    the layer-sequential top's cores, one SeqOp per op (module, parameters, buffer, cycles)
    top.py        the whole DeployGraph as one layer-sequential top: cores, buffers, wiring (plan_top)
    stream.py, stream_base.py, stream_ops.py, stream_weighted.py, stream_memories.py,
    stream_estimate.py, stream_project.py
                  the streaming, time-batched top (the default): schedule and folding, the StreamOp
                  interface, one StreamOp per op (the weighted ones apart), the cores' memories, the
                  resource estimate, the export and cycle report
    diagram.py    the top's block diagram (architecture.png)
    estimate.py   resources and cycles of a top without synthesis or simulation (calibrated model)
    project.py    `hqflow export --target rtl` (the top, test vectors, Makefile, README), `hqflow
                  rtlsim` (co-simulation, cycles.json), `hqflow synth` (resources, device fit)

The Verilog itself lives in rtl_templates/cores (the package hqflow.rtl_templates); Python
fills in parameters, memory files and wiring only, never arithmetic.
"""
