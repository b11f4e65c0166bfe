// A form sent once: a second click while the first is on its way would only be refused or repeat nothing,
// but it confuses; the button is disabled once the form is sent (the server's ids make a resend harmless).
"use strict";

document.addEventListener("submit", function (event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") {
    return;
  }
  if (form.dataset.sent === "true") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "true";
  form.querySelectorAll("button[type=submit]").forEach(function (button) {
    button.setAttribute("aria-disabled", "true");
    button.classList.add("sending");
  });
});

// Back to a page from the browser's cache: its forms may be sent again (what they do is then decided by the server).
window.addEventListener("pageshow", function (event) {
  if (!event.persisted) {
    return;
  }
  document.querySelectorAll("form[data-sent]").forEach(function (form) {
    delete form.dataset.sent;
    form.querySelectorAll("button.sending").forEach(function (button) {
      button.removeAttribute("aria-disabled");
      button.classList.remove("sending");
    });
  });
});
