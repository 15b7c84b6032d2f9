// The reader's input: the buttons, the filter box, scrolling, selecting, and
// the keyboard shortcuts, each handed to the controller's actions.

import { $ } from "./dom.js";
import { notice } from "./status.js";
import { parseWhen } from "./when.js";

/** Wire the page's controls to `page` (the Controller). */
export function bindControls(page) {
  const { view, session } = page;
  const log = view.scroller;
  log.addEventListener("scroll", () => page.onScroll(), { passive: true });
  log.addEventListener("wheel", (event) => { if (event.deltaY < 0 && session.follow) page.setFollow(false, "scroll"); }, { passive: true });
  log.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const line = view.lineOf(button);
    if (!line) return;
    if (button.dataset.action === "expand") {
      line.expanded = !line.expanded;
      line.height = 0;
      view.relayout();
      page.frames.draw();
    } else if (button.dataset.action === "fields") {
      page.showFields(line);
    } else if (button.dataset.action === "copy") {
      navigator.clipboard.writeText(line.plain).then(
        () => { button.textContent = "copied"; },
        () => { button.textContent = "copy failed"; },
      );
    }
  });
  document.addEventListener("selectionchange", () => {
    const selection = document.getSelection();
    if (session.follow && selection && !selection.isCollapsed && log.contains(selection.anchorNode)) {
      page.setFollow(false, "selection");
    }
  });
  $("pause").addEventListener("click", () => page.togglePause());
  $("new-lines").addEventListener("click", () => page.goLive());
  $("filter").value = session.filter.q;
  $("filter").addEventListener("input", () => page.filterText($("filter").value));
  $("filter").addEventListener("keydown", (event) => {
    if (event.key === "Enter") page.search.run();
  });
  $("regex").addEventListener("click", () => page.toggleFilterOption("regex"));
  $("case").addEventListener("click", () => page.toggleFilterOption("case"));
  $("search").addEventListener("click", () => page.search.run());
  $("results-more").addEventListener("click", () => page.search.run(true));
  $("results-close").addEventListener("click", () => page.search.close());
  for (const stream of ["stdout", "stderr"]) {
    $(stream).addEventListener("click", () => page.toggleStream(stream));
  }
  for (const button of $("levels").querySelectorAll("button")) {
    button.addEventListener("click", () => page.toggleLevel(button.id.slice("level-".length)));
  }
  $("fields-close").addEventListener("click", () => page.setFieldsPanel(false));
  $("time").addEventListener("click", () => page.cycleTime());
  $("wrap").addEventListener("click", () => page.toggleWrap());
  $("theme").addEventListener("click", () => page.cycleTheme());
  $("jump").addEventListener("submit", (event) => {
    event.preventDefault();
    jump(page);
  });
  $("jump-time").addEventListener("input", () => jumpError(""));
  $("download-shown").addEventListener("click", () => page.downloadShown());
  // The "more" menu closes as a menu does: on a click elsewhere (and on Escape).
  document.addEventListener("click", (event) => {
    if ($("more").open && !$("more").contains(event.target)) $("more").open = false;
  });
  $("process-filter").addEventListener("input", () => page.processes.render());
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("help-close").addEventListener("click", () => $("help").close());
  document.addEventListener("keydown", (event) => onKey(page, event));
  window.addEventListener("resize", () => {
    view.relayout();
    if (session.follow) view.scrollToBottom();
    page.frames.draw();
  });
  // The log's box also changes height without a window resize: the toolbar
  // wraps or unwraps, a notice or a panel opens. Following, the newest line
  // stays in view (a quiet log has no new line to bring it back, and the next
  // scroll event would take the gap for the reader scrolling up: a pause).
  let height = log.clientHeight;
  new ResizeObserver(() => {
    if (log.clientHeight === height) return;
    height = log.clientHeight;
    if (session.follow) view.scrollToBottom();
    page.frames.draw();
  }).observe(log);
}

// The time-jump field: a time as the reader types it (when.js), or what is wrong with it.
function jump(page) {
  const found = parseWhen($("jump-time").value, { utc: page.prefs.time === "utc" });
  if (!found.ok) {
    jumpError(found.error);
    return;
  }
  jumpError("");
  if (page.session.subs.size === 0) return;
  page.history.jumpTo({ time: found.date.toISOString() });
}

function jumpError(text) {
  const input = $("jump-time");
  const was = input.getAttribute("aria-invalid") === "true";
  if (text) {
    input.setAttribute("aria-invalid", "true");
    notice(text);
  } else if (was) {
    input.removeAttribute("aria-invalid");
    notice("");
  }
}

// The keyboard shortcuts (the help dialog in index.html lists them).
const NEEDS_PROCESS = new Set(["p", "s", "j", "d", "End", "G", "Home", "g"]);
function onKey(page, event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest && event.target.closest("input, textarea, select");
  if (event.key === "Escape") {
    if (typing && event.target.id === "filter") { $("filter").value = ""; page.clearFilter(); }
    if (typing) event.target.blur();
    page.search.close();
    page.setFieldsPanel(false);
    $("more").open = false;
    page.actions.closeFold();
    return;
  }
  if (typing || $("help").open) return;
  // With no process open these have nothing to act on (their buttons are disabled).
  if (page.session.subs.size === 0 && NEEDS_PROCESS.has(event.key)) return;
  const actions = {
    "/": () => $("filter").focus(),
    p: () => page.togglePause(),
    End: () => page.goLive(),
    G: () => page.goLive(),
    Home: () => page.goOldest(),
    g: () => page.goOldest(),
    s: () => page.search.run(),
    j: () => $("jump-time").focus(),
    o: () => page.toggleStream("stdout"),
    e: () => page.toggleStream("stderr"),
    t: () => page.cycleTime(),
    w: () => page.toggleWrap(),
    d: () => page.downloadShown(),
    l: () => $("process-filter").focus(),
    "?": () => $("help").showModal(),
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
}
