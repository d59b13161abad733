// The live indicator: htmx's ws extension reconnects by itself (with backoff); on every reconnect
// the server resends the page's live fragments, so what was missed while offline is redrawn.
(function () {
  function setLive(state, text) {
    var el = document.getElementById("live-indicator");
    if (!el) return;
    el.className = "live live-" + state;
    el.textContent = text;
    document.body.dataset.live = state;
  }
  document.addEventListener("htmx:wsOpen", function () { setLive("open", "live"); });
  document.addEventListener("htmx:wsClose", function () { setLive("closed", "disconnected, reconnecting…"); });
  document.addEventListener("htmx:wsError", function () { setLive("closed", "disconnected, reconnecting…"); });
})();
