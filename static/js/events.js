// Live events page (templates/staff/events.html): resume position, reload on request,
// connection state, a bounded table. No third-party code.
(function () {
  "use strict";
  var MAX_ROWS = 200;
  var lastId = null;

  // htmx-ext-sse opens a *new* EventSource after a hard failure, and a new one sends no
  // Last-Event-ID header: carry the position in the URL so nothing is missed or shown twice.
  var create = window.htmx && htmx.createEventSource;
  if (!create) return;
  htmx.createEventSource = function (url) {
    if (lastId !== null) {
      var next = new URL(url, window.location.href);
      next.searchParams.set("last_event_id", lastId);
      url = next.pathname + next.search;
    }
    var source = create(url);
    source.addEventListener("staff-row", function (e) {
      if (e.lastEventId) lastId = e.lastEventId;
    });
    // The server could not replay what this page missed: start again from a fresh page.
    source.addEventListener("reload", function () {
      source.close();
      window.location.reload();
    });
    return source;
  };

  function section() { return document.querySelector("[data-live-events]"); }

  function setState(connected) {
    var root = section();
    var badge = root && document.getElementById(root.dataset.stateTarget);
    if (!badge) return;
    badge.textContent = connected ? badge.dataset.connected : badge.dataset.reconnecting;
    badge.classList.toggle("connected", connected);
  }

  document.addEventListener("htmx:sseOpen", function () { setState(true); });
  document.addEventListener("htmx:sseError", function () { setState(false); });

  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    var id = e.detail && e.detail.lastEventId;
    if (id && document.getElementById("event-" + id)) e.preventDefault();
  });

  document.addEventListener("htmx:sseMessage", function (e) {
    var rows = document.getElementById("event-rows");
    if (!rows || e.target !== rows) return;
    var empty = rows.querySelector(".empty-row");
    if (empty) empty.remove();
    while (rows.rows.length > MAX_ROWS) rows.deleteRow(-1);
  });
})();
