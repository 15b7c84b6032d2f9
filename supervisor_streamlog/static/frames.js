// The frame loop, the page's hot path: records received are queued and added
// to the store once per animation frame, then the rows in view are drawn; past
// the retention limit the lines farthest from what is being read are dropped.

import { updateCounts } from "./status.js";

// Past the retention limit (or the tallest page a browser scrolls, with long
// wrapped lines): drop the lines farthest from what is being read.
const MAX_HEIGHT = 30_000_000;

export class Frames {
  /**
   * `store` and `view`: the lines and their rows. `session`: following or
   * not, the open processes (their positions move when lines are dropped).
   * `live`: to stop receiving when the newest lines are let go.
   */
  constructor(store, view, session, live) {
    this.store = store;
    this.view = view;
    this.session = session;
    this.live = live;
    this.inbox = []; // batches of records received, added to the store once per frame
    this.scheduled = false; // a flush is asked for (an animation frame, and the fallback timer)
    this.fallback = 0; // the timer that flushes when no animation frame comes (hidden tab)
    this.changed = []; // lines whose text grew since the last frame (joined pieces)
    this.anchorNeeded = false; // keep the line being read in place at the next frame
    this.flushScheduled = () => { if (this.scheduled) this.flush(); };
    this.arrived = null; // (process, new lines): told of each batch's new lines, levels read
  }

  /** Queue a batch of records (from Connection.receive) for the next frame. */
  push(batch) {
    this.inbox.push(batch);
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    // Batched per animation frame; a hidden tab gets no frames, so a timer too
    // (cleared by the flush: one flush per batch, never two).
    requestAnimationFrame(this.flushScheduled);
    this.fallback = setTimeout(this.flushScheduled, 250);
  }

  flush() {
    const store = this.store;
    this.scheduled = false;
    clearTimeout(this.fallback);
    const inbox = this.inbox;
    this.inbox = [];
    let added = 0;
    let shown = 0;
    for (const item of inbox) {
      if (item.generation !== this.session.generation) continue; // for a view since left
      if (item.close) store.closeProcess(item.process);
      const result = store.add(item.process, item.entries, store.pending, item.epoch);
      added += result.added;
      shown += result.shown;
      for (const line of result.changed) this.changed.push(line);
      if (this.arrived !== null) this.arrived(item.process, result.fresh);
    }
    this.trim();
    if (!this.session.follow) this.session.unseen += shown;
    this.draw();
    if (added) updateCounts(store, this.session);
  }

  /** Draw the rows in view (following: the newest). */
  draw() {
    const follow = this.session.follow;
    const anchor = !follow && this.anchorNeeded ? this.view.anchor() : null;
    this.view.render(this.changed, follow);
    this.changed = [];
    if (anchor) this.view.restore(anchor);
    this.anchorNeeded = false;
  }

  /** Past the retention limit, or too tall to scroll: drop lines, in steps. */
  trim() {
    const { store, view, session } = this;
    const overflow = store.overflow;
    const tall = view.total > MAX_HEIGHT;
    if (overflow === 0 && !tall) return;
    let count = overflow + Math.floor(store.limit / 20); // in steps, not per line
    if (tall) count = Math.max(count, Math.ceil(store.lines.length / 10));
    const anchor = view.anchor();
    const middle = store.shown.length / 2;
    const reading = anchor ? store.shown.indexOf(anchor.line) : store.shown.length;
    if (session.follow || reading >= middle) {
      for (const line of store.drop(count, false)) {
        const sub = session.subs.get(line.process);
        if (sub && line.end !== null && line.epoch === sub.epoch) {
          sub.first = line.end;
          sub.hasBefore = true;
        }
      }
      if (!session.follow) view.restore(anchor);
    } else {
      // Reading old lines while new ones pour in: let the newest go, and stop
      // receiving them; they are a scroll (or "jump to live") away.
      const dropped = store.drop(count, true);
      for (const sub of session.subs.values()) {
        if (!sub.attached) continue;
        this.live.unsubscribe(sub);
        sub.hasAfter = true;
        sub.last = sub.cursor;
        // Records received but not yet added go too (trim may run between frames).
        this.inbox = this.inbox.filter((item) => item.process !== sub.name);
      }
      for (const line of dropped) {
        const sub = session.subs.get(line.process);
        if (sub && line.offset !== null && line.epoch === sub.epoch
            && (sub.last === null || line.offset < sub.last)) sub.last = line.offset;
      }
    }
  }
}
