"""Simulators: counterparts (ACK servers, HTTP services) for tests and demos."""
