"""`python -m hqflow.cli` (torchrun runs the CLI this way)."""

from hqflow.cli import main

main()
