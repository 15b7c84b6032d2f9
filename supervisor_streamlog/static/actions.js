// Process control, when the sidecar has it on (`actions = true`, which needs
// auth): start / stop / restart buttons on the process list, and in the
// header of the one process open a menu (⏻) to restart, start, stop or send
// a signal. Each is a
// POST /api/process/NAME/ACTION carrying the token GET /api/actions gave this
// page (docs/protocol.md, "Process control"). Stop and signal ask for a second
// click. The outcome, or supervisord's refusal, shows in #action-status; the
// process's own log shows its state records as usual.
// Process names come from the sidecar: they only ever become text.

import { $ } from "./dom.js";

const CONFIRM_MS = 4000; // a stop or signal click waits this long for its confirming click
const OK_MS = 8000; // a success message stays this long (errors stay until the next action)
const RUNNING = new Set(["RUNNING", "STARTING", "BACKOFF", "STOPPING"]);
const CONFIRM = new Set(["stop", "signal"]);
const LABELS = { start: "start", stop: "stop", restart: "restart", signal: "send signal" };
const ICONS = { start: "▶", stop: "■", restart: "↻" };
const DOING = { start: "starting", stop: "stopping", restart: "restarting" };

export class Actions {
  /** `changed()` redraws the buttons (the list and the header): called on every change here. */
  constructor(changed) {
    this.changed = changed;
    this.enabled = false; // the sidecar said so (GET /api/actions)
    this.token = ""; // sent back with every action
    this.header = "X-Streamlog-Token";
    this.signals = []; // the signals the sidecar accepts
    this.signal = "HUP"; // the one chosen in the header
    this.supervisor = false; // whether the sidecar runs under supervisord
    this.self = null; // the sidecar's own process: no buttons (stopping it would stop this page)
    this.busy = new Set(); // processes with a request in flight: their buttons are disabled
    this.armed = null; // {name, action, where, until}: the click that waits for its confirmation
    this.statusTimer = 0;
    this.foldOpen = false; // the header's start / stop / signal menu is open
    document.addEventListener("click", (event) => {
      if (this.foldOpen && !$("actions").contains(event.target)) this.closeFold();
    });
  }

  /** Ask the sidecar whether actions are on, and for this page's token. */
  async load() {
    let body;
    try {
      const response = await fetch("/api/actions", { credentials: "same-origin" });
      if (!response.ok) return; // a sidecar without process control, or not signed in
      body = await response.json();
    } catch {
      return;
    }
    this.enabled = Boolean(body.enabled);
    if (!this.enabled) return;
    this.token = body.token;
    this.header = body.header || this.header;
    this.signals = body.signals || [];
    if (!this.signals.includes(this.signal)) this.signal = this.signals[0] || "";
    this.self = body.self || null;
    this.supervisor = body.supervisor !== false; // a sidecar not run by supervisord has nothing to control
    this.changed();
  }

  allowed(name) {
    return this.enabled && this.supervisor && name !== this.self;
  }

  /** The process list's item for `info`: add its buttons (the list is rebuilt on each change). */
  decorate(li, info) {
    // Only what supervisord reports (a log left by a removed program has no pid field).
    if (!this.allowed(info.name) || !("pid" in info)) return;
    const main = RUNNING.has(info.state) ? "stop" : "start";
    li.append(this.button(info.name, main, "list"), this.button(info.name, "restart", "list"));
  }

