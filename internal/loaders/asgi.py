"""Ferry's ASGI runner.

The core runs this script as ``python3 asgi.py`` with the working directory
set to the app root and the environment described in docs/architecture.md
("The loader contract"). It imports the app's startup file (FERRY_STARTUP_FILE,
default ``asgi.py``; the callable is its ``application``, else its ``app``),
runs the lifespan startup, listens on a Unix socket, reports readiness (or
the error) as one JSON line on the status fd with ``"concurrency": 0``, and
serves HTTP/1.1 on that socket with asyncio: any number of connections and
requests at once, WebSocket over Upgrade included.

Out-of-band work. Before the app is loaded, a module named ``ferry`` goes
into sys.modules (unless the app has its own ``ferry`` module or package,
in its directory or installed: then a line on stderr says so and the app
keeps its own):

    import ferry

    @ferry.on_out_of_band_work      # or ferry.on_out_of_band_work(fn)
    async def collect():            # no arguments; plain def works too
        ...

    ferry.out_of_band_hooks()       # the registered hooks (the list itself)

Any request carrying the header X-Ferry-Oob-Work is the core's (clients
cannot send X-Ferry-* headers): it never reaches the app. The runner calls
every hook in order on the event loop, awaiting what a hook returns when it
is awaitable (an ``async def``), and answers ``200 OK``, or ``500`` naming
the errors if any hook raised (each traceback goes to stderr; the other
hooks still run); the connection then closes. Without hooks the work is
gc.collect(). An app asks for it with the response header
X-Ferry-Request-OOB-Work: true (the core's business).

SIGQUIT (the core sends it before killing a request that ran longer than
--max-request-time, and SIGKILLs a second later): faulthandler writes the
Python stack of every thread to stderr at once ("Thread 0x… (most recent
call first)" blocks; that shows code that blocks the event loop), and, as
soon as the event loop runs, the runner writes the stack of every asyncio
task (that shows a request awaiting something forever). The process
carries on.

Standard library only; Python 3.9+.
"""

import asyncio
import base64
import faulthandler
import gc
import hashlib
import inspect
import json
import os
import signal
import struct
import sys
import traceback


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
_fail = _common.fail
_install_ferry = _common.install_ferry
_log = _common.log
_start_lifeline = _common.start_lifeline
_summary = _common.summary

from urllib.parse import unquote_to_bytes

_common.TAG = "ferry asgi"

MAX_HEAD = 64 * 1024  # request line + headers
READ_SIZE = 64 * 1024  # reads while waiting for a head
BODY_CHUNK = 256 * 1024  # largest request body piece handed to the app

# ferry-wire/1 (docs/loader-wire.md), in its ASGI head layout: chosen when
# the core offers it in FERRY_WIRE; HTTP/1.1 is served still (WebSockets,
# the out-of-band request), request by request, told by the first byte.
_WIRE = 1 if "1" in (os.environ.get("FERRY_WIRE") or "").split(",") else 0
_MAGIC = b"\xf1"
_END = b"\0\0\0\0"  # the end chunk of a framed response
STREAM_LIMIT = 256 * 1024  # asyncio pauses reading at twice this much buffered
WS_MAX_MESSAGE = 16 * 1024 * 1024  # larger WebSocket messages: close 1009
WS_CLOSE_TIMEOUT = 5.0  # seconds to wait for the peer's close frame

_ASGI_HTTP = {"version": "3.0", "spec_version": "2.3"}
_ASGI_WS = {"version": "3.0", "spec_version": "2.3"}
_ASGI_LIFESPAN = {"version": "3.0", "spec_version": "2.0"}

_DISCONNECT = {"type": "http.disconnect"}
_EMPTY_BODY = {"type": "http.request", "body": b"", "more_body": False}


class ClientDisconnected(OSError):
    """send() on a connection that the core has closed."""


def _log_exc(msg):
    try:
        sys.stderr.write("[ferry asgi] %s\n%s" % (msg, traceback.format_exc()))
        sys.stderr.flush()
    except Exception:
        pass


# ------------------------------------------------------------- SIGQUIT ---


