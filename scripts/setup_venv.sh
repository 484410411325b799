#!/usr/bin/env bash
# Builds (or refreshes) the project virtual environment.
#
# Torch is installed as an exact pin first: a range would let pip pick the newest release and,
# on a machine without a local CPU wheel, several GB of CUDA packages. On a GPU machine the same
# pin gets the CUDA build from the package index; set TORCH_SPEC to choose another build.
set -euo pipefail

venv="${1:-.venv}"
python="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
extras="${EXTRAS:-dev}"

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

"${pip[@]}" install --quiet --upgrade "pip>=24" setuptools wheel
"${pip[@]}" install --quiet "$torch_spec"
# The torch pin is repeated so that resolving the extras can never replace it.
"${pip[@]}" install --quiet "$torch_spec" -e ".[$extras]"
# openpi-client pins numpy<2 although its msgpack format works with numpy 2; it is a test and
# benchmark peer only, so it is installed without its pins.
"${pip[@]}" install --quiet --no-deps "openpi-client==0.1.2"
echo "setup: $venv ready"
