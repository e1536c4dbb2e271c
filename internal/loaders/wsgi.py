"""Ferry's WSGI loader.

The core runs this script as ``python3 wsgi.py`` with the working directory
set to the app root and the environment described in docs/architecture.md
("The loader contract"). It imports the app's startup file, listens on a Unix
socket, reports readiness (or the load error) as one JSON line on the status
fd, and then serves HTTP/1.1 on that socket with persistent connections:
one connection at a time, or up to FERRY_THREADS at once, a thread each.

With FERRY_SPAWN_METHOD=smart it is a preloader instead: it loads the app
once, listens on FERRY_SOCKET as a control socket, and forks a worker for
each spawn command it receives there (see "Smart spawning").

Out-of-band work. Before the app is loaded, a module named ``ferry`` goes
into sys.modules (unless the app has its own ``ferry`` module or package,
in its directory or installed: then a line on stderr says so and the app
keeps its own):

    import ferry

    @ferry.on_out_of_band_work      # or ferry.on_out_of_band_work(fn)
    def collect():                  # no arguments
        ...

    ferry.out_of_band_hooks()       # the registered hooks (the list itself)

Any request carrying the header X-Ferry-Oob-Work is the core's (clients
cannot send X-Ferry-* headers): it never reaches the app. The loader runs
every hook in order, in the thread of that connection (with FERRY_THREADS
the core sends it only when no request is in flight), and answers
``200 OK``, or ``500`` naming the errors if any hook raised (each traceback
goes to stderr; the other hooks still run); the connection then closes.
Without hooks the work is gc.collect(). An app asks for it with the
response header X-Ferry-Request-OOB-Work: true (the core's business).

SIGQUIT (the core sends it before killing a request that ran longer than
--max-request-time, and SIGKILLs a second later): faulthandler writes the
Python stack of every thread to stderr ("Thread 0x… (most recent call
first)" blocks, even when the code is stuck in C or in a loop) and the
process carries on. A smart-spawned worker registers it anew after fork.

Standard library only; Python 3.9+.
"""

import gc
import io
import os
import select
import signal
import socket
import sys
import threading
import warnings


def _import_common():
    """_ferry_common, which loaders.Write puts beside this file, by its path:
    an app's user may pass through that directory without listing it, and
    then sys.path finds nothing there."""
    from importlib.util import module_from_spec, spec_from_file_location

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ferry_common.py")
    spec = spec_from_file_location("_ferry_common", path)
    mod = module_from_spec(spec)
    sys.modules["_ferry_common"] = mod
    spec.loader.exec_module(mod)
    return mod


_common = _import_common()
_cached = _common.cached
_dump_on_sigquit = _common.dump_on_sigquit
_install_ferry = _common.install_ferry
_listen = _common.listen
_log = _common.log
_split_peer = _common.split_peer
_start_lifeline = _common.start_lifeline

_common.TAG = "ferry wsgi"

# Not json, traceback or urllib.parse (which bring re, enum's friends and
# more: milliseconds at every start, before the app is even loaded): the
# handshake is written and the spawn command read without json (_report,
# _spawn_fields), and the others are imported where they are needed, on
# error paths and for the first percent-encoded path.

MAX_HEAD = 64 * 1024  # request line + headers
RECV_SIZE = 64 * 1024  # socket reads while parsing a head
BODY_CHUNK = 256 * 1024  # largest single socket read for a body
SMALL_BODY = 64 * 1024  # bodies up to this size are read at once

# ferry-wire/1 (docs/loader-wire.md): chosen when the core offers it in
# FERRY_WIRE and said so in the ready handshake; HTTP/1.1 is served still,
# request by request, told apart by the first byte.
_WIRE = 1 if "1" in (os.environ.get("FERRY_WIRE") or "").split(",") else 0
_MAGIC = 0xF1
_END = b"\0\0\0\0"  # the end chunk of a framed response

# ---------------------------------------------------------------- signals ---

_idle = True  # True while waiting for a connection or a request head
_stopping = False  # SIGTERM seen: exit when the current request is done
_wake_w = -1  # threads: written on SIGTERM, to wake the idle connections


class _Stop(BaseException):
    """Raised by the SIGTERM handler when idle, to leave the serve loop."""


def _on_term(signum, frame):
    global _stopping
    _stopping = True
    if _idle:
        raise _Stop()


def _on_term_threaded(signum, frame):
    # The main thread only accepts: it notices _stopping through the wake
    # pipe, as do the connection threads waiting for a request.
    global _stopping
    _stopping = True
    try:
        os.write(_wake_w, b"x")
    except OSError:
        pass


# ------------------------------------------------- backtraces on demand ---

def _backtraces_on(fd, threaded=False):
    """SIGWINCH: the stack of every thread on fd (see _ferry_common).

    With threads, faulthandler's C dump of every thread can crash the
    process while a connection's thread starts or ends: it dumps only the
    current one, and the tail adds every thread's stack. The tail is
    written by a thread of its own, woken through the signal module's
    wakeup fd (_common.tail_on_wakeup): the main thread may be blocked.
    """
    if fd < 0:
        return

    def tail():
        return (_common.thread_stacks() if threaded else []) + _common.thread_names()

    def install():
        # The Python-level handler only has to exist (for the wakeup fd
        # to be written); the tail thread does the work.
        signal.signal(signal.SIGWINCH, lambda signum, frame: None)
        _common.tail_on_wakeup(fd, tail)

    _common.backtraces_on(fd, install, all_threads=not threaded)


