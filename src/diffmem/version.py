"""The package version (foundation layer: importing it imports nothing else of diffmem)."""

__version__ = "0.1.0"
