// Herald's API explorer: Swagger UI on this API's own OpenAPI document. Every URL is
// relative to the page, so it works at the embedded stack's root and under an API
// Gateway stage prefix alike, and nothing is fetched from anywhere else.
window.addEventListener("load", function () {
  var base = new URL(".", window.location.href).href.replace(/\/$/, "");
  fetch("v1/openapi.json")
    .then(function (response) { return response.json(); })
    .then(function (spec) {
      spec.servers = [{ url: base, description: "This deployment" }];
      window.ui = SwaggerUIBundle({
        spec: spec,
        dom_id: "#explorer",
        deepLinking: true,
        validatorUrl: null,
        docExpansion: "list",
        defaultModelsExpandDepth: 0,
        tryItOutEnabled: false,
      });
    });
});
