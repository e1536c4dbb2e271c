'use strict';
// Ferry's Node.js loader.
//
// The core runs this script as `node node.cjs` with the working directory set
// to the app root and the environment described in docs/architecture.md ("The
// loader contract"). Unlike the WSGI loader it does not speak HTTP itself: the
// app brings its own server (http.createServer, Express's app.listen, ...) and
// Node's http server answers the core. The loader only
//
//   - redirects the first listen() of a plain (non-TLS) net.Server — an
//     http.Server in practice — to the Unix socket FERRY_SOCKET, whatever
//     port, host or options the app asked for; the app's callback and
//     'listening' fire as usual. Later listen() calls, and TLS servers, are
//     left alone: they listen where they asked to;
//   - reports {"status":"ready",...,"concurrency":0} (any number of requests
//     at once) when that server is listening, or the load error;
//   - on that server only, rewrites each request before the app sees it
//     (see fixRequest): the X-Ferry-* headers are consumed, the client's
//     address and scheme become req.socket.remoteAddress/remotePort/
//     remoteFamily, socket.encrypted and X-Forwarded-For/-Proto;
//   - exits at once when the lifeline reaches EOF, and on SIGTERM stops
//     accepting, lets in-flight requests finish and exits 0.
//
// Connections on the socket come only from the core, which keeps them open
// between requests and owns their lifetime: the server's keepAliveTimeout is
// pinned to 0 (no idle timeout), or a kept-alive connection could close just
// as the core sends a request on it.
//
// The entry is FERRY_STARTUP_FILE, or when that is empty package.json "main",
// app.js, index.js, server.js (the first that exists). It runs as the main
// module, as under `node <file>` (process.argv[1] is the file, and
// `require.main === module` holds): through the CommonJS loader, or through
// import() for an ES module (.mjs, or .js under "type": "module"), so
// top-level await works. Anything that goes wrong before the server listens
// — a throw or syntax error while loading, an error in a timer or an
// unhandled rejection, listen() failing, the process ending — is reported
// as {"status":"error","summary":"<Name>: <message>","details":<stack>} and
// the process exits 1.
//
// Exceptions after start-up get Node's default treatment (the stack on
// stderr, exit code 1; the core starts a new process), unless the app
// installs its own 'uncaughtException' handler.
//
// SIGTERM: the server stops accepting, idle connections close at once,
// busy ones when their response has finished, then exit 0. An open
// WebSocket (or other upgraded connection) counts as busy until either side
// closes it; the core's SIGKILL bounds the wait.
//
// Out-of-band work: any request carrying the header X-Ferry-Oob-Work is the
// core's (clients cannot send X-Ferry-* headers) and never reaches the app.
// The loader calls every listener of the process event
// 'ferry:outOfBandWork', in order and with no arguments, waits for the
// promises they return (Promise.allSettled), and answers 200 OK, or 500
// naming the errors if one threw or its promise rejected (each stack goes
// to stderr); the connection then closes. An app registers with
//
//   process.on('ferry:outOfBandWork', async () => { ...; });
//
// (process.once works too). With no listener the work is global.gc() when
// the process exposes it (node --expose-gc), else nothing. An app asks for
// it with the response header X-Ferry-Request-OOB-Work: true (the core's
// business).
//
// SIGQUIT (the core sends it before killing a request that ran longer than
// --max-request-time, and SIGKILLs a second later): the loader writes a
// line "[ferry node] SIGQUIT: ..." and the JavaScript stack from
// process.report.getReport() to stderr, and the process carries on. The
// limitation: Node runs a signal listener only when the event loop is free.
// A request awaiting something (a timer, a slow query) gets its stack
// written at once, but that stack is the listener's own, not the stuck
// request's; JavaScript that blocks the event loop (a busy loop) cannot be
// interrupted from JavaScript, so then nothing is written before the
// SIGKILL (the signal only no longer kills the process by itself).
//
// Not supported: FERRY_BASE_URI (Node apps see the whole path, as under
// Passenger), the cluster module (Ferry is the process manager: workers
// would listen through the primary, which never reports), HTTPS and HTTP/2
// servers as the Ferry server (the core speaks HTTP/1.1 in clear).
// FERRY_LIFELINE_FD stays open in child processes the app starts (Node
// cannot set close-on-exec on it); that is harmless: a lifeline read end
// does not keep the pipe open. The status fd is reopened close-on-exec
// once the handshake is written (see backtracesOn).
//
// Standard library only; Node 18+.

