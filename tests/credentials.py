"""The account a test sidecar with process control (``actions = true``) is configured with.

tests/test_actions.py and tests/test_actions_browser.py both log in with it.
"""

from __future__ import annotations

import base64
from typing import Dict

USER, PASSWORD = "ops", "s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
#: The [streamlog] settings that turn process control on behind that account.
GUARDED: Dict[str, str] = {"username": USER, "password": PASSWORD, "actions": "true"}