def _coro_frames(coro):
    """The frames of a coroutine and of what it awaits, outermost first."""
    frames = []
    seen = set()
    while coro is not None and id(coro) not in seen:
        seen.add(id(coro))
        f = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if f is not None:
            frames.append((f, f.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return frames


def _dump_tasks():
    """The stack of every pending asyncio task on stderr (after a SIGQUIT)."""
    try:
        tasks = [t for t in asyncio.all_tasks() if not t.done()]
        out = ["[ferry asgi] SIGQUIT: the stacks of %d asyncio tasks (the threads' are above)\n" % len(tasks)]
        for t in tasks:
            out.append("Task %r, %r (most recent call last):\n" % (t.get_name(), t.get_coro()))
            out.extend(traceback.StackSummary.extract(_coro_frames(t.get_coro())).format())
        sys.stderr.write("".join(out))
        sys.stderr.flush()
    except Exception:
        _log_exc("SIGQUIT: cannot list the asyncio tasks:")


# ------------------------------------------------- backtraces on demand ---


def _backtraces_on(loop, fd):
    """SIGWINCH: the stack of every thread and of every asyncio task on fd
    (see _ferry_common); the loop's handler adds the tasks' stacks (where
    the requests are) once the loop runs again."""
    _common.backtraces_on(fd, lambda: loop.add_signal_handler(signal.SIGWINCH, _bt_tail, fd))


def _bt_tail(fd):
    out = _common.thread_names()
    try:
        tasks = [t for t in asyncio.all_tasks() if not t.done()]
        out.append("%d asyncio tasks:\n" % len(tasks))
        for t in tasks:
            out.append("Task %r, %r (most recent call last):\n" % (t.get_name(), t.get_coro()))
            out.extend(traceback.StackSummary.extract(_coro_frames(t.get_coro())).format())
    except Exception as e:
        out.append("(cannot list the asyncio tasks: %s)\n" % e)
    _common.write_tail(fd, out)


# ----------------------------------------------------- out-of-band work ---


async def _out_of_band():
    """Runs the out-of-band hooks (or gc.collect()); the whole response."""
    hooks = list(_common.out_of_band_hooks())
    errors = []
    if not hooks:
        gc.collect()
    for fn in hooks:
        try:
            r = fn()
            if inspect.isawaitable(r):
                await r
        except Exception as exc:
            _log_exc("error in out-of-band hook %s:" % _common.hook_name(fn))
            errors.append(_common.hook_error(fn, exc))
    code, data = _common.oob_body(hooks, errors)
    return b"%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        _status_line(code),
        len(data),
        data,
    )


# ------------------------------------------------------------- the scope ---

_hosts = {}  # (Host header, scheme) -> ("name", port)


def _split_host(host, scheme):
    default = 443 if scheme in ("https", "wss") else 80
    name, port = _common.split_host(host, "")
    try:
        return (name, int(port) if port else default)
    except ValueError:
        return (name, default)


_peers = {}  # X-Ferry-Client-Addr -> (ip, port) or None


def _split_peer(addr):
    if addr[:1] == "[" and "]" not in addr:
        return (addr, 0)
    ip, port = _common.split_peer(addr)
    try:
        return (ip, int(port) if port else 0)
    except ValueError:
        return (ip, 0)


_paths = {}  # raw path -> decoded path

# What the runner does with a request header, by its name as sent.
_H_PLAIN, _H_HOST, _H_CLEN, _H_CONN, _H_UPGRADE, _H_TE, _H_PEER, _H_SCHEME, _H_DROP, _H_OOB = range(10)
_H_KINDS = {
    b"host": _H_HOST,
    b"content-length": _H_CLEN,
    b"connection": _H_CONN,
    b"upgrade": _H_UPGRADE,
    b"transfer-encoding": _H_TE,
    b"x-ferry-client-addr": _H_PEER,
    b"x-ferry-scheme": _H_SCHEME,
    b"x-ferry-oob-work": _H_OOB,
}
_names = {}  # header name as sent -> (lowercase name, kind)


def _name_kind(name):
    lname = name.strip().lower()
    kind = _H_KINDS.get(lname, _H_PLAIN)
    if kind == _H_PLAIN and lname[:8] == b"x-ferry-":
        kind = _H_DROP  # internal headers are the core's, not the app's
    v = (lname, kind)
    if len(_names) >= 1024:
        _names.clear()
    _names[name] = v
    return v


def _decode_path(raw):
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "replace")


# -------------------------------------------------------------- responses ---

_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection", b"keep-alive"))

_status_lines = {}


def _status_line(code):
    line = _status_lines.get(code)
    if line is None:
        if type(code) is not int or not 100 <= code <= 999:
            raise ValueError("invalid status %r" % (code,))
        from http import HTTPStatus

        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = "Status"
        line = _status_lines[code] = ("HTTP/1.1 %d %s\r\n" % (code, reason)).encode("latin-1")
    return line


def _plain(code, keep, head=False, extra=b""):
    """A whole plain-text response: "404 Not Found\\n"."""
    line = _status_line(code)
    body = line[9:-2] + b"\n"
    return b"%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s%s\r\n%s" % (
        line,
        len(body),
        extra,
        b"" if keep else b"Connection: close\r\n",
        b"" if head else body,
    )


def _fplain(code, keep, head=False):
    """_plain on ferry-wire/1."""
    line = _status_line(code)
    reason = line[9:-2]
    body = reason + b"\n"
    h = b"%s\0Content-Type\0text/plain; charset=utf-8\0Content-Length\0%d%s" % (
        reason,
        len(body),
        b"" if keep else b"\0Connection\0close",
    )
    chunk = b"" if head else len(body).to_bytes(4, "big") + body
    return len(h).to_bytes(4, "big") + h + chunk + _END


def _as_bytes(v):
    if type(v) is bytes:
        return v
    if isinstance(v, str):
        return v.encode("latin-1")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError("header names and values must be bytes, not %s" % type(v).__name__)


def _check_head(parts):
    """Every part ends in exactly one CRLF: any other CR or LF is an injection."""
    n = len(parts)
    head = b"".join(parts)
    if head.count(b"\n") != n or head.count(b"\r") != n:
        raise ValueError("CR or LF in a response header")
    return head


# ------------------------------------------------------------------ HTTP ---


