// What a reader types in the time-jump field, as a moment: pure (no DOM), so
// a table of inputs can test it. Accepted, with `now` the current time:
//   local time     2026-12-02 14:05   2026-12-02 14:05:30.250   2026-12-02
//                  14:05   14:05:30   (today; a time later than now: yesterday)
//   relative       -5m   5m ago   1h ago   30s   1h30m   2d ago   (always back in time)
//   RFC 3339       2026-12-02T14:05:00Z   2026-12-02T14:05:00.5+01:00   2026-12-02 14:05-05:00
// Local times are read in UTC when the page shows UTC times (`utc`), as the
// reader sees them. Anything else is an error whose text says what is accepted.

export const EXAMPLES = "14:05, 2026-12-02 14:05, -5m, 1h ago or 2026-12-02T14:05:00Z";

const UNITS = {};
for (const [seconds, names] of [[1, "s sec secs second seconds"], [60, "m min mins minute minutes"],
  [3600, "h hr hrs hour hours"], [86400, "d day days"]]) {
  for (const name of names.split(" ")) UNITS[name] = seconds;
}
const RELATIVE = /^-?\s*((?:\d+(?:\.\d+)?\s*[a-z]+\s*)+)(?:ago)?$/;
const PART = /(\d+(?:\.\d+)?)\s*([a-z]+)/g;
// date, then optionally a time (after a space or "T"), then optionally a zone
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;
const TIME = /^(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?$/;

const fail = (error) => ({ ok: false, error });

/** `"Cannot read …"` or a Date: {ok: true, date} / {ok: false, error}. */
export function parseWhen(input, { now = new Date(), utc = false } = {}) {
  const text = String(input).trim().toLowerCase().replace(/\s+/g, " ");
  if (!text) return fail(`Type a time: ${EXAMPLES}.`);
  if (text.startsWith("+")) return fail("A time in the future has no lines yet: try -5m or 5m ago.");
  const relative = RELATIVE.exec(text);
  if (relative && /[a-z]/.test(text)) {
    let seconds = 0;
    for (const [, amount, unit] of relative[1].matchAll(PART)) {
      if (!(unit in UNITS)) return fail(`Unknown unit "${unit}" in "${input}": use s, m, h or d.`);
      seconds += Number(amount) * UNITS[unit];
    }
    return { ok: true, date: new Date(now.getTime() - seconds * 1000) };
  }
  const full = DATE_TIME.exec(text);
  if (full) {
    const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = full;
    return moment([y, mo, d, h, mi, s, frac], zone, utc, input);
  }
  const clock = TIME.exec(text);
  if (clock) {
    const [, h, mi, s = "0", frac = ""] = clock;
    const day = utc
      ? [now.getUTCFullYear(), now.getUTCMonth() + 1, now.getUTCDate()]
      : [now.getFullYear(), now.getMonth() + 1, now.getDate()];
    const found = moment([...day, h, mi, s, frac], undefined, utc, input);
    // A time of day later than now means yesterday's (reading back, past midnight).
    if (found.ok && found.date.getTime() > now.getTime() + 60_000) {
      found.date = new Date(found.date.getTime() - 86_400_000);
    }
    return found;
  }
  return fail(`Cannot read "${input}" as a time: try ${EXAMPLES}.`);
}

// Fields (strings) to a Date, checked: no 31 February, no 25:00.
function moment([y, mo, d, h, mi, s, frac], zone, utc, input) {
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number);
  const ms = Number(`0.${frac || 0}`) * 1000;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return fail(`"${input}" is not a valid date and time.`);
  }
  let date;
  if (zone) {
    const offset = zone.toUpperCase() === "Z" ? 0 : zoneMinutes(zone);
    if (offset === null) return fail(`"${zone}" is not a valid UTC offset.`);
    date = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms) - offset * 60_000);
  } else if (utc) {
    date = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms));
  } else {
    date = new Date(year, month - 1, day, hour, minute, second, ms);
  }
  // Date rolls 31 February over into March: that is not what was typed.
  const check = zone || utc ? new Date(Date.UTC(year, month - 1, day)) : new Date(year, month - 1, day);
  const sameDay = zone || utc ? check.getUTCDate() === day : check.getDate() === day;
  if (Number.isNaN(date.getTime()) || !sameDay) return fail(`"${input}" is not a valid date and time.`);
  return { ok: true, date };
}

function zoneMinutes(zone) {
  const match = /^([+-])(\d{2}):?(\d{2})$/.exec(zone);
  if (!match) return null;
  const [, sign, hh, mm] = match;
  if (Number(hh) > 23 || Number(mm) > 59) return null;
  return (sign === "-" ? -1 : 1) * (Number(hh) * 60 + Number(mm));
}
