"""An example ganlab plugin package (see README.md and ganlab's docs/plugins.md)."""

__version__ = "0.1.0"
