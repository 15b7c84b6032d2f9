// What the page is showing, shared by its parts: which processes are open
// (one Sub each: where its log stands), following or paused, the filter, and
// the generation that tells a late answer for a view since left from a
// current one. Plain data: the controller changes it, the parts read it.

/** One open process: where this page stands in its log. */
export class Sub {
  constructor(name) {
    this.name = name;
    this.cursor = null; // live position: everything before it was received
    this.attached = false; // receiving live records
    this.first = null; // offset of the oldest record held (older: history)
    this.hasBefore = true; // there is history before `first`
    this.last = null; // end of the newest record held while detached
    this.hasAfter = false; // detached, with records after `last` to read
    this.uncaptured = false; // shown from supervisord's own files (no times)
    this.waiting = false; // subscribed, answer not yet seen: frames before it are old
    this.answered = false; // a subscription of it was answered at least once
    this.epoch = 0; // bumped at each reset: offsets start again
  }
}

export class Session {
  /** `filter`: {q, regex, case}, as the address gave it. */
  constructor(filter) {
    this.subs = new Map(); // open process name -> Sub
    this.follow = true; // the newest line is kept in view as lines arrive
    this.pausedBy = null; // "you" (button/key), "scroll", "selection", "jump"
    this.unseen = 0; // lines that arrived while not following
    this.filter = filter; // the filter box: {q, regex, case}
    this.hiddenLevels = new Set(); // level classes (lines.js's LEVEL_CLASSES) the level toggles hide
    this.generation = 0; // bumped when the view changes: late answers for the old one are dropped
  }

  /** Whether some open process is not receiving live records (newer ones are a read away). */
  get detached() {
    for (const sub of this.subs.values()) if (!sub.attached) return true;
    return false;
  }
}
