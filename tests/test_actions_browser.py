"""Process control against the real sidecar under a real supervisord: plain HTTP
for the refusals, real headless Chromium (Debian's) for the page's buttons."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from playwright.sync_api import Browser, Page

from .credentials import AUTH, GUARDED, PASSWORD, USER
from .sidecar import get, with_sidecar
from .supervisor import Supervisor, emit, program, wait_for
from .test_browser import browser  # noqa: F401 (a fixture: Debian's chromium)
from .test_page_newcomer import GEOMETRY, overlaps


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    tmp = tmp_path_factory.mktemp("actions")
    sup = with_sidecar(
        tmp,
        {
            "app": program(emit("tick", 0.05)),
            "idle": program(emit("tick", 0.05), autostart="false"),
        },
        streamlog=dict(GUARDED),
    )
    try:
        wait_for(lambda: get(f"{sup.url}/api/log/app", AUTH)[0] == 200, 30, "app's log")
        yield sup
    finally:
        sup.stop()


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
    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 1200, "height": 700},
    )
    page = context.new_page()
    errors: List[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    # Refused actions are answers, and a sidecar restarted on purpose drops the
    # WebSocket: neither is the page's error. No script error, no CSP violation.
    expected = ("Failed to load resource", "WebSocket connection")
    assert not [e for e in errors if not any(text in e for text in expected)], errors


def status(page: Page) -> Tuple[str, str]:
    return page.evaluate(
        "() => { const s = document.getElementById('action-status');"
        " return [s.hidden ? '' : s.textContent, s.dataset.kind || '']; }"
    )


def wait_status(page: Page, kind: str, start: str) -> str:
    page.wait_for_function(
        """([kind, start]) => {
            const s = document.getElementById('action-status');
            return !s.hidden && s.dataset.kind === kind && s.textContent.startsWith(start);
        }""",
        arg=[kind, start],
        timeout=60_000,
    )
    return status(page)[0]


def test_restart_from_the_page_restarts_the_process(control: Supervisor, page: Page) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    old = sup.info("app")["pid"]
    page.goto(sup.url + "/?process=app")
    page.locator("#action-more summary").wait_for()
    # The list has buttons too, but not for the sidecar serving the page.
    page.locator('li[data-process="app:app"] .act-restart').wait_for()
    assert page.locator('li[data-process="sidecar:sidecar"] [class^="act-"]').count() == 0
    # Clicked: the buttons are disabled until the answer comes.
    disabled = page.evaluate(
        """() => {
            document.querySelector('#actions .act-restart').click();
            return [...document.querySelectorAll('#actions button')].every(b => b.disabled);
        }"""
    )
    assert disabled is True
    message = wait_status(page, "ok", "restarted app (pid ")
    new = sup.info("app")["pid"]
    assert new != old and message == f"restarted app (pid {new})"
    assert page.locator("#actions .act-restart").is_enabled()
    # The list shows the new pid, and the log the state records of the restart.
    page.locator('li[data-process="app:app"] .detail', has_text=f"pid {new}").wait_for()
    page.wait_for_function(
        """(pid) => {
            const texts = window.streamlog.store.lines
                .filter(l => l.stream === 'status').map(l => l.text);
            return texts.some(t => t.startsWith(`RUNNING pid=${pid}`))
                && texts.some(t => t.startsWith('STOPPED'));
        }""",
        arg=new,
        timeout=30_000,
    )
    # The sidecar's log says who did it, from where, and what came of it.
    line = f"{USER} from 127.0.0.1: restart app:app: restarted app (pid {new})"
    wait_for(lambda: line in sidecar_log(sup), 10, "the action in the sidecar's log")


def test_a_fault_of_supervisord_shows_as_a_clear_message(control: Supervisor, page: Page) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    page.goto(sup.url + "/?process=app")
    page.locator("#action-more summary").click()  # the header's menu
    page.locator("#actions .act-start").click()
    assert wait_status(page, "error", "app") == "app is already running (ALREADY_STARTED)"
    assert sup.state("app") == "RUNNING"


def test_stop_asks_to_be_confirmed_then_start_from_the_list(
    control: Supervisor, page: Page
) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    page.goto(sup.url + "/")
    item = page.locator('li[data-process="app:app"]')
    item.locator(".act-stop").click()
    # One click arms it; nothing happens until the second.
    assert item.locator(".act-stop").inner_text() == "stop?"
    assert sup.state("app") == "RUNNING"
    item.locator(".act-stop").click()
    assert wait_status(page, "ok", "stopped") == "stopped app"
    assert sup.state("app") == "STOPPED"
    # Stopped: the list offers start in its place.
    item.locator(".state", has_text="STOPPED").wait_for()
    item.locator(".act-start").click()
    assert wait_status(page, "ok", "started").startswith("started app (pid ")
    assert sup.state("app") == "RUNNING"


def test_a_signal_from_the_header(control: Supervisor, page: Page) -> None:
    sup = control
    sup.rpc.supervisor.startProcess("idle")
    page.goto(sup.url + "/?process=idle")
    page.locator("#action-more summary").click()  # the header's menu
    page.select_option("#action-signal", "USR1")
    page.locator("#actions .act-signal").click()
    assert page.locator("#actions .act-signal").inner_text() == "send signal?"
    page.locator("#actions .act-signal").click()
    assert wait_status(page, "ok", "sent") == "sent SIGUSR1 to idle"
    # Python dies of an unhandled SIGUSR1: supervisord and the page see it exit.
    sup.wait_state("idle", "EXITED")
    page.locator('li[data-process="idle:idle"] .state', has_text="EXITED").wait_for()


def test_after_the_sidecar_restarts_the_page_gets_a_new_token(
    control: Supervisor, page: Page
) -> None:
    sup = control
    sup.wait_state("app", "RUNNING")
    old = sup.info("app")["pid"]
    page.goto(sup.url + "/?process=app")
    page.locator("#action-more summary").wait_for()
    stale = page.evaluate("() => window.streamlog.actions.token")
    # A new sidecar has a new secret: the page's token no longer passes.
    sup.rpc.supervisor.stopProcess("sidecar")
    sup.rpc.supervisor.startProcess("sidecar")
    wait_for(lambda: get(sup.url + "/api/actions", AUTH)[0] == 200, 30, "the new sidecar")
    states = lambda: "app:app" in json.dumps(get(sup.url + "/api/processes", AUTH)[1])  # noqa: E731
    wait_for(states, 30, "the new sidecar to read supervisord's states")
    assert token(sup) != stale
    page.locator("#action-more summary").click()
    page.locator("#actions .act-restart").click()
    message = wait_status(page, "ok", "restarted app (pid ")
    assert sup.info("app")["pid"] != old and message.endswith(f"{sup.info('app')['pid']})")
    assert page.evaluate("() => window.streamlog.actions.token") == token(sup)


def test_the_toolbar_keeps_one_row_at_1280_with_process_control(
    control: Supervisor, page: Page
) -> None:
    """The header's start, stop and signal fold into its "control" menu."""
    sup = control
    sup.wait_state("app", "RUNNING")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(sup.url + "/?process=app")
    page.locator("#action-more summary").wait_for()
    wide = page.evaluate(GEOMETRY)
    tops = [b["top"] for b in wide["boxes"]]
    assert max(tops) - min(tops) < 6, [(b["id"], b["top"], b["left"]) for b in wide["boxes"]]
    assert not overlaps(wide["boxes"])
    # The menu opens inside the window and stays open while a stop is confirmed.
    page.locator("#action-more summary").click()
    menu = page.locator("#action-more .menu").bounding_box()
    assert menu is not None and menu["x"] >= 0 and menu["x"] + menu["width"] <= 1280
    page.locator("#actions .act-stop").click()
    assert page.locator("#actions .act-stop").inner_text() == "stop?"
    assert page.locator("#action-more").get_attribute("open") is not None
    page.keyboard.press("Escape")
    assert page.locator("#action-more").get_attribute("open") is None
    assert sup.state("app") == "RUNNING"