class _HTTP(object):
    """One request/response cycle: the app's receive and send."""

    __slots__ = (
        "conn",
        "transport",
        "body",
        "sock_left",
        "body_done",
        "disconnected",
        "started",
        "written",
        "complete",
        "status",
        "headers",
        "no_body",
        "chunked",
        "cl",
        "nsent",
        "keep",
        "http10",
        "framed",
    )

    def __init__(self, conn, body, sock_left, keep, http10, no_body, framed=False):
        self.framed = framed
        self.conn = conn
        self.transport = conn.transport
        self.body = body  # body bytes already received, not yet handed out
        self.sock_left = sock_left  # body bytes still in the socket
        self.body_done = False  # the app has had the whole body
        self.disconnected = False
        self.started = False  # http.response.start received
        self.written = False  # the head is on the wire
        self.complete = False  # the whole response is on the wire
        self.status = 200
        self.headers = None
        self.no_body = no_body
        self.chunked = False
        self.cl = None
        self.nsent = 0
        self.keep = keep
        self.http10 = http10

    async def receive(self):
        if not self.body_done:
            body = self.body
            if body or not self.sock_left:
                self.body = b""
                more = self.sock_left > 0
                if not more:
                    self.body_done = True
                    if not body:
                        return _EMPTY_BODY.copy()
                return {"type": "http.request", "body": body, "more_body": more}
            left = self.sock_left
            try:
                data = await self.conn.reader.read(left if left < BODY_CHUNK else BODY_CHUNK)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self.body_done = True
                self.disconnected = True
                self.keep = False
                return _DISCONNECT.copy()
            left -= len(data)
            self.sock_left = left
            if not left:
                self.body_done = True
            return {"type": "http.request", "body": data, "more_body": left > 0}
        if self.complete or self.disconnected:
            return _DISCONNECT.copy()
        # The whole body was read: wait until the core closes the connection.
        await self.conn.wait_gone()
        self.disconnected = True
        return _DISCONNECT.copy()

    async def send(self, message):
        t = message["type"]
        if t == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response was complete")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if type(body) is not bytes:
                if not isinstance(body, (bytearray, memoryview)):
                    raise TypeError("http.response.body body must be bytes, not %s" % type(body).__name__)
                body = bytes(body)
            transport = self.transport
            if transport.is_closing():
                self.keep = False
                raise ClientDisconnected("the connection is closed")
            if not self.written:
                data = self._head(body, more)
            elif self.no_body:
                data = b""
            else:
                data = self._frame(body)
            if not more:
                self.complete = True
                if self.chunked:
                    data += b"0\r\n\r\n"
                elif self.cl is not None and self.nsent < self.cl and not self.no_body:
                    self.keep = False  # short of its Content-Length: the close tells
                if self.framed:
                    data += _END
            if data:
                transport.write(data)
                if transport.get_write_buffer_size():
                    try:
                        await self.conn.writer.drain()
                    except (ConnectionError, OSError):
                        self.keep = False
                        raise ClientDisconnected("the connection is closed") from None
        elif t == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            _status_line(status)  # validates it
            self.status = status
            self.headers = message.get("headers", ())
            self.started = True
        else:
            raise RuntimeError("unexpected ASGI message %r in an HTTP request" % (t,))

    def _head(self, body, more):
        """The response head followed by the first piece of the body."""
        status = self.status
        is_head = self.no_body
        bodyless = status < 200 or status == 204 or status == 304
        no_body = self.no_body = is_head or bodyless
        keep = self.keep
        framed = self.framed
        parts = [_status_line(status)[9:-2] if framed else _status_line(status)]
        cl = None
        for name, value in self.headers:
            if type(name) is not bytes:
                name = _as_bytes(name)
            if type(value) is not bytes:
                value = _as_bytes(value)
            lname = name.lower()
            if lname in _FRAMING:
                if lname == b"content-length":
                    cl = int(value)
                    if cl < 0:
                        raise ValueError("negative Content-Length %r" % value)
                elif lname == b"connection" and b"close" in value.lower():
                    keep = False
                continue
            if framed:
                parts.append(name)
                parts.append(value)
            else:
                parts.append(b"%s: %s\r\n" % (name, value))
        if framed:
            if cl is None and not more and (not no_body or (is_head and not bodyless and body)):
                cl = len(body)
            if cl is not None:
                parts += (b"Content-Length", b"%d" % cl)
            if not keep:
                parts += (b"Connection", b"close")
            h = b"\0".join(parts)
            # A NUL would split elsewhere; CR or LF is as malformed as on HTTP/1.1.
            if h.count(b"\0") != len(parts) - 1 or b"\r" in h or b"\n" in h:
                raise ValueError("CR, LF or NUL in a response header")
            self.cl = cl
            self.keep = keep
            self.written = True
            h = len(h).to_bytes(4, "big") + h
            if no_body:
                return h
            return h + self._frame(body)
        if cl is not None:
            parts.append(b"Content-Length: %d\r\n" % cl)
        elif not more:
            # The whole body is here: its length. For HEAD, the length a GET
            # would have had, if the app sent that body.
            if not no_body or (is_head and not bodyless and body):
                cl = len(body)
                parts.append(b"Content-Length: %d\r\n" % cl)
        elif not no_body:
            if self.http10:
                keep = False  # the body ends when the connection does
            else:
                self.chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
        if not keep:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        head = _check_head(parts)
        self.cl = cl
        self.keep = keep
        self.written = True
        if no_body:
            return head
        return head + self._frame(body)

    def _frame(self, body):
        n = len(body)
        if not n:
            return b""
        cl = self.cl
        if cl is not None:
            room = cl - self.nsent
            if n > room:
                if room <= 0:
                    return b""
                body = body[:room]
                n = room
            self.nsent += n
            return n.to_bytes(4, "big") + body if self.framed else body
        self.nsent += n
        if self.framed:
            return n.to_bytes(4, "big") + body
        if self.chunked:
            return b"%x\r\n%s\r\n" % (n, body)
        return body


# ------------------------------------------------------------- WebSocket ---

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_WS_CONNECTING, _WS_OPEN, _WS_CLOSING, _WS_CLOSED = range(4)


class _WSClose(Exception):
    """A protocol violation by the peer: close with this code."""

    def __init__(self, code, reason=""):
        Exception.__init__(self, reason)
        self.code = code
        self.reason = reason


def _unmask(data, mask):
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def _ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def _ws_message(opcode, payload):
    """The websocket.receive event of a whole text (1) or binary message."""
    if opcode != 1:
        return {"type": "websocket.receive", "bytes": payload}
    try:
        return {"type": "websocket.receive", "text": payload.decode("utf-8")}
    except UnicodeDecodeError:
        raise _WSClose(1007, "text message is not UTF-8") from None


