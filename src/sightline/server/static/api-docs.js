// Starts the API documentation viewer the page names (/docs: Swagger UI, /redoc: ReDoc) on the
// server's own OpenAPI description. A file of its own: the pages allow no inline script.
(function () {
  "use strict";
  var root = document.getElementById("api-docs");
  if (!root) return;
  var url = root.getAttribute("data-openapi");
  if (root.getAttribute("data-viewer") === "Swagger UI" && window.SwaggerUIBundle) {
    window.SwaggerUIBundle({ url: url, domNode: root, deepLinking: true });
  } else if (window.Redoc) {
    window.Redoc.init(url, {}, root);
  }
})();