# ----------------------------------------------------- out-of-band work ---


def _out_of_band():
    """Runs the out-of-band hooks (or gc.collect()); the whole response."""
    hooks = list(_common.out_of_band_hooks())
    errors = []
    if not hooks:
        gc.collect()
    for fn in hooks:
        try:
            r = fn()
            if hasattr(r, "__await__"):
                close = getattr(r, "close", None)
                if close is not None:
                    close()  # no "never awaited" warning
                raise TypeError("it returned an awaitable: async hooks need the ASGI runner")
        except Exception as exc:
            _log("error in out-of-band hook %s:" % _common.hook_name(fn))
            _print_exc()
            errors.append(_common.hook_error(fn, exc))
    code, data = _common.oob_body(hooks, errors)
    head = "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
        code,
        "OK" if code == 200 else "Internal Server Error",
        len(data),
    )
    return head.encode("latin-1") + data


# ------------------------------------------------------------ wsgi.input ---


class _Input(object):
    """wsgi.input for a body that has not all arrived yet.

    Reads straight from the socket and never past the body's end, so at most
    one body-sized read is ever held, and only if the app asks for it.
    """

    __slots__ = ("_recv", "_buf", "_pos", "_left", "eof")

    def __init__(self, recv, buf, length):
        self._recv = recv
        self._buf = buf  # bytes already received, all of them body
        self._pos = 0
        self._left = length - len(buf)  # body bytes still in the socket
        self.eof = False  # the peer closed before the body's end

    def _fill(self, n):
        if n > self._left:
            n = self._left
        if n > BODY_CHUNK:
            n = BODY_CHUNK
        if n <= 0:
            return b""
        data = self._recv(n)
        if not data:
            self.eof = True
            self._left = 0
            return b""
        self._left -= len(data)
        return data

    def _take_buffered(self):
        buf, pos = self._buf, self._pos
        self._buf, self._pos = b"", 0
        return buf[pos:] if pos else buf

    def read(self, size=-1):
        if size is None or size < 0:
            parts = [self._take_buffered()]
            while self._left:
                data = self._fill(self._left)
                if not data:
                    break
                parts.append(data)
            return b"".join(parts)
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail >= size:
            self._pos = pos + size
            return buf[pos : pos + size]
        parts = [self._take_buffered()]
        got = avail
        while got < size:
            data = self._fill(size - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def read1(self, size=-1):
        if size is None or size < 0:
            size = RECV_SIZE
        if size == 0:
            return b""
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            end = pos + size
            self._pos = end
            return buf[pos:end]
        return self._fill(size)

    def readinto(self, b):
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def readline(self, size=-1):
        if size is None or size < 0:
            size = sys.maxsize
        buf, pos = self._buf, self._pos
        limit = pos + size
        i = buf.find(b"\n", pos, limit)
        if i >= 0:
            self._pos = i + 1
            return buf[pos : i + 1]
        if len(buf) >= limit:
            self._pos = limit
            return buf[pos:limit]
        parts = [self._take_buffered()]
        got = len(parts[0])
        while got < size:
            want = size - got
            data = self._fill(want if want < RECV_SIZE else RECV_SIZE)
            if not data:
                break
            i = data.find(b"\n")
            if i >= 0:
                parts.append(data[: i + 1])
                self._buf = data
                self._pos = i + 1
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self):
        return True

    def close(self):
        pass

    def finish(self):
        """Discards the unread rest of the body; False if the peer hung up."""
        self._buf, self._pos = b"", 0
        while self._left:
            if not self._fill(BODY_CHUNK):
                break
        return not self.eof


class FileWrapper(object):
    """wsgi.file_wrapper: iterates a file-like object in blocks."""

    def __init__(self, filelike, blksize=65536):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


# ---------------------------------------------------------------- environ ---

_INTERNAL = ("HTTP_X_FERRY_CLIENT_ADDR", "HTTP_X_FERRY_SCHEME", "HTTP_X_FERRY_OOB_WORK")
_keys = {}  # header name as sent -> environ key ('' = drop)


def _env_key(name):
    n = name.strip()
    if not n or "_" in n or " " in n or "\t" in n:
        return ""
    k = n.upper().replace("-", "_")
    if k == "CONTENT_TYPE" or k == "CONTENT_LENGTH":
        return k
    k = "HTTP_" + k
    if k.startswith("HTTP_X_FERRY_") and k not in _INTERNAL:
        return ""
    return k


_hosts = {}  # Host header + scheme ("http"/"https": unambiguous) -> (SERVER_NAME, SERVER_PORT)


def _split_host(host, scheme):
    return _common.split_host(host, "443" if scheme == "https" else "80")


_peers = {}  # X-Ferry-Client-Addr -> (REMOTE_ADDR, REMOTE_PORT)


# --------------------------------------------------------------- response ---

# Response headers the loader owns; the app's copies are dropped (its
# Content-Length is used for framing, "Connection: close" is honoured).
_FRAMING = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive"))

