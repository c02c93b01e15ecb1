"""The 互联互通 HL7 v3 services as one model: the 69 actions, the 测评 wrapper, the registries.

`model` reads and compiles specs/hl7v3/services.yaml; `checks` judges a request document against an
action. The simulator (harness mock soap) and certification (harness certify) both read this.
"""
