"""The package version, written here only: pyproject.toml reads it (``[tool.setuptools.dynamic]``).

Foundation layer: importing it imports nothing else of diffmem.
"""

__version__ = "0.1.0"
