// IVR console: keyboard shortcuts and live updates (server-sent events).
// No inline scripts (the Content-Security-Policy forbids them).
(function () {
  "use strict";
  var page = document.body.dataset.page;
  var csrf = (document.querySelector('meta[name="csrf"]') || {}).content;

  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  // Rows with data-href: j/k move, Enter opens, a click opens.
  var sel = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-href]")); }
  function select(i) {
    var rs = rows();
    if (!rs.length) return;
    sel = Math.max(0, Math.min(rs.length - 1, i));
    rs.forEach(function (r, j) { r.classList.toggle("selected", j === sel); });
    rs[sel].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("click", function (e) {
    var tr = e.target.closest && e.target.closest("tr[data-href]");
    if (tr && e.target.tagName !== "A") location.href = tr.dataset.href;
  });

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "Escape" && typing(e)) { e.target.blur(); return; }
    if (typing(e)) return;
    var k = e.key;
    if (k === "/") { var s = document.getElementById("search"); if (s) { e.preventDefault(); s.focus(); } }
    else if (k === "j") select(sel + 1);
    else if (k === "k") select(sel - 1);
    else if (k === "Enter" && sel >= 0) { var r = rows()[sel]; if (r) location.href = r.dataset.href; }
    else if (k === "n") { var n = document.getElementById("note"); if (n) { e.preventDefault(); n.focus(); } }
    else if (k === "r") location.reload();
  });

  // Live updates.
  if (!window.EventSource || page === undefined || !document.getElementById("live")) return;
  var live = document.getElementById("live");
  var es = new EventSource("/events");
  es.onopen = function () { live.classList.add("on"); };
  es.onerror = function () { live.classList.remove("on"); };

  var title = document.getElementById("ticket-title");
  var number = title && title.dataset.number;
  var callID = title && title.dataset.call;
  var refreshing = false;

  function refreshQueue() {
    if (refreshing) return;
    refreshing = true;
    fetch(location.href, { headers: { "X-Partial": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        refreshing = false;
        if (html === null) return;
        var box = document.getElementById("rows");
        box.innerHTML = html; // rendered and escaped by the server's templates
        if (sel >= 0) select(sel);
      })
      .catch(function () { refreshing = false; });
  }

  es.addEventListener("ticket", function (ev) {
    var d = JSON.parse(ev.data);
    if (page === "queue") refreshQueue();
    if (number && d.ticket === number) {
      var me = (document.querySelector('meta[name="user"]') || {}).content;
      if (d.actor !== me) {
        var p = document.getElementById("changed");
        p.querySelector("span").textContent = d.actor;
        p.hidden = false;
      }
    }
  });
  es.addEventListener("turn", function (ev) {
    var d = JSON.parse(ev.data);
    var ol = document.getElementById("transcript");
    if (!ol || !callID || d.call_id !== callID) return;
    var empty = ol.querySelector(".empty");
    if (empty) empty.remove();
    var li = document.createElement("li");
    li.className = "sp-" + d.speaker + " new";
    var t = document.createElement("time");
    t.textContent = new Date(d.at).toLocaleTimeString();
    var b = document.createElement("b");
    b.textContent = d.speaker;
    li.appendChild(t);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(b);
    li.appendChild(document.createTextNode(" " + (d.text || "")));
    ol.appendChild(li);
    li.scrollIntoView({ block: "nearest" });
  });
  es.addEventListener("pop", function (ev) {
    var d = JSON.parse(ev.data);
    if (d.url && d.url.charAt(0) === "/") location.href = d.url;
  });
  void csrf;
})();
