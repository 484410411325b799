#!/usr/bin/env bash
# Builds (or refreshes) the robot's environment on Python 3.10, separate from `.venv`.
#
# Robots run Ubuntu 22.04 / JetPack 6, whose Python is 3.10, and install `policylink[client]`
# without torch. This venv is that environment plus the test tools (`dev-client` extra), so the
# client-side tests prove the robot side on 3.10; tests that need a server start one with the
# main venv's interpreter (`POLICYLINK_SERVER_PYTHON`), as the server lives on another machine.
#
# Exit status 3: no usable Python 3.10 here (`make test-py310` reports a skip). Under CI=true a
# missing interpreter fails instead: a check that silently skips there proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:-.venv-py310}"
extras="${EXTRAS:-dev-client}"
stamp="$venv/.policylink-installed"
no_python_status=3

# A second run installs nothing while the stamp is newer than what the venv is built from.
if [ -f "$stamp" ] && "$venv/bin/python" -c "" 2>/dev/null \
    && [ -z "$(find pyproject.toml scripts/setup_client_venv.sh -newer "$stamp")" ]; then
    echo "setup-py310: $venv up to date"
    exit 0
fi

works_as_310() {
    "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info[:2] != (3, 10))' \
        >/dev/null 2>&1
}

# PYTHON310 when set; else python3.10 on PATH; else one that pyenv installed (its shim for an
# installed but unselected version is on PATH, yet refuses to run).
python=""
if [ -n "${PYTHON310:-}" ]; then
    candidates=("$PYTHON310")
else
    candidates=(python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10)
fi
for candidate in "${candidates[@]}"; do
    if works_as_310 "$candidate"; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    echo "setup-py310: no Python 3.10 with venv support (tried: ${candidates[*]});" \
        "install one (\`pyenv install 3.10\`, or \`apt-get install python3.10 python3.10-venv\`)" \
        "or set PYTHON310 to its path" >&2
    if [ "${CI:-}" = "true" ]; then
        echo "setup-py310: under CI=true that is a failure, not a skip" >&2
        exit 1
    fi
    exit "$no_python_status"
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-py310: creating $venv from $("$python" -c 'import sys; print(sys.version.split()[0])')"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

"${pip[@]}" install --quiet --upgrade "pip>=24"
"${pip[@]}" install --quiet -e ".[$extras]"
# openpi-client pins numpy<2 although its msgpack format works with numpy 2; it is a test peer
# only, so it goes in without its pins (as in setup_venv.sh).
"${pip[@]}" install --quiet --no-deps "openpi-client==0.1.2"
if "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "setup-py310: torch got into $venv: policylink[$extras] must not pull it in" >&2
    exit 1
fi
touch "$stamp"
echo "setup-py310: $venv ready"
