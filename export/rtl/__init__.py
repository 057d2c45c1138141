"""DeployGraph layers -> Verilog cores, their memory files, and Verilator / Yosys runs.

    verilator.py  find_verilator, build (a Verilator C++ model with its testbench), run
    memfiles.py   ROM words and LIF tables as $readmemh files (the layout of hqflow.numerics.rom)
    layer.py      one layer as a stand-alone Verilator project: memory files, the rendered
                  wrapper, input / golden vectors from the NumPy simulator
    spike_ops.py  the SSA, pooling, add, tokens and head cores in one Verilator model, cases and
                  expected values from hqflow.numerics
    yosys.py      find_yosys, synth (synth_xilinx -family xc7) -> Resources (LUT, FF, DSP, BRAM, ...)
    project.py    `hqflow export --target rtl` (every weighted node's core, vectors traced on the real
                  model, Makefile, README), `hqflow rtlsim`, `hqflow synth`

The Verilog itself lives in rtl_templates/cores (the package hqflow.rtl_templates); Python
fills in parameters, memory files and wiring only, never arithmetic.
"""
