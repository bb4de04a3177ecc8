"""The service's routers: api (data), evidence (export/verify), admin, ops, live, pages."""
