"""Process control against the real sidecar under a real supervisord: plain HTTP
for the refusals, real headless Chromium (Debian's) for the page's buttons."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Tuple

import pytest
from playwright.sync_api import Browser, Page

from .browsing import checked_page, overlaps
from .credentials import AUTH, GUARDED, PASSWORD, USER
from .page import TailPage
from .sidecar import get, serving
from .supervisor import Supervisor, Supervisors, emit, program, wait_for


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    tmp = tmp_path_factory.mktemp("actions")
    with Supervisors() as started:
        sup = started(
            serving(
                tmp,
                {
                    "app": program(emit("tick", 0.05)),
                    "idle": program(emit("tick", 0.05), autostart="false"),
                },
                streamlog=dict(GUARDED),
            )
        )
        wait_for(lambda: get(f"{sup.url}/api/log/app", AUTH)[0] == 200, 30, "app's log")
        yield sup


def post(sup: Supervisor, path: str, headers: Dict[str, str]) -> Tuple[int, Any]:
    request = urllib.request.Request(sup.url + path, data=b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def token(sup: Supervisor) -> str:
    status, body = get(sup.url + "/api/actions", AUTH)
    assert status == 200 and body["enabled"] is True
    return str(body["token"])


def sidecar_log(sup: Supervisor) -> str:
    return (sup.workdir / "sidecar.err").read_text(errors="replace")


def test_cross_origin_and_tokenless_posts_are_refused(control: Supervisor) -> None:
    sup = control
    pid = sup.info("app")["pid"]
    good = {"Origin": sup.url, "X-Streamlog-Token": token(sup), **AUTH}
    # A page of another site: the browser sends the cached credentials, and its origin.
    foreign = dict(good, Origin="http://evil.example")
    assert post(sup, "/api/process/app/restart", foreign) == (
        403,
        {"error": "refused: not sent from this page's origin", "fault": "ORIGIN"},
    )
    # A form cannot set a header: no token.
    tokenless = {k: v for k, v in good.items() if k != "X-Streamlog-Token"}
    status, body = post(sup, "/api/process/app/restart", tokenless)
    assert status == 403 and body["fault"] == "TOKEN"
    assert post(sup, "/api/process/app/restart", {"Origin": sup.url})[0] == 401
    assert get(sup.url + "/api/actions")[0] == 401
    assert sup.info("app")["pid"] == pid  # none of them did anything
    # The sidecar itself is not to be stopped from the page it serves.
    assert post(sup, "/api/process/sidecar/stop", good)[1]["fault"] == "SELF"
    # A fault of supervisord's, as a sentence and the fault's name.
    assert post(sup, "/api/process/app/start", good) == (
        409,
        {"error": "app is already running", "fault": "ALREADY_STARTED"},
    )
    # Every attempt is in the sidecar's log, with who and from where.
    wait_for(lambda: "app:app failed: app is already running" in sidecar_log(sup), 10, "the log")
    text = sidecar_log(sup)
    assert f"{USER} from 127.0.0.1: start app:app failed: app is already running" in text
    assert f"{USER} from 127.0.0.1: restart 'app' refused: refused: not sent from" in text


# ------------------------------------------------------------------ the page


@pytest.fixture
def page(browser: Browser, control: Supervisor) -> Iterator[Page]:
    """A page logged in to the guarded sidecar (tail, the page object, is on it)."""
    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 1200, "height": 700},
    )
    # Refused actions are answers, and a sidecar restarted on purpose drops the
    # WebSocket: neither is the page's error. No script error, no CSP violation.
    with checked_page(context, ("Failed to load resource", "WebSocket connection")) as opened:
        yield opened


def test_restart_from_the_page_restarts_the_process(control: Supervisor, tail: TailPage) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    old = sup.info("app")["pid"]
    tail.open(sup.url, "app")
    tail.action_menu.locator("summary").wait_for()
    # The list has buttons too, but not for the sidecar serving the page.
    tail.process("app:app").locator(".act-restart").wait_for()
    assert tail.process("sidecar:sidecar").locator('[class^="act-"]').count() == 0
    # Clicked: the buttons are disabled until the answer comes (read in the click's
    # own task: the answer may come before another look).
    disabled = tail.actions.evaluate(
        """(group) => {
            group.querySelector('.act-restart').click();
            return [...group.querySelectorAll('button')].every(b => b.disabled);
        }"""
    )
    assert disabled is True
    message = tail.wait_action("ok", "restarted app (pid ")
    new = sup.info("app")["pid"]
    assert new != old and message == f"restarted app (pid {new})"
    assert tail.actions.locator(".act-restart").is_enabled()
    # The list shows the new pid, and the log the state records of the restart.
    tail.process("app:app").locator(".detail", has_text=f"pid {new}").wait_for()
    tail.wait_held_status(f"RUNNING pid={new}", "STOPPED")
    # The sidecar's log says who did it, from where, and what came of it.
    line = f"{USER} from 127.0.0.1: restart app:app: restarted app (pid {new})"
    wait_for(lambda: line in sidecar_log(sup), 10, "the action in the sidecar's log")


def test_a_fault_of_supervisord_shows_as_a_clear_message(
    control: Supervisor, tail: TailPage
) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    tail.open(sup.url, "app")
    tail.action_menu.locator("summary").click()  # the header's menu
    tail.actions.locator(".act-start").click()
    assert tail.wait_action("error", "app") == "app is already running (ALREADY_STARTED)"
    assert sup.state("app") == "RUNNING"


def test_stop_asks_to_be_confirmed_then_start_from_the_list(
    control: Supervisor, tail: TailPage
) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    tail.open(sup.url)
    item = tail.process("app:app")
    item.locator(".act-stop").click()
    # One click arms it; nothing happens until the second.
    assert item.locator(".act-stop").inner_text() == "stop?"
    assert sup.state("app") == "RUNNING"
    item.locator(".act-stop").click()
    assert tail.wait_action("ok", "stopped") == "stopped app"
    assert sup.state("app") == "STOPPED"
    # Stopped: the list offers start in its place.
    item.locator(".state", has_text="STOPPED").wait_for()
    item.locator(".act-start").click()
    assert tail.wait_action("ok", "started").startswith("started app (pid ")
    assert sup.state("app") == "RUNNING"


def test_a_signal_from_the_header(control: Supervisor, tail: TailPage) -> None:
    sup = control
    sup.rpc.supervisor.startProcess("idle")
    tail.open(sup.url, "idle")
    tail.action_menu.locator("summary").click()  # the header's menu
    tail.page.select_option("#action-signal", "USR1")
    tail.actions.locator(".act-signal").click()
    assert tail.actions.locator(".act-signal").inner_text() == "send signal?"
    tail.actions.locator(".act-signal").click()
    assert tail.wait_action("ok", "sent") == "sent SIGUSR1 to idle"
    # Python dies of an unhandled SIGUSR1: supervisord and the page see it exit.
    sup.wait_state("idle", "EXITED")
    tail.process("idle:idle").locator(".state", has_text="EXITED").wait_for()


def test_after_the_sidecar_restarts_the_page_gets_a_new_token(
    control: Supervisor, tail: TailPage
) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    old = sup.info("app")["pid"]
    tail.open(sup.url, "app")
    tail.action_menu.locator("summary").wait_for()
    stale = tail.action_token()
    # A new sidecar has a new secret: the page's token no longer passes.
    sup.rpc.supervisor.stopProcess("sidecar")
    sup.rpc.supervisor.startProcess("sidecar")
    wait_for(lambda: get(sup.url + "/api/actions", AUTH)[0] == 200, 30, "the new sidecar")
    states = lambda: "app:app" in json.dumps(get(sup.url + "/api/processes", AUTH)[1])  # noqa: E731
    wait_for(states, 30, "the new sidecar to read supervisord's states")
    assert token(sup) != stale
    tail.action_menu.locator("summary").click()
    tail.actions.locator(".act-restart").click()
    message = tail.wait_action("ok", "restarted app (pid ")
    assert sup.info("app")["pid"] != old and message.endswith(f"{sup.info('app')['pid']})")
    assert tail.action_token() == token(sup)


def test_the_toolbar_keeps_one_row_at_1280_with_process_control(
    control: Supervisor, tail: TailPage
) -> None:
    """The header's start, stop and signal fold into its "control" menu."""
    sup = control
    sup.wait_state("app", "RUNNING")
    tail.page.set_viewport_size({"width": 1280, "height": 800})
    tail.open(sup.url, "app")
    tail.action_menu.locator("summary").wait_for()
    wide = tail.toolbar_geometry()
    tops = [b["top"] for b in wide["boxes"]]
    assert max(tops) - min(tops) < 6, [(b["id"], b["top"], b["left"]) for b in wide["boxes"]]
    assert not overlaps(wide["boxes"])
    # The menu opens inside the window and stays open while a stop is confirmed.
    tail.action_menu.locator("summary").click()
    menu = tail.action_menu.locator(".menu").bounding_box()
    assert menu is not None and menu["x"] >= 0 and menu["x"] + menu["width"] <= 1280
    tail.actions.locator(".act-stop").click()
    assert tail.actions.locator(".act-stop").inner_text() == "stop?"
    assert tail.action_menu.get_attribute("open") is not None
    tail.key("Escape")
    assert tail.action_menu.get_attribute("open") is None
    assert sup.state("app") == "RUNNING"
