"""What Ferry's two Python loaders (wsgi.py, asgi.py) share.

The core writes this module beside them (loaders.Write); each imports it
at its top, while its own directory is still first on sys.path, before it
removes that directory and puts the app root there. The leading underscore
keeps the name out of the way of the app's modules. Smart-spawned workers
inherit it already imported.

The parts of the loader contract that do not depend on how a loader serves:
the lifeline, SIGQUIT and SIGWINCH backtraces, the ``ferry`` module with
the out-of-band hooks, the listening socket, the handshake line and the
error traceback, and the Host and peer address splitting.

Standard library only, and no json, traceback or re at import (the WSGI
loader counts its start in milliseconds).
"""

import faulthandler
import os
import signal
import socket
import sys
import threading

TAG = "ferry"  # the loader sets "ferry wsgi" or "ferry asgi": its log lines' prefix


def log(msg):
    try:
        sys.stderr.write("[%s] %s\n" % (TAG, msg))
        sys.stderr.flush()
    except Exception:
        pass


def block_signals_here():
    """Keeps the signals the loader handles off this helper thread, so the
    kernel delivers them to the main thread, where Python runs handlers
    (and where they interrupt a blocking accept)."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH})
    except (AttributeError, OSError, ValueError):
        pass


def watch_lifeline(fd):
    # The core holds the only write end: EOF (or an error) means it is gone.
    block_signals_here()
    try:
        while os.read(fd, 4096):
            pass
    except BaseException:
        pass
    os._exit(0)


def start_lifeline(fd):
    """Exits the process as soon as the core is gone (lifeline fd)."""
    if fd >= 0:
        threading.Thread(target=watch_lifeline, args=(fd,), name="ferry-lifeline", daemon=True).start()


def dump_on_sigquit(chain=False):
    """SIGQUIT: the stack of every thread on stderr, and carry on.

    faulthandler's handler is C: it works while the main thread (or the
    event loop) is stuck in C code or in a loop that never reaches a Python
    signal handler. With chain, it then passes the signal on to the handler
    that was there before (the ASGI event loop's, for the tasks' stacks).
    Without chain, a stale registration (fork, new stderr) is replaced.
    """
    try:
        if not chain:
            faulthandler.unregister(signal.SIGQUIT)
        faulthandler.register(signal.SIGQUIT, file=sys.stderr, all_threads=True, chain=chain)
    except Exception as e:  # no usable stderr fd
        log("SIGQUIT backtraces unavailable: %s" % e)


# ------------------------------------------------- backtraces on demand ---

# Ends each dump on the status pipe; the core reads up to it.
BT_END = "-- ferry: end of backtraces --\n"


def backtraces_on(fd, install, all_threads=True):
    """SIGWINCH: the stack of every thread on fd, and carry on.

    fd is the status pipe, which a ready process keeps: the core signals
    and reads the dump there (ferry status --show=backtraces), so it never
    mixes with the app's output. SIGWINCH is ignored by default, so a
    signal that comes before this is installed harms nothing.
    faulthandler's C handler writes the stacks at once, even while the main
    thread is stuck in C code; the Python handler it chains to (which
    install puts in place) adds the threads' names, what else the loader
    knows, and the end marker once Python runs again.
    """
    if fd < 0:
        return
    try:
        faulthandler.unregister(signal.SIGWINCH)
        install()
        faulthandler.register(signal.SIGWINCH, file=fd, all_threads=all_threads, chain=True)
    except Exception as e:
        log("backtraces on demand unavailable: %s" % e)


def tail_on_wakeup(fd, lines):
    """Writes the end of each SIGWINCH dump on fd from a thread of its own.

    A Python signal handler runs in the main thread, between two bytecodes:
    a signal that comes just before the main thread blocks (time.sleep,
    poll, a read) is handled only when that call returns, which may be
    never. The signal module's C handler, which faulthandler's chains to,
    also writes the signal's number to the wakeup fd at once: this thread
    reads it and writes lines() and the end marker. Not for asyncio, which
    owns the wakeup fd (its loop runs handlers without that race). Call
    from the main thread.
    """
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def run():
        block_signals_here()
        while True:
            try:
                got = os.read(r, 512)
            except InterruptedError:
                continue
            except OSError:
                return
            if not got:
                return
            if signal.SIGWINCH in got:
                write_tail(fd, lines())

    threading.Thread(target=run, name="ferry-backtraces", daemon=True).start()


def thread_stacks():
    """Every thread's Python stack, read under the GIL (safe while threads
    start and end, unlike faulthandler's C dump of all threads)."""
    import traceback
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append("Thread 0x%016x %s (most recent call first):\n" % (ident, names.get(ident, "?")))
        for line in reversed(traceback.format_stack(frame)):
            out.append(line)
        out.append("\n")
    return out


def thread_names():
    """The "Thread names:" block of a backtrace dump, as lines."""
    out = ["Thread names:\n"]
    for t in threading.enumerate():
        out.append("  0x%016x %s%s\n" % (t.ident or 0, t.name, " (daemon)" if t.daemon else ""))
    return out


def write_tail(fd, lines):
    """Writes the end of a backtrace dump and its end marker on fd."""
    data = ("".join(lines) + BT_END).encode("utf-8", "backslashreplace")
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass


# ----------------------------------------------------- out-of-band work ---

_oob_hooks = []  # ferry.on_out_of_band_work


def on_out_of_band_work(fn):
    """Registers fn, called with no arguments, for out-of-band work.

    The core asks for it between requests (after a response with the header
    X-Ferry-Request-OOB-Work: true). Returns fn, so it works as a decorator.
    Under the ASGI runner fn may also be an ``async def`` (awaited on the
    event loop). Without any hook the loader runs gc.collect().
    """
    if not callable(fn):
        raise TypeError("ferry.on_out_of_band_work: %r is not callable" % (fn,))
    _oob_hooks.append(fn)
    return fn


