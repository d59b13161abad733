// Engine page actions. Buttons live inside fragments the websocket may replace while a request is in
// flight, so requests are issued from the stable #engine-flash element and answered with out-of-band swaps.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-engine-post]");
  if (!button) return;
  var values = {};
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  if (button.dataset.prompt) {
    var answer = window.prompt(button.dataset.prompt, button.dataset.current || "");
    if (answer === null) return;
    values[button.dataset.field] = answer;
  }
  htmx.ajax("POST", button.dataset.enginePost, { source: "#engine-flash", swap: "none", values: values });
});

// The new-task form empties itself once a task was created (not when the flash says it was refused).
document.addEventListener("htmx:afterRequest", function (event) {
  var form = event.target.closest && event.target.closest("form[data-reset-on-success]");
  if (form && event.detail.successful && !document.querySelector("#engine-flash .msg-error")) form.reset();
});
