// Tripline console: progressive enhancement only. Every page works without this file.
// Loaded from our own origin (the Content-Security-Policy allows no inline script).
"use strict";

// Forms with data-confirm ask before they post (disable a user, revoke a key...).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm) {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }
});

// Selects with data-autosubmit apply their filter at once.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
    field.form.requestSubmit();
  }
});

// Buttons with data-copy="<element id>" copy that element's text (an API key shown once).
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) {
    return;
  }
  const source = document.getElementById(button.dataset.copy);
  if (!source) {
    return;
  }
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C";
  }
});

// Elements with data-live="<url>" reload their content from that same-origin URL every
// data-live-seconds while the page is visible (the overview's charts). The request says it is
// a refresh (X-Console-Refresh), so it does not count as use of an idle session; once the
// session has ended (the answer is the login page) the element stops and says so.
for (const element of document.querySelectorAll("[data-live]")) {
  const seconds = Math.max(Number(element.dataset.liveSeconds) || 10, 2);
  const timer = window.setInterval(async () => {
    if (document.visibilityState !== "visible") {
      return;
    }
    try {
      const response = await fetch(element.dataset.live, {
        credentials: "same-origin",
        headers: { "X-Console-Refresh": "1" },
      });
      if (response.redirected) {
        window.clearInterval(timer);
        element.setAttribute("data-live-ended", "");
        element.insertAdjacentHTML(
          "afterbegin",
          '<p class="flash flash-warning">Your session has ended: reload the page to sign in again.</p>',
        );
        return;
      }
      if (response.ok) {
        element.innerHTML = await response.text();
        element.dataset.liveUpdated = String(Date.now());
      }
    } catch {
      // The network is down for a moment: the next tick tries again.
    }
  }, seconds * 1000);
}
