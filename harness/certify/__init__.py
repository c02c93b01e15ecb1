"""Contract suites from the specs: `harness certify`.

A spec (harness.spec) becomes cases (one family suite each: medins, cdc, hl7v3, fhir, hl7v2), sent to a
system under test (engine, targets) or judged over captured traffic (passive); the results fill a matrix
of operations by checks (results) that the reports show with the evidence of every failure and a
sign-off block (report). certification ties the options of one run together; plugin is the pytest route.
"""
