// Sightline dashboard: small additions to pages that work without it.
(function () {
  "use strict";
  document.body.classList.remove("no-js");
  document.body.classList.add("js");

  // Pickers (project, environment, time range) apply as soon as they change.
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () {
      var form = select.form;
      if (select.name === "range") {
        var custom = form.querySelector(".custom-range");
        if (select.value === "custom") {
          if (custom) { custom.open = true; }
          return;
        }
        form.querySelectorAll("input[type=datetime-local]").forEach(function (input) { input.value = ""; });
      }
      form.requestSubmit ? form.requestSubmit() : form.submit();
    });
  });

  // A whole table row opens what its first link opens.
  document.querySelectorAll("tr[data-href]").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, select, textarea, label, summary")) { return; }
      if (window.getSelection && String(window.getSelection())) { return; }
      var href = row.getAttribute("data-href");
      if (event.metaKey || event.ctrlKey) { window.open(href, "_blank", "noopener"); } else { window.location.href = href; }
    });
  });

  // Display choices of this browser: theme and time zone. The server already put them on <html> from
  // their cookies (so the first paint is right); a change here applies at once and is remembered.
  var root = document.documentElement;
  function remember(name, value) {
    document.cookie = name + "=" + value + "; path=/; max-age=31536000; SameSite=Lax";
  }

  // Times arrive as UTC text in <time datetime>; in local time they are rewritten in the browser's
  // zone, same format. Hovering one shows it in the other. Pages that add content call Sightline.times.
  var zone = (window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone) || "local time";
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function stamp(when, utc, seconds) {
    var parts = utc
      ? [when.getUTCFullYear(), when.getUTCMonth() + 1, when.getUTCDate(), when.getUTCHours(), when.getUTCMinutes(), when.getUTCSeconds()]
      : [when.getFullYear(), when.getMonth() + 1, when.getDate(), when.getHours(), when.getMinutes(), when.getSeconds()];
    var text = parts[0] + "-" + two(parts[1]) + "-" + two(parts[2]) + " " + two(parts[3]) + ":" + two(parts[4]);
    return seconds ? text + ":" + two(parts[5]) : text;
  }
  var zoned = new WeakMap();  // heading text nodes that name UTC: their text as the server wrote it
  function showTimes(scope) {
    var utc = root.getAttribute("data-clock") === "utc";
    (scope || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      var seconds = !el.hasAttribute("data-minutes");
      el.textContent = stamp(when, utc, seconds);
      el.title = utc ? stamp(when, false, seconds) + " (" + zone + ")" : stamp(when, true, seconds) + " UTC";
    });
    (scope || document).querySelectorAll("[data-zone]").forEach(function (el) {
      el.textContent = utc ? "UTC" : zone;
    });
    // Column headings written "Time (UTC)" say which zone their times are in.
    (scope || document).querySelectorAll("th").forEach(function (th) {
      var walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
      for (var node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!zoned.has(node) && node.nodeValue.indexOf("(UTC)") >= 0) { zoned.set(node, node.nodeValue); }
        if (zoned.has(node)) {
          node.nodeValue = utc ? zoned.get(node) : zoned.get(node).replace("(UTC)", "(local)");
          th.title = utc ? "" : "Times in " + zone;
        }
      }
    });
  }
  showTimes();
  window.Sightline = {times: showTimes};

  document.querySelectorAll("select[data-display]").forEach(function (select) {
    select.addEventListener("change", function () {
      var what = select.getAttribute("data-display");
      remember(what === "theme" ? "sightline_theme" : "sightline_clock", select.value);
      root.setAttribute(what === "theme" ? "data-theme" : "data-clock", select.value);
      if (what === "theme") {
        var meta = document.querySelector("meta[name=color-scheme]");
        if (meta) { meta.content = select.value === "auto" ? "light dark" : select.value; }
      } else {
        showTimes();
      }
      // Charts drawn by script read their colours again.
      document.dispatchEvent(new CustomEvent("sightline:display", {detail: {what: what, value: select.value}}));
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.querySelector(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
      });
    });
  });

  // A pipeline's expression is checked as it is typed: its arguments, or where it is wrong.
  document.querySelectorAll("textarea[data-validate]").forEach(function (area) {
    var form = area.closest("form");
    var csrf = form && form.querySelector("input[name=csrf]");
    var out = document.getElementById(area.getAttribute("aria-describedby"));
    if (!csrf || !out || !window.fetch) { return; }
    var timer = null, asked = 0;
    function show(kind, text) {
      out.textContent = text;
      out.className = "small expression-check " + (kind === "ok" ? "check-ok" : "test-error");
    }
    function check() {
      var text = area.value;
      if (!text.trim()) { out.textContent = ""; return; }
      var mine = ++asked;
      fetch(area.getAttribute("data-validate"), {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf.value},
        body: JSON.stringify({expression: text})
      }).then(function (response) {
        return response.json().then(function (body) { return [response.ok, body]; });
      }).then(function (answer) {
        if (mine !== asked) { return; }
        if (answer[0]) {
          var args = answer[1].args || [];
          show("ok", "Valid. Arguments: " + (args.length ? args.join(", ") : "none"));
        } else {
          show("error", (answer[1].error && answer[1].error.message) || "not valid");
        }
      }).catch(function () { /* offline: the form is checked again when saved */ });
    }
    area.addEventListener("input", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(check, 250);
    });
    if (area.value.trim()) { check(); }
  });

  // A page that shows a job at work (a backfill's progress) reloads itself until the job ends.
  var refreshing = document.querySelector("[data-refresh]");
  if (refreshing && Number(refreshing.getAttribute("data-refresh")) > 0) {
    setTimeout(function () { window.location.reload(); }, Number(refreshing.getAttribute("data-refresh")) * 1000);
  }

  // Code blocks with a known language get colours when highlight.js is installed.
  if (window.hljs) {
    document.querySelectorAll("pre.code code[class*='language-']").forEach(function (block) {
      var language = (block.className.match(/language-([\w+#.-]+)/) || [])[1];
      if (language && window.hljs.getLanguage(language)) { window.hljs.highlightElement(block); }
    });
  }
})();
