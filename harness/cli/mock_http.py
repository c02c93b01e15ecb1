"""`harness mock fhir|soap|medins|cdc`: the HTTP simulators (one Twisted shell, one sans-IO core each)."""

from __future__ import annotations

import typer

from harness.cli._common import fail_usage, parse_hostport
from harness.cli._tls_options import (
    TLSCertOpt,
    TLSCiphersOpt,
    TLSClientCAOpt,
    TLSKeyOpt,
    TLSMinVersionOpt,
    listener_tls,
)
from harness.tls import DEFAULT_MIN_VERSION, HTTP_ALPN

LISTEN_HELP = "HOST:PORT to listen on (port 0 picks a free port; the real one is printed)."
MAX_BODY_HELP = "Largest request body accepted, in bytes; bigger ones get 413."
QUIET_HELP = "No per-request log lines (for load tests)."


def _serve(core, listen: str, max_body: int, quiet: bool, tls: tuple) -> None:
    try:
        host, port = parse_hostport(listen, what="--listen")
    except ValueError as exc:
        raise fail_usage(str(exc)) from None
    if max_body <= 0:
        raise fail_usage("--max-body must be positive")
    listener = listener_tls(*tls, protocols=HTTP_ALPN)
    from twisted.internet.error import CannotListenError

    from harness.simulators.http import serve

    try:
        serve(core, host, port, max_body=max_body, quiet=quiet, tls=listener)
    except CannotListenError as exc:
        raise fail_usage(f"cannot listen on {listen}: {exc.socketError}") from None


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    mock = groups["mock"]

    @mock.command("medins")
    def medins(
        listen: str = typer.Option("127.0.0.1:18080", "--listen", help=LISTEN_HELP),
        strict: bool = typer.Option(
            False, "--strict", help="Require a sign_no from 9001 on every call and refuse repeated msgids."
        ),
        tif_token: str = typer.Option(
            None, "--tif-token", help="Check the gateway's x-tif-* signature headers against this token."
        ),
        infosyscode: str = typer.Option(
            None, "--infosyscode", help="Yunnan DLL path: require this infosyscode (what the HIS gives Init)."
        ),
        infosyssign: str = typer.Option(
            None, "--infosyssign", help="Yunnan DLL path: require this infosyssign (with --infosyscode)."
        ),
        max_body: int = typer.Option(10 * 1024 * 1024, "--max-body", help=MAX_BODY_HELP),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
        tls_cert: TLSCertOpt = None,
        tls_key: TLSKeyOpt = None,
        tls_client_ca: TLSClientCAOpt = None,
        tls_min_version: TLSMinVersionOpt = DEFAULT_MIN_VERSION,
        tls_ciphers: TLSCiphersOpt = None,
    ) -> None:
        """Yunnan medical-insurance centre: POST /fsi/api/rsfComIfsService/callService (or .../INFNO), or
        .../eapdomain/callService as CHSInterfaceYn.dll posts it."""
        from harness.simulators.medins import MedinsSimulator

        if bool(infosyscode) != bool(infosyssign):
            raise fail_usage("--infosyscode and --infosyssign go together")
        credentials = {"infosyscode": infosyscode, "infosyssign": infosyssign} if infosyscode else None
        _serve(
            MedinsSimulator(strict=strict, tif_token=tif_token, dll_credentials=credentials),
            listen,
            max_body,
            quiet,
            (tls_cert, tls_key, tls_client_ca, tls_min_version, tls_ciphers),
        )

    @mock.command("fhir")
    def fhir(
        listen: str = typer.Option("127.0.0.1:18081", "--listen", help=LISTEN_HELP),
        base: str = typer.Option("/fhir", "--base", help="Path of the FHIR base."),
        max_resources: int = typer.Option(
            100_000, "--max-resources", help="Resources kept before the oldest go."
        ),
        max_body: int = typer.Option(10 * 1024 * 1024, "--max-body", help=MAX_BODY_HELP),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
        tls_cert: TLSCertOpt = None,
        tls_key: TLSKeyOpt = None,
        tls_client_ca: TLSClientCAOpt = None,
        tls_min_version: TLSMinVersionOpt = DEFAULT_MIN_VERSION,
        tls_ciphers: TLSCiphersOpt = None,
    ) -> None:
        """An in-memory FHIR R4 server: CRUD, search, transaction/batch Bundles, OperationOutcomes."""
        from harness.simulators.fhir import FhirSimulator

        _serve(
            FhirSimulator(base=base, max_resources=max_resources),
            listen,
            max_body,
            quiet,
            (tls_cert, tls_key, tls_client_ca, tls_min_version, tls_ciphers),
        )

    @mock.command("soap")
    def soap(
        listen: str = typer.Option("127.0.0.1:18082", "--listen", help=LISTEN_HELP),
        max_body: int = typer.Option(10 * 1024 * 1024, "--max-body", help=MAX_BODY_HELP),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
        tls_cert: TLSCertOpt = None,
        tls_key: TLSKeyOpt = None,
        tls_client_ca: TLSClientCAOpt = None,
        tls_min_version: TLSMinVersionOpt = DEFAULT_MIN_VERSION,
        tls_ciphers: TLSCiphersOpt = None,
    ) -> None:
        """The 互联互通 HIPMessageServer at /services/HIPMessageServer (SOAP 1.1 and 1.2; WSDL at ?wsdl)."""
        from harness.simulators.soap import HipMessageServer

        _serve(
            HipMessageServer(),
            listen,
            max_body,
            quiet,
            (tls_cert, tls_key, tls_client_ca, tls_min_version, tls_ciphers),
        )

    @mock.command("cdc")
    def cdc(
        listen: str = typer.Option("127.0.0.1:18083", "--listen", help=LISTEN_HELP),
        max_body: int = typer.Option(10 * 1024 * 1024, "--max-body", help=MAX_BODY_HELP),
        quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
        tls_cert: TLSCertOpt = None,
        tls_key: TLSKeyOpt = None,
        tls_client_ca: TLSClientCAOpt = None,
        tls_min_version: TLSMinVersionOpt = DEFAULT_MIN_VERSION,
        tls_ciphers: TLSCiphersOpt = None,
    ) -> None:
        """The CDC front end: POST/DELETE /hclient/emr/receive/{api} with JSON rows of its 20 tables."""
        from harness.simulators.cdc import CdcFrontEnd

        _serve(
            CdcFrontEnd(),
            listen,
            max_body,
            quiet,
            (tls_cert, tls_key, tls_client_ca, tls_min_version, tls_ciphers),
        )