const fs = require('fs');
const net = require('net');
const path = require('path');
const Module = require('module');
// Not url (for an ES module entry only) nor tls (with crypto): required
// where needed, not at every start.

const env = process.env;
const LOADER = __filename;

// ---------------------------------------------------------------- state ---

let phase = 'loading'; // 'loading' → 'ready' | 'failed'
let statusFd = fdFrom(env.FERRY_STATUS_FD);
let ferryServer = null; // the server that listens on FERRY_SOCKET
let stopping = false; // SIGTERM seen

function fdFrom(s) {
  const n = Number(s);
  return s && Number.isInteger(n) && n >= 0 ? n : -1;
}

// ------------------------------------------------------------ reporting ---

// report writes the handshake line and closes the status fd, unless keep
// (a ready process keeps it for backtraces on demand).
function report(obj, keep) {
  const fd = statusFd;
  if (fd < 0) return;
  statusFd = -1;
  const buf = Buffer.from(JSON.stringify(obj) + '\n');
  try {
    for (let off = 0; off < buf.length;) {
      try {
        off += fs.writeSync(fd, buf, off, buf.length - off);
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
      }
    }
  } catch (e) {
    // The core is gone (EPIPE): the lifeline will end us.
  } finally {
    if (!keep) {
      try {
        fs.closeSync(fd);
      } catch (e) {}
    }
  }
}

function errorName(err) {
  if (err instanceof Error || (err && typeof err === 'object' && typeof err.message === 'string')) {
    return String(err.name || 'Error');
  }
  return 'Error';
}

function summaryOf(err) {
  let msg;
  if (err instanceof Error || (err && typeof err === 'object' && typeof err.message === 'string')) {
    msg = String(err.message);
  } else {
    msg = 'uncaught ' + require('util').inspect(err);
  }
  msg = msg.split('\n')[0].trim(); // "Cannot find module 'x'" without the require stack
  const name = errorName(err);
  return msg ? name + ': ' + msg : name;
}

// The stack without the loader's own frames and the module loader's frames
// that lead to them.
function detailsOf(err) {
  let s;
  if (err && typeof err === 'object' && typeof err.stack === 'string') {
    s = err.stack;
  } else {
    s = summaryOf(err);
  }
  const lines = s.split('\n');
  const frame = /^\s+at /;
  let i = lines.findIndex((l) => frame.test(l) && l.includes(LOADER));
  if (i > 0) {
    while (i > 1 && frame.test(lines[i - 1]) && lines[i - 1].includes('node:internal')) i--;
    lines.length = i;
  }
  return lines.join('\n');
}

// A start-up failure: the stack on stderr, the error on the status fd, exit 1.
function fail(err) {
  if (phase !== 'loading') return;
  phase = 'failed';
  const details = detailsOf(err);
  try {
    process.stderr.write(details + '\n');
  } catch (e) {}
  report({ status: 'error', summary: summaryOf(err), details });
  process.exit(1);
}

// After start-up: what Node does with an uncaught exception.
function crash(err) {
  try {
    process.stderr.write(detailsOf(err) + '\n');
  } catch (e) {}
  process.exit(1);
}

function onStartupException(err) {
  fail(err);
}

