"""The 互联互通 HIPMessageServer simulator: `harness mock soap`.

spec (specs/hl7v3/services.yaml, compiled) -> checks (root, interactionId, the 测评 wrapper, required
elements) -> registries (what was registered, per kind) -> documents (ACKs and query responses);
responses is the HTTP/SOAP surface and the WSDL.
"""

from harness.simulators.soap.responses import (
    SERVICE_PATH,
    SOAP11,
    SOAP12,
    HipMessageServer,
    SoapFault,
    wsdl,
)

__all__ = ["SERVICE_PATH", "SOAP11", "SOAP12", "HipMessageServer", "SoapFault", "wsdl"]
