"""bench/wire-loader-micro.py: CPU per request of the WSGI loader's own
request loop on each wire, without the socket (issue 21, ferry-wire/1).

Runs wsgi.py's _serve_conn over a fake connection that hands out the same
request again and again (what the core sends for wrk's `GET /` with Host,
on HTTP/1.1 and on ferry-wire/1) and drops what the loader writes, with
examples/hello-wsgi as the app. Prints µs of process CPU per request.

Usage: python3 bench/wire-loader-micro.py [N]
"""

import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "internal", "loaders"))
os.environ["FERRY_WIRE"] = "1"
import wsgi  # noqa: E402

sys.path.insert(0, os.path.join(here, "..", "examples", "hello-wsgi"))
import passenger_wsgi  # noqa: E402

app = passenger_wsgi.application
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200000

http = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"
    b"X-Ferry-Client-Addr: 127.0.0.1:41234\r\nX-Ferry-Scheme: http\r\n\r\n"
)
env = [
    "REQUEST_METHOD", "GET", "REQUEST_URI", "/", "PATH_INFO", "/", "QUERY_STRING", "",
    "SERVER_PROTOCOL", "HTTP/1.1", "SERVER_NAME", "127.0.0.1", "SERVER_PORT", "3000",
    "REMOTE_ADDR", "127.0.0.1", "REMOTE_PORT", "41234", "HTTP_HOST", "127.0.0.1:3000",
]
head = "\0".join(env).encode("latin-1")
framed = bytes([0xF1]) + len(head).to_bytes(4, "big") + head


class Conn(object):
    def __init__(self, req, n):
        self.req, self.n, self.out = req, n, 0

    def recv(self, size):
        if self.n == 0:
            return b""
        self.n -= 1
        return self.req

    def sendall(self, data):
        self.out += len(data)

    def fileno(self):
        return -1


def run(req, n):
    c = Conn(req, n)
    base_env = wsgi._base_env("", False)
    t0 = time.process_time()
    wsgi._serve_conn(c, -1, app, base_env, "", wait=lambda: True)
    dt = time.process_time() - t0
    return dt / n * 1e6, c.out / n


for name, req in (("HTTP/1.1", http), ("ferry-wire/1", framed)):
    run(req, 2000)  # warm caches
    best = min(run(req, N)[0] for _ in range(3))
    print("%-13s %.2f µs/request (loader + app, no syscalls; best of 3 × %d)" % (name, best, N))
