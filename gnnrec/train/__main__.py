"""``python -m gnnrec.train``: same as ``gnnrec-train``."""

from gnnrec.cli import main

main()
