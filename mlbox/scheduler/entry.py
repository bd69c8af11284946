"""Entry of a function-reference job: ``python -m mlbox.scheduler.entry package.module:function``.

The keyword arguments arrive as JSON in ``MLBOX_JOB_KWARGS``. The function
runs inside the job's tracking run (``MLBOX_RUN_ID``), so whatever it logs
lands there; a returned number is logged as the metric ``result``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from mlbox.scheduler.launch import KWARGS_ENV


def resolve(ref: str) -> Any:
    module_name, _, qualname = ref.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m mlbox.scheduler.entry package.module:function", file=sys.stderr)
        return 2
    fn = resolve(argv[0])
    kwargs = json.loads(os.environ.get(KWARGS_ENV) or "{}")
    result = fn(**kwargs)
    if isinstance(result, (int, float)) and not isinstance(result, bool) and os.environ.get("MLBOX_RUN_ID"):
        import mlbox

        if mlbox.active_run() is not None:
            mlbox.log_metric("result", float(result))
        else:
            with mlbox.start_run(log_code=False, log_environment=False):
                mlbox.log_metric("result", float(result))
    if result is not None:
        print(f"result: {result!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
