"""The store's errors, on their own so every store module can raise them without importing the backend."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be used: missing, not a capture store, newer schema, unreachable, unusable filter."""


class StoreUnavailable(StoreError):
    """The store cannot take writes now (database unreachable, read-only, disk full): try again later."""
