"""HTTP fault actions, one module per action type, registered for protocol "http".

Importing this package registers the actions, the HTTP match conditions and the HTTP plan type, so
`parse_rule(..., protocol="http")` and `FaultEngine(protocol="http")` find them.
"""

from __future__ import annotations

from harness.proxy.faults import http_match  # noqa: F401  (registers the conditions)
from harness.proxy.faults.actions.http import (  # noqa: F401  (registration side effects, documented order)
    delay,
    malformed,
    medins_error,
    reset,
    slow_body,
    soap_fault,
    status,
    truncate,
)
from harness.proxy.faults.engine import PLAN_TYPES
from harness.proxy.faults.http_plan import HttpPlan

PLAN_TYPES["http"] = HttpPlan
