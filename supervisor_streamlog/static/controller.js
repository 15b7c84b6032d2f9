// The page's controller: it makes the parts, hands each the parts it needs,
// and carries out what the reader asks (open processes, follow or pause,
// filter, preferences). What used to be one page-wide `state` now lives with
// its owner, every field declared and explained there:
//   session.js  Session: subs, follow, pausedBy, unseen, filter, generation
//   processes.js ProcessList: processes
//   live.js     Connection: socket, connected, retry
//   frames.js   Frames: inbox, scheduled, fallback, changed, anchorNeeded
//   history.js  LogHistory: loading
//   search.js   Search: current (was `search`)

import { Actions } from "./actions.js";
import { Address } from "./address.js";
import { bindControls } from "./controls.js";
import { $, press } from "./dom.js";
import { downloadShown, renderDownloads } from "./downloads.js";
import { Frames } from "./frames.js";
import { LogHistory } from "./history.js";
import { LineStore, makeMatcher } from "./lines.js";
import { fieldsObject } from "./structured.js";
import { Connection, TAIL } from "./live.js";
import { loadPrefs, nextTheme, nextTime, savePrefs } from "./prefs.js";
import { ProcessList } from "./processes.js";
import { Search } from "./search.js";
import { Session, Sub } from "./session.js";
import { Timeline } from "./timeline.js";
import { notice, updateCounts } from "./status.js";
import { LogView } from "./view.js";

const NEAR = 600; // pixels from an edge at which more history is loaded
// The controls that act on open processes: disabled while none is.
const NEEDS_PROCESS = ["pause", "search", "jump-time", "jump-go", "download-shown"];

export class Controller {
  /** `asked`: what the address asked for at start (readAddress). */
  constructor(asked) {
    this.asked = asked; // processes, time, filter and retention from the URL
    this.prefs = loadPrefs(); // the reader's preferences (prefs.js), saved on each change
    this.store = new LineStore(asked.retain); // the lines held
    this.view = new LogView($("log"), this.store); // their rows in view
    this.session = new Session(asked.filter); // what is shown: shared by the parts below
    // Start / stop / restart / signal buttons, when the sidecar has them on.
    this.actions = new Actions(() => { this.processes.render(); this.actions.renderHeader([...this.session.subs.keys()]); });
    // The process list on the left; its buttons open or add processes.
    this.processes = new ProcessList(this.session, {
      open: (names) => this.open(names),
      toggle: (name) => this.toggle(name),
      decorate: (li, info) => this.actions.decorate(li, info),
    });
    // The WebSocket: its records go to the frame loop, process states to the list.
    this.live = new Connection(this.session, {
      batch: (batch) => { this.timeline.count(batch); this.frames.push(batch); },
      opened: () => { this.processes.load().catch(() => {}); },
      state: (message) => this.processes.update(message),
      refused: (error) => notice(`The sidecar refused a request: ${error}`),
    });
    // Badges in a merged view name processes as the list does ("web", not "web:web").
    this.view.label = (name) => this.processes.display(name);
    this.frames = new Frames(this.store, this.view, this.session, this.live); // records in once a frame, then drawn
    this.frames.arrived = (process, lines) => this.timeline.levels(process, lines); // live error marks
    this.address = new Address(this.session, this.view); // the URL, kept up to date
    // Older and newer pages over HTTP, and jumps (to a time, to a search result).
    this.history = new LogHistory({
      store: this.store,
      view: this.view,
      session: this.session,
      live: this.live,
      frames: this.frames,
      processes: this.processes,
      setFollow: (on, reason) => this.setFollow(on, reason),
      saveUrl: () => this.address.save(),
    });
    // The history search panel; a result jumps there.
    this.search = new Search(this.session, this.prefs, (target) => this.history.jumpTo(target));
    this.search.label = this.view.label;
    this.filterTimer = 0; // an applyFilter asked for by applyFilterSoon, not yet done
    this.scrollTop = 0; // the log's scrollTop at the last scroll event (onScroll)
    // The volume timeline above the lines; a click on it jumps there.
    this.timeline = new Timeline($("timeline"), {
      session: this.session,
      view: this.view,
      store: this.store,
      untimed: (sub) => this.processes.untimed(sub),
      listed: () => this.processes.processes.size > 0,
      jump: (time) => this.history.jumpTo({ time }),
    });
  }

