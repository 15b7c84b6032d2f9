// The page's address: which processes are open, the filter, and (paused) the
// time in view, kept in the URL so it can be shared or reloaded. Read once at
// start; written as the view changes (replaceState: no history entries).

/** What the address asks for: processes, a time, the filter, and how many lines to keep. */
export function readAddress(search) {
  const params = new URLSearchParams(search);
  return {
    processes: params.getAll("process").filter(Boolean),
    at: params.get("at") || null,
    filter: { q: params.get("q") || "", regex: params.get("re") === "1", case: params.get("case") === "1" },
    retain: Number(params.get("retain")) || 250000,
  };
}

export class Address {
  /** `session`: what to write; `view`: the first line in view, when paused. */
  constructor(session, view) {
    this.session = session;
    this.view = view;
    this.timer = 0; // a save asked for by saveSoon, not yet done
  }

  save() {
    const session = this.session;
    const query = new URLSearchParams();
    for (const name of session.subs.keys()) query.append("process", name);
    if (session.filter.q) query.set("q", session.filter.q);
    if (session.filter.regex) query.set("re", "1");
    if (session.filter.case) query.set("case", "1");
    if (!session.follow) {
      const line = this.view.firstInView();
      if (line && line.time) query.set("at", line.time);
    }
    const search = query.toString();
    history.replaceState(null, "", search ? `?${search}` : location.pathname);
  }

  /** Save in a moment (scrolling, typing: once they pause). */
  saveSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), 300);
  }
}
