#!/usr/bin/env bash
# The compatibility tests' Python clients, pinned, in a virtualenv of their own
# (target/compat-venv): the official Judge0 SDK and a Piston client. Made on first use, remade
# when a pin changes. Prints the venv's python. python3-venv comes from scripts/ensure-services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
JUDGE0_SDK_VERSION=0.0.8
venv=target/compat-venv
stamp=$venv/.pins
pins="judge0==$JUDGE0_SDK_VERSION"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ]; then
  echo "compat: installing $pins into $venv ..." >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins >&2
  echo "$pins" > "$stamp"
fi
echo "$PWD/$venv/bin/python"
