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

  // Times are shown in UTC; hovering one shows it in the browser's time zone too.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when.getTime())) { el.title = when.toLocaleString() + " (local time)"; }
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

  // Code blocks with a known language get colours when highlight.js is installed.
  if (window.hljs) {
    document.querySelectorAll("pre.code code[class*='language-']").forEach(function (block) {
      var language = (block.className.match(/language-([\w+#.-]+)/) || [])[1];
      if (language && window.hljs.getLanguage(language)) { window.hljs.highlightElement(block); }
    });
  }
})();
