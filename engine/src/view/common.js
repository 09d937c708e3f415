// Shared by every view page (spliced in for /*COMMON*/ by view::fill): SVG and number helpers,
// tooltip placement, the self-test's colouring sweep, and the note shown when a page fails.
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const svg = (tag, attrs) => { const e = document.createElementNS(SVGNS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; };
const fmt = (x) => (x === null || x === undefined) ? "—" : (typeof x === "number" ? (Math.abs(x) >= 100 ? x.toFixed(1) : String(+x.toPrecision(4))) : String(x));
// Show the tooltip `tip` near the pointer of `ev`, kept inside the window.
function placeTip(tip, ev) {
  tip.style.display = "block";
  tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
  tip.style.top = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 8) + "px";
}
// #selftest: choose every option of the <select> `id` in turn.
function everyOption(id) {
  const sel = document.getElementById(id);
  for (const o of sel.options) { sel.value = o.value; sel.dispatchEvent(new Event("change")); }
}
window.addEventListener("load", () => {
  if (document.body.dataset.status !== "ok") document.getElementById("errors").textContent = "This page failed to draw (see the browser console).";
});
