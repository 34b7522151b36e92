// The console's one script: check boxes and the buttons they enable, the live outcome updates
// (server-sent events), and the print button. The pages work without it, less conveniently.
"use strict";
(function () {
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // Bulk forms: a button is enabled when one checked row at least allows its action
  // (data-actions on the row lists them; "any" allows every action).
  function setupBulk(form) {
    var picks = $all("input.pick", form);
    var buttons = $all("button[data-action]", document).filter(function (b) { return b.form === form; });
    var count = document.getElementById("bulk-count");
    var all = document.getElementById("select-all");
    function refresh() {
      var checked = picks.filter(function (p) { return p.checked; });
      var allowed = {};
      checked.forEach(function (p) {
        var row = p.closest("tr");
        (row && row.getAttribute("data-actions") || "").split(" ").forEach(function (a) { if (a) { allowed[a] = true; } });
      });
      buttons.forEach(function (b) {
        var a = b.getAttribute("data-action");
        b.disabled = checked.length === 0 || !(a === "print" || a === "any" || allowed[a] || allowed.any);
      });
      if (count) { count.textContent = count.getAttribute("data-label").replace("%d", String(checked.length)); }
    }
    picks.forEach(function (p) { p.addEventListener("change", refresh); });
    if (all) {
      all.addEventListener("change", function () { picks.forEach(function (p) { p.checked = all.checked; }); refresh(); });
    }
    refresh();
  }

  // Live updates: the outcomes of the orders on the page as the worker publishes them.
  function setupLive() {
    var state = document.getElementById("live-state");
    if (!state || document.body.getAttribute("data-live") !== "on" || !window.EventSource) { return; }
    var table = document.getElementById("orders-table");
    var order = document.getElementById("order");
    var action = document.getElementById("action-page");
    var shop = (table && table.getAttribute("data-shop")) || (order && order.getAttribute("data-shop")) ||
      (action && action.getAttribute("data-shop")) || "";
    // The stream starts after the outcome stream's last sequence when the page was made, so that
    // an outcome published before the stream connects is not missed; a reconnection starts after
    // the last outcome received.
    live.last = document.body.getAttribute("data-since") || "";
    live.shop = shop;
    connect(state);
  }

  var live = { last: "", shop: "" };

  function liveURL() {
    var q = [];
    if (live.shop) { q.push("shop=" + encodeURIComponent(live.shop)); }
    if (live.last && live.last !== "0") { q.push("since=" + encodeURIComponent(live.last)); }
    return "/events" + (q.length ? "?" + q.join("&") : "");
  }

  // connect follows the live stream; the browser reconnects by itself after a network failure, and
  // this after a refusal (the stream not there yet, a console restarting).
  function connect(state) {
    var src = new EventSource(liveURL());
    src.addEventListener("ready", function () {
      state.textContent = state.getAttribute("data-text-on");
      state.classList.add("on");
    });
    src.addEventListener("error", function () {
      state.textContent = state.getAttribute("data-text-off");
      state.classList.remove("on");
      if (src.readyState === EventSource.CLOSED) { setTimeout(function () { connect(state); }, 5000); }
    });
    src.addEventListener("outcome", function (ev) {
      var o;
      try { o = JSON.parse(ev.data); } catch (e) { return; }
      if (ev.lastEventId) { live.last = ev.lastEventId; }
      $all("[data-key]").forEach(function (el) {
        if (el.getAttribute("data-key") !== o.key) { return; }
        updateBadges(el, o);
        var cell = el.querySelector(".live-outcomes");
        if (cell) { appendBadge(cell, o); }
        if (el.tagName === "TR") { el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash"); }
      });
    });
  }

  function badgeText(o) { return o.label + (o.text ? ": " + o.text : ""); }

  function makeBadge(o) {
    var b = document.createElement("span");
    b.className = "badge " + o["class"];
    b.setAttribute("data-kind", o.kind);
    b.setAttribute("data-testid", "badge-" + o.kind);
    b.textContent = badgeText(o);
    return b;
  }

  function appendBadge(cell, o) {
    var b = makeBadge(o);
    b.title = o.type + " " + o.time;
    cell.appendChild(b);
  }

  // The row's (or the order page's) badge of the outcome's kind takes the outcome's.
  function updateBadges(el, o) {
    var old = el.querySelector('.badge[data-kind="' + o.kind + '"]');
    if (old) { old.replaceWith(makeBadge(o)); return; }
    var cell = el.querySelector('[data-kind-cell="' + o.kind + '"]') || el.querySelector('[data-kind-cell="credit"]');
    if (cell) { cell.appendChild(makeBadge(o)); }
  }

  function setupPrint() {
    $all("button[data-print]").forEach(function (b) { b.addEventListener("click", function () { window.print(); }); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $all("#bulk-form, #dlq-form").forEach(setupBulk);
    setupLive();
    setupPrint();
  });
})();
