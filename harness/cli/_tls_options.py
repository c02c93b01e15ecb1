"""The TLS options every listening command shares (the simulators), defined once.

`--tls-cert/--tls-key` serve TLS, `--tls-client-ca` also requires and verifies a client certificate
(mutual TLS), `--tls-min-version` and `--tls-ciphers` are the same knobs as a proxy channel's
`tls.min_version` and `tls.ciphers`. `listener_tls(...)` checks the material at once and exits 2 naming
the option and the file when it is unusable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli._common import fail_usage
from harness.tls import DEFAULT_MIN_VERSION, TLS_VERSIONS

TLSCertOpt = Annotated[
    Path | None,
    typer.Option("--tls-cert", metavar="PEM", help="Serve TLS with this certificate (and its chain)."),
]
TLSKeyOpt = Annotated[
    Path | None,
    typer.Option("--tls-key", metavar="PEM", help="Private key for --tls-cert (default: in the cert file)."),
]
TLSClientCAOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-client-ca",
        metavar="PEM",
        help="Mutual TLS: require a client certificate signed by a CA in this file.",
    ),
]
TLSMinVersionOpt = Annotated[
    str,
    typer.Option(
        "--tls-min-version",
        metavar="VERSION",
        help=f"Lowest TLS version accepted: {', '.join(TLS_VERSIONS)}.",
    ),
]
TLSCiphersOpt = Annotated[
    str | None,
    typer.Option("--tls-ciphers", metavar="LIST", help="OpenSSL cipher string for TLS 1.2 and below."),
]

_OPTION_OF = {
    "cert": "--tls-cert",
    "key": "--tls-key",
    "ca": "--tls-client-ca",
    "min_version": "--tls-min-version",
    "ciphers": "--tls-ciphers",
}


def listener_tls(
    cert: Path | None,
    key: Path | None,
    client_ca: Path | None,
    min_version: str = DEFAULT_MIN_VERSION,
    ciphers: str | None = None,
    *,
    protocols: tuple[bytes, ...] = (),
) -> Any:
    """The ListenerTLS the options ask for (None without --tls-cert), its material already checked."""
    from harness.tls import ListenerTLS, TLSError, server_options

    if cert is None:
        given = [name for name, value in (("--tls-key", key), ("--tls-client-ca", client_ca)) if value]
        if given or ciphers is not None or min_version != DEFAULT_MIN_VERSION:
            raise fail_usage(f"{(given or ['--tls-min-version/--tls-ciphers'])[0]} needs --tls-cert")
        return None
    tls = ListenerTLS(
        cert=cert, key=key or cert, ca=client_ca, min_version=min_version, ciphers=ciphers, where="tls"
    )
    try:
        server_options(tls, protocols)
    except TLSError as exc:
        option = _OPTION_OF.get(exc.where.rpartition(".")[2], "--tls-cert")
        raise fail_usage(f"{option}: {exc.problem}") from None
    return tls
