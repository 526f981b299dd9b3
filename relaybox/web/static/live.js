// relaybox console: keep a page's live region current without a reload.
// The element with data-live names a Server-Sent Events stream of the same origin; each
// "update" event carries the region's new HTML, rendered (and escaped) by the server.
"use strict";
(function () {
  var region = document.querySelector("[data-live]");
  if (!region || !window.EventSource) { return; }
  var source = new EventSource(region.getAttribute("data-live"));
  source.addEventListener("update", function (event) {
    region.innerHTML = event.data;
    region.setAttribute("data-updated", String(Date.now()));
  });
  source.addEventListener("gone", function () { source.close(); });
  window.addEventListener("pagehide", function () { source.close(); });
})();
