"""The package version (one place; advisor/__init__ re-exports it, law files record it)."""
__version__ = "0.1.0"
