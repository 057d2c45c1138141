"""hqflow: heterogeneous quantization of spiking vision transformers, from PyTorch to HLS C++."""

__version__ = "0.1.0"
