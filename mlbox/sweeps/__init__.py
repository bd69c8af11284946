"""Sweeps: hyper-parameter searches whose trials are jobs (Optuna samplers and pruners, ask and tell)."""
