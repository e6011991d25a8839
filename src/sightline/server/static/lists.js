// Lists: filters that apply as they change, a side panel beside the list, keyboard navigation.
// Everything here adds to pages that work without it: the filter form submits, links open pages.
(function () {
  "use strict";

  // ---- Filters apply as you change them; the address carries no empty field. ----
  var form = document.querySelector("form[data-live-filters]");
  var FOCUS_KEY = "sightline.filter-focus";
  function submit() {
    if (form.requestSubmit) { form.requestSubmit(); } else { dropEmpty(); form.submit(); }
  }
  function dropEmpty() {
    // A disabled field is not sent: "?userId=&model.id=" becomes "?" (and so does a default choice).
    form.querySelectorAll("input, select").forEach(function (field) {
      var unset = field.value === "" || field.value === field.getAttribute("data-default");
      if (field.name && field.type !== "hidden" && unset) { field.disabled = true; }
    });
    // Back to the page (bfcache): the fields are usable again.
    window.setTimeout(function () {
      form.querySelectorAll("[disabled]").forEach(function (field) { field.disabled = false; });
    }, 0);
  }
  if (form) {
    var timer = null;
    form.addEventListener("submit", function () {
      var active = document.activeElement;
      if (active && active.form === form && active.name && active.type === "search") {
        try { window.sessionStorage.setItem(FOCUS_KEY, active.name); } catch (e) { /* storage off */ }
      }
      dropEmpty();
    });
    form.addEventListener("change", function (event) {
      var field = event.target;
      if (field.type === "search") { return; } // typed: applied by the pause below, or Enter
      if (field.name === "range") {
        var more = form.querySelector(".more-filters");
        if (field.value === "custom") { if (more) { more.open = true; } return; }
        form.querySelectorAll("input[type=datetime-local]").forEach(function (input) { input.value = ""; });
      }
      submit();
    });
    form.addEventListener("input", function (event) {
      if (event.target.type !== "search") { return; }
      window.clearTimeout(timer);
      timer = window.setTimeout(submit, 700);
    });
    // After a filter typed in a box applied, the caret is back in that box.
    var focused = null;
    try { focused = window.sessionStorage.getItem(FOCUS_KEY); window.sessionStorage.removeItem(FOCUS_KEY); } catch (e) { /* storage off */ }
    if (focused) {
      var box = form.querySelector('input[type=search][name="' + focused.replace(/["\\]/g, "") + '"]');
      if (box) { box.focus(); var end = box.value.length; try { box.setSelectionRange(end, end); } catch (e) { /* not text */ } }
    }
  }

  // ---- Side panel: a row's page opened beside its list, the address saying what is open. ----
  var panel = null;
  function safePath(path) {
    return typeof path === "string" && path.charAt(0) === "/" && path.charAt(1) !== "/" && path.charAt(1) !== "\\";
  }
  function currentWithout(name) {
    var url = new URL(window.location.href);
    url.searchParams.delete(name);
    return url.pathname + (url.searchParams.toString() ? "?" + url.searchParams.toString() : "");
  }
  function buildPanel() {
    panel = document.createElement("aside");
    panel.className = "side-panel";
    panel.setAttribute("aria-label", "Details");
    panel.setAttribute("tabindex", "-1");
    var bar = document.createElement("div");
    bar.className = "side-panel-bar";
    var full = document.createElement("a");
    full.className = "button small side-panel-full";
    full.textContent = "Open full page";
    var close = document.createElement("button");
    close.type = "button";
    close.className = "button small side-panel-close";
    close.setAttribute("aria-label", "Close the panel");
    close.textContent = "Close ×";
    close.addEventListener("click", function () { closePanel(true); });
    bar.appendChild(full);
    bar.appendChild(close);
    var body = document.createElement("div");
    body.className = "side-panel-body";
    panel.appendChild(bar);
    panel.appendChild(body);
    document.body.appendChild(panel);
  }
  function markRow(path) {
    document.querySelectorAll("tr.is-open").forEach(function (row) { row.classList.remove("is-open"); });
    if (!path) { return; }
    document.querySelectorAll("a[data-panel]").forEach(function (link) {
      if (link.getAttribute("href") === path) {
        var row = link.closest("tr");
        if (row) { row.classList.add("is-open"); setCurrent(row); }
      }
    });
  }
  function openPanel(path, push) {
    if (!safePath(path)) { return; }
    if (!panel) { buildPanel(); }
    var body = panel.querySelector(".side-panel-body");
    panel.querySelector(".side-panel-full").setAttribute("href", path);
    body.textContent = "Loading…";
    panel.hidden = false;
    document.body.classList.add("panel-open");
    markRow(path);
    if (push) {
      var url = new URL(window.location.href);
      url.searchParams.set("open", path);
      window.history.pushState({open: path}, "", url.pathname + "?" + url.searchParams.toString());
    }
    panel.setAttribute("data-path", path);
    window.fetch(path, {credentials: "same-origin", headers: {Accept: "text/html"}})
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/login") >= 0) { window.location.href = path; }
        return response.text();
      })
      .then(function (html) {
        if (panel.getAttribute("data-path") !== path) { return; } // another row was opened meanwhile
        var doc = new DOMParser().parseFromString(html, "text/html");
        var main = doc.querySelector("main");
        body.textContent = "";
        if (!main) { body.textContent = "This page could not be shown here: open the full page."; return; }
        // Nodes of a parsed document (scripts in it never run): moved across, never written as HTML.
        Array.prototype.slice.call(main.childNodes).forEach(function (node) {
          body.appendChild(document.adoptNode(node));
        });
        if (window.Sightline && window.Sightline.times) { window.Sightline.times(body); }
        if (window.hljs && window.hljs.highlightElement) {
          body.querySelectorAll("pre code").forEach(function (code) { window.hljs.highlightElement(code); });
        }
      })
      .catch(function () { body.textContent = "This page could not be loaded: open the full page."; });
  }
  function closePanel(push) {
    if (!panel || panel.hidden) { return; }
    panel.hidden = true;
    panel.removeAttribute("data-path");
    document.body.classList.remove("panel-open");
    markRow(null);
    if (push) {
      window.history.pushState({}, "", currentWithout("open"));
    }
  }
  function plainClick(event) {
    return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
  }
  // Capture: before the row's own handler (app.js) would leave the page.
  document.addEventListener("click", function (event) {
    if (!plainClick(event)) { return; }
    var link = event.target.closest("a[data-panel]");
    var row = null;
    if (!link) {
      row = event.target.closest("tr");
      if (!row || event.target.closest("a, button, input, select, textarea, label, summary")) { return; }
      if (window.getSelection && String(window.getSelection())) { return; }
      link = row.querySelector("a[data-panel]");
      if (!link) { return; }
    }
    event.preventDefault();
    event.stopPropagation();
    openPanel(link.getAttribute("href"), true);
  }, true);
  window.addEventListener("popstate", function () {
    var open = new URL(window.location.href).searchParams.get("open");
    if (open) { openPanel(open, false); } else { closePanel(false); }
  });
  var initial = new URL(window.location.href).searchParams.get("open");
  if (initial) { openPanel(initial, false); }

  // ---- Keyboard: j/k move along the rows, Enter opens the row beside the list, Esc closes it. ----
  var current = null;
  function rows() {
    return Array.prototype.filter.call(document.querySelectorAll("table.data tbody tr"), function (row) {
      return row.querySelector("a[data-panel]") || row.hasAttribute("data-href");
    });
  }
  function setCurrent(row) {
    if (current) { current.classList.remove("is-current"); }
    current = row;
    if (row) {
      row.classList.add("is-current");
      if (row.scrollIntoView) { row.scrollIntoView({block: "nearest"}); }
    }
  }
  document.addEventListener("keydown", function (event) {
    if (event.metaKey || event.ctrlKey || event.altKey) { return; }
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) { return; }
    if (event.key === "Escape") {
      if (panel && !panel.hidden) { event.preventDefault(); closePanel(true); }
      return;
    }
    var all = rows();
    if (!all.length) { return; }
    var at = all.indexOf(current);
    if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      var next = event.key === "j" ? Math.min(at + 1, all.length - 1) : Math.max(at - 1, 0);
      setCurrent(all[at < 0 ? 0 : next]);
    } else if (event.key === "Enter" && current && (!target || target === document.body || target.closest("tr") === current)) {
      event.preventDefault();
      var link = current.querySelector("a[data-panel]");
      if (link) { openPanel(link.getAttribute("href"), true); } else { window.location.href = current.getAttribute("data-href"); }
    }
  });
}());
