"""HL7 v2 conformance validation: the standard (compiled from hl7apy's tables) plus interface profiles.

validator.Validator orchestrates; structure, fields and datatypes hold the checks of each concern;
findings defines what they report; profile loads interface profiles (YAML or HL7 XML).
"""
