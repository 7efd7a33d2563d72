"""The Managed Agents API's routes, one module per resource."""
