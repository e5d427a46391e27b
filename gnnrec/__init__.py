"""gnnrec: LLM-enhanced cross-domain recommendation on graphs."""

__version__ = "0.1.0"

__all__ = ["__version__"]
