"""What the screens show, computed from service values: pure functions, no Textual, no I/O.

One module per screen (`jobs`, `sweeps`, `models`, …) turns what a service
returned into rows and text; `format` holds how single values read (times,
durations, numbers, statuses), so every screen shows them the same way.
"""
