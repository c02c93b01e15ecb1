"""Drills that prove interfaces stay available: the primary/backup switchover drill (主备切换演练).

`traffic` makes the traceable messages, `run` sends them and runs the switch, `analysis` computes the outage,
losses, duplicates and reorders (sans-IO), `report` renders the signed-off report.
"""
