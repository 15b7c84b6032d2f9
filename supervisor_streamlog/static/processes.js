// The process list on the left: what supervisord runs (from /api/processes
// and the live "state" messages), each with its state, pid and uptime, and
// buttons to open it alone or add it to the view.

import { api } from "./api.js";
import { $ } from "./dom.js";

function uptime(info) {
  if (info.state !== "RUNNING" || !info.start) return "";
  let s = Math.max(0, Math.floor(Date.now() / 1000 - info.start));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const clock = `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  return d ? `${d}d ${clock}` : clock;
}

// A crash loop: the last LOOP_CRASHES crashes (docs/protocol.md's
// recent_crashes) all within LOOP_WINDOW ms of now.
const LOOP_CRASHES = 3;
const LOOP_WINDOW = 5 * 60 * 1000;

/** Whether a process keeps crashing and being restarted (from its status records). */
export function looping(info, now = Date.now()) {
  const crashes = info.recent_crashes || [];
  return crashes.length >= LOOP_CRASHES && now - Date.parse(crashes[0]) <= LOOP_WINDOW;
}

const shortTime = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "?");

/** Its restarts as counted from the files: "3 starts · last exit 3". */
function restarts(info) {
  const parts = [];
  if (info.starts > 1) parts.push(`${info.starts} starts`);
  if (info.last_exit !== null && info.last_exit !== undefined && (info.crashes || info.state !== "RUNNING")) {
    parts.push(`last exit ${info.last_exit}`);
  }
  return parts;
}

/** The tooltip of the restart figures: what they count, since when. */
function restartsTitle(info) {
  if (info.starts === undefined) return "";
  let text = `${info.starts} starts and ${info.crashes} crashes in the log since ${shortTime(info.counted_since)}`;
  if (info.last_exit !== null && info.last_exit !== undefined) {
    text += `; last exit ${info.last_exit} (${info.last_exit_expected ? "expected" : "unexpected"}) at ${shortTime(info.last_exit_time)}`;
  }
  return text;
}

function describe(info) {
  const parts = [];
  // A crash loop's pid and uptime change faster than they can be read.
  const steady = !looping(info);
  if (info.pid && steady) parts.push(`pid ${info.pid}`);
  const up = steady ? uptime(info) : "";
  if (up) parts.push(`up ${up}`);
  const counted = restarts(info);
  if (counted.length) parts.push(...counted);
  else if (info.state === "EXITED" || info.state === "BACKOFF" || info.state === "FATAL") {
    parts.push(`exit ${info.exitstatus}`);
  }
  if (!info.captured) parts.push("not captured");
  return parts.join(" · ");
}

/** The heading of one host's processes (a central sidecar): its name as people read it. */
function hostHeading(info) {
  const li = document.createElement("li");
  li.className = "host";
  li.setAttribute("role", "presentation");
  const cut = info.display.lastIndexOf(" / ");
  li.textContent = cut > 0 ? info.display.slice(0, cut) : info.host;
  li.title = `host ${li.textContent}`;
  return li;
}

/**
 * "host / web" as two parts, so that a narrow list cuts the host, not the
 * process's own name (the no-break spaces keep " / " whole at the cut).
 */
function splitHost(element, display) {
  const cut = display.lastIndexOf(" / ");
  if (cut <= 0) return;
  const host = document.createElement("span");
  host.className = "host-part";
  host.textContent = `${display.slice(0, cut)}\u00a0/\u00a0`;
  const own = document.createElement("span");
  own.className = "own-part";
  own.textContent = display.slice(cut + 3);
  element.replaceChildren(host, own);
  element.classList.add("split");
}

export class ProcessList {
  /**
   * `session`: read for which processes are open. `open(names)` shows those
   * processes alone; `toggle(name)` adds one to the view or removes it.
   */
  constructor(session, { open, toggle, decorate }) {
    this.session = session;
    this.open = open;
    this.toggle = toggle;
    this.decorate = decorate; // adds more buttons to an item (actions.js), or undefined
    this.processes = new Map(); // name -> info from /api/processes and state messages
  }

  async load() {
    const { processes } = await api("/api/processes");
    this.processes = new Map(processes.map((p) => [p.name, p]));
    this.render();
  }

  /** A live "state" message: one process changed, appeared or went. */
  update(message) {
    const info = this.processes.get(message.process);
    if (message.state === "REMOVED") this.processes.delete(message.process);
    else if (info) Object.assign(info, message);
    else this.load().catch(() => {});
    this.render();
  }

  /** The name supervisord knows a process by: "app" is "app:app" when that exists. */
  canonical(name) {
    if (this.processes.has(name) || name.includes(":")) return name;
    const local = name.slice(name.indexOf("/") + 1); // "HOST/app" on a central sidecar
    for (const full of [`${name}:${name}`, `${name}:${local}`]) if (this.processes.has(full)) return full;
    return name;
  }

  /** The name people know a process by: "web" for "web:web", as supervisorctl shows it. */
  display(name) {
    const info = this.processes.get(name);
    if (info && info.display) return info.display;
    const [group, process] = name.split(":");
    return process === group ? process : name;
  }

  /** Whether a process is shown from supervisord's own files (no times to seek by). */
  untimed(sub) {
    const info = this.processes.get(sub.name);
    return sub.uncaptured || Boolean(info && info.uncaptured);
  }

  render() {
    // Rebuilt on every state change: keep the keyboard focus where it was.
    const subs = this.session.subs;
    const focused = document.activeElement;
    const inList = focused && $("processes").contains(focused);
    const refocus = inList ? [focused.closest("li").dataset.process, focused.className] : null;
    const needle = $("process-filter").value.trim().toLowerCase();
    const items = [];
    let host = null; // a central sidecar (layout = hosts): a heading per host
    for (const info of this.processes.values()) {
      if (needle && !info.name.toLowerCase().includes(needle) && !info.state.toLowerCase().includes(needle)) continue;
      if (info.host !== undefined && info.host !== host) {
        host = info.host;
        items.push(hostHeading(info));
      }
      const li = document.createElement("li");
      li.dataset.process = info.name;
      li.className = info.captured ? "" : "uncaptured";
      if (looping(info)) li.classList.add("looping");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open";
      open.setAttribute("aria-pressed", String(subs.has(info.name)));
      open.title = `Open ${info.name}`;
      const name = document.createElement("span");
      name.className = "name";
      // As supervisorctl shows it ("web", not "web:web"); the whole name, which
      // a narrow list may cut off, on hover.
      name.textContent = info.display || info.name;
      name.title = info.name;
      if (info.host !== undefined) splitHost(name, info.display);
      const badge = document.createElement("span");
      badge.className = `state s-${info.state.toLowerCase()}`;
      badge.textContent = info.state;
      const detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = describe(info);
      detail.title = restartsTitle(info);
      if (looping(info)) {
        // Not only "RUNNING": supervisord restarts it as fast as it crashes.
        const loop = document.createElement("span");
        loop.className = "loop";
        loop.textContent = "crash loop";
        detail.prepend(loop, " ");
      }
      open.append(name, badge, detail);
      open.addEventListener("click", (event) => {
        if (event.ctrlKey || event.metaKey || event.shiftKey) this.toggle(info.name);
        else this.open([info.name]);
      });
      const add = document.createElement("button");
      add.type = "button";
      add.className = "add";
      add.textContent = subs.has(info.name) ? "−" : "+";
      add.setAttribute("aria-label", `${subs.has(info.name) ? "Remove" : "Add"} ${info.name} ${subs.has(info.name) ? "from" : "to"} the view`);
      add.addEventListener("click", () => this.toggle(info.name));
      li.append(open, add);
      if (this.decorate) this.decorate(li, info);
      items.push(li);
    }
    $("processes").replaceChildren(...items);
    if (refocus) {
      const li = [...$("processes").children].find((item) => item.dataset.process === refocus[0]);
      const button = li && li.querySelector(`button.${refocus[1]}`);
      if (button) button.focus();
    }
  }

  /** Once a second: the uptimes of the running processes, and crash loops that ended. */
  tick() {
    for (const li of $("processes").children) {
      const info = this.processes.get(li.dataset.process);
      if (info && looping(info) !== li.classList.contains("looping")) { this.render(); return; }
      const detail = li.querySelector(".detail");
      if (info && detail && info.state === "RUNNING" && !li.classList.contains("looping")) detail.textContent = describe(info);
    }
  }
}