def _close_payload(code, reason):
    if code in (1005, 1006, 1015):  # never on the wire
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")[:123]


class _WebSocket(object):
    """One WebSocket connection: the app's receive and send, frames by hand."""

    def __init__(self, conn, key, buf):
        self.conn = conn
        self.transport = conn.transport
        self.key = key
        self.buf = buf  # bytes after the request head: frames already
        self.state = _WS_CONNECTING
        self.connect_sent = False
        self.queue = asyncio.Queue(maxsize=64)
        self.reader_task = None
        self.closed = None  # the disconnect message, once the connection is over
        self.peer_closed = asyncio.get_running_loop().create_future()
        self.response = None  # HTTP status sent instead of 101

    # ---- the app's side

    async def receive(self):
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        if self.closed is not None and self.queue.empty():
            return dict(self.closed)
        return await self.queue.get()

    async def send(self, message):
        t = message["type"]
        if t == "websocket.send":
            if self.state != _WS_OPEN or self.transport.is_closing():
                if self.state == _WS_CONNECTING:
                    raise RuntimeError("websocket.send before websocket.accept")
                raise ClientDisconnected("the WebSocket is closed")
            b = message.get("bytes")
            if b is not None:
                await self._write(_ws_frame(2, bytes(b)))
            else:
                text = message.get("text")
                if text is None:
                    raise ValueError("websocket.send without bytes or text")
                await self._write(_ws_frame(1, text.encode("utf-8")))
        elif t == "websocket.accept":
            if self.state != _WS_CONNECTING:
                raise RuntimeError("websocket.accept in state %d" % self.state)
            self._accept(message.get("subprotocol"), message.get("headers") or ())
            self.state = _WS_OPEN
            self.reader_task = asyncio.get_running_loop().create_task(self._read_frames())
            if self.conn.server.stopping:
                self.close(1012, "server restart")
        elif t == "websocket.close":
            if self.state == _WS_CONNECTING:
                self.respond(403)
            elif self.state == _WS_OPEN:
                code = message.get("code") or 1000
                self.close(code, message.get("reason") or "")
        else:
            raise RuntimeError("unexpected ASGI message %r in a WebSocket" % (t,))

    # ---- the wire

    def _accept(self, subprotocol, headers):
        digest = hashlib.sha1(self.key + _WS_GUID).digest()
        parts = [
            b"HTTP/1.1 101 Switching Protocols\r\n",
            b"Upgrade: websocket\r\n",
            b"Connection: Upgrade\r\n",
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n",
        ]
        if subprotocol:
            parts.append(b"Sec-WebSocket-Protocol: " + _as_bytes(subprotocol) + b"\r\n")
        for name, value in headers:
            name = _as_bytes(name)
            lname = name.lower()
            if lname in (b"upgrade", b"connection", b"sec-websocket-accept", b"content-length", b"transfer-encoding"):
                continue
            if lname == b"sec-websocket-protocol" and subprotocol:
                continue
            parts.append(b"%s: %s\r\n" % (name, _as_bytes(value)))
        parts.append(b"\r\n")
        self.transport.write(_check_head(parts))

    def respond(self, code):
        """An HTTP answer instead of the upgrade; the connection then closes."""
        if self.response is None and self.state == _WS_CONNECTING:
            self.response = code
            self.state = _WS_CLOSED
            if not self.transport.is_closing():
                self.transport.write(_plain(code, False))

    async def _write(self, data):
        transport = self.transport
        transport.write(data)
        if transport.get_write_buffer_size():
            try:
                await self.conn.writer.drain()
            except (ConnectionError, OSError):
                raise ClientDisconnected("the WebSocket is closed") from None

    def close(self, code, reason=""):
        """Sends a close frame (once); the peer's answer ends the connection."""
        if self.state != _WS_OPEN:
            return
        self.state = _WS_CLOSING
        if not self.transport.is_closing():
            self.transport.write(_ws_frame(8, _close_payload(code, reason)))
        asyncio.get_running_loop().call_later(WS_CLOSE_TIMEOUT, self._give_up)

    def _give_up(self):
        # No close frame from the peer in time (or the app stopped reading
        # and the frame reader is stuck on a full queue): hang up.
        if not self.peer_closed.done():
            self.transport.abort()
            self._finish(1006)

    def _finish(self, code, reason=""):
        if self.closed is None:
            self.closed = {"type": "websocket.disconnect", "code": code, "reason": reason}
            try:
                self.queue.put_nowait(dict(self.closed))
            except asyncio.QueueFull:
                pass  # receive() returns self.closed once the queue is drained
        if not self.peer_closed.done():
            self.peer_closed.set_result(None)

    async def _exact(self, n):
        buf = self.buf
        if len(buf) >= n:
            self.buf = buf[n:]
            return buf[:n]
        self.buf = b""
        return buf + await self.conn.reader.readexactly(n - len(buf))

    def _closed_by_peer(self, payload):
        """A close frame from the peer: echoed, then the connection is over."""
        code, reason = 1005, ""
        if len(payload) == 1:
            raise _WSClose(1002, "bad close frame")
        if len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise _WSClose(1007, "close reason is not UTF-8") from None
        if self.state == _WS_OPEN:
            self.state = _WS_CLOSING
            self.transport.write(_ws_frame(8, _close_payload(code if code != 1005 else 1000, "")))
        self._finish(code, reason)
        self.transport.close()

    async def _read_frames(self):
        exact = self._exact
        parts = None  # fragments of the message being assembled
        size = 0
        first_op = 0
        try:
            while True:
                b0, b1 = await exact(2)
                fin = b0 & 0x80
                opcode = b0 & 0x0F
                if b0 & 0x70:
                    raise _WSClose(1002, "reserved bits set")
                if not b1 & 0x80:
                    raise _WSClose(1002, "unmasked client frame")
                n = b1 & 0x7F
                if opcode >= 8:
                    if not fin or n > 125:
                        raise _WSClose(1002, "bad control frame")
                elif n == 126:
                    (n,) = struct.unpack("!H", await exact(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await exact(8))
                if size + n > WS_MAX_MESSAGE:
                    raise _WSClose(1009, "message too big")
                mask = await exact(4)
                payload = _unmask(await exact(n), mask) if n else b""
                if opcode == 0:
                    if parts is None:
                        raise _WSClose(1002, "continuation without a message")
                    parts.append(payload)
                    size += n
                    if not fin:
                        continue
                    payload = b"".join(parts)
                    opcode = first_op
                    parts = None
                    size = 0
                elif opcode in (1, 2):
                    if parts is not None:
                        raise _WSClose(1002, "new message inside a fragmented one")
                    if not fin:
                        parts = [payload]
                        size = n
                        first_op = opcode
                        continue
                elif opcode == 8:
                    self._closed_by_peer(payload)
                    return
                elif opcode == 9:
                    if self.state == _WS_OPEN:
                        self.transport.write(_ws_frame(10, payload))
                    continue
                elif opcode == 10:
                    continue
                else:
                    raise _WSClose(1002, "unknown opcode %d" % opcode)
                msg = _ws_message(opcode, payload)
                if self.state == _WS_OPEN:
                    await self.queue.put(msg)
        except _WSClose as e:
            if self.state == _WS_OPEN:
                self.transport.write(_ws_frame(8, _close_payload(e.code, e.reason)))
            self.state = _WS_CLOSING
            self._finish(e.code, e.reason)
            self.transport.close()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._finish(1006)
        except asyncio.CancelledError:
            self._finish(1006)
            raise

    async def run(self, app, scope):
        try:
            await app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if not isinstance(exc, asyncio.CancelledError):
                _log_exc("error in application (WebSocket %s):" % scope["path"])
            if self.state == _WS_CONNECTING:
                self.respond(500)
            else:
                self.close(1011, "")
        else:
            if self.state == _WS_CONNECTING:
                # Returned without accepting: a refusal.
                self.respond(403)
            elif self.state == _WS_OPEN:
                self.close(1000, "")
        if self.reader_task is not None and self.state != _WS_CLOSED:
            # Nobody reads the queue any more: empty it so that a frame reader
            # stuck on a full queue gets to the peer's close frame.
            while not self.queue.empty():
                self.queue.get_nowait()
            # Wait for the peer's close frame (bounded by WS_CLOSE_TIMEOUT).
            try:
                await self.peer_closed
            except asyncio.CancelledError:
                pass
            if not self.reader_task.done():
                self.reader_task.cancel()


# ------------------------------------------------------------ connection ---


class _Server(object):
    def __init__(self, app, base, state):
        self.app = app
        self.base = base
        self.base_b = base.encode("utf-8")
        self.state = state  # lifespan state, copied into every scope
        self.conns = set()
        self.stopping = False
        self.idle_done = None  # future: all connections gone, while stopping

    def stop(self):
        self.stopping = True
        for conn in list(self.conns):
            conn.stop()
        self._check_done()

    def _check_done(self):
        if self.stopping and not self.conns and self.idle_done is not None and not self.idle_done.done():
            self.idle_done.set_result(None)

    async def connected(self, reader, writer):
        conn = _Conn(self, reader, writer)
        self.conns.add(conn)
        try:
            await conn.run()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            _log_exc("error serving a connection:")
        finally:
            self.conns.discard(conn)
            try:
                writer.close()
            except Exception:
                pass
            self._check_done()


def _parse_headers(lines):
    """The header lines of a request head: (the headers for the app, and
    Content-Length, Connection, Upgrade, Host, X-Ferry-Client-Addr, scheme,
    whether Transfer-Encoding and X-Ferry-Oob-Work came). ValueError: a
    malformed line."""
    names = _names
    headers = []
    clen = conn_h = upgrade = host = peer = None
    scheme = "http"
    te = oob = False
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("header line without a colon")
        name, kind = names.get(name) or _name_kind(name)
        value = value.strip()
        if kind:
            if kind == _H_HOST:
                host = value
            elif kind == _H_CLEN:
                if clen is not None and clen != value:
                    raise ValueError("conflicting Content-Length")
                clen = value
            elif kind == _H_CONN:
                conn_h = value if conn_h is None else conn_h + b", " + value
            elif kind == _H_UPGRADE:
                upgrade = value
            elif kind == _H_TE:
                te = True
            else:
                if kind == _H_PEER:
                    peer = value
                elif kind == _H_SCHEME and value == b"https":
                    scheme = "https"
                elif kind == _H_OOB:
                    oob = True
                continue  # X-Ferry-*: not for the app
        headers.append((name, value))
    return headers, clen, conn_h, upgrade, host, peer, scheme, te, oob


_OOB = 0  # _http1_request's answer for the core's out-of-band request


def _framed_request(parts, paths):
    """A ferry-wire/1 request head in the ASGI layout (seven fields, then
    one name/value pair per field line), as run() unpacks it; None when
    it is not the core's."""
    if len(parts) < 7 or len(parts) % 2 == 0:
        return None
    try:
        method = parts[0].decode("ascii")
        raw_path, query = parts[1], parts[2]
        scheme = "https" if parts[3] == b"https" else "http"
        peer = parts[4] or None
        host = parts[5]
        n = _content_length(parts[6]) if parts[6] else 0
        it = iter(parts[7:])
        headers = list(zip(it, it))
        path = paths.get(raw_path)
        if path is None:
            path = _cached(paths, raw_path, _decode_path, raw_path)
    except (ValueError, UnicodeDecodeError):
        return None
    return method, raw_path, query, path, scheme, peer, host, n, headers, True, False, None, None


def _http1_request(lines, paths):
    """An HTTP/1.1 request head's lines, as run() unpacks them; or the
    status to answer and close with (400, 501: the core always sends
    Content-Length), or _OOB for the core's out-of-band request."""
    try:
        method, target, proto = lines[0].split(b" ")
        method = method.decode("ascii")
        del lines[0]
        headers, clen, conn_h, upgrade, host, peer, scheme, te, oob = _parse_headers(lines)
        keep, http10 = _keep_alive(proto, conn_h)
        n = 0 if clen is None else _content_length(clen)
        if target[:1] != b"/":
            target = _origin_form(target)
        raw_path, _, query = target.partition(b"?")
        path = paths.get(raw_path)
        if path is None:
            path = _cached(paths, raw_path, _decode_path, raw_path)
    except (ValueError, UnicodeDecodeError):
        return 400
    if te:
        return 501
    if oob:
        return _OOB
    return method, raw_path, query, path, scheme, peer, host, n, headers, keep, http10, upgrade, conn_h


def _keep_alive(proto, conn_h):
    """(whether the connection may stay open, whether it is HTTP/1.0) by the
    protocol and Connection header. ValueError: another protocol."""
    if proto == b"HTTP/1.1":
        return conn_h is None or b"close" not in conn_h.lower(), False
    if proto == b"HTTP/1.0":
        return conn_h is not None and b"keep-alive" in conn_h.lower(), True
    raise ValueError("unsupported protocol")


def _content_length(clen):
    if not clen.isdigit():
        raise ValueError("bad Content-Length")
    return int(clen)


def _under(raw_path, base_b):
    """Whether raw_path is the base URI or under it."""
    return raw_path.startswith(base_b) and (len(raw_path) == len(base_b) or raw_path[len(base_b)] == 47)


def _origin_form(target):
    """The origin form of an absolute-form target (origin form is what the
    core sends) or '*'."""
    i = target.find(b"://")
    if i > 0:
        j = target.find(b"/", i + 3)
        q = target.find(b"?", i + 3)
        target = target[j:] if j >= 0 and (q < 0 or j < q) else b"/" + (target[q:] if q >= 0 else b"")
    return target


class _Conn(object):
    __slots__ = ("server", "reader", "writer", "transport", "idle", "watch", "gone", "ws")

    def __init__(self, server, reader, writer):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.idle = False  # waiting for a request head, nothing of it read
        self.watch = None  # task: a read started to notice the core hang up
        self.gone = None  # future: the core closed the connection
        self.ws = None

    def stop(self):
        if self.idle:
            self.transport.close()
        elif self.ws is not None:
            self.ws.close(1012, "server restart")

    async def _read(self):
        t = self.watch
        if t is not None:
            self.watch = None
            try:
                return await t
            except (ConnectionError, OSError):
                return b""
        try:
            return await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    def wait_gone(self):
        """Resolves when the core closes the connection (the body is all read)."""
        gone = self.gone
        if gone is None:
            gone = self.gone = asyncio.get_running_loop().create_future()
            if self.watch is None:
                t = self.watch = asyncio.get_running_loop().create_task(self.reader.read(READ_SIZE))
                t.add_done_callback(self._watched)
        return asyncio.shield(gone)

    def _watched(self, t):
        if t.cancelled() or t.exception() is not None or not t.result():
            gone = self.gone
            if gone is not None and not gone.done():
                gone.set_result(None)

    async def run(self):
        server = self.server
        base, base_b = server.base, server.base_b
        paths = _paths
        transport = self.transport
        buf = b""
        while True:
            head = await self._next_head(buf)
            if head is None:
                return
            lines, buf = head
            self.gone = None
            framed = lines is None
            if framed:
                head = await self._frame_head(buf)
                if head is None:
                    return
                parts, buf = head
                req = _framed_request(parts, paths)
                if req is None:
                    return  # not the core's
            else:
                req = _http1_request(lines, paths)
                if req == _OOB:
                    # The core's, not the app's: the hooks, then the connection closes.
                    transport.write(await _out_of_band())
                    return
                if isinstance(req, int):
                    transport.write(_plain(req, False))
                    return
            method, raw_path, query, path, scheme, peer, host, n, headers, keep, http10, upgrade, conn_h = req

            root = "" if base and not _under(raw_path, base_b) else base
            if peer is not None:
                p = peer.decode("latin-1")
                client = _peers.get(p) or _cached(_peers, p, _split_peer, p)
            else:
                client = None
            h = host.decode("latin-1") if host is not None else ""

            if upgrade is not None and conn_h is not None and b"websocket" in upgrade.lower() and b"upgrade" in conn_h.lower():
                await self._websocket(method, scheme, path, raw_path, query, root, headers, client, h, http10, buf)
                return

            scope = {
                "type": "http",
                "asgi": _ASGI_HTTP,
                "http_version": "1.0" if http10 else "1.1",
                "method": method,
                "scheme": scheme,
                "path": path,
                "raw_path": raw_path,
                "query_string": query,
                "root_path": root,
                "headers": headers,
                "client": client,
                "server": _hosts.get((h, scheme)) or _cached(_hosts, (h, scheme), _split_host, h, scheme),
                "state": server.state.copy(),
            }

            # ---- the body: what arrived with the head, the rest in the socket
            if len(buf) >= n:
                body, buf, sock_left = buf[:n], buf[n:], 0
            else:
                body, buf, sock_left = buf, b"", n - len(buf)
            cycle = _HTTP(self, body, sock_left, keep, http10, method == "HEAD", framed)
            if not await self._respond(scope, cycle, method, path):
                return
            if not await self._drain(cycle.sock_left):
                return
            if self.watch is not None and self.watch.done() and not self.watch.cancelled():
                if self.watch.exception() is not None or not self.watch.result():
                    return

    async def _next_head(self, buf):
        """The next request head's lines and the bytes after it, reading
        after what buf holds; None when the connection is done."""
        server = self.server
        transport = self.transport
        reader = self.reader
        if buf[:2] == b"\r\n":
            buf = buf.lstrip(b"\r\n")
        if _WIRE and buf[:1] == _MAGIC:
            return None, buf
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > MAX_HEAD:
                transport.write(_plain(431, False))
                return None
            if not buf:
                if server.stopping:
                    return None
                self.idle = True
            if self.watch is None:
                data = await reader.read(READ_SIZE)
            else:
                data = await self._read()
            self.idle = False
            if not data:
                return None
            buf = buf + data if buf else data.lstrip(b"\r\n")
            if _WIRE and buf[:1] == _MAGIC:
                return None, buf
            end = buf.find(b"\r\n\r\n")
        return buf[:end].split(b"\r\n"), buf[end + 4 :]

    async def _frame_head(self, buf):
        """A ferry-wire/1 request head (its fields) and the bytes after it,
        buf holding its start; None when the connection is done."""
        reader = self.reader
        while len(buf) < 5:
            data = await (reader.read(READ_SIZE) if self.watch is None else self._read())
            if not data:
                return None
            buf += data
        end = 5 + int.from_bytes(buf[1:5], "big")
        if end > 5 + (1 << 20):
            return None  # not the core's: nothing sensible to answer
        while len(buf) < end:
            data = await (reader.read(max(READ_SIZE, end - len(buf))) if self.watch is None else self._read())
            if not data:
                return None
            buf += data
        return buf[5:end].split(b"\0"), buf[end:]

    async def _respond(self, scope, cycle, method, path):
        """Runs the app for one request; whether the connection goes on."""
        transport = self.transport
        try:
            await self.server.app(scope, cycle.receive, cycle.send)
        except ClientDisconnected:
            return False
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, asyncio.CancelledError):
                return False
            if cycle.disconnected and isinstance(exc, (ConnectionError, OSError)):
                return False
            _log_exc("error in application (%s %s):" % (method, path))
            if cycle.written or transport.is_closing():
                return False  # a second response would be garbage on the wire
            transport.write((_fplain if cycle.framed else _plain)(500, cycle.keep, method == "HEAD"))
            if cycle.keep:
                cycle.complete = True
            else:
                return False
        if not cycle.complete:
            if cycle.written:
                return False  # truncated: the close tells the core
            if transport.is_closing():
                return False
            _log("error in application (%s %s): it returned without %s" % (
                method, path, "a response body" if cycle.started else "starting a response"))
            transport.write((_fplain if cycle.framed else _plain)(500, cycle.keep, method == "HEAD"))
            if not cycle.keep:
                return False
        return cycle.keep and not self.server.stopping

    async def _drain(self, left):
        """Reads whatever the app left of the body; whether the connection
        is still there."""
        while left:
            try:
                data = await self.reader.read(left if left < BODY_CHUNK else BODY_CHUNK)
            except (ConnectionError, OSError):
                return False
            if not data:
                return False
            left -= len(data)
        return True

    async def _websocket(self, method, scheme, path, raw_path, query, root, headers, client, host, http10, buf):
        transport = self.transport
        key = version = None
        subprotocols = []
        for name, value in headers:
            if name == b"sec-websocket-key":
                key = value
            elif name == b"sec-websocket-version":
                version = value
            elif name == b"sec-websocket-protocol":
                subprotocols.extend(p.strip().decode("latin-1") for p in value.split(b",") if p.strip())
        if method != "GET" or http10 or key is None:
            transport.write(_plain(400, False))
            return
        if version != b"13":
            transport.write(_plain(426, False, extra=b"Sec-WebSocket-Version: 13\r\n"))
            return
        ws_scheme = "wss" if scheme == "https" else "ws"
        scope = {
            "type": "websocket",
            "asgi": _ASGI_WS,
            "http_version": "1.1",
            "scheme": ws_scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": root,
            "headers": headers,
            "client": client,
            "server": _cached(_hosts, (host, ws_scheme), _split_host, host, ws_scheme),
            "subprotocols": subprotocols,
            "state": self.server.state.copy(),
        }
        ws = self.ws = _WebSocket(self, key, buf)
        if self.server.stopping:
            ws.respond(503)
            return
        await ws.run(self.server.app, scope)


