"""Load testing with locust: users, message factories, shapes, the open model, SLA thresholds, reports.

Only `users`, `plugin` and `locustfile` import locust (and with it gevent's monkey-patching); they run
in locust's own processes. Everything else here is plain code that `harness load` (which never imports
locust) and the tests use directly.
"""
