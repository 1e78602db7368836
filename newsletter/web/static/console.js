// The sends page's live progress: polls the send's progress.json (same origin, under the
// CSP's connect-src 'self') every 2 seconds and copies its sentences into the page, until
// the send has finished or was cancelled. Without JavaScript the page still works: the
// "Refresh" link reloads it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch) { return; }
  var url = live.getAttribute("data-progress");
  var bar = document.getElementById("bar");

  function show(data) {
    var words = data.words || {};
    Object.keys(words).forEach(function (name) {
      var field = live.querySelector('[data-field="' + name + '"]');
      if (field && field.textContent !== (words[name] || "—")) {
        field.textContent = words[name] || "—";
      }
    });
    if (bar && data.planned) {
      var waiting = (data.counts.queued || 0) + (data.counts.claimed || 0);
      bar.max = data.planned;
      bar.value = data.planned - waiting;
    }
    live.setAttribute("data-status", data.status);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        show(data);
        if (!data.done) { window.setTimeout(poll, 2000); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  poll();
}());
