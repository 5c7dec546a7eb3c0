#!/usr/bin/env bash
# Sourced by up.sh and test.sh: makes sure cargo is on PATH (rustup installs it under ~/.cargo).
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo (Rust stable, via rustup) is required to build the service; install it and rerun" >&2
  exit 1
fi