# --------------------------------------------------------------- lifespan ---


class _Lifespan(object):
    """The lifespan protocol; apps that do not support it are fine."""

    def __init__(self, app, state):
        loop = asyncio.get_running_loop()
        self.app = app
        self.state = state
        self.startup_sent = False
        self.shutdown = asyncio.Event()
        self.started = loop.create_future()  # None, or the error (summary, details)
        self.stopped = loop.create_future()  # None, or an error summary
        self.task = None

    async def startup(self):
        self.task = asyncio.get_running_loop().create_task(self._run())
        return await self.started

    async def _run(self):
        scope = {"type": "lifespan", "asgi": _ASGI_LIFESPAN, "state": self.state}
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if not self.startup_sent:
                pass  # raised before asking for lifespan.startup: not supported
            elif not self.started.done():
                self._resolve(self.started, ("lifespan startup failed: " + _summary(exc), _app_traceback(exc)))
            else:
                _log_exc("error in lifespan:")
        finally:
            self._resolve(self.started, None)
            self._resolve(self.stopped, None)

    @staticmethod
    def _resolve(fut, value):
        if not fut.done():
            fut.set_result(value)

    async def receive(self):
        if not self.startup_sent:
            self.startup_sent = True
            return {"type": "lifespan.startup"}
        await self.shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def send(self, message):
        t = message["type"]
        if t == "lifespan.startup.complete":
            self._resolve(self.started, None)
        elif t == "lifespan.startup.failed":
            msg = str(message.get("message") or "").strip()
            summary = "lifespan startup failed" + (": " + msg.splitlines()[-1] if msg else "")
            self._resolve(self.started, (summary, msg))
        elif t == "lifespan.shutdown.complete":
            self._resolve(self.stopped, None)
        elif t == "lifespan.shutdown.failed":
            msg = str(message.get("message") or "").strip()
            _log("lifespan shutdown failed: %s" % msg)
            self._resolve(self.stopped, msg)
        else:
            raise RuntimeError("unexpected ASGI message %r in lifespan" % (t,))

    async def stop(self):
        if self.task is None or self.task.done():
            return
        self.shutdown.set()
        await self.stopped