_REASONS = {400: "Bad Request", 500: "Internal Server Error", 501: "Not Implemented"}


def _error_response(code, keep, is_head=False, framed=False):
    """The loader's own plain-text error response, on either wire."""
    status = "%d %s" % (code, _REASONS[code])
    body = (status + "\n").encode()
    fields = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if framed:
        head = _framed_head(status, fields, len(body), is_head, keep)[0]
        return head + (b"" if is_head else len(body).to_bytes(4, "big") + body) + _END
    head = _head(status, fields, len(body), is_head, keep, False)[0]
    return head + (b"" if is_head else body)


class _ClientGone(Exception):
    """The core's end of the connection failed while we were writing."""


def _code(status):
    """The status code of a WSGI status such as "200 OK"."""
    if status[3:4] != " " or not status[:3].isdigit():
        raise ValueError("malformed status %r" % status)
    return int(status[:3])


def _framing(headers, keep):
    """The app's headers apart from the framing ones the loader writes
    itself: returns (the others, the app's Content-Length or None, keep,
    false if the app said Connection: close)."""
    fields = []
    cl = None
    for name, value in headers:
        lname = name.lower()
        if lname in _FRAMING:
            if lname == "content-length":
                cl = int(value)
                if cl < 0:
                    raise ValueError("negative Content-Length %r" % value)
            elif lname == "connection" and "close" in value.lower():
                keep = False
            continue
        fields.append((name, value))
    return fields, cl, keep


def _head(status, headers, total, no_body, keep, http10):
    """Builds the response head.

    Returns (head bytes, Content-Length or None, chunked, keep).
    total is the body length when the loader knows it (None otherwise).
    """
    fields, cl, keep = _framing(headers, keep)
    parts = ["HTTP/1.1 " + status + "\r\n"]
    parts += [name + ": " + value + "\r\n" for name, value in fields]
    chunked = False
    if no_body:
        if cl is not None:
            parts.append("Content-Length: %d\r\n" % cl)
    elif cl is not None:
        parts.append("Content-Length: %d\r\n" % cl)
    elif total is not None:
        cl = total
        parts.append("Content-Length: %d\r\n" % cl)
    elif http10:
        keep = False  # the body ends when the connection does
    else:
        chunked = True
        parts.append("Transfer-Encoding: chunked\r\n")
    if not keep:
        parts.append("Connection: close\r\n")
    parts.append("\r\n")
    s = "".join(parts)
    # Every part ends in exactly one CRLF: any other CR or LF is an injection.
    n = len(parts)
    if s.count("\n") != n or s.count("\r") != n:
        raise ValueError("CR or LF in response status or header")
    return s.encode("latin-1"), cl, chunked, keep


def _framed_head(status, headers, total, no_body, keep):
    """_head on ferry-wire/1: a head frame (status, then name and value
    pairs, NUL-separated); the body goes in chunks, whatever its length."""
    fields, cl, keep = _framing(headers, keep)
    parts = [status]
    for name, value in fields:
        parts.append(name)
        parts.append(value)
    if no_body:
        if cl is not None:
            parts += ("Content-Length", "%d" % cl)
    elif cl is not None:
        parts += ("Content-Length", "%d" % cl)
    elif total is not None:
        cl = total
        parts += ("Content-Length", "%d" % cl)
    if not keep:
        parts += ("Connection", "close")
    s = "\0".join(parts)
    # A NUL would split elsewhere; CR or LF is as malformed as on HTTP/1.1.
    if s.count("\0") != len(parts) - 1 or "\r" in s or "\n" in s:
        raise ValueError("CR, LF or NUL in response status or header")
    b = s.encode("latin-1")
    return len(b).to_bytes(4, "big") + b, cl, False, keep


