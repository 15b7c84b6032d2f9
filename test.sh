#!/bin/sh
# The test command.  It works in a virtual environment: the active one if there
# is one, else .venv/ (made here on first use), so nothing is installed into the
# system's Python.  It installs the package with its test tools there, lints,
# type-checks and runs every test with pytest (integration tests start real
# supervisord, rsyslogd and chromium; see the README for the Debian packages).
# .ci/run installs those packages and then runs this script.
set -eu
cd "$(dirname "$0")"
if [ -n "${VIRTUAL_ENV:-}" ]; then
    PYTHON="$VIRTUAL_ENV/bin/python"
else
    [ -x .venv/bin/python ] || python3 -m venv .venv
    PYTHON=.venv/bin/python
fi
set -x
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
"$PYTHON" -m mypy supervisor_streamlog tests bench
"$PYTHON" -m pytest "$@"
