"""Replay of captured exchanges: select, rewrite, pace, send in order, store as a run, compare, report.

Each concept has its own module; the sans-IO cores (pacing, ordering, rewrite, compare) never touch
sockets, and the protocol-neutral interfaces (`selection.ReplayItem`, `sender.Sender`,
`compare.Comparator`) are what the HTTP kinds plug into.
"""