function onExitBeforeReady(code) {
  if (phase !== 'loading') return;
  phase = 'failed';
  if (!code) process.exitCode = 1; // a failed start
  const err = new Error('the app exited (code ' + code + ') without listening on a server');
  report({
    status: 'error',
    summary: summaryOf(err),
    details:
      (code
        ? 'The app ended the process (process.exit(' + code + ')) before listening. '
        : 'The app\'s entry point ran to its end and nothing was left to do. ') +
      'Ferry serves a Node.js app through the first http.Server it listens on: ' +
      'server.listen(port), Express\'s app.listen(port), ...; the port does not matter.',
  });
}

// ------------------------------------------------------------- lifeline ---

function watchLifeline(fd) {
  const bye = () => {
    if (phase === 'loading') phase = 'gone'; // nobody to report to
    process.exit(0);
  };
  let stream;
  try {
    // A pipe: libuv polls it, no thread-pool thread is tied up.
    stream = new net.Socket({ fd, readable: true, writable: false });
  } catch (e) {
    stream = fs.createReadStream(null, { fd, autoClose: false });
  }
  stream.on('data', () => {});
  stream.on('end', bye);
  stream.on('error', bye);
  stream.on('close', bye);
  if (typeof stream.unref === 'function') stream.unref(); // never keeps the app alive
}

// ------------------------------------------------------- the request fix ---

let kHeadersCount; // undefined: not looked for yet; null: not there
let peerViaCache = true; // socket._peername drives remoteAddress (Node ≤ 22)
let lastPeerStr = '';
let lastPeer = null;

function parsePeer(s) {
  if (s === lastPeerStr) return lastPeer;
  let address = s;
  let port;
  if (s.charCodeAt(0) === 91 /* [ */) {
    const i = s.indexOf(']');
    if (i > 0) {
      address = s.slice(1, i);
      if (s.charCodeAt(i + 1) === 58 /* : */) port = s.slice(i + 2);
    }
  } else {
    const i = s.lastIndexOf(':');
    if (i > 0 && s.indexOf(':') === i) {
      address = s.slice(0, i);
      port = s.slice(i + 1);
    }
  }
  const p = port === undefined || port === '' ? undefined : Number(port);
  const peer = Object.freeze({
    address,
    family: address.includes(':') ? 'IPv6' : 'IPv4',
    port: Number.isInteger(p) ? p : undefined,
  });
  lastPeerStr = s;
  lastPeer = peer;
  return peer;
}

function setPeer(socket, peer) {
  if (!socket) return;
  if (peerViaCache) {
    socket._peername = peer;
    if (socket.remoteAddress === peer.address) return;
    peerViaCache = false; // a Node whose getters ignore _peername
  }
  for (const k of ['remoteAddress', 'remoteFamily', 'remotePort']) {
    const v = k === 'remoteAddress' ? peer.address : k === 'remoteFamily' ? peer.family : peer.port;
    Object.defineProperty(socket, k, { value: v, writable: true, configurable: true, enumerable: true });
  }
}

// fixRequest makes a request from the core look like the client's own:
// X-Ferry-* headers go (from req.headers, req.rawHeaders and
// req.headersDistinct); X-Ferry-Client-Addr becomes the socket's
// remoteAddress/remotePort/remoteFamily and the only X-Forwarded-For;
// X-Ferry-Scheme becomes the only X-Forwarded-Proto and socket.encrypted
// (true for https), so that Express's req.ip, req.protocol and req.secure
// are right with or without 'trust proxy'. Client copies of X-Forwarded-For
// and X-Forwarded-Proto are dropped when the core sent the real values.
// The core sends one request at a time per connection, so per-request
// socket properties are safe.
//
// It runs for every request: one pass over rawHeaders that lower-cases only
// names starting "x-" other than the core's own spelling, and the deletions
// from req.headers in reverse order of insertion (the core's headers come
// last), which V8 does without leaving its fast object representation.
//
// It returns true for the core's out-of-band work request (a header
// X-Ferry-Oob-Work), which must not reach the app.
const FERRY = 0;
const XFF = 1;
const XFP = 2;

