// The console's own behaviour: live regions, confirmations, and a hook for widgets.
// No inline scripts anywhere (the Content-Security-Policy forbids them): pages mark
// elements with data- attributes and this file gives them life.
(function () {
  "use strict";

  var DEFAULT_EVERY = 5000;

  // A live region: <div data-live hx-get="..." hx-trigger="atp:refresh" hx-swap="outerHTML">.
  // It is refreshed every data-live-every ms (default 5 s) while the tab is visible, and
  // at once when the tab comes back; a hidden tab asks the server nothing.
  function refresh(all) {
    if (document.visibilityState !== "visible" || !window.htmx) {
      return;
    }
    var now = Date.now();
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var every = parseInt(el.getAttribute("data-live-every"), 10) || DEFAULT_EVERY;
      var last = parseInt(el.getAttribute("data-live-at"), 10) || 0;
      if (all || now - last >= every) {
        el.setAttribute("data-live-at", String(now));
        window.htmx.trigger(el, "atp:refresh");
      }
    });
  }

  // Widgets (charts, graphs) start on the page's load and on every swapped-in fragment.
  function mounted(root) {
    root.dispatchEvent(new CustomEvent("atp:mounted", { bubbles: true }));
  }

  // <form data-confirm="Purge 12 dead letters?">: asks before it submits.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // <input type="checkbox" data-select-all="name">: ticks every box of that name.
  document.addEventListener("change", function (event) {
    var box = event.target;
    var name = box.getAttribute && box.getAttribute("data-select-all");
    if (name) {
      document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (other) {
        other.checked = box.checked;
      });
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var now = String(Date.now());
    document.querySelectorAll("[data-live]").forEach(function (el) {
      el.setAttribute("data-live-at", now);
    });
    setInterval(function () { refresh(false); }, 1000);
    document.addEventListener("visibilitychange", function () { refresh(true); });
    document.body.addEventListener("htmx:afterSwap", function (event) { mounted(event.target); });
    mounted(document.body);
  });
})();
