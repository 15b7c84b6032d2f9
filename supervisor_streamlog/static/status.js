// The status line: the connection indicator, the notice above the log, the
// counts bar below it (lines held and shown, paused, new lines waiting), and
// the lines held of each level, on the level toggles.

import { $, press } from "./dom.js";
import { LETTERS } from "./levels.js";

const numberFormat = new Intl.NumberFormat(); // one formatter: toLocaleString makes one per call

/** The connection indicator: `kind` is "connecting", "live", "down" or "auth". */
export function setConnection(text, kind) {
  const element = $("connection");
  element.textContent = text;
  element.dataset.state = kind;
}

/** A notice above the log; "" hides it. */
export function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

/** The counts bar and the pause button, from what the store holds and the session. */
export function updateCounts(store, session) {
  const held = store.lines.length;
  const shown = store.shown.length;
  let text = `${numberFormat.format(held)} lines`;
  if (shown !== held) text += ` · ${numberFormat.format(shown)} shown`;
  if (!session.follow) text += " · paused";
  $("counts").textContent = text;
  const detached = session.detached;
  const button = $("new-lines");
  button.hidden = session.follow || (!detached && session.unseen === 0);
  button.textContent = detached
    ? "newer lines below — jump to live ↓"
    : `${numberFormat.format(session.unseen)} new line${session.unseen === 1 ? "" : "s"} ↓`;
  press("pause", !session.follow);
  $("pause").textContent = session.follow ? "pause" : "resume";
  updateLevels(store);
}

/** Each level toggle's letter and how many lines of that level are held. */
export function updateLevels(store) {
  const counts = store.levels;
  for (const [level, letter] of Object.entries(LETTERS)) setCount($(`level-${level}`), letter, counts[level]);
  setCount($("level-other"), "–", counts.none + counts.stderr);
}

function setCount(button, letter, count) {
  const text = count ? `${letter} ${numberFormat.format(count)}` : letter;
  if (button.textContent !== text) button.textContent = text;
}
