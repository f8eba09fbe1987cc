// Coffer web UI: copy a revealed value to the clipboard. The only script of
// the UI; every page works without it.
"use strict";
document.addEventListener("click", function (ev) {
  var button = ev.target.closest ? ev.target.closest("button[data-copy]") : null;
  if (!button) { return; }
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) { return; }
  navigator.clipboard.writeText(source.textContent).then(function () {
    button.textContent = "Copied";
  }, function () {
    button.textContent = "Copy failed: select the value instead";
  });
});
