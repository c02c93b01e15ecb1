"""A capture store whose inspection figures are known by construction (local time Asia/Shanghai).

Window 2026-03-02 (a Monday) 08:00–12:00 +08:00, business hours 08:00–18:00, silence threshold 30 min:

- adt (MLLP, upstreams PRIMARY then BACKUP): 1,000 exchanges, all `ok`; 500 every 14 s from 08:00:00 (the last
  at 09:56:26), then 500 every 9 s from 10:45:00 (the last at 11:59:51): one silence 09:56:26–10:45:00 (48.6
  min). Latencies are 1..1000 ms, each once (p50 500.5, p95 950.05, p99 990.01); MSH-7 is the capture time
  minus (i % 10) s (sync delay p50 4.5 s, p95 9 s). Even i ADT^A01, odd ADT^A08. The last 250 (from 11:22:30)
  went to BACKUP: one failover. 100 more exchanges 04:00–07:59 (the period before, for the trend).
- lab (MLLP): 200 exchanges every 72 s from 08:00; k % 10 == 0 an AE NAK "unknown test code" (20), k % 25 == 1
  a timeout (8), else ok (172): success 86 %. Latency 5 ms. Plus 5 replayed exchanges and 3 late replies,
  which an inspection of live traffic leaves out.
- medins (HTTP, 医保 2207): 100 exchanges every 144 s from 08:00 with inf_time 30 s before capture; every
  tenth refused with infcode -1 and err_msg 余额不足 (10): success 90 %.
- cdc: no traffic at all (named in the SLA: a 4-hour silence).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness.exchange import Exchange
from harness.store import Store
from tests.messages import ack_for

TZ = timezone(timedelta(hours=8))
DAY = datetime(2026, 3, 2, tzinfo=TZ)
SINCE = (DAY + timedelta(hours=8)).timestamp()
UNTIL = (DAY + timedelta(hours=12)).timestamp()
PRIMARY, BACKUP = "10.10.1.21:12575", "10.10.1.22:12575"
FAILOVER_AT = (DAY + timedelta(hours=10, minutes=45) + timedelta(seconds=9 * 250)).timestamp()
SILENCE = (
    (DAY + timedelta(hours=8) + timedelta(seconds=14 * 499)).timestamp(),
    (DAY + timedelta(hours=10, minutes=45)).timestamp(),
)

SLA = """\
silence_minutes: 30
channels:
  adt: {success_rate_min: 99.0, p95_ms_max: 2000, failovers_max: 0}
  lab: {success_rate_min: 99.0, message_types: {"ORU^R01": {p95_ms_max: 10}}}
  medins: {success_rate_min: 80}
  cdc: {volume_min: 1}
"""

CONFIG = f"""\
store: captures.db
admin: off
channels:
  adt: {{protocol: mllp, listen: "127.0.0.1:2575", upstream: ["{PRIMARY}", "{BACKUP}"]}}
  lab: {{protocol: mllp, listen: "127.0.0.1:2576", upstream: "10.10.1.21:12576"}}
