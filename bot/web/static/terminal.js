// Kepler Station browser terminal: xterm.js over a WebSocket to the bot, which bridges it to
// an exec session in the learner's workbench pod. Binary frames carry terminal bytes; text
// frames carry JSON control messages (see bot/web/server.py).
(function () {
  "use strict";
  var term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 14,
    scrollback: 5000, theme: { background: "#0b1020" } });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  term.focus();
  window.keplerTerminal = term;  // for the browser tests: read what the screen shows

  var stateEl = document.getElementById("state");
  var encoder = new TextEncoder();
  var ws = null;
  var retry = null;
  var waitingForKey = false;
  var ctrlArmed = false;
  var ctrlButton = document.querySelector('[data-key="ctrl"]');

  function setState(state, text) {
    stateEl.dataset.state = state;
    stateEl.textContent = text || state;
    document.body.dataset.state = state;
  }

  function send(data) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(encoder.encode(data)); }
  }

  function sendSize() {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ t: "resize", cols: term.cols, rows: term.rows }));
    }
  }

  function schedule(seconds) {
    if (retry) { clearTimeout(retry); }
    retry = setTimeout(connect, seconds * 1000);
  }

  function connect() {
    retry = null;
    waitingForKey = false;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + "/terminal/ws");
    ws.binaryType = "arraybuffer";
    var final = null;  // the last status the bot sent before closing
    setState("connecting", "connecting…");
    ws.onopen = sendSize;
    ws.onmessage = function (ev) {
      if (typeof ev.data !== "string") { term.write(new Uint8Array(ev.data)); return; }
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.t !== "status") { return; }
      final = msg.state;
      if (msg.state === "connected") { setState("connected", "connected"); return; }
      setState(msg.state, msg.state);
      if (msg.line) { term.write("\r\n\x1b[33m[Kepler Station] " + msg.line + "\x1b[0m\r\n"); }
    };
    ws.onclose = function () {
      if (final === "paused" || final === "starting") { schedule(5); }
      else if (final === "exited") { waitingForKey = true; }
      else if (final === "idle" || final === "ended") { /* stays closed: reload or new link */ }
      else {
        setState("closed", "disconnected, retrying…");
        schedule(3);
      }
    };
  }

  term.onData(function (data) {
    if (waitingForKey) { connect(); return; }
    if (ctrlArmed && data.length === 1) {
      var c = data.toUpperCase().charCodeAt(0);
      if (c >= 64 && c <= 95) { data = String.fromCharCode(c - 64); }
      ctrlArmed = false;
      ctrlButton.setAttribute("aria-pressed", "false");
    }
    send(data);
  });
  term.onResize(sendSize);
  window.addEventListener("resize", function () { fit.fit(); });

  var keys = { tab: "\t", esc: "\x1b", up: "\x1b[A", down: "\x1b[B", right: "\x1b[C",
    left: "\x1b[D" };
  document.getElementById("keys").addEventListener("click", function (ev) {
    var button = ev.target.closest("button");
    if (!button) { return; }
    var key = button.dataset.key;
    if (key === "ctrl") {
      ctrlArmed = !ctrlArmed;
      button.setAttribute("aria-pressed", ctrlArmed ? "true" : "false");
    } else if (waitingForKey) {
      connect();
    } else {
      send(keys[key]);
    }
    term.focus();
  });

  connect();
})();
