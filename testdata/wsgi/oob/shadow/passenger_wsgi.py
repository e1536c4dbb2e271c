"""Test fixture: an app with its own ``ferry`` module; / answers its WHOAMI."""

import ferry


def application(environ, start_response):
    body = ferry.WHOAMI.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