"""


def msh7(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, TZ).strftime("%Y%m%d%H%M%S")


def hl7(mtype: str, control_id: str, made: float, pid: str = "P1") -> bytes:
    return (
        f"MSH|^~\\&|HIS|H1|HC|H1|{msh7(made)}||{mtype}|{control_id}|P|2.5\rEVN||{msh7(made)}\r"
        f"PID|1||{pid}^^^H1^MR||TEST^PATIENT\r"
    ).encode()


def ack(code: str, control_id: str, text: str = "") -> bytes:
    return ack_for(control_id, code, text=text, sender=("HC", "H1"), receiver=("HIS", "H1"))


def mllp(
    channel: str,
    started: float,
    latency_ms: float | None,
    outcome: str,
    mtype: str,
    cid: str,
    made: float,
    upstream: str | None,
    ack_code: str | None = None,
    text: str = "",
    **extra,
) -> Exchange:
    ex = Exchange(
        channel=channel,
        protocol="mllp",
        kind="hl7v2",
        started_at=started,
        request=hl7(mtype, cid, made),
        response=ack(ack_code, cid, text) if ack_code else None,
        outcome=outcome,
        ack_code=ack_code,
        message_type=mtype,
        control_id=cid,
        charset="utf-8",
        upstream_addr=upstream,
        client_addr="127.0.0.1:40000",
        **extra,
    )
    if latency_ms is not None:
        ex.finish(started + latency_ms / 1000.0)
    else:
        ex.finish(started + 30.0)
    return ex


def medins(started: float, refused: bool, n: int) -> Exchange:
    made = datetime.fromtimestamp(started - 30, TZ).strftime("%Y-%m-%d %H:%M:%S")
    body = json.dumps(
        {"infno": "2207", "msgid": f"H5301{n:08d}", "inf_time": made, "input": {}}, ensure_ascii=False
    )
    request = (
        "POST /fsi/api/rsfComIfsService/callService HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()
    answer = {"infcode": -1, "err_msg": "余额不足"} if refused else {"infcode": 0, "output": {}}
    meta = {"infno": "2207", **({"infcode": -1, "err_msg": "余额不足"} if refused else {"infcode": 0})}
    ex = Exchange(
        channel="medins",
        protocol="http",
        kind="medins",
        started_at=started,
        request=request,
        response=json.dumps(answer, ensure_ascii=False).encode(),
        outcome="nak" if refused else "ok",
        ack_code="-1" if refused else "0",
        message_type="2207",
        control_id=f"H5301{n:08d}",
        upstream_addr="10.10.2.5:8080",
        method="POST",
        path="/fsi/api/rsfComIfsService/callService",
        status=200,
        meta=meta,
    )
    ex.finish(started + 0.040)
    return ex


def exchanges() -> list[Exchange]:
    out: list[Exchange] = []
    start = DAY + timedelta(hours=8)
    for i in range(1000):
        t = (
            (start + timedelta(seconds=14 * i)).timestamp()
            if i < 500
            else (DAY + timedelta(hours=10, minutes=45) + timedelta(seconds=9 * (i - 500))).timestamp()
        )
        mtype = "ADT^A01" if i % 2 == 0 else "ADT^A08"
        upstream = BACKUP if i >= 750 else PRIMARY
        out.append(mllp("adt", t, ((i * 7) % 1000) + 1, "ok", mtype, f"A{i}", t - (i % 10), upstream, "AA"))
    before = DAY + timedelta(hours=4)
    for i in range(100):
        t = (before + timedelta(seconds=144 * i)).timestamp()
        out.append(mllp("adt", t, 3, "ok", "ADT^A01", f"B{i}", t, PRIMARY, "AA"))
    for k in range(200):
        t = (start + timedelta(seconds=72 * k)).timestamp()
        if k % 10 == 0:
            out.append(
                mllp("lab", t, 5, "nak", "ORU^R01", f"L{k}", t, "10.10.1.21:12576", "AE", "unknown test code")
            )
        elif k % 25 == 1:
            out.append(
                mllp(
                    "lab",
                    t,
                    None,
                    "timeout",
                    "ORU^R01",
                    f"L{k}",
                    t,
                    "10.10.1.21:12576",
                    error="no ACK within 30.0 s (ack_timeout_s)",
                )
            )
        else:
            out.append(mllp("lab", t, 5, "ok", "ORU^R01", f"L{k}", t, "10.10.1.21:12576", "AA"))
    for k in range(5):  # replays of lab traffic: not live
        t = (start + timedelta(seconds=600 + k)).timestamp()
        out.append(
            mllp("lab", t, 900, "nak", "ORU^R01", f"R{k}", t, "127.0.0.1:9", "AR", "replayed", original_id=1)
        )
    for k in range(3):  # stray late replies: not exchanges of their own
        t = (start + timedelta(seconds=1000 + k)).timestamp()
        late = Exchange(
            channel="lab",
            kind="hl7v2",
            started_at=t,
            request=b"",
            response=ack("AA", f"L{k}"),
            outcome="late_ack",
            ack_code="AA",
            upstream_addr="10.10.1.21:12576",
        )
        late.finish(t)
        out.append(late)
    for n in range(100):
        out.append(medins((start + timedelta(seconds=144 * n)).timestamp(), n % 10 == 0, n))
    return out


def build(path: Path) -> Path:
    with Store(path) as store:
        store.add_many(exchanges())
    return path