function fixRequest(req) {
  const raw = req.rawHeaders;
  if (!raw) return false;
  let addr;
  let scheme;
  let marks = null; // [raw index, lower-case name, FERRY|XFF|XFP, ...]
  let ferry = false;
  let oob = false;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length < 8 || (n.charCodeAt(0) | 0x20) !== 120 /* x */ || n.charCodeAt(1) !== 45 /* - */) continue;
    const l = n === 'X-Ferry-Client-Addr' ? 'x-ferry-client-addr' : n === 'X-Ferry-Scheme' ? 'x-ferry-scheme' : n.toLowerCase();
    let kind;
    if (l === 'x-ferry-client-addr') {
      if (addr === undefined) addr = raw[i + 1];
      kind = FERRY;
    } else if (l === 'x-ferry-scheme') {
      if (scheme === undefined) scheme = raw[i + 1];
      kind = FERRY;
    } else if (l === 'x-forwarded-for') {
      kind = XFF;
    } else if (l === 'x-forwarded-proto') {
      kind = XFP;
    } else if (l.startsWith('x-ferry-')) {
      if (l === 'x-ferry-oob-work') oob = true;
      kind = FERRY;
    } else {
      continue;
    }
    ferry = ferry || kind === FERRY;
    if (marks === null) marks = [];
    marks.push(i, l, kind);
  }
  if (!ferry) return false;

  if (kHeadersCount === undefined) {
    kHeadersCount = Object.getOwnPropertySymbols(req).find((s) => s.description === 'kHeadersCount') || null;
  }
  const h = req.headers; // built now if not yet, from the raw headers as they came
  // Without the count symbol the lazy headersDistinct could not be rebuilt
  // from a different rawHeaders: build it now and fix it like headers.
  const hd = kHeadersCount === null ? req.headersDistinct : null;
  for (let k = marks.length - 3; k >= 0; k -= 3) {
    if (marks[k + 2] === FERRY) {
      delete h[marks[k + 1]];
      if (hd) delete hd[marks[k + 1]];
    }
  }
  const out = [];
  let k = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (k < marks.length && marks[k] === i) {
      const kind = marks[k + 2];
      k += 3;
      if (kind === FERRY || (kind === XFF && addr !== undefined) || (kind === XFP && scheme !== undefined)) continue;
    }
    out.push(raw[i], raw[i + 1]);
  }
  const socket = req.socket;
  if (addr !== undefined) {
    const peer = parsePeer(addr);
    out.push('X-Forwarded-For', peer.address);
    h['x-forwarded-for'] = peer.address;
    if (hd) hd['x-forwarded-for'] = [peer.address];
    setPeer(socket, peer);
  }
  if (scheme !== undefined) {
    out.push('X-Forwarded-Proto', scheme);
    h['x-forwarded-proto'] = scheme;
    if (hd) hd['x-forwarded-proto'] = [scheme];
    if (socket) socket.encrypted = scheme === 'https';
  }
  req.rawHeaders = out;
  if (kHeadersCount) req[kHeadersCount] = out.length;
  return oob;
}

// ----------------------------------------------------- out-of-band work ---

const OOB_EVENT = 'ferry:outOfBandWork';

