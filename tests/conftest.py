"""Shared test settings: quiet, deterministic CPU torch."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
