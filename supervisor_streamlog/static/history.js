// History: pages of older and newer records read over HTTP as the reader
// scrolls, merged across processes so the timeline has no hole, and jumps to
// a time or to a search result (the records around it, paused there).
// Protocol: docs/protocol.md.

import { api, logUrl } from "./api.js";
import { timeKey } from "./lines.js";
import { TAIL } from "./live.js";
import { notice, updateCounts } from "./status.js";

const PAGE = 500; // records per history page

/**
 * Pages of several processes, merged so the timeline has no hole: only records
 * up to the nearest page edge of a process that has more are kept (all of them
 * when `single`: one process has no other to keep in step with).
 */
export function mergePages(pages, backward, single) {
  let cut = null;
  const timed = (page) => page.entries.length > 0 && page.entries.every((e) => e.time);
  for (const { page } of pages) {
    const more = backward ? page.has_before : page.has_after;
    if (!more || !timed(page)) continue;
    const edge = timeKey((backward ? page.entries[0] : page.entries[page.entries.length - 1]).time);
    if (cut === null || (backward ? edge > cut : edge < cut)) cut = edge;
  }
  return pages.map(({ sub, page }) => {
    const kept = cut === null || single || !timed(page) ? page.entries
      : page.entries.filter((e) => (backward ? timeKey(e.time) >= cut : timeKey(e.time) <= cut));
    const all = kept.length === page.entries.length;
    return { sub, page, kept, all };
  });
}

export class LogHistory {
  /**
   * The lines (`store`, `view`), what is open (`session`), the subscriptions
   * (`live`), the frame loop (`frames`: draw, trim), the process list (which
   * processes have no times), and two of the controller's actions:
   * `setFollow(on, reason)` and `saveUrl()`.
   */
  constructor({ store, view, session, live, frames, processes, setFollow, saveUrl }) {
    this.store = store;
    this.view = view;
    this.session = session;
    this.live = live;
    this.frames = frames;
    this.processes = processes;
    this.setFollow = setFollow;
    this.saveUrl = saveUrl;
    this.loading = null; // the history read in progress: {generation} (one at a time)
  }

  // One history read at a time; an answer for a view since left is dropped.
  async reading(what, work) {
    const token = { generation: this.session.generation };
    this.loading = token;
    try {
      const result = await work();
      if (this.loading === token) return result;
    } catch (error) {
      if (this.loading === token) notice(`Could not ${what}: ${error.message}`);
    } finally {
      if (this.loading === token) this.loading = null;
    }
    return null;
  }

  page(sub, query) {
    return api(logUrl(sub.name, { limit: PAGE, ...query }));
  }

  /** The newest page of a process's log (`name` as the address gave it), or null. */
  newest(name) {
    return api(logUrl(name, { limit: TAIL, direction: "backward" })).catch(() => null);
  }

  /**
   * Open with the newest pages read over HTTP (`pages`: name -> newest()'s
   * answer, or a promise of it), then live from the end of each: no gap, no duplicate. A
   * process whose page could not be read gets the WebSocket's tail instead.
   */
  async showNewest(pages) {
    const { store, session, live } = this;
    const generation = session.generation;
    const subs = [...session.subs.values()];
    const read = await Promise.all(subs.map(async (sub) => ({ sub, page: await pages.get(sub.name) })));
    if (session.generation !== generation) return; // another view was opened meanwhile
    const found = read.filter(({ sub, page }) => page && page.process === sub.name);
    for (const { sub } of read) if (!found.some((f) => f.sub === sub)) live.subscribe(sub, { tail: TAIL });
    for (const { sub, page, kept, all } of mergePages(found, true, session.subs.size === 1)) {
      sub.first = all ? page.start : kept.length ? kept[0].offset : page.end;
      sub.hasBefore = page.has_before || !all;
      sub.cursor = page.end;
      // As live records: their unfinished last lines go on in the live ones.
      store.add(sub.name, kept, store.pending, sub.epoch);
      live.subscribe(sub, { cursor: page.end });
    }
    this.frames.trim();
    this.frames.draw();
    updateCounts(store, session);
  }

  /** The page before the oldest line held, for each process that has one. */
  async loadOlder() {
    const { store, view, session } = this;
    const subs = [...session.subs.values()].filter((sub) => sub.hasBefore && sub.first !== null);
    if (this.loading || subs.length === 0) return;
    const pages = await this.reading("load older lines", () => Promise.all(subs.map(async (sub) => ({
      sub, page: await this.page(sub, { cursor: sub.first, direction: "backward" }),
    }))));
    if (!pages) return;
    const anchor = view.anchor();
    const pending = new Map(); // the pages' own unfinished lines: they go on in what is held
    for (const { sub, page: found, kept, all } of mergePages(pages, true, session.subs.size === 1)) {
      sub.first = all ? found.start : kept.length ? kept[0].offset : sub.first;
      sub.hasBefore = found.has_before || !all;
      if (kept.length) store.add(sub.name, this.keyUntimed(sub.name, kept), pending, sub.epoch);
    }
    store.joinEdge(pending);
    this.frames.trim();
    view.render([], false);
    view.restore(anchor);
    updateCounts(store, session);
  }

