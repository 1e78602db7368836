// The subscribe form: preselect the reader's own timezone, as the browser knows it.
// Served by the app (CSP script-src 'self'). Without it the firm's zone stays selected,
// and a form shown again after a mistake (no data-auto-zone) keeps what the reader chose.
(function () {
  "use strict";
  var select = document.getElementById("timezone");
  if (!select || !select.hasAttribute("data-auto-zone") || !window.Intl) {
    return;
  }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var utc = ["Etc/UTC", "Etc/GMT", "GMT", "UCT", "Universal", "Zulu", "Etc/Universal"];
  if (utc.indexOf(zone) !== -1) {
    zone = "UTC";
  }
  for (var i = 0; i < select.options.length; i += 1) {
    if (select.options[i].value === zone) {
      select.selectedIndex = i;
      return;
    }
  }
})();