def out_of_band_hooks():
    """The registered out-of-band hooks, in order (the list itself)."""
    return _oob_hooks


def own_ferry():
    """Where the app's own module or package named ferry is, or None.

    Looked for on sys.path (the app directory first, then site-packages);
    a plain directory named ferry (a namespace package) does not count.
    """
    from importlib.machinery import PathFinder

    try:
        spec = PathFinder.find_spec("ferry", sys.path)
    except Exception:
        return None
    if spec is None or spec.origin in (None, "namespace"):
        return None
    return spec.origin


def install_ferry():
    """Puts the ferry module (out-of-band hooks) into sys.modules."""
    own = own_ferry()
    if own is None and "ferry" in sys.modules:
        own = getattr(sys.modules["ferry"], "__file__", None) or "sys.modules"
    if own is not None:
        log(
            "the app has its own 'ferry' module (%s): Ferry's is not installed, "
            "so ferry.on_out_of_band_work is not available and out-of-band work is gc.collect()" % own
        )
        return
    import types

    mod = types.ModuleType("ferry", "Ferry's loader API: out-of-band work hooks.")
    for fn in (on_out_of_band_work, out_of_band_hooks):
        fn.__module__ = "ferry"
        setattr(mod, fn.__name__, fn)
    mod.__all__ = ["on_out_of_band_work", "out_of_band_hooks"]
    sys.modules["ferry"] = mod


def hook_name(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def hook_error(fn, exc):
    """How a failed hook is named in the out-of-band response."""
    msg = str(exc).strip().replace("\n", " ")
    return "%s: %s%s" % (hook_name(fn), type(exc).__name__, ": " + msg if msg else "")


def oob_body(hooks, errors):
    """(status code, body) of the out-of-band response after running hooks
    (none: gc.collect()) with errors (from hook_error)."""
    if errors:
        return 500, ("out-of-band work failed: %s\n" % "; ".join(errors)).encode("utf-8", "replace")
    done = "%d hook%s" % (len(hooks), "" if len(hooks) == 1 else "s") if hooks else "gc.collect()"
    return 200, ("out-of-band work done: %s\n" % done).encode("utf-8", "replace")


# -------------------------------------------------- environ/scope values ---


def split_host(host, default):
    """(name, port as a string) of a Host header; default when it has no port."""
    if not host:
        return "localhost", default
    if host[0] == "[":
        i = host.find("]")
        if i < 0:
            return host, default
        name, rest = host[: i + 1], host[i + 1 :]
        port = rest[1:] if rest[:1] == ":" else ""
    else:
        name, sep, port = host.rpartition(":")
        if not sep:
            name, port = host, ""
    return name, port or default


def split_peer(addr):
    """(ip, port as a string, "" if none) of X-Ferry-Client-Addr."""
    if addr[:1] == "[":
        i = addr.find("]")
        if i >= 0:
            rest = addr[i + 1 :]
            return addr[1:i], rest[1:] if rest[:1] == ":" else ""
    ip, sep, port = addr.rpartition(":")
    if not sep or ":" in ip:  # no port, or a bare IPv6 address
        return addr, ""
    return ip, port


def cached(cache, key, fn, *args):
    v = cache.get(key)
    if v is None:
        v = fn(*args)
        if len(cache) >= 512:
            cache.clear()
        cache[key] = v
    return v


# ------------------------------------------------------ start and report ---


def listen(path):
    """A Unix stream socket listening on path (replacing a stale one)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError:
        # A stale socket file from an earlier process with the same path.
        import stat

        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise
        os.unlink(path)
        sock.bind(path)
    sock.listen(1024)
    return sock


def report(fd, line, keep=False):
    """Writes the handshake line (a JSON object and "\\n") on fd and closes
    it, unless keep (a ready process keeps it for backtraces on demand)."""
    if fd < 0:
        return
    data = line.encode()
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        if not keep:
            os.close(fd)


def summary(exc):
    msg = str(exc).strip().replace("\n", " ")
    return type(exc).__name__ + (": " + msg if msg else "")


def app_traceback(exc, loader, skip=()):
    """The traceback of exc from the app's first frame on: the frames of
    loader (the loader's __file__), importlib's and those under the skip
    prefixes, at the top, are left out."""
    me = os.path.abspath(loader)
    tb = exc.__traceback__
    while tb is not None:
        fn = tb.tb_frame.f_code.co_filename
        if fn != me and fn != loader and not fn.startswith("<frozen") and not fn.startswith(tuple(skip)):
            break
        tb = tb.tb_next
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, tb))


def fail(status_fd, summary, details):
    """Writes details on stderr, reports the error handshake and exits 1."""
    try:
        sys.stdout.flush()
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
        sys.stderr.flush()
    except Exception:
        pass
    try:
        report(status_fd, json_line({"status": "error", "summary": summary, "details": details}))
    finally:
        os._exit(1)


try:
    # json's own C string encoder and decoder, without json (and re).
    from _json import encode_basestring_ascii as _json_str, scanstring as json_scan
except ImportError:  # a Python without _json: json itself
    _json_str = json_scan = None


def json_line(obj):
    """json.dumps(obj) + "\\n" for a flat dict of str, bool and int values."""
    if _json_str is None:
        import json

        return json.dumps(obj) + "\n"
    parts = []
    for k, v in obj.items():
        if v is True or v is False:
            val = "true" if v else "false"
        elif isinstance(v, int):
            val = int.__repr__(v)
        else:
            val = _json_str(str(v))
        parts.append(_json_str(k) + ": " + val)
    return "{" + ", ".join(parts) + "}\n"