  async start() {
    bindControls(this);
    this.applyPrefs();
    this.actions.load();
    this.store.setFilter(makeMatcher(this.session.filter), this.streams(), this.session.hiddenLevels);
    this.view.configure({ matcher: this.store.matcher });
    // The first requests go out together: the newest page of each process the
    // address names (lines show without waiting for the WebSocket), the
    // process list, and the WebSocket; live lines resume from the page's end.
    // (index.html preloads those pages: the sidecar names them in it.)
    const asked = this.asked.processes;
    const first = this.asked.at ? [] : asked.map((name) => this.history.newest(name));
    this.live.connect();
    const listed = this.processes.load().then(() => true, (error) => {
      notice(`Could not list processes: ${error.message}`);
      return false;
    });
    // Each page names its process as the sidecar knows it ("app" is "app:app"):
    // the lines need not wait for the list.
    const pages = await Promise.all(first);
    if (this.asked.at || !pages.every(Boolean)) await listed;
    const names = asked.map((name, i) => (pages[i] ? pages[i].process : this.processes.canonical(name)));
    if (names.length && this.asked.at) this.open(names, { at: this.asked.at });
    else if (names.length) this.open(names, { first: new Map(names.map((name, i) => [name, pages[i]])) });
    else {
      this.showChosen(false);
      this.updateCounts();
    }
    setInterval(() => this.processes.tick(), 1000);
  }

  updateCounts() {
    updateCounts(this.store, this.session);
  }

  applyPrefs() {
    const { prefs, session } = this;
    document.documentElement.dataset.theme = prefs.theme;
    $("theme").textContent = `theme: ${prefs.theme}`;
    $("time").textContent = `time: ${prefs.time}`;
    press("wrap", prefs.wrap);
    press("stdout", prefs.stdout);
    press("stderr", prefs.stderr);
    press("regex", session.filter.regex);
    press("case", session.filter.case);
    this.view.configure({ wrap: prefs.wrap, time: prefs.time, merged: session.subs.size > 1 });
  }

  // ---------------------------------------------------------------- opening

  /**
   * Show `names` (merged by time when several), live, or around `options.at`;
   * `options.first`: name -> the newest page of its log, already asked for.
   */
  open(names, options = {}) {
    const session = this.session;
    for (const sub of session.subs.values()) this.live.unsubscribe(sub);
    session.generation++;
    this.history.loading = null;
    session.subs = new Map(names.map((name) => [name, new Sub(name)]));
    this.store.clear();
    session.unseen = 0;
    this.setFollow(true, null);
    this.search.close();
    notice("");
    const shown = names.map((name) => this.processes.display(name)).join(" + ");
    $("title").textContent = names.length ? shown : "choose a process";
    $("title").title = names.join(" + ");
    document.title = names.length ? `${shown} · streamlog` : "streamlog";
    this.showChosen(names.length > 0);
    this.applyPrefs();
    this.processes.render();
    this.actions.renderHeader(names);
    renderDownloads([...session.subs.keys()], (name) => this.processes.display(name));
    this.timeline.open();
    if (options.at) this.history.jumpTo({ time: options.at });
    else if (options.first) this.history.showNewest(options.first);
    else for (const sub of session.subs.values()) this.live.subscribe(sub, { tail: TAIL });
    this.address.save();
    this.frames.schedule();
  }

  /** With no process open the log says to choose one, and the controls that need one are off. */
  showChosen(chosen) {
    this.view.empty.dataset.empty = chosen ? "lines" : "process";
    for (const id of NEEDS_PROCESS) $(id).disabled = !chosen;
  }

  /** Add a process to the view or remove it, staying at the time being read. */
  toggle(name) {
    const names = [...this.session.subs.keys()];
    const next = names.includes(name) ? names.filter((n) => n !== name) : [...names, name];
    const anchor = this.session.follow ? null : this.view.firstInView();
    this.open(next, anchor && anchor.time ? { at: anchor.time } : {});
  }

  // ---------------------------------------------------------------- following

  setFollow(on, reason) {
    const session = this.session;
    session.follow = on;
    session.pausedBy = on ? null : reason;
    if (on) session.unseen = 0;
    this.updateCounts();
  }

  goLive() {
    if (this.session.detached) { this.open([...this.session.subs.keys()]); return; }
    this.setFollow(true, null);
    this.view.scrollToBottom();
    this.frames.draw();
    this.address.save();
  }

  togglePause() {
    if (this.session.follow) this.setFollow(false, "you");
    else this.goLive();
    this.address.save();
  }

  /** Go to the oldest line held, paused. */
  goOldest() {
    this.setFollow(false, "scroll");
    this.view.scrollTo(0);
    this.frames.draw();
  }

