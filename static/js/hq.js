// The HQ's shared page behaviour (loaded on every page; no inline scripts anywhere).

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

// Ages count up by themselves. Worded exactly like juggernaut/timefmt.py:duration_text.
(function () {
  function duration(seconds) {
    seconds = Math.max(Math.floor(seconds), 0);
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    var minutes = Math.floor(seconds / 60);
    if (seconds < 86400) {
      var h = Math.floor(minutes / 60), m = minutes % 60;
      return h + " h" + (m ? " " + m + " min" : "");
    }
    var hours = Math.floor(seconds / 3600), d = Math.floor(hours / 24), rest = hours % 24;
    return d + " d" + (rest ? " " + rest + " h" : "");
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-age]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      var seconds = (now - at) / 1000, text;
      if (el.dataset.age === "for") text = duration(seconds);
      else text = seconds < 0 ? "in " + duration(-seconds) : duration(seconds) + " ago";
      if (el.textContent !== text) el.textContent = text;
    });
  }
  setInterval(tick, 1000);
})();

// Action buttons ([data-post]) and small action forms ([data-post-form]). They may live inside
// fragments the websocket replaces while a request is in flight, so requests are issued from the
// stable #hq-flash element and answered with out-of-band swaps (or a refresh on static pages).
(function () {
  function post(url, values) {
    values.page = document.body.dataset.page || "";
    htmx.ajax("POST", url, { source: "#hq-flash", swap: "none", values: values });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-post]");
    if (button) {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      post(button.dataset.post, {});
      return;
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var text = copy.dataset.copy;
      var done = function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, function () {});
      else {
        var area = document.createElement("textarea");
        area.value = text; document.body.appendChild(area); area.select();
        try { document.execCommand("copy"); done(); } catch (e) { /* the command stays selectable */ }
        area.remove();
      }
    }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-post-form]");
    if (!form) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    var values = {};
    new FormData(form).forEach(function (value, key) { values[key] = value; });
    window.__hqLastForm = form;
    post(form.getAttribute("action"), values);
  });
})();

// A success message in the flash is news for a few seconds, then makes room (refusals stay).
document.addEventListener("htmx:oobAfterSwap", function () {
  var ok = document.querySelector("#hq-flash .msg-success");
  if (!ok) return;
  setTimeout(function () { if (ok.isConnected) ok.remove(); }, 8000);
});

// A form marked data-reset-on-success is cleared once its answer shows no refusal.
document.addEventListener("htmx:afterSettle", function () {
  var form = window.__hqLastForm;
  if (!form || !form.hasAttribute("data-reset-on-success")) return;
  window.__hqLastForm = null;
  if (!document.querySelector("#hq-flash .msg-error")) form.reset();
});

// The activity feed on a page left open: newest first, each event once, at most 100 items.
document.addEventListener("htmx:wsAfterMessage", function () {
  var list = document.getElementById("hq-activity");
  if (!list) return;
  var seen = {};
  list.querySelectorAll(".activity-item").forEach(function (item, index) {
    if (seen[item.id] || index >= 100) item.remove();
    seen[item.id] = true;
  });
});