function outOfBand(req, res) {
  req.resume(); // whatever body there is (none): the connection closes after
  const listeners = process.rawListeners(OOB_EVENT); // once() wrappers remove themselves
  let work;
  let done;
  if (listeners.length > 0) {
    done = listeners.length + (listeners.length === 1 ? ' listener' : ' listeners');
    work = listeners.map((fn) => new Promise((resolve) => resolve(fn.call(process))));
  } else if (typeof global.gc === 'function') {
    done = 'global.gc()';
    work = [new Promise((resolve) => resolve(global.gc()))];
  } else {
    done = 'nothing (no listener, no global.gc: node --expose-gc)';
    work = [];
  }
  Promise.allSettled(work).then((results) => {
    try {
      const errors = [];
      results.forEach((r, i) => {
        if (r.status !== 'rejected') return;
        const fn = listeners[i];
        const name = fn ? (fn.listener || fn).name || 'anonymous' : 'global.gc';
        try {
          process.stderr.write('[ferry node] error in out-of-band listener ' + name + ':\n' + detailsOf(r.reason) + '\n');
        } catch (e) {}
        errors.push(name + ': ' + summaryOf(r.reason));
      });
      const body = errors.length
        ? 'out-of-band work failed: ' + errors.join('; ') + '\n'
        : 'out-of-band work done: ' + done + '\n';
      res.shouldKeepAlive = false;
      res.writeHead(errors.length ? 500 : 200, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
        Connection: 'close',
      });
      res.end(body);
    } catch (e) {
      res.destroy(); // the core sees the connection close without an answer
    }
  });
}

// ---------------------------------------------------------------- SIGQUIT ---

function onSigquit() {
  const out = ['[ferry node] SIGQUIT: the JavaScript stack (Node runs this only when the event loop is free: the stack is this handler\'s, not a stuck request\'s)'];
  try {
    const js = process.report.getReport().javascriptStack;
    if (js && js.message) out.push(String(js.message));
    if (js && Array.isArray(js.stack)) for (const f of js.stack) out.push('    ' + String(f).trim());
  } catch (e) {
    out.push('(no report: ' + summaryOf(e) + ')');
  }
  try {
    if (typeof process.getActiveResourcesInfo === 'function') {
      const counts = new Map();
      for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) || 0) + 1);
      out.push('active resources: ' + Array.from(counts, ([r, n]) => (n > 1 ? r + ' x' + n : r)).join(', '));
    }
  } catch (e) {}
  try {
    process.stderr.write(out.join('\n') + '\n');
  } catch (e) {}
}

// ------------------------------------------------- backtraces on demand ---

const BT_END = '-- ferry: end of backtraces --';
let btFd = -1;

// The requests in progress, for the dump: with one thread, where a request
// is is mostly what it awaits, which no stack shows.
const inFlight = new Map(); // res → [method, url, start ms]

function track(req, res) {
  inFlight.set(res, [req.method, req.url, Date.now()]);
  res.once('close', () => inFlight.delete(res));
}

// SIGWINCH: the JavaScript stacks on the status fd (kept open after the
// handshake), and carry on: the core signals and reads the dump there
// (ferry status --show=backtraces), apart from the app's output. SIGWINCH
// is ignored by default, so an early signal harms nothing; ready() adds
// the listener before it writes the handshake. The fd is reopened through
// /proc so that the copy kept is close-on-exec (Node opens files so), not
// inherited by the app's children.
function backtracesOn(fd) {
  if (fd < 0) return;
  btFd = fd;
  try {
    btFd = fs.openSync('/proc/self/fd/' + fd, 'w');
    fs.closeSync(fd);
  } catch (e) {
    btFd = fd;
  }
}

