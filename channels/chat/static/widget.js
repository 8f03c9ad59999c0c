// The support line's chat widget: one script, one stylesheet, no framework.
// A portal page includes it with one tag:
//   <script src="https://chat.example.gov/widget.js" data-lang="ro" defer></script>
// It draws the chat where an element with id "ivr-chat" is, or at the end
// of the page. Everything it shows is set with textContent, never as HTML.
(function () {
  "use strict";
  var me = document.currentScript;
  var base = new URL(me ? me.src : "/widget.js", location.href);
  var lang = (me && me.dataset.lang) || document.documentElement.lang || "ro";
  lang = lang.slice(0, 2) === "en" ? "en" : "ro";
  var T = {
    ro: { title: "Asistență online", label: "Mesajul dumneavoastră", send: "Trimite", you: "Dumneavoastră", agent: "Operator", line: "Linia de asistență",
      closed: "Conexiunea s-a întrerupt. Reîncercăm…", options: "Opțiuni",
      errors: { too_long: "Mesajul este prea lung.", utf8: "Mesajul nu a putut fi citit.", rate: "Trimiteți mesajele mai rar, vă rog.", busy: "Vă rog să așteptați răspunsul.", bad: "Mesaj neînțeles." } },
    en: { title: "Online help", label: "Your message", send: "Send", you: "You", agent: "Operator", line: "Support line",
      closed: "The connection dropped. Retrying…", options: "Options",
      errors: { too_long: "The message is too long.", utf8: "The message could not be read.", rate: "Please send messages more slowly.", busy: "Please wait for the answer.", bad: "Message not understood." } }
  }[lang];

  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = new URL("widget.css", base).href;
  document.head.appendChild(css);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  var root = document.getElementById("ivr-chat") || document.body.appendChild(el("div"));
  var box = el("section", "ivr-chat");
  box.setAttribute("aria-labelledby", "ivr-chat-title");
  var h = el("h2", "", T.title);
  h.id = "ivr-chat-title";
  var log = el("ol", "ivr-chat-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.tabIndex = 0;
  var opts = el("div", "ivr-chat-options");
  opts.setAttribute("role", "group");
  opts.setAttribute("aria-label", T.options);
  var form = el("form");
  var lab = el("label", "ivr-sr", T.label);
  lab.htmlFor = "ivr-chat-input";
  var input = el("input");
  input.id = "ivr-chat-input";
  input.autocomplete = "off";
  input.maxLength = 2000;
  var send = el("button", "", T.send);
  send.type = "submit";
  form.append(lab, input, send);
  box.append(h, log, opts, form);
  root.appendChild(box);

  function line(cls, who, text) {
    var li = el("li", cls);
    li.appendChild(el("span", "ivr-sr", who + ": "));
    li.appendChild(document.createTextNode(text));
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }

  var ws, ended = false, key = "ivr-chat-token", retry = 0;
  function connect() {
    var u = new URL("ws", base);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(u.href);
    ws.onopen = function () {
      retry = 0;
      ws.send(JSON.stringify({ type: "hello", lang: lang, token: sessionStorage.getItem(key) || "" }));
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      switch (m.type) {
      case "session":
        if (sessionStorage.getItem(key) !== m.token) { sessionStorage.setItem(key, m.token); }
        log.textContent = ""; // the server replays the conversation
        break;
      case "say": line("ivr", T.line, m.text || ""); break;
      case "you": line("you", T.you, m.text || ""); break;
      case "ask":
        opts.textContent = "";
        (m.options || []).forEach(function (o) {
          var b = el("button", "", o.label);
          b.type = "button";
          b.onclick = function () {
            ws.send(JSON.stringify({ type: "key", key: o.key }));
            opts.textContent = "";
            input.focus();
          };
          opts.appendChild(b);
        });
        break;
      case "agent": line("agent", T.agent, m.text || ""); break;
      case "joined": case "handoff":
        opts.textContent = "";
        line("note", T.line, m.text || "");
        break;
      case "end":
        ended = true;
        opts.textContent = "";
        line("note", T.line, m.text || "");
        sessionStorage.removeItem(key);
        input.disabled = send.disabled = true;
        break;
      case "error": line("note", T.line, T.errors[m.code] || m.code); break;
      }
    };
    ws.onclose = function () {
      if (ended) return;
      line("note", T.line, T.closed);
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 1000 * retry);
    };
  }
  form.onsubmit = function (ev) {
    ev.preventDefault();
    var t = input.value.trim();
    if (!t || !ws || ws.readyState !== 1) return;
    ws.send(JSON.stringify({ type: "text", text: t }));
    opts.textContent = "";
    input.value = "";
  };
  connect();
})();
