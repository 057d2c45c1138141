"""Bit-accurate NumPy execution of a DeployGraph (no torch)."""