// Node runs a signal listener only when the event loop is free, so the main
// thread's stack is the listener's own, not a request's: what the process
// waits for shows in its active resources. Worker threads are interrupted
// for the report, so theirs are where they are.
function onBacktraces() {
  const out = [];
  const stack = (js) => {
    if (js && Array.isArray(js.stack) && js.stack.length) for (const f of js.stack) out.push('    ' + String(f).trim());
    else out.push('    (no JavaScript running)');
  };
  try {
    const r = process.report.getReport();
    const workers = Array.isArray(r.workers) ? r.workers : [];
    out.push('Main thread (1 of ' + (workers.length + 1) + '), pid ' + process.pid +
      ': the stack of this listener (Node runs it when the event loop is free):');
    stack(r.javascriptStack);
    workers.forEach((w, i) => {
      const id = w && w.header && w.header.threadId;
      out.push('Worker thread ' + (i + 2) + ' of ' + (workers.length + 1) + (id !== undefined ? ' (threadId ' + id + ')' : '') + ':');
      stack(w && w.javascriptStack);
    });
  } catch (e) {
    out.push('(no report: ' + summaryOf(e) + ')');
  }
  try {
    if (typeof process.getActiveResourcesInfo === 'function') {
      const counts = new Map();
      for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) || 0) + 1);
      out.push('Waiting on: ' + Array.from(counts, ([r, n]) => (n > 1 ? r + ' x' + n : r)).join(', '));
    }
  } catch (e) {}
  const now = Date.now();
  out.push('Requests in progress: ' + inFlight.size);
  for (const [method, url, start] of inFlight.values()) {
    out.push('    ' + method + ' ' + String(url).slice(0, 200) + ' for ' + ((now - start) / 1000).toFixed(1) + 's');
  }
  out.push(BT_END);
  const buf = Buffer.from(out.join('\n') + '\n');
  try {
    for (let off = 0; off < buf.length;) {
      try {
        off += fs.writeSync(btFd, buf, off, buf.length - off);
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
      }
    }
  } catch (e) {}
}

// ------------------------------------------------------ the Ferry server ---

function claim(server) {
  ferryServer = server;

  const emit = server.emit;
  server.emit = function ferryEmit(event, req, res) {
    switch (event) {
      case 'request':
        if (fixRequest(req) === true) {
          outOfBand(req, res); // the core's: not for the app
          return true;
        }
        if (stopping && res) res.shouldKeepAlive = false;
        if (res) track(req, res);
        break;
      case 'upgrade':
      case 'checkContinue':
      case 'checkExpectation':
      case 'connect':
        fixRequest(req);
        break;
    }
    return emit.apply(this, arguments);
  };

  // The core holds kept-alive connections as long as it likes.
  if ('keepAliveTimeout' in server) {
    Object.defineProperty(server, 'keepAliveTimeout', {
      configurable: true,
      enumerable: true,
      get() {
        return 0;
      },
      set(v) {},
    });
  }

  // Until it listens, an error on the server is a failed start.
  const onError = (err) => fail(err);
  server.once('error', onError);
  // Ready once the app's own 'listening' callbacks (which run after this
  // one) have run without throwing.
  server.once('listening', () => {
    server.removeListener('error', onError);
    process.nextTick(ready);
  });

  process.on('SIGTERM', onSigterm);
}

function ready() {
  if (phase !== 'loading') return;
  phase = 'ready';
  process.removeListener('uncaughtException', onStartupException);
  process.removeListener('exit', onExitBeforeReady);
  const fd = statusFd;
  // The listener before the handshake: a SIGWINCH that comes as soon as
  // the core has read it gets its dump (it runs after this function).
  if (fd >= 0) process.on('SIGWINCH', onBacktraces);
  report({ status: 'ready', socket: env.FERRY_SOCKET, concurrency: 0 }, true);
  backtracesOn(fd);
}

function onSigterm() {
  if (stopping) return;
  stopping = true;
  const server = ferryServer;
  server.close(() => process.exit(0));
  // Idle connections close now (Node 19+ close() does it too); busy ones
  // as soon as their response has finished.
  const closeIdle = () => {
    if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
  };
  closeIdle();
  try {
    const dc = require('diagnostics_channel');
    const ch = dc.channel('http.server.response.finish');
    ch.subscribe((msg) => {
      if (msg && msg.server === server) setImmediate(closeIdle);
    });
    onSigterm.channel = ch; // keep it referenced
  } catch (e) {
    setInterval(closeIdle, 100).unref();
  }
}

function removeStaleSocket(p) {
  try {
    if (fs.lstatSync(p).isSocket()) fs.unlinkSync(p);
  } catch (e) {}
}

let tls; // loaded when first needed

// Whether server is a tls.Server (https.Server too), for which the core
// has no use. Every one has setSecureContext; tls is loaded only to check
// a server that has it.
function isTLSServer(server) {
  if (typeof server.setSecureContext !== 'function') return false;
  if (!tls) tls = require('tls');
  return server instanceof tls.Server;
}

