"""The HLS project's sources, shipped as package data: kernels/ (the kernel library, copied into
every project's firmware/kernels), tb/ (the testbench header) and project/ (the Jinja templates
of the generated files). export/hls/ finds them through this
package."""
