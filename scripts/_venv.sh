# shellcheck shell=bash
# Sourced by scripts/dev.sh and scripts/test.sh: make .venv hold an editable install of
# atp with the given extras, on a fresh clone as on a machine that ran this before.

VENV="${VENV:-.venv}"

# ensure_venv [EXTRAS]: create $VENV if missing; (re)install when pyproject.toml changed
# since the last install with the same extras.
ensure_venv() {
    local extras="${1:-}" spec=. stamp="$VENV/.atp-installed"
    if [[ -n "$extras" ]]; then
        spec=".[$extras]"
        stamp="$stamp-${extras//,/-}"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        _check_python
        echo "==> creating $VENV"
        "${PYTHON3:-python3}" -m venv "$VENV" || {
            echo "error: could not create $VENV; on Debian: apt-get install python3-venv" >&2
            return 1
        }
    fi
    if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
        echo "==> installing atp ($spec) into $VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
        touch "$stamp"
    fi
}

_check_python() {
    local python="${PYTHON3:-python3}"
    if ! command -v "$python" >/dev/null; then
        echo "error: $python not found; atp needs Python >= 3.11" >&2
        return 1
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: $("$python" --version 2>&1) is too old; atp needs Python >= 3.11" \
            "(set PYTHON3 to a newer interpreter)" >&2
        return 1
    fi
}
