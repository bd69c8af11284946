"""A job's environment: captured from its submitter, cleaned of mlbox's secrets (pure functions).

A job runs where its user is, as Slurm does by default: ``mlbox jobs submit``,
``mlbox sweep`` and ``mlbox.submit`` copy the submitter's environment into the
spec (``env_policy="inherit"``), so ``python`` on the job's ``PATH`` is the
submitter's, with its virtualenv or conda env, whatever environment the
appliance itself was started from. Three policies say what a job starts from:

* ``inherit`` — ``env`` *is* the environment (the submitter's, captured at
  submit); nothing of the appliance's is added.
* ``clean`` — a minimal base taken from the appliance (``PATH``, ``HOME``,
  locale, ``TMPDIR``…) plus ``env``: for a job that wants nothing else.
* ``appliance`` — the appliance's environment plus ``env``. The API's default
  (an HTTP client's environment cannot be known; a body's explicit ``env`` is
  laid over the appliance's), and how jobs queued before the capture existed run.

When mlbox itself runs from a virtualenv that the shell did not activate
(``.venv/bin/mlbox sweep ... -- python train.py``, as the README writes it),
the capture activates that venv for the job (its ``bin`` first on ``PATH``,
``VIRTUAL_ENV``): the user ran mlbox from there, so ``python`` means that
venv's. An env the shell did activate (``VIRTUAL_ENV``, ``CONDA_PREFIX``) is
left as it is.

Whatever the policy, a job never receives the management API token (any
variable whose value holds it is dropped, at submit and again at start) nor
the variables that name its submitter's own session (its run, job, trial),
which would make the job log into somebody else's run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal

EnvPolicy = Literal["inherit", "clean", "appliance"]
ENV_POLICIES: tuple[str, ...] = ("inherit", "clean", "appliance")

SESSION_VARIABLES = frozenset(
    {
        "MLBOX_HOME",
        "MLBOX_RUN_ID",
        "MLBOX_EXPERIMENT",
        "MLBOX_JOB_ID",
        "MLBOX_JOB_ATTEMPT",
        "MLBOX_JOB_KWARGS",
        "MLBOX_CHECKPOINT_DIR",
        "MLBOX_TRIAL_PARAMS",
        "MLBOX_TRIAL_NUMBER",
        "MLBOX_SWEEP_ID",
        "MLBOX_NOTEBOOK_ID",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
    }
)
"""The submitter's own session: the scheduler sets the job's (home, run, job, GPUs), never the caller's."""

SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD")
"""An ``MLBOX_*`` variable whose name holds one of these is one of mlbox's secrets: never captured."""

NOISE = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "LS_COLORS", "PS1", "PS2", "PROMPT_COMMAND", "TERMCAP"})
"""Shell state that means nothing to a job (its folder is ``workdir``) and only makes the spec bigger."""

MAX_VALUE = 16_384
"""A longer value (an exported shell function, a huge colour table) is left out of the captured spec."""

CLEAN_BASE = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TERM",
)
"""What a ``clean`` job takes from the appliance: enough for a shell and a locale, nothing of a venv."""

FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"


def _mlbox_secret(name: str) -> bool:
    return name.startswith("MLBOX_") and any(word in name for word in SECRET_WORDS)


def without_secrets(env: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """``env`` less every variable whose value holds one of ``secrets`` (the API token)."""
    held = [s for s in secrets if s]
    return {k: v for k, v in env.items() if not any(s in v for s in held)}


def capture(environ: Mapping[str, str], *, secrets: Iterable[str] = ()) -> dict[str, str]:
    """What of the submitter's environment a job inherits: all of it but mlbox's secrets,
    the submitter's own session variables, shell noise and oversized values."""
    kept = {
        k: v
        for k, v in environ.items()
        if k not in SESSION_VARIABLES
        and k not in NOISE
        and not k.startswith("BASH_FUNC_")
        and not _mlbox_secret(k)
        and len(v) <= MAX_VALUE
        and "\0" not in v
    }
    return without_secrets(kept, secrets)


def activate(env: Mapping[str, str], *, prefix: str, base_prefix: str, bin_dir: str) -> dict[str, str]:
    """``env`` with the venv at ``prefix`` activated, when the submitter runs from a venv
    (``prefix != base_prefix``) and its shell has no virtualenv or conda env active."""
    out = dict(env)
    if prefix == base_prefix or env.get("VIRTUAL_ENV") or env.get("CONDA_PREFIX"):
        return out
    out["VIRTUAL_ENV"] = prefix
    out["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", FALLBACK_PATH)])
    return out


def submitter_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`capture` of ``environ``, with the venv this process runs from activated (`activate`)."""
    import sys

    return activate(
        capture(environ),
        prefix=sys.prefix,
        base_prefix=sys.base_prefix,
        bin_dir=os.path.dirname(sys.executable),
    )


def base_env(policy: str, appliance: Mapping[str, str]) -> dict[str, str]:
    """What a job's environment starts from before its spec's ``env`` is laid over it."""
    if policy == "inherit":
        return {}
    if policy == "clean":
        base = {k: appliance[k] for k in CLEAN_BASE if k in appliance}
        base.setdefault("PATH", FALLBACK_PATH)
        return base
    return {k: v for k, v in appliance.items() if k not in SESSION_VARIABLES and not _mlbox_secret(k)}


def env_prefix(env: Mapping[str, str]) -> str | None:
    """The virtualenv or conda env a job's environment activates, if any."""
    return env.get("VIRTUAL_ENV") or env.get("CONDA_PREFIX") or None


def python_on_path(env: Mapping[str, str]) -> str | None:
    """The ``python`` (else ``python3``) a shell in ``env`` would run: what a job's record shows.

    Reads the file system (which names exist on ``PATH``), nothing else.
    """
    import shutil

    path = env.get("PATH", FALLBACK_PATH)
    for name in ("python", "python3"):
        found = shutil.which(name, path=path)
        if found:
            return os.path.abspath(found)
    return None
