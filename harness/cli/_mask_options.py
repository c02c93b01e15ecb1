"""The masking options every command that writes content out shares, defined once.

Content is masked by default, with the default policy (specs/masking/default.yaml); `--mask-policy
NAME|FILE` picks another; `--unmasked` writes it as captured, and the command records that in the audit
log. The key comes from `--mask-key-file`, $HARNESS_MASK_KEY_FILE or $HARNESS_MASK_KEY. `masker(...)`
turns the options into a Masker, or None for --unmasked, and exits 2 with the reason when the policy or
the key is unusable (without a key, the message names --unmasked).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import fail_usage

MaskOpt = Annotated[
    bool,
    typer.Option(
        "--mask",
        help="Mask patient data (names, 身份证, phones, addresses, birth dates) with the default policy, "
        "specs/masking/default.yaml (the default; kept for scripts that say so); the key from "
        "--mask-key-file, $HARNESS_MASK_KEY_FILE or $HARNESS_MASK_KEY.",
    ),
]
UnmaskedOpt = Annotated[
    bool,
    typer.Option(
        "--unmasked",
        help="Write patient data as captured, unmasked; recorded in the audit log (who, when, which "
        "exchanges).",
    ),
]
MaskPolicyOpt = Annotated[
    str | None,
    typer.Option(
        "--mask-policy",
        metavar="POLICY",
        help="Mask with this policy: a name under specs/masking/ or a YAML file (implies --mask).",
    ),
]
MaskKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--mask-key-file",
        metavar="FILE",
        help="The masking key (kept apart from the data). Default: $HARNESS_MASK_KEY_FILE, else "
        "$HARNESS_MASK_KEY.",
    ),
]


def masker(
    mask: bool,
    policy: str | None,
    key_file: Path | None,
    data_paths: Iterable[str | Path] = (),
    *,
    unmasked: bool = False,
):
    """A Masker for the options given (the default policy unless another is named), None for
    --unmasked; exits 2 on a bad policy or key, or --unmasked beside --mask/--mask-policy."""
    if unmasked:
        if mask or policy is not None:
            raise fail_usage("--unmasked cannot be combined with --mask or --mask-policy")
        return None
    return build(policy or "default", key_file, data_paths, by_default=not mask and policy is None)


def build(
    policy: str, key_file: Path | None, data_paths: Iterable[str | Path] = (), *, by_default: bool = False
):
    from harness.mask import key as keys
    from harness.mask import policy as policies
    from harness.mask.masker import Masker

    try:
        loaded = policies.load(policy)
        secret = keys.load(key_file, data_paths=data_paths)
    except (policies.PolicyError, keys.MaskKeyError) as exc:
        hint = (
            "; output is masked by default: give a masking key, or --unmasked to write patient data as "
            "captured (recorded in the audit log)"
            if by_default
            else ""
        )
        raise fail_usage(f"{exc}{hint}") from None
    return Masker(loaded, secret)


def masked(exchanges: Iterable, chosen, *, skip_withheld: bool = False) -> Iterable:
    """The exchanges as they are when `chosen` (a Masker from `masker`) is None, else masked copies.
    `skip_withheld` leaves out exchanges whose request could not be masked (for exports: an empty
    message file helps nobody), saying so on stderr."""
    if chosen is None:
        return exchanges
    from harness.mask.exchange import mask_exchange, withheld

    def generate():
        for ex in exchanges:
            out = mask_exchange(chosen, ex)
            if skip_withheld and withheld(out, "request"):
                typer.secho(
                    f"exchange {ex.id} left out: its request could not be masked",
                    err=True,
                    fg=typer.colors.YELLOW,
                )
                continue
            yield out

    return generate()
