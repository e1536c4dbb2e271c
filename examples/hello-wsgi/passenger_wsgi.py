"""The smallest useful WSGI app: run it with `ferry start examples/hello-wsgi`."""


def application(environ, start_response):
    body = b"Hello from Ferry!\n"
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
