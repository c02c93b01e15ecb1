"""HAR 1.2 (HTTP Archive): export exchanges for browsers' and tools' HAR viewers, import HAR files.

Bodies that are not UTF-8 text go base64-encoded (`content.encoding: "base64"`), as HAR allows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from harness import __version__
from harness.interop import HttpPair


def _mime(headers: list[tuple[str, str]]) -> str:
    return next((v for k, v in headers if k.lower() == "content-type"), "")


def _body(data: bytes) -> dict:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"text": base64.b64encode(data).decode("ascii"), "encoding": "base64"}


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry(pair: HttpPair) -> dict:
    headers = [{"name": k, "value": v} for k, v in pair.request_headers]
    request: dict = {
        "method": pair.method,
        "url": pair.url,
        "httpVersion": pair.http_version,
        "cookies": [],
        "headers": headers,
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(pair.path).query)],
        "headersSize": -1,
        "bodySize": len(pair.request_body),
    }
    if pair.request_body:
        request["postData"] = {"mimeType": _mime(pair.request_headers), **_body(pair.request_body)}
    total = ((pair.ended_at or pair.started_at) - pair.started_at) * 1000.0
    out: dict = {
        "startedDateTime": _when(pair.started_at),
        "time": round(total, 3),
        "request": request,
        "cache": {},
        "timings": {"send": 0, "wait": round(total, 3), "receive": 0},
    }
    body = pair.response_body or b""
    out["response"] = {
        "status": pair.status if pair.status is not None else 0,
        "statusText": pair.reason,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in pair.response_headers],
        "content": {"size": len(body), "mimeType": _mime(pair.response_headers), **_body(body)},
        "redirectURL": next((v for k, v in pair.response_headers if k.lower() == "location"), ""),
        "headersSize": -1,
        "bodySize": len(body) if pair.status is not None else -1,
    }
    if pair.notes:
        out["comment"] = "; ".join(pair.notes)
    return out


def write(pairs: Iterable[HttpPair], path: Path, *, force: bool = False) -> int:
    """Write a HAR file at `path`, created 0600 (OutputExists when it exists and not `force`)."""
    from harness.private_files import write_private

    entries = [entry(p) for p in pairs]
    doc = {
        "log": {"version": "1.2", "creator": {"name": "harness", "version": __version__}, "entries": entries}
    }
    write_private(path, json.dumps(doc, ensure_ascii=False, indent=1), force=force)
    return len(entries)


def _decode(content: dict) -> bytes:
    text = content.get("text") or ""
    if content.get("encoding") == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read(path: Path) -> Iterator[HttpPair]:
    """The entries of a HAR file; raises ValueError naming the entry that cannot be read."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = doc["log"]["entries"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a HAR file: {exc}") from None
    for i, item in enumerate(entries):
        try:
            req = item["request"]
            url = urlsplit(req["url"])
            scheme = url.scheme or "http"
            path_q = (url.path or "/") + (f"?{url.query}" if url.query else "")
            started = _epoch(item["startedDateTime"])
            pair = HttpPair(
                method=req["method"],
                path=path_q,
                host=url.hostname or "localhost",
                port=url.port or (443 if scheme == "https" else 80),
                scheme=scheme,
                http_version=req.get("httpVersion")
                if str(req.get("httpVersion", "")).startswith("HTTP/1")
                else "HTTP/1.1",
                request_headers=[
                    (h["name"], h["value"]) for h in req.get("headers", []) if not h["name"].startswith(":")
                ],
                request_body=_decode(req.get("postData") or {}),
                started_at=started,
                ended_at=started + float(item.get("time") or 0) / 1000.0,
            )
            resp = item.get("response") or {}
            if resp.get("status"):
                pair.status = int(resp["status"])
                pair.reason = resp.get("statusText") or ""
                pair.response_headers = [
                    (h["name"], h["value"]) for h in resp.get("headers", []) if not h["name"].startswith(":")
                ]
                pair.response_body = _decode(resp.get("content") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: entry {i}: cannot be read: {exc!r}") from None
        yield pair
