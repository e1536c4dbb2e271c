"""A generic app for Ferry's tests that misbehaves on the wire, byte for
byte, the way buggy apps do. It listens on $PORT, one thread per
connection, keeping connections open.

  /desync    200 "ok" with Content-Length 2, then a whole second response
             ("hacked") on the same connection
  HEAD /head a HEAD response followed by a body
  /drop      closes the connection without a word
  /slow      answers once /release was requested
  /early     103 Early Hints, then 200
  /te        Transfer-Encoding: x-custom (not chunked): the close ends it
  anything   200 "pid=PID"
"""
import os
import socket
import threading

released = threading.Event()


def answer(status, body, extra=b""):
    return (b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n" + extra + b"\r\n" + body)


def serve(conn):
    f = conn.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            length = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if length:
                f.read(length)
            path = target.split("?")[0]
            pid = ("pid=%d" % os.getpid()).encode()
            if path == "/drop":
                return
            if path == "/desync":
                out = answer(b"200 OK", b"ok") + answer(b"200 OK", b"hacked")
            elif path == "/head" and method == "HEAD":
                out = answer(b"200 OK", b"hacked")
            elif path == "/slow":
                released.wait()
                out = answer(b"200 OK", b"slow")
            elif path == "/release":
                released.set()
                out = answer(b"200 OK", b"released")
            elif path == "/early":
                out = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                       + answer(b"200 OK", b"early", b"Link: </final>\r\n"))
            elif path == "/te":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: x-custom\r\n\r\nto the close")
                return
            else:
                out = answer(b"200 OK", pid)
            conn.sendall(out)
    finally:
        f.close()
        conn.close()


ln = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ln.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ln.bind(("127.0.0.1", int(os.environ["PORT"])))
ln.listen(128)
while True:
    c, _ = ln.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