  /** The header's buttons, for the one process open; none when several or none are. */
  renderHeader(names) {
    const box = $("actions");
    const name = names.length === 1 && this.allowed(names[0]) ? names[0] : null;
    box.hidden = !name;
    if (!name) {
      box.replaceChildren();
      return;
    }
    const select = document.createElement("select");
    select.id = "action-signal";
    select.setAttribute("aria-label", `Signal to send to ${name}`);
    for (const signal of this.signals) {
      const option = document.createElement("option");
      option.value = signal;
      option.textContent = `SIG${signal}`;
      select.append(option);
    }
    select.value = this.signal;
    select.disabled = this.busy.has(name);
    select.addEventListener("change", () => { this.signal = select.value; });
    // Folded into one small menu button, so the toolbar keeps to one row at
    // 1280 px (the list has start / stop / restart a click away too). The
    // menu stays open across redraws (a stop's confirming click redraws it).
    const fold = document.createElement("details");
    fold.id = "action-more";
    fold.open = this.foldOpen;
    fold.addEventListener("toggle", () => { this.foldOpen = fold.open; });
    const summary = document.createElement("summary");
    summary.textContent = "⏻";
    summary.title = `Process control: start, stop, restart or send a signal to ${name}`;
    summary.setAttribute("aria-label", `Process control for ${name}`);
    const menu = document.createElement("div");
    menu.className = "menu";
    const signal = document.createElement("span");
    signal.className = "group";
    signal.append(select, this.button(name, "signal", "head"));
    menu.append(
      this.button(name, "restart", "head"),
      this.button(name, "start", "head"),
      this.button(name, "stop", "head"),
      signal,
    );
    fold.append(summary, menu);
    box.replaceChildren(fold);
  }

  /** Fold the header's menu (a click elsewhere, Escape). */
  closeFold() {
    this.foldOpen = false;
    const fold = $("action-more");
    if (fold) fold.open = false;
  }

  button(name, action, where) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `act-${action}`; // one class: the list refocuses a button by it
    button.disabled = this.busy.has(name);
    this.label(button, name, action, where, this.isArmed(name, action, where));
    button.addEventListener("click", () => this.press(button, name, action, where));
    return button;
  }

  label(button, name, action, where, armed) {
    const what = action === "signal" ? `send SIG${this.signal} to ${name}` : `${action} ${name}`;
    button.textContent = armed ? `${LABELS[action]}?` : where === "list" ? ICONS[action] : LABELS[action];
    button.title = armed ? `Click again to ${what}` : what[0].toUpperCase() + what.slice(1);
    button.setAttribute("aria-label", button.title);
    button.toggleAttribute("data-armed", armed); // not a class: the list refocuses by class
  }

  isArmed(name, action, where) {
    const armed = this.armed;
    return Boolean(armed && armed.name === name && armed.action === action && armed.where === where
      && armed.until > Date.now());
  }

  press(button, name, action, where) {
    if (CONFIRM.has(action) && !this.isArmed(name, action, where)) {
      this.armed = { name, action, where, until: Date.now() + CONFIRM_MS };
      this.label(button, name, action, where, true);
      setTimeout(() => {
        if (this.armed && this.armed.until <= Date.now()) {
          this.armed = null;
          this.changed();
        }
      }, CONFIRM_MS + 50);
      return;
    }
    this.armed = null;
    this.send(name, action);
  }

  /** POST the action; the answer (or the refusal) goes to the status line. */
  async send(name, action, retried = false) {
    const signal = action === "signal" ? this.signal : null;
    this.busy.add(name);
    this.changed();
    this.status(signal ? `sending SIG${signal} to ${name}…` : `${DOING[action]} ${name}…`, "busy");
    try {
      const query = signal ? `?${new URLSearchParams({ signal })}` : "";
      const response = await fetch(`/api/process/${encodeURIComponent(name)}/${action}${query}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { [this.header]: this.token },
      });
      const body = await response.json().catch(() => ({}));
      if (response.status === 403 && body.fault === "TOKEN" && !retried) {
        // The sidecar restarted since this page got its token: get the new one, once.
        await this.load();
        this.busy.delete(name);
        await this.send(name, action, true);
        return;
      }
      if (response.ok) this.status(body.message || `${action}: done`, "ok");
      else {
        const reason = body.error || `${response.status} ${response.statusText}`;
        this.status(body.fault ? `${reason} (${body.fault})` : reason, "error");
      }
    } catch (error) {
      this.status(`could not reach the sidecar: ${error.message}`, "error");
    } finally {
      this.busy.delete(name);
      this.changed();
    }
  }

  /** The status line: `kind` is "busy", "ok" (cleared after a while) or "error". */
  status(text, kind) {
    const element = $("action-status");
    element.textContent = text;
    element.dataset.kind = kind;
    element.hidden = !text;
    clearTimeout(this.statusTimer);
    if (kind === "ok") this.statusTimer = setTimeout(() => { element.hidden = true; }, OK_MS);
  }
}
