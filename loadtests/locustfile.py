"""The harness's profile-driven locustfile, for plain `locust` runs (see loadtests/README.md).

`harness load PROFILE ...` is the usual way in; this file lets locust's own command line run the same
plan, e.g. as workers on other machines: ``locust -f loadtests/locustfile.py --worker --master-host HOST``.
"""

from harness.load.locustfile import FhirTraffic, MedinsTraffic, MllpTraffic, Plan, SoapTraffic

__all__ = ["FhirTraffic", "MedinsTraffic", "MllpTraffic", "Plan", "SoapTraffic"]