class _Response(object):
    """One response being written: the state that start_response, write and
    the end of the request share."""

    __slots__ = ("send", "keep", "http10", "status", "headers", "sent", "no_body", "cl", "chunked", "nsent", "framed")

    def __init__(self, send, is_head, keep, http10, framed=False):
        self.framed = framed
        self.send = send
        self.keep = keep
        self.http10 = http10
        self.status = None
        self.headers = None
        self.sent = False  # head written
        self.no_body = is_head
        self.cl = None
        self.chunked = False
        self.nsent = 0

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if type(status) is not str:
            raise TypeError("status must be a str, not %s" % type(status).__name__)
        if type(headers) is not list:
            raise TypeError("headers must be a list, not %s" % type(headers).__name__)
        self.status = status
        self.headers = headers
        return self.write

    def _start(self, length, missing):
        """The head, for a body of length (None: not known yet); the
        response counts as sent from here."""
        if self.status is None:
            raise AssertionError(missing)
        code = _code(self.status)
        self.no_body = self.no_body or code < 200 or code == 204 or code == 304
        if self.framed:
            head, self.cl, self.chunked, self.keep = _framed_head(self.status, self.headers, length, self.no_body, self.keep)
        else:
            head, self.cl, self.chunked, self.keep = _head(self.status, self.headers, length, self.no_body, self.keep, self.http10)
        self.sent = True
        return head

    def write(self, data):
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("response body must be bytes, not %s" % type(data).__name__)
            data = bytes(data)
        n = len(data)
        if not n:
            return
        head = b""
        if not self.sent:
            head = self._start(None, "write() before start_response()")
            if self.no_body:
                self.send(head)
                return
        elif self.no_body:
            return
        cl = self.cl
        if cl is not None:
            room = cl - self.nsent
            if n > room:
                if room <= 0:
                    return
                data = data[:room]
                n = room
        elif self.chunked:
            data = b"%x\r\n%s\r\n" % (n, data)
        if self.framed:
            data = n.to_bytes(4, "big") + data
        self.nsent += n
        self.send(head + data if head else data)

    def whole(self, body):
        """The whole body at once (the app returned a list): one write with
        its length."""
        head = self._start(len(body), "the application returned without calling start_response()")
        cl = self.cl
        if self.framed:
            if not self.no_body:
                if cl < len(body):
                    body = body[:cl]
                elif cl > len(body):
                    self.keep = False  # the core sees the short body too
                if body:
                    head += len(body).to_bytes(4, "big") + body
            self.send(head + _END)
        elif self.no_body:
            self.send(head)
        elif cl == len(body):
            self.send(head + body)
        elif cl > len(body):
            self.send(head + body)
            self.keep = False  # the body is short of its Content-Length
        else:
            self.send(head + body[:cl])

    def end(self):
        """After the last piece of an iterated body."""
        if self.framed:
            head = b"" if self.sent else self._start(0, "the application returned without calling start_response()")
            if self.cl is not None and self.nsent < self.cl and not self.no_body:
                self.keep = False  # the core sees the short body too
            self.send(head + _END)
        elif not self.sent:
            self.send(self._start(0, "the application returned without calling start_response()"))
        elif self.chunked:
            self.send(b"0\r\n\r\n")
        elif self.cl is not None and self.nsent < self.cl and not self.no_body:
            self.keep = False  # the body is short of its Content-Length


