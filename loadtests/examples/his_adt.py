"""A locustfile of your own with the harness's users: locust's command line, your own classes.

    locust -f loadtests/examples/his_adt.py --headless -u 20 -r 5 -t 60s \
        --host 127.0.0.1  # unused by these users; MLLP_TARGET and MEDINS_TARGET say where to send

The users read their settings from `harness.load.profile.traffic` (the same resolution a profile gets:
templates checked and embedded, timeouts, paths); request names, failures and response times show in
locust's own statistics, web UI and CSV. `harness load` adds the open model, shapes, thresholds and
the report on top; this is the plain-locust way in.
"""

import os
from pathlib import Path

from locust import between

from harness.load.profile import traffic
from harness.load.users import MedinsUser, MLLPUser

HERE = Path(__file__).resolve().parent
MLLP_TARGET = os.environ.get("MLLP_TARGET", "127.0.0.1:2575")
MEDINS_TARGET = os.environ.get("MEDINS_TARGET", "http://127.0.0.1:18080")


class HisAdt(MLLPUser):
    """The HIS registering outpatients and updating them, one message every 0.5-2 s per user."""

    weight = 4
    wait_time = between(0.5, 2.0)
    settings = traffic(
        "mllp",
        MLLP_TARGET,
        {
            "timeout_s": 10,
            "messages": {
                "ADT^A04": {"weight": 3, "template": "../../fixtures/hl7v2/adt_a04_gb18030.hl7"},
                "ADT^A08": {
                    "weight": 1,
                    "template": "../../fixtures/hl7v2/adt_a08_update_lf.hl7",
                    "ack": "enhanced",  # MSH-15/16 AL/AL: the commit ACK, then the application ACK
                },
            },
        },
        base=HERE,
    )


class Cashier(MedinsUser):
    """A cashier's window settling outpatient visits with the medical-insurance centre."""

    weight = 1
    wait_time = between(2.0, 5.0)


Cashier.configure(traffic("medins", MEDINS_TARGET, {"flow": "../flows/outpatient-visit.yaml"}, base=HERE))
