#!/usr/bin/env bash
# Builds (or refreshes) the LeRobot environment, separate from `.venv`.
#
# LeRobot 0.6 needs Python >= 3.12 and pins its own torch (< 2.12), so it cannot share `.venv`
# (Python 3.11, torch 2.13). LeRobot is installed first, exactly as its users install it, with
# torch pinned to one release inside LeRobot's range; then everything it brought is frozen into
# a constraints file, and policylink goes on top under those constraints, so resolving
# policylink's extras can never replace LeRobot's torch (or anything else it chose).
#
# A venv on another Python or another LeRobot (an older checkout's 0.4.4 on 3.11) is rebuilt.
# No Python >= 3.12 here: the script names what to install and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:-.venv-lerobot}"
lerobot_version="0.6.1"
# LeRobot's extras the tests use: diffusion (its U-Net comes from diffusers) and dataset (the
# episode export writes a LeRobotDataset). Both go in LeRobot's own install: added later under
# the frozen constraints, pip cannot reconcile `dataset`'s fsspec with what was frozen.
lerobot_extras="${LEROBOT_EXTRAS:-diffusion,dataset}"
# One torch inside LeRobot's torch<2.12; on a machine whose index serves a CPU build of it (a
# local wheel, an extra index), pip takes that one, else the default build.
torch_spec="${TORCH_SPEC:-torch==2.11.0}"
# policylink's extras: record reads the episode recordings an export converts.
extras="${EXTRAS:-server,client,test,record}"
constraints="$venv/lerobot-constraints.txt"
began=$SECONDS

works_as_312() {
    "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info[:2] < (3, 12))' \
        >/dev/null 2>&1
}

# PYTHON when set; else python3.12 or python3.13 on PATH (3.12 first: LeRobot's own install
# guide uses it); else one that pyenv installed (its shim for an installed but unselected
# version is on PATH, yet refuses to run).
python=""
if [ -n "${PYTHON:-}" ]; then
    candidates=("$PYTHON")
else
    pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    candidates=(python3.12 python3.13 "$pyenv_root"/versions/3.12*/bin/python3.12
        "$pyenv_root"/versions/3.13*/bin/python3.13)
fi
for candidate in "${candidates[@]}"; do
    if works_as_312 "$candidate"; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    echo "setup-lerobot: LeRobot $lerobot_version needs Python >= 3.12 with venv support, and" \
        "none works here (tried: ${candidates[*]}); install one (\`pyenv install 3.12\`, or" \
        "\`apt-get install python3.12 python3.12-venv\`) or set PYTHON to its path" >&2
    exit 1
fi
python_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

if [ -x "$venv/bin/python" ]; then
    have="$("$venv/bin/python" -c '
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    lerobot = version("lerobot")
except PackageNotFoundError:
    lerobot = "none"
print("%d.%d %s" % (*sys.version_info[:2], lerobot))' 2>/dev/null || echo "broken broken")"
    have_python="${have% *}"
    have_lerobot="${have#* }"
    if [ "$have_python" != "$python_version" ] \
        || { [ "$have_lerobot" != "none" ] && [ "$have_lerobot" != "$lerobot_version" ]; }; then
        echo "setup-lerobot: $venv holds Python $have_python with lerobot $have_lerobot, not" \
            "Python $python_version with lerobot $lerobot_version: rebuilding it"
        rm -rf "$venv"
    fi
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "setup-lerobot: creating $venv from Python $("$python" -c 'import sys; print(sys.version.split()[0])')"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

"${pip[@]}" install --quiet --upgrade "pip>=24"
echo "setup-lerobot: installing lerobot[$lerobot_extras]==$lerobot_version with $torch_spec"
"${pip[@]}" install --quiet "lerobot[$lerobot_extras]==$lerobot_version" "$torch_spec"
# Frozen before policylink is installed, so it holds LeRobot's choices only (on a refresh it
# also holds what policylink added last time, which keeps a refresh from moving anything).
"${pip[@]}" freeze --exclude-editable | grep -v -i '^policylink' > "$constraints"
echo "setup-lerobot: $(grep -i '^torch==' "$constraints") (pinned from LeRobot's install)"
"${pip[@]}" install --quiet -c "$constraints" -e ".[$extras]"
installed="$("${pip[@]}" list --format=freeze)"
if [ "$(grep -c -i '^torch==' <<<"$installed")" != "1" ] \
    || ! grep -q -i -x "$(grep -i '^torch==' "$constraints")" <<<"$installed"; then
    echo "setup-lerobot: torch moved while installing policylink[$extras]; see $constraints" >&2
    exit 1
fi
echo "setup-lerobot: $venv ready (Python $python_version, lerobot $lerobot_version," \
    "$((SECONDS - began)) s)"
