"""HOST:PORT as engineers type it (IPv4, names, and [IPv6]:PORT), shared by the CLI and the proxy config."""

from __future__ import annotations


def parse_hostport(value: str, *, what: str = "address") -> tuple[str, int]:
    """Parse HOST:PORT or [IPv6]:PORT; raises ValueError naming what was wrong."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{what} {value!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{what} {value!r}: expected HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{what} {value!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} {value!r}: port {port} is out of range 0-65535")
    return host, port
