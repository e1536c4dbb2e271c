"""Test fixture: a hand-written ASGI 3 app whose endpoints exercise the runner.

Standard library only. Routes are chosen by the path below root_path (see
ROUTES at the bottom); /echo/<anything> is /echo too, /status/NNN answers
status NNN.
"""

import asyncio
import hashlib
import json
import os
import sys
from urllib.parse import parse_qs

STATE = {"requests": 0}


def _query(scope):
    return parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)


def _arg(scope, name, default):
    vals = _query(scope).get(name)
    return vals[0] if vals else default


async def _reply(send, body, ctype=b"text/plain; charset=utf-8", status=200, extra=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send, obj, status=200):
    await _reply(send, json.dumps(obj, sort_keys=True), b"application/json", status)


async def _read_body(receive):
    """(length, sha256, number of pieces, largest piece) of the request body."""
    digest = hashlib.sha256()
    total = pieces = largest = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        body = msg.get("body", b"")
        digest.update(body)
        total += len(body)
        if body:
            pieces += 1
            largest = max(largest, len(body))
        if not msg.get("more_body", False):
            break
    return total, digest.hexdigest(), pieces, largest


async def hello(scope, receive, send):
    await _reply(send, "hello world")


async def echo(scope, receive, send):
    total, sha, _, _ = await _read_body(receive)
    await _json(
        send,
        {
            "type": scope["type"],
            "asgi": scope["asgi"],
            "http_version": scope["http_version"],
            "method": scope["method"],
            "scheme": scope["scheme"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "root_path": scope["root_path"],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "client": list(scope["client"]) if scope.get("client") else None,
            "server": list(scope["server"]) if scope.get("server") else None,
            "state": sorted(scope.get("state", {})),
            "body_len": total,
            "body_sha256": sha,
            "pid": os.getpid(),
        },
    )


async def upload(scope, receive, send):
    total, sha, pieces, largest = await _read_body(receive)
    await _json(send, {"len": total, "sha256": sha, "pieces": pieces, "largest": largest})


async def stream(scope, receive, send):
    n = int(_arg(scope, "n", "3"))
    delay = float(_arg(scope, "delay", "0"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(n):
        if i:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def sleep(scope, receive, send):
    await asyncio.sleep(float(_arg(scope, "s", "0")))
    await _reply(send, str(os.getpid()))


async def pid(scope, receive, send):
    await _reply(send, str(os.getpid()))


async def error(scope, receive, send):
    raise RuntimeError("boom from asgi app")


async def late_error(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("late failure")


async def printed(scope, receive, send):
    print("hello stdout from asgi app", flush=True)
    print("hello stderr from asgi app", file=sys.stderr, flush=True)
    await _reply(send, "printed")


async def disconnect(scope, receive, send):
    """Reads the body, then waits for http.disconnect and reports it on stdout."""
    await _read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
    msg = await receive()
    print("got %s" % msg["type"], flush=True)


async def state(scope, receive, send):
    STATE["requests"] += 1
    await _json(send, {"lifespan": scope.get("state", {}).get("started_by"), "requests": STATE["requests"]})


async def status(scope, receive, send, code):
    if code < 200 or code in (204, 304):
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await _reply(send, "status %d" % code, status=code)


async def cookies(scope, receive, send):
    await _reply(send, "cookies set", extra=[(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; Path=/")])


async def ws_echo(scope, receive, send):
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    sub = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": sub, "headers": [(b"x-ws", b"yes")]})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            print("ws disconnect %s" % msg.get("code"), flush=True)
            return
        text = msg.get("text")
        if text == "close":
            await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
            continue
        if text == "path":
            text = "%s %s %s %s" % (scope["scheme"], scope["path"], scope["query_string"].decode(), scope["root_path"])
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


async def ws_quit(scope, receive, send):
    """Accepts, lets the runner read what the client sent, and returns unread."""
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(0)


async def ws_reject(scope, receive, send):
    await receive()
    await send({"type": "websocket.close"})


ROUTES = {
    "/": hello,
    "/echo": echo,
    "/upload": upload,
    "/stream": stream,
    "/sleep": sleep,
    "/pid": pid,
    "/error": error,
    "/late-error": late_error,
    "/print": printed,
    "/disconnect": disconnect,
    "/state": state,
    "/cookies": cookies,
}

WS_ROUTES = {"/ws": ws_echo, "/ws-quit": ws_quit, "/ws-reject": ws_reject}


async def lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            print("lifespan startup in %d" % os.getpid(), flush=True)
            scope["state"]["started_by"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            print("lifespan shutdown in %d" % os.getpid(), flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    path, root = scope["path"], scope["root_path"]
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    if scope["type"] == "websocket":
        handler = WS_ROUTES.get(path)
        if handler is None:
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        return await handler(scope, receive, send)
    handler = ROUTES.get(path)
    if handler is not None:
        return await handler(scope, receive, send)
    if path.startswith("/echo/"):
        return await echo(scope, receive, send)
    if path.startswith("/status/"):
        try:
            code = int(path[len("/status/"):])
        except ValueError:
            code = 0
        if 100 <= code <= 999:
            return await status(scope, receive, send, code)
    await _reply(send, "not found: %s" % path, status=404)
