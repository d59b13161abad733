// The chat page: the wall-time meter of an active run moves by itself (the server's figure is the
// used time when the page was drawn; the bar and text grow from there until the next redraw).
(function () {
  function tick() {
    document.querySelectorAll(".meter[data-started]").forEach(function (el) {
      var drawn = Number(el.dataset.drawn || (el.dataset.drawn = String(Date.now())));
      var used = Number(el.dataset.used) + (Date.now() - drawn) / 1000;
      var limit = Number(el.dataset.limit);
      var text = el.querySelector(".meter-text");
      if (text) text.textContent = Math.floor(used) + " s" + (limit ? " of " + limit + " s" : "");
      var bar = el.querySelector(".meter-spent");
      if (bar && limit) bar.setAttribute("width", String(Math.min(used / limit * 100, 100)));
    });
  }
  setInterval(tick, 1000);
})();

// A call that waits for approval is news the operator must see: when the approval panel appears
// (the run asked while the page was scrolled down to the messages), bring it into view once.
(function () {
  var shown = "";
  function reveal() {
    var approvals = document.querySelectorAll("#chat-whyidle .chat-approval");
    var ids = Array.prototype.map.call(approvals, function (el) { return el.id; }).join(",");
    if (ids && ids !== shown) {
      var rect = approvals[0].getBoundingClientRect();
      if (rect.top < 0 || rect.bottom > window.innerHeight) approvals[0].scrollIntoView({ block: "center" });
    }
    shown = ids;
  }
  document.addEventListener("htmx:oobAfterSwap", reveal);
  document.addEventListener("htmx:afterSettle", reveal);
  document.addEventListener("DOMContentLoaded", function () {
    shown = Array.prototype.map.call(document.querySelectorAll("#chat-whyidle .chat-approval"), function (el) { return el.id; }).join(",");
  });
})();
