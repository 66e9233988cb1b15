// Starts Swagger UI over the core's live OpenAPI document. Nothing is fetched
// from anywhere but this core: the validator badge (which would send the
// document to validator.swagger.io) is off.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  docExpansion: "list",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
