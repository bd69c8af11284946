# Sourced by scripts/demo and scripts/test: make .venv and install mlbox into it.
# Torch is pinned first to the build this machine carries (a loose range would
# pull a multi-GB CUDA wheel); pyproject keeps a loose range for GPU users.
# A stamp of pyproject.toml's hash skips the install when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_SPEC="${MLBOX_TORCH_SPEC:-torch==2.13.0}"

ensure_venv() {
    local extras="$1" stamp want
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    stamp="$VENV/.mlbox-installed-$extras"
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "mlbox: installing into $VENV (extras: ${extras:-none}) ..." >&2
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
        echo "$want" > "$stamp"
    fi
}
