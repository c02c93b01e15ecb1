"""Content-aware fault injection: rules, the per-channel engine, and the registered actions.

`FaultEngine.decide` turns a message into a `Plan` edit (see plan.py); rules.py matches, actions/
holds one module per action type.
"""
