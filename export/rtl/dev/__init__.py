"""Test and calibration tooling of the RTL backend; the product never imports it (tests/test_layering.py).

    layer.py      one weighted layer as a stand-alone Verilator project (the core tests): memory
                  files, the rendered wrapper, input / golden vectors from the NumPy simulator
    spike_ops.py  the SSA, pooling, add, tokens and head cores in one Verilator model, cases and
                  expected values from hqflow.numerics (the core tests)
    calibrate.py  the sequential cores' FPGA table (hqflow/tables/fpga_xc7.yaml) from synthesized
                  cores: python -m hqflow.export.rtl.dev.calibrate
"""
