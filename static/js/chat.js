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
