"""The TLS options commands share, defined once: listening (the simulators) and sending (send, replay,
certify, load).

Listening: `--tls-cert/--tls-key` serve TLS, `--tls-client-ca` also requires and verifies a client
certificate (mutual TLS), `--tls-min-version` and `--tls-ciphers` are the same knobs as a proxy channel's
`tls.min_version` and `tls.ciphers`. Sending: `--tls`, `--ca`, `--cert/--key` (a client certificate for a
peer that asks for one), `--server-name`, `--insecure`. `listener_tls(...)` and `client_tls(...)` check
the material at once and exit 2 naming the option and the file when it is unusable.
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


ClientTLSOpt = Annotated[
    bool, typer.Option("--tls", help="Use TLS (implied by --ca, --cert, --server-name and --insecure).")
]
ClientCAOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca", metavar="PEM", help="CA certificate(s) to verify the server with (default: the system's)."
    ),
]
ClientCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert", metavar="PEM", help="Client certificate, for a server that asks for one (mutual TLS)."
    ),
]
ClientKeyOpt = Annotated[
    Path | None,
    typer.Option("--key", metavar="PEM", help="Private key of --cert (default: in the --cert file)."),
]
ServerNameOpt = Annotated[
    str | None,
    typer.Option(
        "--server-name", metavar="NAME", help="Name the server's certificate must carry (default: the host)."
    ),
]
InsecureOpt = Annotated[
    bool, typer.Option("--insecure", help="TLS without verifying the server's certificate.")
]

_CLIENT_OPTION_OF = {"ca": "--ca", "client.cert": "--cert", "client.key": "--key"}


def client_tls(
    tls: bool = False,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    server_name: str | None = None,
    insecure: bool = False,
) -> Any:
    """The `TLSOptions` the sending options ask for (None: plain TCP), its files already checked."""
    from harness.client_tls import TLSOptions
    from harness.tls import TLSError

    if key is not None and cert is None:
        raise fail_usage("--key needs --cert (the client certificate it belongs to)")
    if not (tls or ca or cert or server_name or insecure):
        return None
    options = TLSOptions(
        ca=str(ca) if ca else None,
        cert=str(cert) if cert else None,
        key=str(key) if key else None,
        server_name=server_name,
        verify=not insecure,
    )
    try:
        options.context()
    except TLSError as exc:
        if exc.where == "client.key" and key is None:  # the key was looked for in the --cert file
            raise fail_usage(f"--cert: {exc.problem}; give the key with --key") from None
        raise fail_usage(f"{_CLIENT_OPTION_OF.get(exc.where, '--cert')}: {exc.problem}") from None
    return options
