// System Health actions. The buttons live inside fragments the websocket may replace while a request is
// in flight (htmx drops the answer of a detached element), so requests are issued from the stable
// #logs-flash element and answered with out-of-band swaps. Without JavaScript the form posts normally.
// (getAttribute: the buttons are named "action", which shadows form.action.)
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-logs-action]");
  if (!button || !window.htmx) return;
  event.preventDefault();
  htmx.ajax("POST", button.form.getAttribute("action"), { source: "#logs-flash", swap: "none", values: { action: button.value } });
});
