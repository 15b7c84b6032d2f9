#!/bin/sh
# The test command: installs the package with its test tools, lints, type-checks
# and runs every test with pytest (integration tests start a real supervisord).
# .ci/run runs these same steps, after installing chromium.
set -eu
cd "$(dirname "$0")"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy supervisor_streamlog tests bench
python3 -m pytest "$@"
