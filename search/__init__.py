"""The PyTorch stage: the Spikformer model, its training loops and (later) the quantization search."""
