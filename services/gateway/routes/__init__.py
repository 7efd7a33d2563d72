"""The v1 REST routes, one module per resource; each route is thin and delegates to services.core."""
