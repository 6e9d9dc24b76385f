"""The HTTPS surface: the console (server-rendered pages) and the JSON API share one
application, one set of security headers and one mapping from errors to responses."""