def _process(app, env, send, is_head, keep, http10, framed=False):
    """Runs the app for one request and writes its response.

    Returns whether the connection may be kept open.
    """
    r = _Response(send, is_head, keep, http10, framed)
    result = None
    try:
        try:
            result = app(env, r.start_response)
            if type(result) is list and not r.sent:
                r.whole(b"".join(result))
            else:
                write = r.write
                for data in result:
                    if data:
                        write(data)
                r.end()
        finally:
            if result is not None and type(result) is not list:
                close = getattr(result, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:
                        _log("error in close() of the response iterable:")
                        _print_exc()
    except _ClientGone:
        return False
    except Exception:
        _log("error in application (%s %s):" % (env.get("REQUEST_METHOD"), env.get("PATH_INFO")))
        _print_exc()
        sys.stderr.flush()
        if r.sent:
            return False  # a second response would be garbage on the wire
        try:
            send(_error_response(500, r.keep, is_head, framed))
        except _ClientGone:
            return False
    return r.keep


# ------------------------------------------------------------------ serve ---


def _serve_conn(conn, lfd, app, base_env, base, wait=None):
    """Serves requests on one connection until it closes.

    Returns early (closing conn) if the connection is idle and another one is
    waiting on the listener: the core has moved on to a new connection, and
    with one request at a time this one would otherwise block it. With
    threads, wait() (from _Threads) makes that decision instead: it returns
    True when the connection has data, False when it must go.
    """
    global _idle
    recv = conn.recv
    sendall = conn.sendall

    def send(data):
        try:
            sendall(data)
        except OSError:
            raise _ClientGone() from None

    if wait is None:
        wait = _idle_wait(conn, lfd)
    buf = b""
    while True:
        _idle = True
        if _stopping:
            return
        if _WIRE:
            if not buf:
                if not wait():
                    return
                buf = recv(RECV_SIZE)
                if not buf:
                    return
            if buf[0] == _MAGIC:
                _idle = False
                buf = _serve_framed(buf, recv, send, app, base_env, base)
                if buf is None:
                    return
                continue
        head = _read_head(buf, recv, send, wait)
        if head is None:
            return
        _idle = False
        lines, buf = head
        buf = _serve_http1(lines, buf, recv, send, app, base_env, base)
        if buf is None:
            return


def _idle_wait(conn, lfd):
    """wait() for one connection at a time: True when conn has data, False
    when it is idle and another connection waits on the listener."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    poller.register(lfd, select.POLLIN)
    poll = poller.poll

    def wait():
        ready = poll()
        return not (len(ready) == 1 and ready[0][0] == lfd)

    return wait


def _serve_http1(lines, buf, recv, send, app, base_env, base):
    """One HTTP/1.1 request whose head lines are read: the environ, the
    body, the response. Returns what is left of buf for the next request,
    or None when the connection must close."""
    env = base_env.copy()
    try:
        method, target, proto = _header_env(env, lines)
    except ValueError:
        send(_error_response(400, False))
        return None
    if "HTTP_X_FERRY_OOB_WORK" in env:
        # The core's, not the app's: the hooks, then the connection closes.
        send(_out_of_band())
        return None
    _request_env(env, method, target, proto, base)
    c = env.get("HTTP_CONNECTION")
    if proto == "HTTP/1.1":
        keep = not c or "close" not in c.lower()
        http10 = False
    elif proto == "HTTP/1.0":
        keep = bool(c) and "keep-alive" in c.lower()
        http10 = True
    else:
        send(_error_response(400, False))
        return None

    body = _read_body(env, buf, recv, send)
    if body is None:
        return None
    buf, streaming, complete = body
    if not complete:
        keep = False

    keep = _process(app, env, send, method == "HEAD", keep, http10)
    if streaming is not None and not streaming.finish():
        keep = False
    return buf if keep else None


def _serve_framed(buf, recv, send, app, base_env, base):
    """Serves one ferry-wire/1 request, buf holding its start; returns the
    bytes after it, or None when the connection is done."""
    while len(buf) < 5:
        data = recv(RECV_SIZE)
        if not data:
            return None
        buf += data
    end = 5 + int.from_bytes(buf[1:5], "big")
    if end > 5 + (1 << 20):
        return None  # not the core's: nothing sensible to answer
    while len(buf) < end:
        data = recv(max(RECV_SIZE, end - len(buf)))
        if not data:
            return None
        buf += data
    # The environment, already in CGI form: one split.
    env = base_env.copy()
    if end > 5:
        it = iter(buf[5:end].decode("latin-1").split("\0"))
        env.update(zip(it, it))
    buf = buf[end:]
    # What is the loader's own (docs/loader-wire.md): the scheme key, the
    # base URI, percent-decoding, and no REQUEST_URI in WSGI.
    env.pop("REQUEST_URI", None)
    env["wsgi.url_scheme"] = "https" if env.get("HTTPS") == "on" else "http"
    path = env.get("PATH_INFO") or "/"
    if base:
        if path.startswith(base) and (len(path) == len(base) or path[len(base)] == "/"):
            path = path[len(base) :]
        else:
            env["SCRIPT_NAME"] = ""
    if "%" in path:
        path = _unquote_to_bytes(path.encode("latin-1")).decode("latin-1")
    env["PATH_INFO"] = path
    body = _read_body(env, buf, recv, send)
    if body is None:
        return None
    buf, streaming, keep = body
    keep = _process(app, env, send, env.get("REQUEST_METHOD") == "HEAD", keep, False, True)
    if streaming is not None and not streaming.finish():
        keep = False
    return buf if keep else None


def _read_head(buf, recv, send, wait):
    """The next request head's lines and the bytes after it, reading after
    what buf holds; None when the connection is done (closed, given up by
    wait(), or a head too large, answered 400)."""
    if buf[:2] == b"\r\n":
        buf = buf.lstrip(b"\r\n")
    end = buf.find(b"\r\n\r\n")
    while end < 0:
        if len(buf) > MAX_HEAD:
            send(_error_response(400, False))
            return None
        if not buf and not wait():
            return None
        data = recv(RECV_SIZE)
        if not data:
            return None
        buf = buf + data if buf else data.lstrip(b"\r\n")
        end = buf.find(b"\r\n\r\n")
    return buf[:end].decode("latin-1").split("\r\n"), buf[end + 4 :]


def _header_env(env, lines):
    """Puts the header lines (lines[1:]) into env; returns the request line's
    method, target and protocol. ValueError: a malformed head."""
    keys = _keys
    method, target, proto = lines[0].split(" ")
    for i in range(1, len(lines)):
        name, sep, value = lines[i].partition(":")
        if not sep:
            raise ValueError("header line without a colon")
        key = keys.get(name)
        if not key:
            if key is None:
                if len(keys) >= 1024:
                    keys.clear()
                key = keys[name] = _env_key(name)
            if not key:
                continue
        value = value.strip()
        if key in env:
            env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            env[key] = value
    return method, target, proto


def _request_env(env, method, target, proto, base):
    """The rest of the environ: scheme, peer, server, request line, path."""
    scheme = env.pop("HTTP_X_FERRY_SCHEME", "http")
    if scheme == "https":
        env["HTTPS"] = "on"
    else:
        scheme = "http"
    env["wsgi.url_scheme"] = scheme
    peer = env.pop("HTTP_X_FERRY_CLIENT_ADDR", None)
    if peer:
        v = _peers.get(peer) or _cached(_peers, peer, _split_peer, peer)
        env["REMOTE_ADDR"], env["REMOTE_PORT"] = v
    host = env.get("HTTP_HOST", "")
    v = _hosts.get(host + scheme) or _cached(_hosts, host + scheme, _split_host, host, scheme)
    env["SERVER_NAME"], env["SERVER_PORT"] = v
    env["REQUEST_METHOD"] = method
    env["SERVER_PROTOCOL"] = proto
    if target[:1] != "/":
        # Absolute form (origin form is what the core sends) or '*'.
        i = target.find("://")
        if i > 0:
            j = target.find("/", i + 3)
            q = target.find("?", i + 3)
            target = target[j:] if j >= 0 and (q < 0 or j < q) else "/" + (target[q:] if q >= 0 else "")
    path, _, env["QUERY_STRING"] = target.partition("?")
    if base:
        if path.startswith(base) and (len(path) == len(base) or path[len(base)] == "/"):
            path = path[len(base) :]
        else:
            env["SCRIPT_NAME"] = ""
    if "%" in path:
        path = _unquote_to_bytes(path.encode("latin-1")).decode("latin-1")
    env["PATH_INFO"] = path


def _read_body(env, buf, recv, send):
    """Sets wsgi.input from the Content-Length body, buf holding what came
    after the head. Returns (the bytes after the body, the streaming input
    or None, whether the body came whole), or None when the request is
    answered already (a 400 or 501) and the connection is done."""
    clen = env.get("CONTENT_LENGTH")
    if "HTTP_TRANSFER_ENCODING" in env:
        send(_error_response(501, False))  # the core always sends Content-Length
        return None
    if clen is None:
        n = 0
    else:
        try:
            n = int(clen)
            if n < 0 or not clen.isdigit():
                raise ValueError
        except ValueError:
            send(_error_response(400, False))
            return None
    if not n:
        env["wsgi.input"] = io.BytesIO()
        return buf, None, True
    if len(buf) >= n:
        env["wsgi.input"] = io.BytesIO(buf[:n])
        return buf[n:], None, True
    if n > SMALL_BODY:
        streaming = env["wsgi.input"] = _Input(recv, buf, n)
        return b"", streaming, True
    parts = [buf]
    got = len(buf)
    complete = True
    while got < n:
        data = recv(n - got)
        if not data:
            complete = False
            break
        parts.append(data)
        got += len(data)
    env["wsgi.input"] = io.BytesIO(b"".join(parts))
    return b"", None, complete


def _base_env(base, threaded):
    return {
        "SCRIPT_NAME": base,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": threaded,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


def _serve(listener, app, base):
    global _idle
    base_env = _base_env(base, False)
    lfd = listener.fileno()
    while True:
        _idle = True
        if _stopping:
            return
        try:
            conn, _ = listener.accept()
        except OSError as e:
            _log("accept: %s" % e)
            continue
        try:
            _serve_conn(conn, lfd, app, base_env, base)
        except (OSError, _ClientGone):
            pass
        finally:
            conn.close()


class _Threads(object):
    """Serves up to n connections at once, a thread each (FERRY_THREADS).

    The main thread accepts while fewer than n connections are open. A
    connection waiting for its next request gives its slot up when all n
    are taken and another connection waits on the listener, as the
    single-threaded loop does, so the core can never deadlock behind its own
    idle connections.
    """

    def __init__(self, listener, app, base, n):
        global _wake_w
        self.listener = listener
        self.lfd = listener.fileno()
        self.app = app
        self.base = base
        self.n = n
        self.active = 0  # connections holding a slot
        # A slot given up for a waiting connection that the main thread has
        # not accepted yet: no other idle connection gives up its slot too.
        self.offered = False
        self.cond = threading.Condition(threading.Lock())
        self.threads = set()
        self.wake_r, _wake_w = os.pipe()
        self.base_env = _base_env(base, True)

    def serve(self):
        cond = self.cond
        main = select.poll()
        main.register(self.lfd, select.POLLIN)
        main.register(self.wake_r, select.POLLIN)
        accept = self.listener.accept
        while not _stopping:
            with cond:
                while self.active >= self.n and not _stopping:
                    cond.wait()
            if _stopping:
                break
            for fd, _ in main.poll():
                if fd == self.wake_r:
                    break
            else:
                try:
                    conn, _ = accept()
                except OSError as e:
                    with cond:
                        self.offered = False
                    _log("accept: %s" % e)
                    continue
                t = threading.Thread(target=self._conn, args=(conn,), name="ferry-conn", daemon=True)
                with cond:
                    self.active += 1
                    self.offered = False
                    self.threads.add(t)
                t.start()
        # SIGTERM: every connection finishes its current request.
        with cond:
            threads = list(self.threads)
        for t in threads:
            t.join()

    def _conn(self, conn):
        _common.block_signals_here()
        cond = self.cond
        cfd, lfd, wake = conn.fileno(), self.lfd, self.wake_r
        full = select.poll()  # data, a waiting connection, SIGTERM
        for fd in (cfd, lfd, wake):
            full.register(fd, select.POLLIN)
        own = select.poll()  # data, SIGTERM
        own.register(cfd, select.POLLIN)
        own.register(wake, select.POLLIN)
        waiting = select.poll()  # is a connection still waiting to be accepted?
        waiting.register(lfd, select.POLLIN)
        released = False

        def wait():
            nonlocal released
            ready = full.poll()
            while True:
                listener = False
                for fd, _ in ready:
                    if fd == cfd:
                        return True  # a request, or EOF
                    if fd == wake:
                        return False
                    listener = True
                if listener:
                    with cond:
                        # Re-checked under the lock: another idle connection
                        # may have given up its slot already, or the main
                        # thread accepted meanwhile.
                        if self.active >= self.n and not self.offered and waiting.poll(0):
                            self.active -= 1
                            self.offered = True
                            released = True
                            cond.notify()
                            return False
                    # A slot is free: the main thread is about to accept.
                    ready = own.poll(5)
                    if ready:
                        continue
                ready = full.poll()

        try:
            _serve_conn(conn, lfd, self.app, self.base_env, self.base, wait)
        except (OSError, _ClientGone):
            pass
        except Exception:
            _log("error serving a connection:")
            _print_exc()
        finally:
            conn.close()
            with cond:
                if not released:
                    self.active -= 1
                    cond.notify()
                self.threads.discard(threading.current_thread())


# ---------------------------------------------------------------- startup ---


def _load_app(root, startup):
    import importlib.util

    path = os.path.join(root, startup)
    spec = importlib.util.spec_from_file_location("passenger_wsgi", path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load startup file %s" % path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = path
    sys.modules["passenger_wsgi"] = module
    spec.loader.exec_module(module)
    app = getattr(module, "application", None)
    if app is None:
        raise AttributeError("startup file %s does not define 'application'" % startup)
    if not callable(app):
        raise TypeError("'application' in %s is not callable (it is %s)" % (startup, type(app).__name__))
    return app


def _print_exc():
    """traceback.print_exc(), for the exception being handled."""
    import traceback

    traceback.print_exc()


def _unquote_to_bytes(b):
    global _unquote_to_bytes
    from urllib.parse import unquote_to_bytes

    _unquote_to_bytes = unquote_to_bytes  # from now on, directly
    return unquote_to_bytes(b)



def _spawn_fields(line):
    """The spawn command line, a JSON object of strings, as a dict; without
    json for the usual one-level object of strings the core sends, through
    json.loads for anything else."""
    try:
        scanstring = _common.json_scan
        if scanstring is None:
            raise ValueError
        s = line.strip()
        n = len(s)
        obj = {}
        if s[0] != "{":
            raise ValueError
        i = 1
        while s[i] in " \t\r\n":
            i += 1
        while s[i] != "}":
            if s[i] != '"':
                raise ValueError
            key, i = scanstring(s, i + 1)
            while s[i] in " \t\r\n":
                i += 1
            if s[i] != ":":
                raise ValueError
            i += 1
            while s[i] in " \t\r\n":
                i += 1
            if s[i] != '"':
                raise ValueError
            obj[key], i = scanstring(s, i + 1)
            while s[i] in " \t\r\n":
                i += 1
            if s[i] == ",":
                i += 1
                while s[i] in " \t\r\n":
                    i += 1
                if s[i] != '"':
                    raise ValueError
            elif s[i] != "}":
                raise ValueError
        if i != n - 1:
            raise ValueError
        return obj
    except (ValueError, IndexError):
        import json

        return json.loads(line)


def _report(fd, obj, keep=False):
    _common.report(fd, _common.json_line(obj), keep)


def _fail(status_fd, exc):
    """Reports exc as the error handshake and exits 1."""
    _common.fail(status_fd, _common.summary(exc), _common.app_traceback(exc, __file__))


def _thread_count(env):
    v = (env.get("FERRY_THREADS") or "").strip()
    if not v:
        return 1
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError("FERRY_THREADS=%r is not a positive integer" % v)
    return n


def _ready(sock_path, concurrency):
    """The ready handshake, naming the wire chosen (none: HTTP/1.1)."""
    obj = {"status": "ready", "socket": sock_path, "concurrency": concurrency}
    if _WIRE:
        obj["wire"] = _WIRE
    return obj


def _run(listener, sock_path, status_fd, app, base, nthreads):
    """Reports ready and serves until SIGTERM; removes the socket."""
    global _idle
    signal.signal(signal.SIGTERM, _on_term if nthreads == 1 else _on_term_threaded)
    try:
        _backtraces_on(status_fd, threaded=nthreads > 1)
        if nthreads == 1:
            _report(status_fd, _ready(sock_path, 1), keep=True)
            _serve(listener, app, base)
        else:
            threads = _Threads(listener, app, base, nthreads)
            _report(status_fd, _ready(sock_path, nthreads), keep=True)
            threads.serve()
    except _Stop:
        pass
    _idle = False
    listener.close()
    try:
        os.unlink(sock_path)
    except OSError:
        pass


# ---------------------------------------------------------- smart spawning ---


def _read_spawn(conn):
    """Reads one spawn command: (worker socket path, [stdout, stderr, status]).

    Any fds received are closed on failure, except that a status fd gets an
    error line first, so that the core sees why.
    """
    conn.settimeout(10)
    msg, fds, flags, _ = socket.recv_fds(conn, 65536, 3)
    try:
        data = msg
        while b"\n" not in data and len(data) < 65536:
            more = conn.recv(65536)
            if not more:
                break
            data += more
        if flags & getattr(socket, "MSG_CTRUNC", 0) or len(fds) != 3:
            raise ValueError("spawn command with %d file descriptors, want 3 (stdout, stderr, status)" % len(fds))
        req = _spawn_fields(data.split(b"\n", 1)[0].decode("utf-8"))
        if not isinstance(req, dict) or req.get("command") != "spawn":
            raise ValueError("unknown command %r" % (req.get("command") if isinstance(req, dict) else req))
        path = req.get("socket")
        if not isinstance(path, str) or not path:
            raise ValueError("spawn command without a socket")
        return path, fds
    except BaseException as exc:
        if len(fds) == 3:
            try:
                _report(fds.pop(), {"status": "error", "summary": "preloader: %s" % exc, "details": ""})
            except OSError:
                pass
        for fd in fds:
            os.close(fd)
        raise


def _reopen_stdio():
    """New unbuffered sys.stdout and sys.stderr on fds 1 and 2."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name, None)
        enc = getattr(old, "encoding", None) or "utf-8"
        errors = getattr(old, "errors", None) or ("backslashreplace" if fd == 2 else "strict")
        raw = io.FileIO(fd, "w", closefd=False)
        setattr(sys, name, io.TextIOWrapper(raw, encoding=enc, errors=errors, line_buffering=True, write_through=True))


def _worker(ctl, conn, fds, sock_path, lifeline_fd, app, base, nthreads):
    """The child side of a fork: becomes a loader serving on sock_path.

    Never returns.
    """
    global _stopping, _idle, _wake_w
    code = 1
    out_fd, err_fd, status_fd = fds
    try:
        try:
            conn.close()
            ctl.close()
            os.setsid()
            for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _stopping, _idle, _wake_w = False, True, -1
            # Not the preloader's sequence: reseeded, if the app has random
            # at all (a later import seeds itself).
            random = sys.modules.get("random")
            if random is not None:
                random.seed()
            os.set_inheritable(status_fd, False)
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            for fd in (out_fd, err_fd):
                if fd > 2 and fd != status_fd:
                    os.close(fd)
            _reopen_stdio()
            _dump_on_sigquit()  # SIG_DFL above undid it; and the new stderr
            _start_lifeline(lifeline_fd)  # the preloader's watcher thread did not survive the fork
            listener = _listen(sock_path)
        except BaseException as exc:
            _fail(status_fd, exc)
        _run(listener, sock_path, status_fd, app, base, nthreads)
        code = 0
        try:
            import atexit

            atexit._run_exitfuncs()  # as sys.exit would in a direct-spawned loader
        except BaseException:
            pass
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        _log("worker failed:")
        _print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code)


