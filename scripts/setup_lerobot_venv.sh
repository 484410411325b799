#!/usr/bin/env bash
# Builds (or refreshes) the LeRobot environment, separate from `.venv`.
#
# LeRobot pins its own torch (0.4.4: torch < 2.11), so it cannot share `.venv` and its torch
# pin. LeRobot is installed first, exactly as its users install it; then everything it brought
# is frozen into a constraints file, and policylink goes on top under those constraints, so
# resolving policylink's extras can never replace LeRobot's torch (or anything else it chose).
set -euo pipefail

venv="${1:-.venv-lerobot}"
python="${PYTHON:-python3}"
lerobot_spec="${LEROBOT_SPEC:-lerobot==0.4.4}"
extras="${EXTRAS:-dev}"
constraints="$venv/lerobot-constraints.txt"

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-lerobot: creating $venv"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

"${pip[@]}" install --quiet --upgrade "pip>=24"
"${pip[@]}" install --quiet "$lerobot_spec"
# Frozen before policylink is installed, so it holds LeRobot's choices only (on a refresh it
# also holds what policylink added last time, which keeps a refresh from moving anything).
"${pip[@]}" freeze --exclude-editable | grep -v -i '^policylink' > "$constraints"
echo "setup-lerobot: $(grep -i '^torch==' "$constraints") (pinned from LeRobot's install)"
"${pip[@]}" install --quiet -c "$constraints" -e ".[$extras]"
"${pip[@]}" install --quiet -c "$constraints" --no-deps "openpi-client==0.1.2"
echo "setup-lerobot: $venv ready"
