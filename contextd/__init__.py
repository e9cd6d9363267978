"""contextd: a local, always-fresh index of code and documents for coding agents."""

__version__ = "0.1.0"
