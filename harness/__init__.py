"""harness: interface test and proxy harness for HL7 v2, FHIR and SOAP traffic."""

__version__ = "0.1.0"
