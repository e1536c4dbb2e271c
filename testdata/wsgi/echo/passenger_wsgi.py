"""Test fixture: a WSGI app whose endpoints exercise the loader and the core.

Standard library only. Endpoints are chosen by PATH_INFO (see ROUTES at the
bottom); /echo/<anything> is /echo too, and /status/NNN answers status NNN.
"""

import hashlib
import json
import os
import sys
import time
from http import HTTPStatus
from urllib.parse import parse_qs

CLOSE_COUNT = 0  # close() calls on the iterables /closing returns


def _query(environ):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


def _arg(environ, name, default):
    vals = _query(environ).get(name)
    return vals[0] if vals else default


def _reply(start_response, body, ctype="text/plain; charset=utf-8", status="200 OK", extra=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


def _json(start_response, obj, status="200 OK"):
    return _reply(start_response, json.dumps(obj, sort_keys=True), "application/json", status)


def hello(environ, start_response):
    return _reply(start_response, "hello world")


def echo(environ, start_response):
    inp = environ["wsgi.input"]
    digest = hashlib.sha256()
    kept = []
    kept_len = 0
    total = 0
    while True:
        data = inp.read(65536)
        if not data:
            break
        digest.update(data)
        total += len(data)
        if kept_len <= 65536:
            kept.append(data)
            kept_len += len(data)
    body = b"".join(kept).decode("latin-1") if total <= 65536 else None
    return _json(
        start_response,
        {
            "method": environ["REQUEST_METHOD"],
            "script_name": environ.get("SCRIPT_NAME"),
            "path_info": environ.get("PATH_INFO"),
            "query_string": environ.get("QUERY_STRING"),
            "content_type": environ.get("CONTENT_TYPE"),
            "content_length": environ.get("CONTENT_LENGTH"),
            "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
            "body_len": total,
            "body_sha256": digest.hexdigest(),
            "body": body,
            "remote_addr": environ.get("REMOTE_ADDR"),
            "remote_port": environ.get("REMOTE_PORT"),
            "url_scheme": environ.get("wsgi.url_scheme"),
            "server_name": environ.get("SERVER_NAME"),
            "server_port": environ.get("SERVER_PORT"),
            "server_protocol": environ.get("SERVER_PROTOCOL"),
            "pid": os.getpid(),
        },
    )


def pid(environ, start_response):
    return _reply(start_response, str(os.getpid()))


def status(environ, start_response, code):
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Status"
    line = "%d %s" % (code, reason)
    if code < 200 or code in (204, 304):
        start_response(line, [])
        return []
    return _reply(start_response, "status %d" % code, status=line)


def cookies(environ, start_response):
    return _reply(
        start_response,
        "cookies set",
        extra=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")],
    )


def big(environ, start_response):
    n = int(_arg(environ, "n", "0"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def gen():
        block = b"x" * 65536
        left = n
        while left > 0:
            k = min(left, len(block))
            yield block if k == len(block) else block[:k]
            left -= k

    return gen()


def sleep(environ, start_response):
    time.sleep(float(_arg(environ, "s", "0")))
    return pid(environ, start_response)


def crash(environ, start_response):
    os._exit(1)


def error(environ, start_response):
    raise RuntimeError("boom from app")


def stream(environ, start_response):
    n = int(_arg(environ, "n", "3"))
    delay = float(_arg(environ, "delay", "0"))
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])

    def gen():
        for i in range(n):
            if i:
                time.sleep(delay)
            yield ("chunk %d\n" % i).encode()

    return gen()


def write(environ, start_response):
    out = start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    out(b"write 1\n")
    out(b"write 2\n")
    return []


def exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    try:
        raise ValueError("handled inside the app")
    except ValueError:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "7")],
            sys.exc_info(),
        )
    return [b"handled"]