def _preload(ctl, ctl_path, status_fd, lifeline_fd, app, base, nthreads):
    """The preloader: forks a worker for each spawn command on ctl."""
    global _idle
    workers = set()

    def reap(signum=None, frame=None):
        # Only our workers: the app's own children are the app's business.
        for pid in list(workers):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                workers.discard(pid)

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, _on_term)
    frozen = False
    try:
        _report(status_fd, {"status": "ready", "preloader": True})
        while True:
            _idle = True
            if _stopping:
                break
            try:
                conn, _ = ctl.accept()
            except OSError as e:
                _log("accept: %s" % e)
                continue
            _idle = False
            try:
                try:
                    path, fds = _read_spawn(conn)
                except Exception as e:
                    _log("bad spawn request: %s" % e)
                    continue
                if not frozen:
                    # Keep the preloaded objects out of the collector's
                    # reach: untouched, their pages stay shared.
                    gc.freeze()
                    frozen = True
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                except Exception:
                    pass
                try:
                    with warnings.catch_warnings():
                        # 3.12+ warns about fork() with threads: ours is the
                        # lifeline watcher, which the child replaces.
                        warnings.simplefilter("ignore", DeprecationWarning)
                        pid = os.fork()
                except OSError as e:
                    _log("fork: %s" % e)
                    try:
                        _report(fds[2], {"status": "error", "summary": "preloader: fork: %s" % e, "details": ""})
                    except OSError:
                        pass
                    for fd in fds[:2]:
                        os.close(fd)
                    continue
                if pid == 0:
                    _worker(ctl, conn, fds, path, lifeline_fd, app, base, nthreads)
                workers.add(pid)
                reap()  # in case it died before it was in the set
                for fd in fds:
                    os.close(fd)
            finally:
                conn.close()
    except _Stop:
        pass
    _idle = False
    ctl.close()
    try:
        os.unlink(ctl_path)
    except OSError:
        pass


