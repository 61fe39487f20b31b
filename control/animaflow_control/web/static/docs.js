// Swagger UI on /docs, from the vendored bundle; a file, not an inline script, so the CSP holds.
"use strict";

const docsCsrf = document.querySelector('meta[name="csrf-token"]')?.content;

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  // "Try it out" with the session cookie: changes need the CSRF header, as on every page.
  requestInterceptor: (request) => {
    if (docsCsrf && request.method && request.method !== "GET") request.headers["X-CSRF-Token"] = docsCsrf;
    return request;
  },
});