  onScroll() {
    const { session, view } = this;
    const s = view.scroller;
    // Only a move up pauses: a log whose box got shorter (the toolbar wrapped,
    // a notice opened) is not at the bottom either until it is redrawn, and
    // the scroll event of the last redraw can come in between.
    const up = s.scrollTop < this.scrollTop;
    this.scrollTop = s.scrollTop;
    if (session.follow && up && !view.atBottom(view.lineHeight)) {
      this.setFollow(false, "scroll"); // the scrollbar, a key, a touch: anything that moved up
    } else if (!session.follow && session.pausedBy === "scroll" && view.atBottom(2) && !session.detached) {
      this.setFollow(true, null); // scrolled back down to the newest line
    }
    if (s.scrollTop < NEAR) this.history.loadOlder();
    if (s.scrollHeight - s.scrollTop - s.clientHeight < NEAR) this.history.loadNewer();
    this.frames.draw();
    this.address.saveSoon();
  }

  // ---------------------------------------------------------------- filter

  applyFilter() {
    const { session, view } = this;
    let matcher = null;
    try {
      matcher = makeMatcher(session.filter);
      $("filter").setCustomValidity("");
      $("filter").removeAttribute("aria-invalid");
    } catch (error) {
      $("filter").setCustomValidity(error.message);
      $("filter").setAttribute("aria-invalid", "true");
      $("filter").title = error.message;
      return;
    }
    $("filter").title = "";
    const anchor = session.follow ? null : view.anchor();
    this.store.setFilter(matcher, this.streams(), session.hiddenLevels);
    view.configure({ matcher });
    if (session.follow) view.scrollToBottom();
    else if (anchor) view.scrollToNearest(anchor); // stay where the reader was
    this.frames.draw();
    this.updateCounts();
    this.address.saveSoon();
  }

  applyFilterSoon() {
    clearTimeout(this.filterTimer);
    this.filterTimer = setTimeout(() => this.applyFilter(), 120);
  }

  /** The filter box's text changed (applied once typing pauses). */
  filterText(q) {
    this.session.filter.q = q;
    this.applyFilterSoon();
  }

  /** Escape in the filter box: no filter. */
  clearFilter() {
    this.session.filter.q = "";
    this.applyFilter();
  }

  /** Turn the filter's "regex" or "case" option on or off. */
  toggleFilterOption(option) {
    this.session.filter[option] = !this.session.filter[option];
    press(option, this.session.filter[option]);
    this.applyFilter();
  }

  /** Show or hide a level's lines ("other": lines with no level). */
  toggleLevel(level) {
    const hidden = this.session.hiddenLevels;
    const classes = level === "other" ? ["none", "stderr"] : [level];
    const hide = !hidden.has(classes[0]);
    for (const name of classes) if (hide) hidden.add(name); else hidden.delete(name);
    press(`level-${level}`, !hide);
    this.applyFilter();
  }

  /** A structured line's fields, as pretty JSON in the panel above the log. */
  showFields(line) {
    let shown;
    try {
      shown = line.structured.kind === "json" ? JSON.parse(line.text) : fieldsObject(line.structured);
    } catch {
      shown = fieldsObject(line.structured);
    }
    $("fields-json").textContent = JSON.stringify(shown, null, 2);
    $("fields-title").textContent = `fields · ${line.process}${line.time ? ` · ${line.time}` : ""}`;
    this.setFieldsPanel(true);
  }

  setFieldsPanel(open) {
    if ($("fields").hidden === !open) return;
    const anchor = this.session.follow ? null : this.view.anchor();
    $("fields").hidden = !open;
    if (this.session.follow) this.view.scrollToBottom(); else this.view.restore(anchor);
    this.frames.draw();
  }

  // ---------------------------------------------------------------- preferences

  /** The stream toggles: {stdout, stderr}. */
  streams() {
    return { stdout: this.prefs.stdout, stderr: this.prefs.stderr };
  }

  toggleStream(stream) {
    this.prefs[stream] = !this.prefs[stream];
    savePrefs(this.prefs);
    press(stream, this.prefs[stream]);
    this.applyFilter();
  }

  cycleTime() {
    this.prefs.time = nextTime(this.prefs.time);
    savePrefs(this.prefs);
    this.applyPrefs();
    this.frames.draw();
  }

  cycleTheme() {
    this.prefs.theme = nextTheme(this.prefs.theme);
    savePrefs(this.prefs);
    this.applyPrefs();
    this.frames.draw();
  }

  toggleWrap() {
    const anchor = this.view.anchor();
    this.prefs.wrap = !this.prefs.wrap;
    savePrefs(this.prefs);
    this.applyPrefs();
    this.view.render([], false);
    if (this.session.follow) this.view.scrollToBottom(); else this.view.restore(anchor);
    this.frames.draw();
  }

  // ---------------------------------------------------------------- downloads

  downloadShown() {
    downloadShown(this.store, [...this.session.subs.keys()], this.prefs.time === "utc");
  }
}
