// Paydesk payment page: copy buttons, the countdown, the language switcher, and the live
// status (server-sent events; long polling where those are unavailable or keep failing).
(function () {
  "use strict";
  var live = document.getElementById("live");
  var skew = 0; // server clock minus this clock, in seconds

  document.addEventListener("change", function (event) {
    var select = event.target.closest && event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.submit();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var done = function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied");
      setTimeout(function () { button.textContent = label; }, 2000);
    };
    var text = button.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text) && done(); });
    } else if (fallbackCopy(text)) {
      done();
    }
  });

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    document.body.removeChild(area);
    return copied;
  }

  // Forms marked data-inline post in the background: the live status shows the result.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-inline") || !window.fetch) return;
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)) })
      .then(function () { askNow(); }, function () { form.submit(); });
  });

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function countdown(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(s);
  }
  function tick() {
    var now = Date.now() / 1000 + skew;
    var timers = document.querySelectorAll("time[data-expires]");
    for (var i = 0; i < timers.length; i++) {
      var left = Math.max(0, Math.floor(Number(timers[i].getAttribute("data-expires")) - now));
      timers[i].textContent = countdown(left);
      if (left === 0 && !expiredAsked) { expiredAsked = true; askNow(); }
    }
  }
  var expiredAsked = false;

  if (!live) return;
  skew = Number(live.getAttribute("data-now")) - Date.now() / 1000;
  tick();
  setInterval(tick, 1000);

  var version = live.getAttribute("data-version");
  var finished = live.getAttribute("data-final") === "true";

  function apply(message) {
    // Re-estimated only when far off: a jittery estimate would make the countdown stall.
    var measured = message.now - Date.now() / 1000;
    if (Math.abs(measured - skew) > 2) skew = measured;
    if (message.version === version) return;
    var hadFocus = live.contains(document.activeElement);
    version = message.version;
    live.setAttribute("data-version", version);
    live.innerHTML = message.html;
    expiredAsked = false;
    tick();
    var heading = live.querySelector("h1");
    if (heading && (hadFocus || document.activeElement === document.body)) heading.focus();
    if (message.final) stop();
  }

  var source = null, polling = false;
  function stop() {
    finished = true;
    if (source) { source.close(); source = null; }
  }
  function withVersion(url) {
    return url + (url.indexOf("?") < 0 ? "?" : "&") + "version=" + encodeURIComponent(version);
  }
  function askNow() {
    fetch(withVersion(live.getAttribute("data-status")) + "&wait=false", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (m) { if (m) apply(m); }, function () {});
  }
  function poll() {
    if (finished) return;
    polling = true;
    fetch(withVersion(live.getAttribute("data-status")), { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (m) { if (m) apply(m); setTimeout(poll, m ? 0 : 3000); },
            function () { setTimeout(poll, 3000); });
  }
  function listen() {
    if (finished) return;
    if (!window.EventSource) { poll(); return; }
    var failures = 0;
    source = new EventSource(withVersion(live.getAttribute("data-events")));
    source.addEventListener("state", function (event) {
      failures = 0;
      apply(JSON.parse(event.data));
    });
    source.addEventListener("open", function () { failures = 0; });
    source.addEventListener("error", function () {
      // The browser reconnects by itself; after repeated failures (a proxy that buffers
      // event streams, say) long polling takes over.
      failures += 1;
      if (failures >= 3 && !polling) { stop(); finished = false; poll(); }
    });
  }
  if (!finished) listen();
})();
