// The streamlog tail page's entry point (index.html loads it as a module):
// the controller (controller.js) is made from what the address asks for and
// started. Protocol: docs/protocol.md.
// Log text is hostile input: it only ever reaches the DOM as text nodes.

import { readAddress } from "./address.js";
import { Controller } from "./controller.js";

const page = new Controller(readAddress(location.search));
// Read by tests and benchmarks: how much is held (page.store), what is in the
// DOM (page.view), what is open (page.session), the connection (page.live),
// the history read in progress (page.history).
window.streamlog = page;
page.start();
