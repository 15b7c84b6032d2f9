#!/bin/sh
# The demo: installs the package, then runs supervisord with streamlog and a few
# chatty programs in the foreground (Ctrl-C stops everything).  Files go to demo/.
set -eu
cd "$(dirname "$0")"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e .
STREAMLOG_DEMO_DIR="$(pwd)/demo"
STREAMLOG_PYTHON="$(command -v python3)"
export STREAMLOG_DEMO_DIR STREAMLOG_PYTHON
mkdir -p "$STREAMLOG_DEMO_DIR/childlogs"
cat <<MSG
streamlog demo: logs are written to $STREAMLOG_DEMO_DIR/streamlog/
  follow them:   supervisor-streamlog tail -f -c conf/demo.conf web worker flaky
  what is captured: supervisor-streamlog check -c conf/demo.conf
  control:       supervisorctl -c conf/demo.conf status
(the live browser page arrives with the sidecar; Ctrl-C stops the demo)
MSG
exec python3 -m supervisor.supervisord -c conf/demo.conf
