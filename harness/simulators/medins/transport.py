"""How requests reach the centre: the national gateway path, and Yunnan's CHSInterfaceYn.dll path.

- National: `POST /fsi/api/rsfComIfsService/callService` (optionally `/{infno}`), optionally signed
  with the gateway's x-tif-* headers (other provinces' gateways; checked only when a token is set).
- Yunnan: a HIS calls CHSInterfaceYn.dll (`Init(fixmedins_code, infosyscode, infosyssign, url)`, then
  `BusinessHandle`/`BusinessHandleW`), and the DLL posts the same JSON envelope to
  `.../eapdomain/callService`. The system code and signature the HIS gave `Init` travel with it; the
  simulator reads them from the envelope (`infosyscode`, `infosyssign`) or from headers of those names
  (how the DLL carries them is not in a public source), and checks them when configured with them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

from harness.simulators.medins.call import MedinsError
from harness.simulators.wire import HttpRequest

GATEWAY_PATH = "/fsi/api/rsfComIfsService/callService"
YUNNAN_PATH = "/eapdomain/callService"
TIF_MAX_SKEW_S = 300  # M: how far the gateway lets x-tif-timestamp drift is not in a public source


def route(path: str) -> tuple[str, str | None] | None:
    """(transport, infno named in the path) for a served path, or None."""
    path = path.rstrip("/")
    if path == GATEWAY_PATH:
        return "national", None
    head, _, tail = path.rpartition("/")
    if head == GATEWAY_PATH and re.fullmatch(r"\d{4}[A-Z]?", tail):
        return "national", tail
    if path.endswith(YUNNAN_PATH):
        return "yunnan", None
    return None


def check_tif(request: HttpRequest, token: str, epoch: Callable[[], float]) -> None:
    """The gateway's x-tif-* signature: SHA256Hex(timestamp + token + nonce + timestamp)."""
    values = {}
    for name in ("x-tif-paasid", "x-tif-timestamp", "x-tif-nonce", "x-tif-signature"):
        value = (request.header(name) or "").strip()
        if not value:
            raise MedinsError(f"gateway header {name}: missing")
        values[name] = value
    stamp = values["x-tif-timestamp"]
    if not stamp.isdigit():
        raise MedinsError(f"gateway header x-tif-timestamp: {stamp!r} is not epoch seconds")
    skew = abs(epoch() - int(stamp))
    if skew > TIF_MAX_SKEW_S:
        raise MedinsError(
            f"gateway header x-tif-timestamp: {stamp} is {skew:.0f} s away from now "
            f"(at most {TIF_MAX_SKEW_S} s)"
        )
    expected = hashlib.sha256(f"{stamp}{token}{values['x-tif-nonce']}{stamp}".encode()).hexdigest()
    if not hmac.compare_digest(values["x-tif-signature"].lower(), expected):
        raise MedinsError(
            "gateway header x-tif-signature: does not match "
            "SHA256Hex(x-tif-timestamp + token + x-tif-nonce + x-tif-timestamp)"
        )


def check_dll(request: HttpRequest, env: dict, credentials: dict[str, str] | None) -> None:
    """The DLL's infosyscode/infosyssign, from the envelope or headers; compared when configured."""
    if not credentials:
        return
    for name, wanted in credentials.items():
        value = env.get(name) if isinstance(env.get(name), str) and env.get(name) else request.header(name)
        if not value:
            raise MedinsError(f"{name}: missing (the value the HIS passed to CHSInterfaceYn.dll Init)")
        if not hmac.compare_digest(str(value), wanted):
            raise MedinsError(f"{name}: does not match the institution's registered {name}")
