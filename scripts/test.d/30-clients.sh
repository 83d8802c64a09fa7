#!/usr/bin/env bash
# Client tests against the real server (target/debug/realplexor):
#   1. clients/js: generated files up to date, then the browser client (its three
#      transports and the fallback of "auto") and the demo in headless Chromium
#      (node --test, playwright-core from npm ci);
#   2. clients/python: pip-installs the package into a temporary directory and
#      runs pytest against that installed copy;
#   3. clients/php: php-cli runs clients/php/tests/run.php.
# A missing tool is a failure when CI=true, a skip (with a loud note) otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export REALPLEXOR_BIN="${REALPLEXOR_BIN:-$ROOT/target/debug/realplexor}"
PY=/usr/bin/python3   # Debian's, where python3-pytest is installed
status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

missing() {
    if [ "${CI:-}" = true ]; then
        echo "30-clients: FAIL: $1 is missing" >&2
        status=1
    else
        echo "30-clients: SKIP: $1 is missing (a failure when CI=true)" >&2
    fi
}
step() {
    echo "-- 30-clients: $*"
    if ! "$@"; then
        echo "30-clients: FAILED: $*" >&2
        status=1
    fi
}

# The demo test takes a screenshot; refresh the committed one with
# DEMO_SCREENSHOT=clients/demo/screenshot.png scripts/test.d/30-clients.sh
export DEMO_SCREENSHOT="${DEMO_SCREENSHOT:-$tmp/screenshot.png}"

if [ ! -x "$REALPLEXOR_BIN" ]; then
    cargo build || exit 1
fi

# 1. JavaScript.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing "node/npm"
else
    step node clients/js/build.mjs --check
    if [ ! -x /usr/bin/chromium ]; then
        missing "/usr/bin/chromium (Debian package chromium)"
    elif step npm ci --prefix clients/js --no-audit --no-fund --loglevel=error; then
        step timeout 900 node --test --test-concurrency=1 clients/js/test/gap.test.mjs clients/js/test/browser.test.mjs \
            clients/js/test/transports.test.mjs clients/js/test/demo.test.mjs
    fi
fi

# 2. Python.
if ! $PY -c 'import pytest' 2>/dev/null; then
    missing "pytest for $PY (Debian package python3-pytest)"
elif step $PY -m pip install --quiet --no-deps --no-build-isolation --no-index --target "$tmp/py" clients/python; then
    (cd "$tmp" && $PY -c 'import sys; sys.path.insert(0, "py"); from realplexor import Realplexor; print("installed:", Realplexor)') || status=1
    rm -rf clients/python/build clients/python/*.egg-info
    step env PYTHONPATH="$tmp/py" REALPLEXOR_TEST_INSTALLED=1 timeout 300 \
        $PY -m pytest -q -p no:cacheprovider clients/python/tests
fi

# 3. PHP.
if ! command -v php >/dev/null; then
    missing "php (Debian package php-cli)"
else
    step php -r 'exit(is_array(json_decode(file_get_contents("clients/php/composer.json"), true)) ? 0 : 1);'
    step timeout 300 php clients/php/tests/run.php
fi

exit $status
