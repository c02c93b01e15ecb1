"""Masking what a report says about a message: findings quote the message (an `actual` 身份证 whose check
digit is wrong, a name in a bad field), so a report over real traffic carries patient data too.

Validation runs on the original message (masking would mend the very errors it should find); the report
is masked afterwards. `Watch` masks each message as it goes to the validator, keeping only the pairs
original -> pseudonym of that message; `mask_message` then sweeps those pairs, and any 身份证 or mobile
number left, out of the message's findings. A message that cannot be masked has its findings' values
withheld, never shown as they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from harness.mask.masker import Masker, MaskError, Pass

WITHHELD = "(withheld: the message could not be masked)"


class Watch:
    """Wraps the (source, id, payload, charset) items a validator reads, noting each one's pseudonyms."""

    def __init__(self, masker: Masker, items: Iterable[tuple], kind: str = "hl7v2") -> None:
        self.masker = masker
        self.kind = kind
        self._items = items
        self.passes: dict[str, Pass | None] = {}

    def __iter__(self) -> Iterator[tuple]:
        for item in self._items:
            source, _, payload, charset = item
            pass_ = self.masker.new_pass()
            try:
                self.masker.structure(payload, self.kind, pass_, charset=charset)
            except MaskError:
                pass_ = None
            self.passes[source] = pass_
            yield item

    def mask_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """`message` (a validator's result: source, findings, ...) with its findings masked, in place."""
        pass_ = self.passes.get(message.get("source", ""), None)
        findings = message.get("findings") or []
        if pass_ is None:
            scrub = self.masker.new_pass().scrub
            for finding in findings:
                for key in ("expected", "actual"):
                    if finding.get(key) not in (None, ""):
                        finding[key] = WITHHELD
                if isinstance(finding.get("message"), str):
                    finding["message"] = scrub(finding["message"])
        else:
            message["findings"] = pass_.replacements.sweep_value(findings)
        return message
