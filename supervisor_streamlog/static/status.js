// The status line: the connection indicator, the notice above the log, and
// the counts bar below it (lines held and shown, of each level, paused, new
// lines waiting).

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
  updateLevelsSoon(store);
}

// The level counts change with every frame of lines: shown at most every
// LEVELS_EVERY ms (the last change always shown).
const LEVELS_EVERY = 250;
let levelsShown = 0;
let levelsTimer = 0;

function updateLevelsSoon(store) {
  const wait = levelsShown + LEVELS_EVERY - performance.now();
  if (wait <= 0) {
    clearTimeout(levelsTimer);
    levelsTimer = 0;
    updateLevels(store);
  } else if (!levelsTimer) {
    levelsTimer = setTimeout(() => { levelsTimer = 0; updateLevels(store); }, wait);
  }
}

/**
 * How many lines of each level are held, in the counts bar (not on the level
 * toggles: the toolbar's layout must not change as lines arrive).
 */
export function updateLevels(store) {
  levelsShown = performance.now();
  const counts = store.levels;
  for (const [level, letter] of Object.entries(LETTERS)) setCount($(`count-${level}`), letter, counts[level]);
  setCount($("count-other"), "–", counts.none + counts.stderr);
}

function setCount(element, letter, count) {
  const text = count ? `${letter} ${numberFormat.format(count)}` : "";
  if (element.textContent !== text) {
    element.textContent = text;
    element.hidden = !count;
  }
}
