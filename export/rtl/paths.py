"""Where the RTL backend's hand-written Verilog cores and Jinja templates are: the package
hqflow.rtl_templates (package data of a regular install; the rtl_templates folder when editable)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["CORES", "TEMPLATES"]

TEMPLATES = Path(str(resources.files("hqflow.rtl_templates")))
CORES = TEMPLATES / "cores"
