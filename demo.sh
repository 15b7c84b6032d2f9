#!/bin/sh
# The demo: supervisord with streamlog (plugin mode), the sidecar and three chatty
# programs, in the foreground.  It works in a virtual environment: the active
# one, else .venv/ (made here on first use).  Ctrl-C stops everything; the files
# stay under demo/ (streamlog/ the captured logs, childlogs/ and supervisord.log
# supervisord's own) until you remove that directory.
set -eu
cd "$(dirname "$0")"
if [ -z "${VIRTUAL_ENV:-}" ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    VIRTUAL_ENV="$(pwd)/.venv"
fi
# conf/demo.conf runs `python3`: the environment's, through PATH.
PATH="$VIRTUAL_ENV/bin:$PATH"
export PATH
python3 -m pip install --quiet --disable-pip-version-check -e .
STREAMLOG_DEMO_DIR="$(pwd)/demo"
mkdir -p "$STREAMLOG_DEMO_DIR/childlogs"
cat <<MSG
streamlog demo
  open:          http://127.0.0.1:9002/
  files:         $STREAMLOG_DEMO_DIR/streamlog/
  terminal tail: $VIRTUAL_ENV/bin/supervisor-streamlog tail -f -c conf/demo.conf web worker flaky
  capture:       $VIRTUAL_ENV/bin/supervisorctl -c conf/demo.conf streamlog status
  check:         $VIRTUAL_ENV/bin/supervisor-streamlog check -c conf/demo.conf
Ctrl-C stops the demo; what it wrote stays in $STREAMLOG_DEMO_DIR/ (rm -r it to start afresh).
MSG
exec python3 -m supervisor.supervisord -c conf/demo.conf