# ---------------------------------------------------------------- startup ---


def _app_traceback(exc):
    # Leave out the loader's, asyncio's and importlib's own frames at the top.
    return _common.app_traceback(exc, __file__, (os.path.dirname(asyncio.__file__) + os.sep,))


def _asgi2(cls):
    async def app(scope, receive, send):
        instance = cls(scope)
        await instance(receive, send)

    return app


def _load_app(root, startup):
    import importlib.util

    path = os.path.join(root, startup)
    name = os.path.splitext(os.path.basename(startup))[0] or "asgi_app"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load startup file %s" % path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = path
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    app = getattr(module, "application", None)
    if app is None:
        app = getattr(module, "app", None)
    if app is None:
        raise AttributeError("startup file %s defines neither 'application' nor 'app'" % startup)
    if not callable(app):
        raise TypeError("the ASGI app in %s is not callable (it is %s)" % (startup, type(app).__name__))
    if inspect.isclass(app):
        if not hasattr(app, "__await__"):
            return _asgi2(app)  # ASGI 2: app(scope) then instance(receive, send)
        return app
    try:
        params = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return app
    kinds = [p.kind for p in params]
    positional = [
        p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if inspect.Parameter.VAR_POSITIONAL not in kinds and len(positional) == 2:
        raise TypeError(
            "the app in %s takes 2 arguments (%s): it looks like a WSGI app, not an ASGI one"
            % (startup, ", ".join(p.name for p in positional))
        )
    return app


def _listen(path):
    sock = _common.listen(path)
    sock.setblocking(False)
    return sock


def _report(fd, obj, keep=False):
    _common.report(fd, json.dumps(obj) + "\n", keep)


async def _main(status_fd, root, startup, base, sock_path):
    loop = asyncio.get_running_loop()
    try:
        _install_ferry()
        app = _load_app(root, startup)
        if not sock_path:
            raise RuntimeError("FERRY_SOCKET is not set")
    except BaseException as exc:
        _fail(status_fd, _summary(exc), _app_traceback(exc))

    state = {}
    lifespan = _Lifespan(app, state)
    err = await lifespan.startup()
    if err is not None:
        _fail(status_fd, err[0], err[1] or err[0])

    try:
        listener = _listen(sock_path)
    except BaseException as exc:
        _fail(status_fd, _summary(exc), _app_traceback(exc))
    server = _Server(app, base, state)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    # SIGQUIT: faulthandler's dump at once, then (chained) the tasks' stacks
    # from the loop. Unregistering first restores SIG_DFL, which the loop's
    # handler then replaces, and which faulthandler then chains to.
    faulthandler.unregister(signal.SIGQUIT)
    loop.add_signal_handler(signal.SIGQUIT, _dump_tasks)
    _dump_on_sigquit(chain=True)
    _backtraces_on(loop, status_fd)
    srv = await asyncio.start_unix_server(server.connected, sock=listener, limit=STREAM_LIMIT, backlog=1024)
    ready = {"status": "ready", "socket": sock_path, "concurrency": 0}
    if _WIRE:
        ready["wire"], ready["head"] = _WIRE, "asgi"
    _report(status_fd, ready, keep=True)

    await stop
    # SIGTERM: no new connections, idle ones closed, requests in flight finish.
    srv.close()
    try:
        os.unlink(sock_path)
    except OSError:
        pass
    server.idle_done = loop.create_future()
    server.stop()
    await server.idle_done
    await lifespan.stop()


def main():
    env = os.environ
    status_fd = int(env.get("FERRY_STATUS_FD") or -1)
    lifeline_fd = int(env.get("FERRY_LIFELINE_FD") or -1)
    for fd in (status_fd, lifeline_fd):
        if fd >= 0:
            os.set_inheritable(fd, False)  # not for the app's children
    _start_lifeline(lifeline_fd)

    root = env.get("FERRY_APP_ROOT") or os.getcwd()
    startup = env.get("FERRY_STARTUP_FILE") or "asgi.py"
    base = (env.get("FERRY_BASE_URI") or "").rstrip("/")
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] in (here, ""):
        del sys.path[0]  # the loader's directory is not the app's business (and asgi.py is a common name)
    sys.path.insert(0, root)

    _dump_on_sigquit()  # while loading, until the event loop's handler is there
    asyncio.run(_main(status_fd, root, startup, base, env.get("FERRY_SOCKET")))
    sys.exit(0)


if __name__ == "__main__":
    main()
