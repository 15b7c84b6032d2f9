// The reader's input: the buttons, the filter box, scrolling, selecting, and
// the keyboard shortcuts, each handed to the controller's actions.

import { $ } from "./dom.js";

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
    const value = $("jump-time").value;
    if (!value) return;
    const moment = page.prefs.time === "utc" ? new Date(`${value}Z`) : new Date(value);
    if (Number.isNaN(moment.getTime())) return;
    page.history.jumpTo({ time: moment.toISOString() });
  });
  $("download-shown").addEventListener("click", () => page.downloadShown());
  $("process-filter").addEventListener("input", () => page.processes.render());
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("help-close").addEventListener("click", () => $("help").close());
  document.addEventListener("keydown", (event) => onKey(page, event));
  window.addEventListener("resize", () => {
    view.relayout();
    if (session.follow) view.scrollToBottom();
    page.frames.draw();
  });
}

// The keyboard shortcuts (the help dialog in index.html lists them).
function onKey(page, event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest && event.target.closest("input, textarea, select");
  if (event.key === "Escape") {
    if (typing && event.target.id === "filter") { $("filter").value = ""; page.clearFilter(); }
    if (typing) event.target.blur();
    page.search.close();
    page.setFieldsPanel(false);
    $("download").open = false;
    return;
  }
  if (typing || $("help").open) return;
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
