// The search panel: the filter text looked for in the whole history of the
// open processes (over HTTP, 100 matches a process at a time, newest first);
// a result jumps there.

import { api, logUrl } from "./api.js";
import { $ } from "./dom.js";
import { timeKey } from "./lines.js";
import { fullTime } from "./view.js";

export class Search {
  /**
   * `session`: the filter and the open processes; `prefs`: how times are
   * shown; `jumpTo(target)`: show the records around a result.
   */
  constructor(session, prefs, jumpTo) {
    this.session = session;
    this.prefs = prefs;
    this.jumpTo = jumpTo;
    this.current = null; // the history search being shown: {q, subs: [{name, next, done}]}
    this.label = (name) => name; // a process's name for people (the controller's: the list's)
  }

  close() {
    $("results").hidden = true;
    this.current = null;
  }

  /** Search the history for the filter text; `more`: further back, same search. */
  async run(more = false) {
    const session = this.session;
    const q = session.filter.q;
    if (!q || session.subs.size === 0) { $("filter").focus(); return; }
    if (!more) {
      this.current = { q, subs: [...session.subs.keys()].map((name) => ({ name, next: undefined, done: false })) };
      $("results-list").replaceChildren();
    }
    const search = this.current;
    $("results").hidden = false;
    $("results-title").textContent = `searching “${q}”…`;
    try {
      for (const item of search.subs) {
        if (item.done) continue;
        const query = { q, limit: 100, regex: session.filter.regex ? 1 : 0, case: session.filter.case ? 1 : 0 };
        if (item.next !== undefined) query.cursor = item.next;
        const found = await api(logUrl(item.name, query));
        if (this.current !== search) return;
        item.next = found.next;
        item.done = found.next === null || found.next === undefined;
        for (const entry of found.entries.slice().reverse()) $("results-list").append(this.result(item.name, entry));
      }
    } catch (error) {
      $("results-title").textContent = `search failed: ${error.message}`;
      return;
    }
    const count = $("results-list").childElementCount;
    $("results-title").textContent = `${count} match${count === 1 ? "" : "es"} for “${q}”`;
    $("results-more").hidden = search.subs.every((item) => item.done);
  }

  result(process, entry) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const where = document.createElement("span");
    where.className = "where";
    const line = { key: timeKey(entry.time) };
    where.textContent = `${this.session.subs.size > 1 ? `${this.label(process)} · ` : ""}${fullTime(line, this.prefs.time === "utc")}`;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = entry.text.length > 300 ? `${entry.text.slice(0, 300)}…` : entry.text;
    button.append(where, text);
    button.addEventListener("click", () => this.jumpTo({ process, offset: entry.offset, time: entry.time }));
    li.append(button);
    return li;
  }
}
