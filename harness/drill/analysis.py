"""What a switchover drill showed, from what the sender saw and what the engines and the proxy recorded.

Sans-IO: plain records in, a plain dict out (what the JSON report holds and the HTML renders).

- The sender's view: every attempt of every message (sent at, result known at, result). `ack` (AA/CA) and
  `rejected` (AE/CE: the engine's own answer about the content) end a message; `nak` (AR/CR: not taken now,
  per HL7 worth resending), `closed`, `timeout`, `refused` and `error` are failures, retried.
- Delivered: the engines' logs when given (each line naming a drill control id is one delivery; list the
  files in the order the engines served, primary first), else the capture store (an exchange the upstream
  answered is a delivery). A message is lost when it was never acknowledged and there is no evidence it was
  delivered; duplicated when delivered more than once; reordered when it reached the engine after a later
  message of the same patient.
- Outage: from the first failure to the first acknowledgement after it (each stretch of failures is an
  outage; the one at or after the switch is the drill's). A failure counts from when the sender saw it (the
  close, the NAK, the refused connection), a timeout from when its message was sent. Recovery: from the
  switch command's start to the first acknowledgement of a message sent after the command returned (a
  message the old primary answered while the command ran is no recovery).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.exchange import iso_time

FINAL = frozenset({"ack", "rejected"})
ANSWERED_OUTCOMES = frozenset({"ok", "nak", "bad_ack", "ambiguous_ack"})
"""Capture outcomes that mean the upstream received the message (it answered)."""
LISTED = 50
"""Lost, duplicated, reordered and failed items listed in the report (the JSON has the counts of all)."""


@dataclass(slots=True)
class Attempt:
    at: float
    ended: float
    result: str
    """ack, rejected, nak, closed, timeout, refused or error."""
    code: str | None = None
    text: str | None = None
    resent: bool = False
    """The client sent the message again within this attempt (a reused connection closed first)."""


@dataclass(slots=True)
class SentMessage:
    seq: int
    control_id: str
    patient: int
    patient_seq: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt | None:
        return next((a for a in self.attempts if a.result in FINAL), None)


@dataclass(slots=True)
class Switch:
    command: str | None = None
    at: float | None = None
    """When the switch command started (or the operator was told to switch)."""
    ended: float | None = None
    exit_code: int | None = None
    output: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    control_id: str
    source: str
    order: tuple
    upstream: str | None = None
    at: float | None = None


@dataclass(slots=True)
class DrillLimits:
    max_outage_s: float | None = None
    max_duplicates: int | None = None


def analyse(
    messages: Sequence[SentMessage],
    switch: Switch,
    deliveries: Sequence[Delivery],
    *,
    evidence: str,
    upstreams: Sequence[str] = (),
    captured: Sequence[Delivery] | None = None,
    limits: DrillLimits | None = None,
) -> dict[str, Any]:
    """The drill's figures and verdict.

    `deliveries` come from one evidence source, named by `evidence`; `captured` are the capture store's
    (None when the channel captures nothing): they say which upstream took each message.
    """
    limits = limits or DrillLimits()
    not_sent = sum(1 for m in messages if not m.attempts)  # the drill ended before their turn
    messages = [m for m in messages if m.attempts]
    by_id: dict[str, list[Delivery]] = {}
    for d in sorted(deliveries, key=lambda d: d.order):
        by_id.setdefault(d.control_id, []).append(d)
    acknowledged = [m for m in messages if m.final is not None and m.final.result == "ack"]
    rejected = [m for m in messages if m.final is not None and m.final.result == "rejected"]
    open_ = [m for m in messages if m.final is None]
    lost = [m for m in open_ if m.control_id not in by_id]
    unconfirmed = [m for m in open_ if m.control_id in by_id]
    duplicated = [(cid, ds) for cid, ds in by_id.items() if len(ds) > 1]
    reordered = _reordered(messages, by_id)
    outages = _outages(messages)
    drill_outage = _drill_outage(outages, switch.at)
    switched = switch.ended if switch.ended is not None else switch.at  # a kill takes effect when it returns
    recovery = _recovery(messages, switched)
    served = _served_by(captured, upstreams, switched) if captured is not None else []
    backups = list(upstreams[1:])
    took_over = any(s["after_switch"] for s in served if s["upstream"] in backups) if served else None
    failed_attempts = [(m, a) for m in messages for a in m.attempts if a.result not in FINAL]

    reasons: list[str] = []
    if lost:
        reasons.append(f"{len(lost)} message(s) lost: never acknowledged and never delivered")
    if reordered:
        reasons.append(
            f"{len(reordered)} message(s) reached the engine after a later one of the same patient"
        )
    if switch.at is not None and recovery is None:
        reasons.append("no message sent after the switch was acknowledged: the interface did not recover")
    if drill_outage and drill_outage["seconds"] is None:
        reasons.append(f"the outage that began at {drill_outage['from']} had not ended when the drill did")
    elif limits.max_outage_s is not None and drill_outage and drill_outage["seconds"] > limits.max_outage_s:
        reasons.append(f"outage {drill_outage['seconds']:.1f} s > maximum {limits.max_outage_s:g} s")
    if limits.max_duplicates is not None and len(duplicated) > limits.max_duplicates:
        reasons.append(
            f"{len(duplicated)} message(s) delivered more than once > maximum {limits.max_duplicates}"
        )
    if captured is not None and backups and switch.at is not None and took_over is False:
        reasons.append("no exchange after the switch went to a backup upstream: the backup list was not used")
    notes: list[str] = []
    if not_sent:
        notes.append(f"{not_sent} message(s) were not sent: the drill ended while earlier ones were retried")
    if unconfirmed:
        notes.append(f"{len(unconfirmed)} message(s) delivered but never acknowledged to the sender")
    if duplicated:
        notes.append(
            f"{len(duplicated)} message(s) delivered more than once (resent after a close or a NAK "
            "whose message had reached the engine): the engine must tolerate duplicates"
        )
    if not backups:
        notes.append("the channel has no backup upstream: the proxy's backup list was not exercised")

    return {
        "verdict": "FAIL" if reasons else "PASS",
        "reasons": reasons,
        "notes": notes,
        "evidence": evidence,
        "sent": len(messages),
        "not_sent": not_sent,
        "attempts": sum(len(m.attempts) for m in messages),
        "retried": sum(1 for m in messages if len(m.attempts) > 1),
        "acknowledged": len(acknowledged),
        "rejected_by_engine": len(rejected),
        "unacknowledged": len(open_),
        "delivered": sum(1 for m in messages if m.control_id in by_id),
        "lost": len(lost),
        "lost_ids": [m.control_id for m in lost[:LISTED]],
        "unconfirmed_ids": [m.control_id for m in unconfirmed[:LISTED]],
        "duplicated": len(duplicated),
        "duplicates": [
            {"control_id": cid, "deliveries": len(ds), "sources": [d.source for d in ds]}
            for cid, ds in duplicated[:LISTED]
        ],
        "reordered": len(reordered),
        "reorders": reordered[:LISTED],
        "outage": drill_outage,
        "outages": outages,
        "recovery_s": None if recovery is None else round(recovery - switch.at, 3),
        "recovered_at": None if recovery is None else iso_time(recovery),
        "served_by": served,
        "backup_took_over": took_over,
        "failed_attempts": [
            {
                "control_id": m.control_id,
                "at": iso_time(a.at),
                "result": a.result,
                "code": a.code,
                "text": a.text,
            }
            for m, a in failed_attempts[:LISTED]
        ],
        "failed_attempt_count": len(failed_attempts),
    }


def _reordered(messages: Sequence[SentMessage], by_id: dict[str, list[Delivery]]) -> list[dict[str, Any]]:
    """Messages first delivered after a later message of their patient was (first) delivered."""
    firsts = sorted(
        ((by_id[m.control_id][0].order, m) for m in messages if m.control_id in by_id), key=lambda x: x[0]
    )
    highest: dict[int, SentMessage] = {}
    out = []
    for _, m in firsts:
        top = highest.get(m.patient)
        if top is not None and top.patient_seq > m.patient_seq:
            out.append(
                {
                    "control_id": m.control_id,
                    "patient": m.patient,
                    "patient_seq": m.patient_seq,
                    "after": top.control_id,
                }
            )
        elif top is None or m.patient_seq > top.patient_seq:
            highest[m.patient] = m
    return out


def _outages(messages: Sequence[SentMessage]) -> list[dict[str, Any]]:
    events: list[tuple[float, int, Attempt]] = []
    for m in messages:
        for a in m.attempts:
            if a.result in FINAL:
                events.append((a.ended, 1, a))
            else:  # a timeout began when the message went into the void; other failures when they were seen
                events.append((a.at if a.result == "timeout" else a.ended, 0, a))
    events.sort(key=lambda e: (e[0], e[1]))
    out: list[dict[str, Any]] = []
    start: float | None = None
    failed = 0
    results: dict[str, int] = {}
    for at, success, a in events:
        if not success:
            if start is None:
                start, failed, results = at, 0, {}
            failed += 1
            results[a.result] = results.get(a.result, 0) + 1
        elif start is not None and at >= start:
            out.append(_outage(start, at, failed, results))
            start = None
    if start is not None:
        out.append(_outage(start, None, failed, results))
    return out


def _outage(start: float, end: float | None, failed: int, results: dict[str, int]) -> dict[str, Any]:
    return {
        "from": iso_time(start),
        "to": iso_time(end) if end is not None else None,
        "from_epoch": start,
        "to_epoch": end,
        "seconds": round(end - start, 3) if end is not None else None,
        "failed_attempts": failed,
        "results": results,
    }


def _drill_outage(outages: list[dict[str, Any]], switch_at: float | None) -> dict[str, Any] | None:
    if not outages:
        return None
    if switch_at is not None:
        around = [o for o in outages if o["to_epoch"] is None or o["to_epoch"] >= switch_at]
        if around:
            return around[0]
    return max(outages, key=lambda o: math.inf if o["seconds"] is None else o["seconds"])


def _recovery(messages: Sequence[SentMessage], switch_at: float | None) -> float | None:
    if switch_at is None:
        return None
    acks = [a.ended for m in messages for a in m.attempts if a.result in FINAL and a.at >= switch_at]
    return min(acks) if acks else None


def _served_by(
    deliveries: Iterable[Delivery], upstreams: Sequence[str], switch_at: float | None
) -> list[dict]:
    counts: dict[str, list[int]] = {}
    for d in deliveries:
        if d.upstream is None:
            continue
        c = counts.setdefault(d.upstream, [0, 0])
        after = switch_at is not None and d.at is not None and d.at >= switch_at
        c[1 if after else 0] += 1

    def role(address: str) -> str:
        if upstreams and address == upstreams[0]:
            return "primary"
        return "backup" if address in upstreams[1:] else "other"

    return [
        {"upstream": u, "role": role(u), "before_switch": c[0], "after_switch": c[1]}
        for u, c in sorted(counts.items(), key=lambda kv: (role(kv[0]) != "primary", kv[0]))
    ]


def capture_deliveries(
    rows: Iterable[tuple[str, float, str | None, str]], run_ids: set[str]
) -> list[Delivery]:
    """Deliveries from capture rows (control id, started at, upstream address, outcome) of this drill."""
    return [
        Delivery(cid, "capture", (at,), upstream, at)
        for cid, at, upstream, outcome in rows
        if cid in run_ids and outcome in ANSWERED_OUTCOMES
    ]


def log_deliveries(
    files: Sequence[tuple[str, Iterable[str]]], pattern: Any, run_ids: set[str]
) -> list[Delivery]:
    """Deliveries from engine logs: each line naming one of the drill's control ids is one delivery."""
    out: list[Delivery] = []
    for index, (name, lines) in enumerate(files):
        for number, line in enumerate(lines):
            for match in pattern.finditer(line):
                cid = match.group(0)
                if cid in run_ids:
                    out.append(Delivery(cid, name, (index, number)))
                    break
    return out
