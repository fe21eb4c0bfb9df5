#!/usr/bin/env bash
# Installs what building and testing nimsync needs on a fresh Debian machine:
# Debian packages (nim, valgrind, pkg-config, gcc, prometheus), a Python virtualenv under
# .venv with maturin and pytest, and the Rust components (clippy, rustfmt).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nim >/dev/null || need_apt+=(nim)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cc >/dev/null || need_apt+=(gcc)
command -v promtool >/dev/null || need_apt+=(prometheus)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
    echo "bootstrap: apt-get install ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "bootstrap: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
fi
if command -v rustup >/dev/null; then
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import maturin, pytest' 2>/dev/null; then
    echo "bootstrap: pip install maturin pytest into .venv"
    .venv/bin/pip install -q --disable-pip-version-check 'maturin>=1.5,<2' 'pytest>=7'
fi
if ! .venv/bin/python -c 'import opentelemetry.sdk, opentelemetry.proto, google.protobuf' 2>/dev/null; then
    echo "bootstrap: pip install opentelemetry-sdk opentelemetry-proto protobuf into .venv (tracing interop tests)"
    .venv/bin/pip install -q --disable-pip-version-check 'opentelemetry-sdk>=1.20' 'opentelemetry-proto>=1.20' 'protobuf>=4'
fi
