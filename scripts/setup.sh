#!/usr/bin/env bash
# Sets up what the project needs on a fresh machine: a Python >= 3.11 virtualenv in .venv with the
# project and its dev tools, and Mosquitto from Debian's packages when it is missing and we are root.
# Idempotent and quick when nothing changed.
# Usage: scripts/setup.sh [--tests]   (--tests: also the model pipeline's torch, and Mosquitto is required)
set -euo pipefail
cd "$(dirname "$0")/.."

need_mosquitto=0
extras="dev,demo"
if [ "${1:-}" = "--tests" ]; then
    need_mosquitto=1
    extras="dev,demo,train"
fi

find_python() {
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

if [ ! -x .venv/bin/python ]; then
    py=$(find_python) || { echo "setup: Python 3.11 or newer is needed (python3.11 not found)" >&2; exit 1; }
    echo "setup: creating .venv with $($py --version)"
    "$py" -m venv .venv
fi

stamp=.venv/.installed-$(cat pyproject.toml - <<<"$extras" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    echo "setup: installing the project and its dev tools into .venv (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
    if [[ $extras == *train* ]]; then
        # torch only for the model-building pipeline and its tests (the agent never imports it); 2.13.0
        # is the CPU build the pipeline was run with, installed first so the train extra adds nothing.
        .venv/bin/python -m pip install --quiet "torch==2.13.0"
    fi
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing mosquitto and ffmpeg from Debian's packages"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto ffmpeg >/dev/null
    elif [ "$need_mosquitto" = 1 ]; then
        echo "setup: the tests need the mosquitto broker: install it (e.g. sudo apt-get install mosquitto)" >&2
        exit 1
    fi
fi
if ! command -v ffmpeg >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
fi
# mosquitto_sub/_pub: the technician guide's recipes use them, and the tests run those recipes.
if ! command -v mosquitto_sub >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >/dev/null
elif ! command -v mosquitto_sub >/dev/null 2>&1 && [ "$need_mosquitto" = 1 ]; then
    echo "setup: the tests need mosquitto_sub: install it (e.g. sudo apt-get install mosquitto-clients)" >&2
    exit 1
fi
# Node.js for the contract tests' second-language decoder and the official AsyncAPI parser
# (tests/contract/node, versions pinned by its package-lock.json).
if [ "$need_mosquitto" = 1 ]; then
    if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Node.js and npm from Debian's packages"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup: the tests need Node.js and npm: install them (e.g. sudo apt-get install nodejs npm)" >&2
        exit 1
    fi
    node_dir=tests/contract/node
    node_stamp=$node_dir/node_modules/.installed-$(sha256sum "$node_dir/package-lock.json" | cut -c1-16)
    if [ ! -f "$node_stamp" ]; then
        echo "setup: installing the contract tests' Node.js packages (npm ci)"
        (cd "$node_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
        touch "$node_stamp"
    fi
fi
# Chromium and its driver for tests/web (the commissioning page, driven in a real browser by selenium).
if [ "$need_mosquitto" = 1 ] && ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing chromium and chromium-driver from Debian's packages"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "setup: the tests need chromium and chromedriver: sudo apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi
# Real footage for the tests, the demo and the model cards: OpenCV's sample clips and photos, from
# Debian's opencv-doc (the repository holds only our labels for its frames, never the video).
if [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing opencv-doc (real sample footage) from Debian's packages"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >/dev/null
    elif [ "$need_mosquitto" = 1 ]; then
        echo "setup: the tests need Debian's opencv-doc package (real footage): sudo apt-get install opencv-doc" >&2
        exit 1
    fi
fi