def main():
    env = os.environ
    status_fd = int(env.get("FERRY_STATUS_FD") or -1)
    lifeline_fd = int(env.get("FERRY_LIFELINE_FD") or -1)
    for fd in (status_fd, lifeline_fd):
        if fd >= 0:
            os.set_inheritable(fd, False)  # not for the app's children
    _start_lifeline(lifeline_fd)

    root = env.get("FERRY_APP_ROOT") or os.getcwd()
    startup = env.get("FERRY_STARTUP_FILE") or "passenger_wsgi.py"
    base = (env.get("FERRY_BASE_URI") or "").rstrip("/")
    smart = env.get("FERRY_SPAWN_METHOD") == "smart"
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] in (here, ""):
        del sys.path[0]  # the loader's directory is not the app's business
    sys.path.insert(0, root)

    _dump_on_sigquit()
    try:
        nthreads = _thread_count(env)
        _install_ferry()
        app = _load_app(root, startup)
        sock_path = env.get("FERRY_SOCKET")
        if not sock_path:
            raise RuntimeError("FERRY_SOCKET is not set")
        listener = _listen(sock_path)
    except BaseException as exc:
        _fail(status_fd, exc)

    if smart:
        _preload(listener, sock_path, status_fd, lifeline_fd, app, base, nthreads)
    else:
        _run(listener, sock_path, status_fd, app, base, nthreads)
    sys.exit(0)


if __name__ == "__main__":
    main()
