"""The Yunnan medical-insurance centre (医保中心) simulator: `harness mock medins`.

spec (the interface as data) -> validation (envelope and input checks from the spec) -> centre (the
call pipeline) -> rules (session, visits, records, catalogue, files, clearing, inventory, supervision)
over state (what the centre remembers); responses is the HTTP surface and transport the two ways in
(the national gateway path and Yunnan's CHSInterfaceYn.dll path).
"""

from harness.simulators.medins.call import MedinsError
from harness.simulators.medins.responses import RULES, MedinsSimulator
from harness.simulators.medins.transport import GATEWAY_PATH, YUNNAN_PATH
from harness.spec.medins.model import SPEC_DIR, load_spec

__all__ = ["GATEWAY_PATH", "RULES", "SPEC_DIR", "YUNNAN_PATH", "MedinsError", "MedinsSimulator", "load_spec"]
