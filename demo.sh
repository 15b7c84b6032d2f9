#!/bin/sh
# The demo: installs the package, then runs supervisord with streamlog and a few
# chatty programs in the foreground (Ctrl-C stops everything).  Files go to demo/.
set -eu
cd "$(dirname "$0")"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e .
STREAMLOG_DEMO_DIR="$(pwd)/demo"
mkdir -p "$STREAMLOG_DEMO_DIR/childlogs"
cat <<MSG
streamlog demo
  open:          http://127.0.0.1:9002/
  files:         $STREAMLOG_DEMO_DIR/streamlog/
  terminal tail: supervisor-streamlog tail -f -c conf/demo.conf web worker flaky
  capture:       supervisorctl -c conf/demo.conf streamlog status
  check:         supervisor-streamlog check -c conf/demo.conf
(Ctrl-C stops the demo)
MSG
exec python3 -m supervisor.supervisord -c conf/demo.conf
