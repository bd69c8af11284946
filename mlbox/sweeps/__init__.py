"""Sweeps: hyper-parameter searches whose trials are jobs (Optuna samplers and pruners, ask and tell).

Inside a trial, ``mlbox.sweeps.params(defaults)`` gives the trial's parameters
(kept light: importing this package loads neither Optuna nor the scheduler).
"""

from mlbox.sweeps.params import params, trial_params

__all__ = ["params", "trial_params"]
