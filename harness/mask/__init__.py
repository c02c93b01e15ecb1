"""Consistent, format-preserving masking of patient data in every kind the harness carries.

`Masker(policy, key)` masks content (`content`), captured exchanges (`mask_exchange`) and whole stores
(`mask_store`); `policy.load` reads a policy from specs/masking/; `key.load` finds the key. See
specs/masking/README.md for what is masked and how.
"""

from __future__ import annotations

from harness.mask.masker import Masker, MaskError

__all__ = ["Masker", "MaskError", "mask_content"]


def mask_content(
    data: bytes | str,
    kind: str,
    *,
    policy: str = "default",
    key: bytes | None = None,
    charset: str | None = None,
) -> bytes | str:
    """One piece of content masked with a policy (a name or file) and a key (default: from the
    environment, as `harness mask` finds it). The call reports and exports make for each body they
    write: bytes in gives bytes out in the same charset, text in gives text out; raises MaskError when
    the content cannot be masked, and PolicyError or MaskKeyError when the policy or key is unusable."""
    from harness.mask import key as keys
    from harness.mask import policy as policies

    masker = Masker(policies.load(policy), key if key is not None else keys.load())
    return masker.content(data, kind, charset=charset)