function patchListen(sock) {
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function ferryListen(...args) {
    if (ferryServer !== null && ferryServer !== this) return listen.apply(this, args);
    if (ferryServer === null) {
      if (isTLSServer(this)) return listen.apply(this, args); // the core speaks plain HTTP
      claim(this);
    }
    const opts = { path: sock };
    const first = args[0];
    if (first && typeof first === 'object' && Number.isInteger(first.backlog)) {
      opts.backlog = first.backlog;
    } else if (typeof first !== 'object' && Number.isInteger(args[2])) {
      opts.backlog = args[2]; // listen(port, host, backlog, cb)
    }
    const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    removeStaleSocket(sock);
    return cb ? listen.call(this, opts, cb) : listen.call(this, opts);
  };
}

// -------------------------------------------------------------- loading ---

function nearestPackage(dir) {
  for (;;) {
    const p = path.join(dir, 'package.json');
    try {
      return JSON.parse(fs.readFileSync(p, 'utf8'));
    } catch (e) {
      if (e.code !== 'ENOENT' && e.code !== 'ENOTDIR') return {};
    }
    const up = path.dirname(dir);
    if (up === dir) return {};
    dir = up;
  }
}

function tryResolve(abs) {
  try {
    return require.resolve(abs);
  } catch (e) {
    return null;
  }
}

// The entry file: FERRY_STARTUP_FILE, or else package.json "main", app.js,
// index.js, server.js — the first that exists.
function resolveEntry(root) {
  const startup = env.FERRY_STARTUP_FILE;
  if (startup) {
    const abs = path.resolve(root, startup);
    const file = tryResolve(abs) || (fs.existsSync(abs) && fs.statSync(abs).isFile() ? abs : null);
    if (!file) throw new Error('startup file ' + startup + ' not found in ' + root);
    return file;
  }
  const candidates = [];
  let pkg = null;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  } catch (e) {
    if (e.code !== 'ENOENT') throw new Error('package.json: ' + e.message);
  }
  if (pkg && typeof pkg.main === 'string' && pkg.main) candidates.push(pkg.main);
  candidates.push('app.js', 'index.js', 'server.js');
  for (const c of candidates) {
    const abs = path.resolve(root, c);
    const file = tryResolve(abs) || (fs.existsSync(abs) && fs.statSync(abs).isFile() ? abs : null);
    if (file) return file;
  }
  throw new Error('no startup file in ' + root + ': tried ' + candidates.join(', '));
}

function isESM(file) {
  const ext = path.extname(file);
  if (ext === '.mjs') return true;
  if (ext === '.cjs') return false;
  return nearestPackage(path.dirname(file)).type === 'module';
}

function main() {
  const lifelineFd = fdFrom(env.FERRY_LIFELINE_FD);
  if (lifelineFd >= 0) watchLifeline(lifelineFd);

  process.on('uncaughtException', onStartupException);
  process.on('exit', onExitBeforeReady);
  process.on('SIGQUIT', onSigquit);

  let file;
  try {
    const sock = env.FERRY_SOCKET;
    if (!sock) throw new Error('FERRY_SOCKET is not set');
    const root = env.FERRY_APP_ROOT || process.cwd();
    file = resolveEntry(root);
    patchListen(sock);
  } catch (err) {
    fail(err);
    return;
  }
  process.argv[1] = file; // as if run as `node <file>`

  if (isESM(file)) {
    const { pathToFileURL } = require('url');
    import(pathToFileURL(file).href).catch((err) => {
      if (phase === 'loading') fail(err);
      else crash(err); // thrown after it listened
    });
    return;
  }
  try {
    // As the main module, as `node <file>` would, so that
    // `require.main === module` holds in the app.
    if (typeof Module._load === 'function') Module._load(file, null, true);
    else require(file);
  } catch (err) {
    fail(err);
  }
}

main();
