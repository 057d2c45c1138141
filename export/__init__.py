"""Lowering a quantized checkpoint to a DeployGraph, and rendering it as an HLS C++ project."""
