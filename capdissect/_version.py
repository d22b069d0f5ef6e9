"""The one place the version is written (h11's ``_version.py``): pyproject.toml reads it
at build time, and modules inside the package import it from here, never from
``capdissect/__init__.py``, so that no module depends on the package's public face."""

__version__ = "0.1.0"
