"""The RTL library, shipped as package data: cores/ (hand-written synthesizable Verilog, one file
per op or shared block), tb/ (C++ Verilator testbench pieces) and project/ (Jinja templates of
the generated wrappers: parameters, memory file names and wiring only). export/rtl/ finds them
through this package."""
