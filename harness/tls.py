"""TLS for every listener and upstream: proxy channels (MLLP and HTTP), the admin API, the simulators.

One settings shape (`ListenerTLS`, `UpstreamTLS`) and one way to turn it into OpenSSL options, so a
minimum version, a cipher list or a client-certificate requirement means the same wherever it is set.
Certificates and keys are loaded and checked when the options are built, at start: a missing,
unreadable, non-PEM, passphrase-protected or mismatched file is a `TLSError` naming the setting and the
file, never an OpenSSL traceback on the first connection.

ALPN: Twisted's server-side selection answers a client that offers protocols the server did not list
with an `internal_error` alert (curl, requests and browsers all offer ALPN). Here a listener picks the
first of its own protocols the client offers (`http/1.1` on HTTP listeners) and otherwise carries on
without ALPN, as nginx does; an MLLP listener lists none and so never fails a handshake over ALPN.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
DEFAULT_MIN_VERSION = "1.2"
HTTP_ALPN = (b"http/1.1",)

_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S)


class TLSError(ValueError):
    """TLS material or settings that cannot be used; `where` names the setting (`channels.adt.tls.key`)."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True, slots=True)
class ListenerTLS:
    """TLS on a listener; with `ca`, every client must present a certificate it signed (mutual TLS)."""

    cert: Path
    key: Path
    ca: Path | None = None
    min_version: str = DEFAULT_MIN_VERSION
    ciphers: str | None = None
    """An OpenSSL cipher string for TLS 1.2 and below (TLS 1.3 suites stay OpenSSL's); None: Twisted's
    default (forward-secret AEAD suites first)."""
    where: str = field(default="tls", compare=False)
    """The setting this came from, for error messages (`channels.adt.tls`, `--tls-cert`)."""


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """TLS towards an upstream; `ca` None trusts the system store; `verify` False skips checks;
    `cert` and `key` are the client certificate an upstream asking for mutual TLS gets."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    verify: bool = True
    min_version: str = DEFAULT_MIN_VERSION
    ciphers: str | None = None
    where: str = field(default="upstream_tls", compare=False)


# -- material ----------------------------------------------------------------------------------------


def _read(path: Path, where: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TLSError(where, f"{what} file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise TLSError(where, f"{what} file {str(path)!r} is a directory") from None
    except OSError as exc:
        raise TLSError(where, f"cannot read the {what} file {str(path)!r}: {exc.strerror or exc}") from None


def load_certificates(path: Path, where: str = "", what: str = "certificate") -> list[Any]:
    """Every certificate in a PEM file, in order (a leaf and its chain, or a CA bundle)."""
    from cryptography import x509

    data = _read(path, where, what)
    blocks = _CERT_BLOCK.findall(data)
    if not blocks:
        raise TLSError(where, f"{str(path)!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    certs = []
    for i, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise TLSError(where, f"certificate {i + 1} in {str(path)!r} cannot be read: {exc}") from None
    return certs


def load_private_key(path: Path, where: str = "") -> Any:
    """The private key in a PEM file (alone or beside certificates)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read(path, where, "private key")
    found = _KEY_BLOCK.search(data)
    if found is None:
        raise TLSError(where, f"{str(path)!r} holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    try:
        key = load_pem_private_key(found.group(0), password=None)
    except TypeError:
        raise TLSError(
            where,
            f"the private key in {str(path)!r} is protected by a passphrase; give an unencrypted key "
            "file readable only by the service account (openssl pkey -in KEY -out PLAIN)",
        ) from None
    except (ValueError, NotImplementedError) as exc:
        raise TLSError(where, f"the private key in {str(path)!r} cannot be read: {exc}") from None
    return key


def load_identity(cert: Path, key: Path | None, where: str) -> tuple[Any, Any, list[Any]]:
    """(certificate, private key, chain) for a listener or a client certificate; the key must match."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    certs = load_certificates(cert, f"{where}.cert")
    pkey = load_private_key(key or cert, f"{where}.key")
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if pkey.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        raise TLSError(
            f"{where}.key",
            f"the private key in {str(key or cert)!r} does not belong to the certificate in {str(cert)!r}",
        )
    return certs[0], pkey, certs[1:]


def _trust_root(path: Path, where: str) -> Any:
    from OpenSSL import crypto
    from twisted.internet import ssl

    certs = load_certificates(path, where, "CA certificate")
    return ssl.trustRootFromCertificates([ssl.Certificate(crypto.X509.from_cryptography(c)) for c in certs])


# -- options -----------------------------------------------------------------------------------------


def _version_kwargs(version: str, where: str) -> dict[str, Any]:
    from twisted.internet.ssl import TLSVersion

    if version not in TLS_VERSIONS:
        raise TLSError(where, f"expected one of {', '.join(TLS_VERSIONS)}, got {version!r}")
    if version == DEFAULT_MIN_VERSION:
        return {}
    named = getattr(TLSVersion, "TLSv" + version.replace(".", "_"))
    # Twisted keeps "raise" and "insecurely lower" apart on purpose; below 1.2 is a deliberate choice
    key = "raiseMinimumTo" if version > DEFAULT_MIN_VERSION else "insecurelyLowerMinimumTo"
    return {key: named}


@functools.cache
def _options_class() -> type:
    """Defined on first use: Twisted and pyOpenSSL load only when TLS is configured."""
    from OpenSSL import SSL
    from twisted.internet import ssl

    class Options(ssl.CertificateOptions):
        """CertificateOptions plus a raw OpenSSL cipher string and ALPN that never fails a handshake."""

        def __init__(self, *, cipher_string: str | None, alpn: Sequence[bytes], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._cipher_string = cipher_string
            self._alpn = tuple(alpn)

        def _makeContext(self, skipCiphers: bool = False) -> Any:  # noqa: N802 - Twisted's name
            ctx = super()._makeContext(skipCiphers)
            if self._cipher_string is not None and not skipCiphers:
                ctx.set_cipher_list(self._cipher_string.encode("ascii"))
            ours = self._alpn

            def select(conn: Any, offered: list[bytes]) -> Any:
                for name in ours:
                    if name in offered:
                        return name
                return SSL.NO_OVERLAPPING_PROTOCOLS  # go on without ALPN rather than abort

            ctx.set_alpn_select_callback(select)
            return ctx

    return Options


def _build(where: str, ciphers: str | None, alpn: Sequence[bytes], **kwargs: Any) -> Any:
    """Options with their context made now, so a bad cipher string or version fails at start."""
    from OpenSSL import SSL

    if ciphers is not None and (not ciphers.strip() or not ciphers.isascii()):
        raise TLSError(f"{where}.ciphers", f"expected an OpenSSL cipher string, got {ciphers!r}")
    options = _options_class()(cipher_string=ciphers, alpn=alpn, **kwargs)
    try:
        options.getContext()
    except SSL.Error as exc:
        problem = f"OpenSSL refused these settings: {exc}"
        if ciphers is not None:
            raise TLSError(f"{where}.ciphers", f"no usable cipher in {ciphers!r} ({problem})") from None
        raise TLSError(where, problem) from None
    return options


def server_options(tls: ListenerTLS, protocols: Sequence[bytes] = ()) -> Any:
    """Options for a TLS listener; `protocols` are the ALPN names it speaks (HTTP: `HTTP_ALPN`)."""
    cert, key, chain = load_identity(tls.cert, tls.key, tls.where)
    kwargs: dict[str, Any] = {"privateKey": key, "certificate": cert, "extraCertChain": chain}
    kwargs.update(_version_kwargs(tls.min_version, f"{tls.where}.min_version"))
    if tls.ca is not None:
        kwargs["trustRoot"] = _trust_root(tls.ca, f"{tls.where}.ca")  # and a client certificate is required
    return _build(tls.where, tls.ciphers, protocols, **kwargs)


class ClientTLS:
    """What every connection to one upstream shares (trust root, client certificate, versions, ciphers),
    loaded once; `for_host` adds the server name checked, one options object per name."""

    def __init__(self, tls: UpstreamTLS, protocols: Sequence[bytes] = ()) -> None:
        from twisted.internet import ssl

        self.tls = tls
        kwargs: dict[str, Any] = _version_kwargs(tls.min_version, f"{tls.where}.min_version")
        if tls.cert is not None:
            cert, key, chain = load_identity(tls.cert, tls.key, tls.where)
            kwargs.update(privateKey=key, certificate=cert, extraCertChain=chain)
        if tls.verify:
            ca = tls.ca
            kwargs["trustRoot"] = ssl.platformTrust() if ca is None else _trust_root(ca, f"{tls.where}.ca")
        else:
            kwargs["verify"] = False
        offered = list(protocols) or None
        self.options = _build(tls.where, tls.ciphers, (), acceptableProtocols=offered, **kwargs)
        self._by_name: dict[str, Any] = {}

    def for_host(self, host: str) -> Any:
        """Client TLS options for a connection to `host`, checking `server_name` (else the host)."""
        if not self.tls.verify:
            return self.options
        name = self.tls.server_name or host
        found = self._by_name.get(name)
        if found is None:
            from twisted.internet._sslverify import ClientTLSOptions  # what optionsForClientTLS returns

            found = self._by_name[name] = ClientTLSOptions(self.options._makeTLSConnection, name)
        return found


def describe(tls: ListenerTLS | None) -> str:
    """A listener's TLS in a start-up line: '', ' (TLS)' or ' (TLS, client certificate required)'."""
    if tls is None:
        return ""
    return " (TLS, client certificate required)" if tls.ca is not None else " (TLS)"
