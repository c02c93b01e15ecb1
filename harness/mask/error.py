"""MaskError, on its own so each kind's masker can raise it without importing the Masker that calls it."""

from __future__ import annotations


class MaskError(ValueError):
    """Content that cannot be masked (unreadable, truncated, an unknown encoding): never passed on."""
