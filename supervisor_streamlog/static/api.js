// The sidecar's HTTP API as the page reads it: JSON answers, failures as
// exceptions carrying the server's reason. Protocol: docs/protocol.md.

import { setConnection } from "./status.js";

/** GET `path` as JSON; a 401 also says so in the connection indicator. */
export async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (response.status === 401) {
    setConnection("not authorised — reload the page to sign in", "auth");
    throw new Error("not authorised");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

/** The history (or search) URL of a process's log. */
export function logUrl(name, query) {
  return `/api/log/${encodeURIComponent(name)}?${new URLSearchParams(query)}`;
}
