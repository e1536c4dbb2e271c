"""The WSGI app of bench/run.sh's scenarios, the same under every server.

    /          "Hello from Ferry!" (as examples/hello-wsgi)
    /cached    the same, with Cache-Control: public, max-age=60 (cacheable)
    /dynamic   the same, with Cache-Control: no-store (never cacheable)
    /sleep     waits ?ms= milliseconds (default 50), then answers (no-store)
    /big       ?kb= KiB (default 1024) of bytes (no-store), for slow readers
    /upload    POST: reads the body and answers its length (no-store)
    /files/N   the file public/N, read by the app (for a server that does
               not serve public/ itself: Passenger's builtin engine)
    anything else: 404, so that a static file a server failed to serve
    from public/ shows up as an error, not as a fast answer.

bench/run.sh adds public/4k.bin and public/1m.bin to its copy.
"""
import os
import time
from urllib.parse import parse_qs

PUBLIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "public")

HELLO = b"Hello from Ferry!\n"
BIG = b"0123456789abcdef" * (1024 * 1024 // 16)


def _int(environ, name, default):
    try:
        return int(parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0])
    except ValueError:
        return default


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if path == "/":
        body = HELLO
    elif path == "/cached":
        body = HELLO
        headers.append(("Cache-Control", "public, max-age=60"))
    elif path == "/dynamic":
        body = HELLO
        headers.append(("Cache-Control", "no-store"))
    elif path == "/sleep":
        time.sleep(_int(environ, "ms", 50) / 1000.0)
        body = HELLO
        headers.append(("Cache-Control", "no-store"))
    elif path == "/big":
        kb = max(0, min(_int(environ, "kb", 1024), 1024))
        body = BIG[: kb * 1024]
        headers = [("Content-Type", "application/octet-stream"), ("Cache-Control", "no-store")]
    elif path == "/upload":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        got = len(environ["wsgi.input"].read(n)) if n > 0 else 0
        body = b"%d\n" % got
        headers.append(("Cache-Control", "no-store"))
    elif path.startswith("/files/") and "/" not in path[7:] and not path[7:].startswith("."):
        try:
            with open(os.path.join(PUBLIC, path[7:]), "rb") as f:
                body = f.read()
        except OSError:
            body = None
        if body is None:
            return _not_found(start_response, headers)
        headers = [("Content-Type", "application/octet-stream")]
    else:
        return _not_found(start_response, headers)
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]


def _not_found(start_response, headers):
    body = b"not found\n"
    headers.append(("Content-Length", str(len(body))))
    start_response("404 Not Found", headers)
    return [body]
