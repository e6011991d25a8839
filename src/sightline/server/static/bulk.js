// Bulk actions on a list's ticked rows (templates/_bulk_actions.html): "select all on page", the count
// of selected rows, action buttons enabled only with a selection, and Enter in an action's field
// submitting that action (not the form's first button). The form works without this script.
(function () {
  "use strict";
  var form = document.getElementById("bulk-actions");
  if (!form || form.getAttribute("data-ready")) { return; }
  form.setAttribute("data-ready", "1");
  var all = form.querySelector(".select-all");
  var count = form.querySelector(".bulk-count");
  var hint = count ? count.textContent : "";
  var buttons = form.querySelectorAll("button[name=action]");

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input.row-select[form=bulk-actions]"));
  }

  function update() {
    var list = boxes();
    var ticked = list.filter(function (box) { return box.checked; }).length;
    list.forEach(function (box) {
      var row = box.closest("tr, li, article");
      if (row) { row.classList.toggle("row-selected", box.checked); }
    });
    if (all) {
      all.checked = ticked > 0 && ticked === list.length;
      all.indeterminate = ticked > 0 && ticked < list.length;
    }
    if (count) { count.textContent = ticked ? ticked + " selected" : hint; }
    form.classList.toggle("has-selection", ticked > 0);
    buttons.forEach(function (button) { button.disabled = ticked === 0; });
  }

  if (all) {
    all.closest("label").hidden = boxes().length === 0;
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = all.checked; });
      update();
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input.row-select")) { update(); }
  });

  // Enter in a field of one action's panel runs that action.
  form.querySelectorAll(".bulk-panel input[type=text]").forEach(function (input) {
    input.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") { return; }
      event.preventDefault();
      var button = input.closest(".bulk-panel").querySelector("button[name=action]");
      if (button && !button.disabled) { button.click(); }
    });
  });

  // One action panel open at a time.
  form.querySelectorAll("details.bulk-tool").forEach(function (details) {
    details.addEventListener("toggle", function () {
      if (!details.open) { return; }
      form.querySelectorAll("details.bulk-tool[open]").forEach(function (other) {
        if (other !== details) { other.open = false; }
      });
    });
  });

  update();
})();
