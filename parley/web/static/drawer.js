// On a narrow window (a phone) the thread list is a drawer the header's ☰ button opens.

import { el } from "./page.js";

/** The width at which the thread list becomes a drawer (as in style.css). */
const NARROW = window.matchMedia("(max-width: 700px)");

/** On a narrow window: the thread list over the conversation, until a choice is made. */
function openDrawer() {
  document.body.classList.add("drawer-open");
  el.drawerToggle.setAttribute("aria-expanded", "true");
  el.scrim.hidden = false;
  const current = el.threads.querySelector(".current .thread-open");
  (current || el.newThread).focus();
}

export function closeDrawer({ refocus = false } = {}) {
  if (!document.body.classList.contains("drawer-open")) return;
  document.body.classList.remove("drawer-open");
  el.drawerToggle.setAttribute("aria-expanded", "false");
  el.scrim.hidden = true;
  if (refocus) el.drawerToggle.focus();
}

export function bindDrawer() {
  el.drawerToggle.addEventListener("click", () => {
    if (document.body.classList.contains("drawer-open")) closeDrawer({ refocus: true });
    else openDrawer();
  });
  el.scrim.addEventListener("click", () => closeDrawer({ refocus: true }));
  el.sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawer({ refocus: true });
  });
  NARROW.addEventListener("change", () => closeDrawer());
}
