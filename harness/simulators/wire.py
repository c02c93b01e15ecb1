"""The sans-IO request and response every HTTP simulator core speaks.

Cores take an `HttpRequest` and return an `HttpResponse`; only harness/simulators/http.py touches
sockets. Keeping these values free of Twisted lets the cores be tested (and reused) without a reactor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str  # path plus query, as sent on the request line
    headers: dict[str, str] = field(default_factory=dict)  # keys lower-case
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


MAX_JSON_DEPTH = 64


class JsonBodyError(ValueError):
    """The body is not usable JSON; the message says what and where (phrased after 'body')."""


def load_json(body: bytes) -> Any:
    """Parse a request body strictly as UTF-8 JSON, nested at most MAX_JSON_DEPTH levels.

    The depth limit keeps a hostile body from exhausting the recursion of the parser or of the cores'
    own walks (a RecursionError would otherwise surface as a 500 instead of a clear answer).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonBodyError(
            f"body is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}"
        ) from None
    if not text.strip():
        raise JsonBodyError("body is empty; expected JSON")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonBodyError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JsonBodyError(f"body nests JSON deeper than {MAX_JSON_DEPTH} levels") from None
    stack = [(value, 1)]
    while stack:  # iterative, so the check itself cannot recurse too deeply
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    raise JsonBodyError(f"body nests JSON deeper than {MAX_JSON_DEPTH} levels")
                stack.append((child, depth + 1))
    return value


def json_response(
    status: int, value: object, content_type: str = "application/json; charset=utf-8"
) -> HttpResponse:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HttpResponse(status, {"Content-Type": content_type}, body)


def text_response(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode("utf-8"))


class Core(Protocol):
    """A simulator: one request in, one response out, state kept in between."""

    name: str

    def handle(self, request: HttpRequest) -> HttpResponse: ...

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        """The answer to a body over the size limit (413 in the simulator's own error format)."""
        ...
