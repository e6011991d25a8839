// A run's tree (run.html): collapse and expand, and a step's details shown beside the tree without
// leaving the page. Without this script every node is open and each step is a plain link (?step=...).
(function () {
  "use strict";
  var root = document.querySelector("[data-tree-root]");
  var pane = document.getElementById("node-detail");
  if (!root) { return; }

  function setOpen(li, open) {
    var list = li.querySelector(":scope > ol.children");
    var button = li.querySelector(":scope > .node-row > .tree-toggle");
    if (!list || !button) { return; }
    list.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.textContent = open ? "▾" : "▸";
    var name = li.querySelector(":scope > .node-row .step-name");
    button.setAttribute("aria-label", (open ? "Collapse " : "Expand ") + (name ? name.textContent : "step"));
  }

  root.addEventListener("click", function (event) {
    var button = event.target.closest(".tree-toggle");
    if (button) {
      var li = button.closest("li");
      setOpen(li, button.getAttribute("aria-expanded") !== "true");
    }
  });
  document.querySelectorAll("[data-tree]").forEach(function (button) {
    button.addEventListener("click", function () {
      var open = button.getAttribute("data-tree") === "expand";
      root.querySelectorAll("li").forEach(function (li) { setOpen(li, open); });
    });
  });

  // Selecting a step: its details come from the same page with &part=step, and the address says which.
  function mark(key) {
    root.querySelectorAll("li.selected").forEach(function (li) { li.classList.remove("selected"); });
    root.querySelectorAll("a[aria-current]").forEach(function (a) { a.removeAttribute("aria-current"); });
    if (!key) { return; }
    var quoted = window.CSS && CSS.escape ? CSS.escape(key) : key;
    var li = root.querySelector('li[data-key="' + quoted + '"]') || root.querySelector('li[data-span="' + quoted + '"]');
    if (!li) { return; }
    li.classList.add("selected");
    var link = li.querySelector(":scope > .node-row .step-name");
    if (link) { link.setAttribute("aria-current", "true"); }
    // a selected step inside collapsed branches is shown
    for (var up = li.parentElement.closest("li"); up; up = up.parentElement.closest("li")) { setOpen(up, true); }
  }

  function load(href, push) {
    if (!pane || !window.fetch) { window.location.href = href; return; }
    var url = new URL(href, window.location.href);
    var key = url.searchParams.get("step") || "";
    url.searchParams.set("part", "step");
    pane.classList.add("loading");
    fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected || !(response.ok || response.status === 404)) { throw new Error("not loaded"); }
        return response.text();
      })
      .then(function (html) {
        // our own server's page fragment, every value in it escaped by the template
        pane.innerHTML = html;
        pane.classList.remove("loading");
        mark(key);
        if (push) { window.history.pushState({ step: key }, "", href); }
        if (window.hljs) { pane.querySelectorAll("pre code").forEach(function (el) { window.hljs.highlightElement(el); }); }
        if (window.matchMedia("(max-width: 900px)").matches && key) { pane.scrollIntoView({ block: "start" }); }
      })
      .catch(function () { window.location.href = href; });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-step]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || event.button !== 0) { return; }
    if (!root.contains(link) && !(pane && pane.contains(link))) { return; }
    event.preventDefault();
    load(link.href, true);
  });
  window.addEventListener("popstate", function () { load(window.location.href, false); });

  // Arrow keys move between steps; left and right close and open a branch.
  root.addEventListener("keydown", function (event) {
    var link = event.target.closest(".step-name");
    if (!link) { return; }
    var visible = Array.prototype.filter.call(root.querySelectorAll(".step-name"), function (a) { return a.offsetParent !== null; });
    var at = visible.indexOf(link);
    var li = link.closest("li");
    if (event.key === "ArrowDown" && at < visible.length - 1) { visible[at + 1].focus(); }
    else if (event.key === "ArrowUp" && at > 0) { visible[at - 1].focus(); }
    else if (event.key === "ArrowLeft") { setOpen(li, false); }
    else if (event.key === "ArrowRight") { setOpen(li, true); }
    else { return; }
    event.preventDefault();
  });
})();