class Closing(object):
    """A response iterable whose close() the server must call."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._chunks)

    def close(self):
        global CLOSE_COUNT
        CLOSE_COUNT += 1


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return Closing([b"closing ", b"body"])


def close_count(environ, start_response):
    return _reply(start_response, str(CLOSE_COUNT))


def printed(environ, start_response):
    print("hello stdout from app", flush=True)
    print("hello stderr from app", file=sys.stderr, flush=True)
    return _reply(start_response, "printed")


def env(environ, start_response):
    out = {k: v for k, v in environ.items() if isinstance(v, (str, int, bool))}
    return _json(start_response, out)


_hog = []


def hog(environ, start_response):
    """Grows this process by ?mb= MiB of private memory, kept until it exits."""
    mb = int(_arg(environ, "mb", "10"))
    _hog.append(bytearray(os.urandom(1)) * (mb << 20))
    return _reply(start_response, "holding %d MiB" % sum(len(b) >> 20 for b in _hog))


def oob(environ, start_response):
    """Asks Ferry for out-of-band work after this response."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Ferry-Request-OOB-Work", "true")])
    return [b"oob requested"]


_counted = {}


def counted(environ, start_response):
    """Counts how often the app itself answered this exact URL; the response
    headers come from the query: ?cc=Cache-Control&etag=…&cookie=1&vary=…&delay=s
    With etag, a matching If-None-Match gets a 304 (with the count in
    X-Count); with fail_after=N, the answers after the Nth are 503s.
    """
    key = environ.get("QUERY_STRING", "")
    _counted[key] = _counted.get(key, 0) + 1
    delay = float(_arg(environ, "delay", "0"))
    if delay:
        time.sleep(delay)
    extra = [("X-Count", str(_counted[key]))]
    cc = _arg(environ, "cc", "")
    if cc:
        extra.append(("Cache-Control", cc))
    fail_after = int(_arg(environ, "fail_after", "0"))
    if fail_after and _counted[key] > fail_after:
        return _reply(start_response, "failing", status="503 Service Unavailable", extra=extra)
    if _arg(environ, "etag", ""):
        etag = '"%s"' % _arg(environ, "etag", "")
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            extra.append(("ETag", etag))
            start_response("304 Not Modified", extra)
            return [b""]
        extra.append(("ETag", etag))
    if _arg(environ, "cookie", ""):
        extra.append(("Set-Cookie", "session=abc"))
    if _arg(environ, "vary", ""):
        extra.append(("Vary", _arg(environ, "vary", "")))
    user = ""
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "user":
            user = value
    return _reply(start_response, "served %d times for %s%s" % (_counted[key], key, " user=" + user if user else ""), extra=extra)


def osenv(environ, start_response):
    """The process environment (os.environ), as Ferry set it up."""
    return _json(start_response, dict(os.environ))


def upload(environ, start_response):
    inp = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    while True:
        data = inp.read(65536)
        if not data:
            break
        digest.update(data)
        total += len(data)
    return _json(start_response, {"len": total, "sha256": digest.hexdigest()})


def readline(environ, start_response):
    inp = environ["wsgi.input"]
    count = 0
    while inp.readline():
        count += 1
    return _reply(start_response, str(count))


ROUTES = {
    "/": hello,
    "/echo": echo,
    "/pid": pid,
    "/cookies": cookies,
    "/big": big,
    "/sleep": sleep,
    "/crash": crash,
    "/error": error,
    "/stream": stream,
    "/write": write,
    "/exc_info": exc_info,
    "/closing": closing,
    "/close-count": close_count,
    "/print": printed,
    "/env": env,
    "/osenv": osenv,
    "/counted": counted,
    "/hog": hog,
    "/oob": oob,
    "/upload": upload,
    "/readline": readline,
}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    handler = ROUTES.get(path)
    if handler is not None:
        return handler(environ, start_response)
    if path.startswith("/echo/"):  # so tests can see any PATH_INFO echoed
        return echo(environ, start_response)
    if path.startswith("/status/"):
        try:
            code = int(path[len("/status/"):])
        except ValueError:
            code = 0
        if 100 <= code <= 999:
            return status(environ, start_response, code)
    return _reply(start_response, "not found: %s" % path, status="404 Not Found")
