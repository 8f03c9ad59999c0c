// IVR console: keyboard shortcuts, transcript lines that play the
// recording from their moment, and live updates (server-sent events).
// No inline scripts (the Content-Security-Policy forbids them). Every text
// shown comes from the console's catalog: the page embeds its [js]
// section, in the user's language, as JSON (<script id="msgs">).
(function () {
  "use strict";
  var page = document.body.dataset.page;
  var csrf = (document.querySelector('meta[name="csrf"]') || {}).content;
  var msgs = {};
  try { msgs = JSON.parse((document.getElementById("msgs") || {}).textContent || "{}"); } catch (e) { msgs = {}; }
  // msg returns the catalog's text js.NAME with each %s filled in turn.
  function msg(name) {
    var s = msgs[name] || name, args = Array.prototype.slice.call(arguments, 1);
    return s.replace(/%s/g, function () { return args.length ? String(args.shift()) : ""; });
  }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function clock(d) { return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()); }
  function mmss(sec) {
    var s = Math.max(0, Math.round(sec)), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    return (h ? h + ":" + two(m) : String(m)) + ":" + two(s % 60);
  }

  // Transcript lines with data-offset (seconds from the recording's
  // start): a click on the line, or Enter on its time button, plays the
  // recording from there.
  var player = document.getElementById("recording");
  function seek(li) {
    if (!player || !li || li.dataset.offset === undefined) return;
    player.currentTime = parseFloat(li.dataset.offset);
    var was = document.querySelector("#transcript li.playing");
    if (was) was.classList.remove("playing");
    li.classList.add("playing");
    var p = player.play();
    if (p && p.catch) p.catch(function () {});
  }
  document.addEventListener("click", function (e) {
    var li = e.target.closest && e.target.closest("#transcript.seekable li[data-offset]");
    if (li && !(window.getSelection && String(window.getSelection()).length)) seek(li);
  });

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
    var at = new Date(d.at);
    var t = document.createElement("time");
    t.textContent = clock(at);
    var b = document.createElement("b");
    b.textContent = msgs[d.speaker] ? msg(d.speaker) : d.speaker;
    var start = ol.dataset.seekStart;
    if (start !== undefined) {
      // The recording grows while the call goes on: the line plays it from its moment too.
      var off = Math.max(0, (at.getTime() - parseInt(start, 10)) / 1000);
      li.dataset.offset = off.toFixed(3);
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "seek";
      btn.setAttribute("aria-label", msg("seek", mmss(off)));
      btn.appendChild(t);
      t = btn;
    }
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
