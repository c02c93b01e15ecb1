"""The locustfile `harness load` runs: one user class per traffic kind, steered by `--plan`.

Also usable with plain locust (loadtests/locustfile.py imports it), e.g. spread over machines:
``locust -f loadtests/locustfile.py --worker --master-host HOST`` on each load machine, with the master
started by `harness load ... --remote-workers N` (or ``locust -f loadtests/locustfile.py --master
--plan plan.json``). Without --plan it does nothing: use the classes in harness.load.users in a
locustfile of your own instead.
"""

from harness.load.plugin import PlanShape
from harness.load.users import FhirUser, MedinsUser, MLLPUser, SoapUser


class MllpTraffic(MLLPUser):
    """HL7 v2 messages over MLLP."""


class MedinsTraffic(MedinsUser):
    """医保 visits at the medical-insurance gateway."""


class FhirTraffic(FhirUser):
    """FHIR R4 Patient interactions."""


class SoapTraffic(SoapUser):
    """互联互通 HIPMessageServer calls."""


class Plan(PlanShape):
    """The plan's load shape."""
