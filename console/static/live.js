// The live view: the hub's SSE stream, newest first, at most 200 lines.
(function () {
  "use strict";
  var list = document.getElementById("events");
  var state = document.getElementById("live-state");
  if (!list || !window.EventSource) { return; }
  var source = new EventSource("/live/events");
  source.onopen = function () { state.textContent = "connected"; };
  source.onerror = function () { state.textContent = "reconnecting…"; };
  function show(e) {
    var ev;
    try { ev = JSON.parse(e.data); } catch (err) { return; }
    var li = document.createElement("li");
    li.className = "event";
    var what = ev.topic || ev.type || "";
    var when = ev.time || "";
    li.textContent = when + "  " + (ev.type || "") + "  " + what + "  (control number " + (ev.controlNumber || e.lastEventId) + ")";
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 200) { list.removeChild(list.lastChild); }
  }
  source.onmessage = show;
  // Named events (the hub names each by its type).
  ["DataExportCompleted", "DataExportFailed"].forEach(function (t) { source.addEventListener(t, show); });
  source.addEventListener("message", show);
})();
