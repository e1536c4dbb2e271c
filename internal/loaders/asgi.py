# Placeholder: the ASGI runner is being written (issue 3).
raise SystemExit("asgi runner not implemented yet")