  // Records without a time (uncaptured processes) read from history go just
  // before the oldest line held of their process, in their order.
  keyUntimed(process, entries) {
    if (entries.every((e) => e.time)) return entries;
    const oldest = this.store.lines.find((line) => line.process === process);
    const base = oldest ? oldest.key : this.store.newest + entries.length + 1;
    return entries.map((e, i) => (e.time ? e : { ...e, key: base - (entries.length - i) }));
  }

  /** Detached: the page after the newest line held; caught up, live again. */
  async loadNewer() {
    const { store, session } = this;
    const subs = [...session.subs.values()].filter((sub) => !sub.attached && sub.hasAfter);
    if (this.loading || subs.length === 0) return;
    const pages = await this.reading("load newer lines", () => Promise.all(subs.map(async (sub) => ({
      sub, page: await this.page(sub, { cursor: sub.last, direction: "forward" }),
    }))));
    if (!pages) return;
    for (const { sub, page: found, kept, all } of mergePages(pages, false, session.subs.size === 1)) {
      sub.last = all ? found.end : kept.length ? kept[kept.length - 1].end : sub.last;
      sub.hasAfter = found.has_after || !all;
      if (kept.length) store.add(sub.name, kept, store.pending, sub.epoch);
    }
    for (const sub of subs) {
      if (!sub.hasAfter) {
        sub.cursor = sub.last;
        this.live.subscribe(sub, { cursor: sub.last }); // caught up: live from here
      }
    }
    this.frames.anchorNeeded = true;
    this.frames.trim();
    this.frames.draw();
    updateCounts(store, session);
  }

  // The pages before and after a target in one process's log: at the target's
  // offset in its own process, at its time in the others; a process without
  // times (or a target without one) shows its newest lines, live.
  async around(sub, target) {
    let after;
    if (sub.name === target.process) {
      after = await this.page(sub, { cursor: target.offset, direction: "forward" });
    } else if (target.time && !this.processes.untimed(sub)) {
      after = await this.page(sub, { time: target.time, direction: "forward" });
    } else {
      const tail = await this.page(sub, { direction: "backward" });
      return { sub, before: tail, after: { entries: [], start: tail.end, end: tail.end, has_after: false } };
    }
    const before = await this.page(sub, { cursor: after.start, direction: "backward" });
    return { sub, before, after };
  }

  /**
   * Show the records around a target -- {time} or {process, offset, time} --
   * paused there.
   */
  async jumpTo(target) {
    const { store, view, session, live } = this;
    const subs = [...session.subs.values()];
    if (subs.length === 0) return;
    this.setFollow(false, "jump");
    const pages = await this.reading("jump there", () => Promise.all(subs.map((sub) => this.around(sub, target))));
    if (!pages) return;
    for (const sub of subs) live.unsubscribe(sub);
    session.generation++; // records queued until now belong to the view left
    store.clear();
    session.unseen = 0;
    const single = session.subs.size === 1;
    const older = mergePages(pages.map(({ sub, before }) => ({ sub, page: before })), true, single);
    const newer = mergePages(pages.map(({ sub, after }) => ({ sub, page: after })), false, single);
    for (const { sub, page: found, kept, all } of newer) {
      sub.last = all ? found.end : kept.length ? kept[kept.length - 1].end : found.start;
      sub.hasAfter = found.has_after || !all;
      store.add(sub.name, kept, store.pending, sub.epoch);
      if (!sub.hasAfter) {
        sub.cursor = sub.last;
        live.subscribe(sub, { cursor: sub.last });
      }
    }
    const pending = new Map(); // the older pages' unfinished lines go on in the newer ones
    for (const { sub, page: found, kept, all } of older) {
      sub.first = all ? found.start : kept.length ? kept[0].offset : found.end;
      sub.hasBefore = found.has_before || !all;
      store.add(sub.name, this.keyUntimed(sub.name, kept), pending, sub.epoch);
    }
    store.joinEdge(pending);
    view.render([], false);
    const key = target.time ? timeKey(target.time) : null;
    const line = store.shown.find((l) => (target.process !== undefined
      ? l.process === target.process && l.offset !== null && l.end > target.offset
      : l.timed && l.key >= key));
    if (line) {
      view.scrollToLine(line);
      this.flash(line);
    }
    this.frames.draw();
    updateCounts(store, session);
    this.saveUrl();
  }

  // Mark the row jumped to, once it is drawn.
  flash(line) {
    setTimeout(() => {
      const row = [...this.view.scroller.querySelectorAll(".row")].find((r) => this.store.shown[Number(r.dataset.index)] === line);
      if (row) row.classList.add("flash");
    }, 50);
  }
}
