"""inr-codec core: signals, encodings, INR models, fitting, export.

This package is signal-agnostic and never imports `video`, `server` or `ui`.
"""
from inr.errors import InrError

__all__ = ["InrError"]
__version__ = "0.1.0"
