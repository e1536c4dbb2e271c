"""Test fixture: an app with its own ``ferry`` module; every path answers its WHOAMI."""

import ferry


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ferry.WHOAMI.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
