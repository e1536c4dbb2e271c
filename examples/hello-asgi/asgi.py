"""The smallest useful ASGI app: run it with `ferry start examples/hello-asgi`.

Standard library only; any ASGI 3 framework (Starlette, FastAPI, Django's
asgi.py, Quart …) works the same way: Ferry takes `application`, else `app`.
"""


async def application(scope, receive, send):
    if scope["type"] != "http":
        # No lifespan or WebSocket here: raising tells the server so.
        raise RuntimeError("unsupported scope type %r" % scope["type"])
    body = b"Hello from Ferry!\n"
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body})
