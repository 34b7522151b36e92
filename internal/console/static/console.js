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
  //
  // A browser's console tabs share one stream. A stream holds an HTTP connection for as long as its
  // page is open, and over HTTP/1.1 a browser opens at most 6 to a host: with a stream a tab, a
  // seventh tab, or a form posted from one of six, would wait forever. The tab that holds the lock
  // "atodene-live" (Web Locks) follows the stream of every shop and passes each outcome to the
  // others (BroadcastChannel); when it closes, the lock goes to another tab, which follows on from
  // the last outcome passed. A tab that opens asks the holder for the outcomes since its page was
  // made, which it keeps the last of. A browser without these follows a stream a tab.
  function setupLive() {
    var state = document.getElementById("live-state");
    if (!state || document.body.getAttribute("data-live") !== "on" || !window.EventSource) { return; }
    var table = document.getElementById("orders-table");
    var order = document.getElementById("order");
    var action = document.getElementById("action-page");
    // The stream starts after the outcome stream's last sequence when the page was made, so that
    // an outcome published before the stream connects is not missed; a reconnection starts after
    // the last outcome received.
    live.last = document.body.getAttribute("data-since") || "";
    live.state = state;
    if (!window.BroadcastChannel || !navigator.locks) {
      live.shop = (table && table.getAttribute("data-shop")) || (order && order.getAttribute("data-shop")) ||
        (action && action.getAttribute("data-shop")) || "";
      connect();
      return;
    }
    var since = live.last;
    var me = String(Math.random()).slice(2) + String(Date.now());
    var seen = {};
    var channel = new BroadcastChannel("atodene-live");
    live.channel = channel;
    channel.onmessage = function (ev) {
      var m = ev.data || {};
      if (m.type === "outcome") {
        seen[m.id] = true;
        received(m.id, m.data);
      } else if (m.type === "state") {
        showState(m.on);
      } else if (m.type === "hello" && live.leader) {
        channel.postMessage({ type: "state", on: live.on });
        if (!m.since) { return; } // a page made with no position: nothing to give it
        var missed = live.recent.filter(function (r) { return Number(r.id) > Number(m.since || 0); });
        if (missed.length) { channel.postMessage({ type: "missed", to: m.from, outcomes: missed }); }
      } else if (m.type === "missed" && m.to === me) {
        (m.outcomes || []).forEach(function (r) { if (!seen[r.id]) { seen[r.id] = true; apply(r.data); } });
      }
    };
    channel.postMessage({ type: "hello", from: me, since: since });
    navigator.locks.request("atodene-live", function () {
      live.leader = true;
      connect();
      return new Promise(function () {}); // held until the tab closes
    });
  }

  // live is the page's part in the live updates: the last outcome received (the stream follows on
  // after it), the shop followed ("" for every shop: the shared stream), whether this tab holds
  // the stream for the others, and its latest outcomes (which a tab opened meanwhile asks for).
  var live = { last: "", shop: "", state: null, channel: null, leader: false, on: false, recent: [] };

  function liveURL() {
    var q = [];
    if (live.shop) { q.push("shop=" + encodeURIComponent(live.shop)); }
    if (live.last && live.last !== "0") { q.push("since=" + encodeURIComponent(live.last)); }
    return "/events" + (q.length ? "?" + q.join("&") : "");
  }

  function showState(on) {
    live.on = on;
    live.state.textContent = live.state.getAttribute(on ? "data-text-on" : "data-text-off");
    live.state.classList.toggle("on", on);
  }

  // setState shows whether the stream is followed, in this tab and the others.
  function setState(on) {
    showState(on);
    if (live.channel) { live.channel.postMessage({ type: "state", on: on }); }
  }

  // connect follows the live stream; the browser reconnects by itself after a network failure, and
  // this after a refusal (the stream not there yet, a console restarting).
  function connect() {
    var src = new EventSource(liveURL());
    src.addEventListener("ready", function () { setState(true); });
    src.addEventListener("error", function () {
      setState(false);
      if (src.readyState === EventSource.CLOSED) { setTimeout(connect, 5000); }
    });
    src.addEventListener("outcome", function (ev) {
      var o;
      try { o = JSON.parse(ev.data); } catch (e) { return; }
      received(ev.lastEventId, o);
      if (!live.channel) { return; }
      live.channel.postMessage({ type: "outcome", id: ev.lastEventId, data: o });
      live.recent.push({ id: ev.lastEventId, data: o });
      if (live.recent.length > 500) { live.recent.shift(); }
    });
  }

  function received(id, o) {
    if (id) { live.last = id; }
    apply(o);
  }

  // apply shows an outcome on the rows (or the order) it is about.
  function apply(o) {
    $all("[data-key]").forEach(function (el) {
      if (el.getAttribute("data-key") !== o.key) { return; }
      updateBadges(el, o);
      var cell = el.querySelector(".live-outcomes");
      if (cell) { appendBadge(cell, o); }
      if (el.tagName === "TR") { el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash"); }
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
