// Two small DOM helpers the page's modules share. Nothing here holds state.

/** The element with this id (the page's elements are all in index.html). */
export const $ = (id) => document.getElementById(id);

/** Show a toggle button as on or off. */
export function press(id, on) {
  $(id).setAttribute("aria-pressed", String(Boolean(on)));
}
