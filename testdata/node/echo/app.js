'use strict';
// Test fixture: a plain `http` app whose endpoints exercise the Node loader
// and the core; the same endpoints as testdata/wsgi/echo where they apply.
//
//   /               hello world
//   /echo[/...]     the request as the app sees it (JSON, see echo())
//   /pid            the process id
//   /status/NNN     answers status NNN
//   /cookies        two Set-Cookie headers
//   /big?n=         n bytes of 'x', chunked
//   /sleep?s=&early=1  answers the pid after s seconds (a timer: many at
//                   once); with early=1 the head is sent at once
//   /crash          process.exit(1) in the middle of the request
//   /error          a handler that throws; the app answers 500
//   /uncaught       an exception outside any handler (the process dies)
//   /stream?n=&delay=  n chunks "chunk i\n", delay seconds apart
//   /print          a line on stdout and one on stderr
//   /upload         reads the body as a stream: {"len", "sha256"}
//   /ws             WebSocket echo ('upgrade' event, by hand)
//   anything else   404 "not found: PATH"
//
// Standard library only. It listens on port 3000 like any app; under Ferry
// that becomes the loader's Unix socket.

const crypto = require('crypto');
const http = require('http');

function reply(res, status, body, type, extra) {
  const buf = Buffer.from(body);
  const headers = { 'Content-Type': type || 'text/plain; charset=utf-8', 'Content-Length': buf.length };
  Object.assign(headers, extra);
  res.writeHead(status, headers);
  res.end(buf);
}

function json(res, obj) {
  reply(res, 200, JSON.stringify(obj), 'application/json');
}

function readBody(req, onChunk, done) {
  req.on('data', onChunk);
  req.on('end', done);
  req.on('error', done);
}

function echo(req, res, pathname, query) {
  const digest = crypto.createHash('sha256');
  const kept = [];
  let total = 0;
  readBody(
    req,
    (chunk) => {
      digest.update(chunk);
      total += chunk.length;
      if (total <= 65536) kept.push(chunk);
    },
    () => {
      const sock = req.socket;
      json(res, {
        method: req.method,
        path: pathname,
        query_string: query,
        content_type: req.headers['content-type'] ?? null,
        content_length: req.headers['content-length'] ?? null,
        headers: req.headers,
        raw_headers: req.rawHeaders,
        headers_distinct: req.headersDistinct,
        body_len: total,
        body_sha256: digest.digest('hex'),
        body: total <= 65536 ? Buffer.concat(kept).toString('latin1') : null,
        remote_addr: sock.remoteAddress ?? null,
        remote_port: sock.remotePort ?? null,
        remote_family: sock.remoteFamily ?? null,
        url_scheme: req.headers['x-forwarded-proto'] || (sock.encrypted ? 'https' : 'http'),
        encrypted: !!sock.encrypted,
        http_version: req.httpVersion,
        pid: process.pid,
      });
    },
  );
}

function big(res, n) {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
  const block = Buffer.alloc(65536, 'x');
  let left = n;
  const pump = () => {
    while (left > 0) {
      const k = Math.min(left, block.length);
      left -= k;
      if (!res.write(k === block.length ? block : block.subarray(0, k))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

function stream(res, n, delay) {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  let i = 0;
  const next = () => {
    res.write('chunk ' + i + '\n');
    i++;
    if (i >= n) res.end();
    else setTimeout(next, delay * 1000);
  };
  if (n > 0) next();
  else res.end();
}

function upload(req, res) {
  const digest = crypto.createHash('sha256');
  let len = 0;
  readBody(
    req,
    (chunk) => {
      digest.update(chunk);
      len += chunk.length;
    },
    () => json(res, { len, sha256: digest.digest('hex') }),
  );
}

function route(req, res) {
  const url = req.url;
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const params = new URLSearchParams(query);
  const num = (name, dflt) => {
    const v = params.get(name);
    return v === null || v === '' ? dflt : Number(v);
  };

  if (pathname === '/') return reply(res, 200, 'hello world');
  if (pathname === '/echo' || pathname.startsWith('/echo/')) return echo(req, res, pathname, query);
  if (pathname === '/pid') return reply(res, 200, String(process.pid));
  if (pathname.startsWith('/status/')) {
    const code = Number(pathname.slice('/status/'.length));
    if (Number.isInteger(code) && code >= 100 && code <= 999) {
      if (code < 200 || code === 204 || code === 304) {
        res.writeHead(code);
        return res.end();
      }
      return reply(res, code, 'status ' + code);
    }
  }
  if (pathname === '/cookies') {
    return reply(res, 200, 'cookies set', null, { 'Set-Cookie': ['a=1; Path=/', 'b=2; Path=/'] });
  }
  if (pathname === '/big') return big(res, num('n', 0));
  if (pathname === '/sleep') {
    if (params.get('early') === '1') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.flushHeaders();
    }
    setTimeout(() => {
      if (res.headersSent) res.end(String(process.pid));
      else reply(res, 200, String(process.pid));
    }, num('s', 0) * 1000);
    return;
  }
  if (pathname === '/crash') process.exit(1);
  if (pathname === '/error') throw new Error('boom from app');
  if (pathname === '/uncaught') {
    setImmediate(() => {
      throw new Error('uncaught from app');
    });
    return reply(res, 200, 'goodbye');
  }
  if (pathname === '/stream') return stream(res, num('n', 3), num('delay', 0));
  if (pathname === '/print') {
    console.log('hello stdout from app');
    console.error('hello stderr from app');
    return reply(res, 200, 'printed');
  }
  if (pathname === '/upload') return upload(req, res);
  reply(res, 404, 'not found: ' + pathname);
}

const server = http.createServer((req, res) => {
  try {
    route(req, res);
  } catch (err) {
    console.error(err.stack);
    if (!res.headersSent) reply(res, 500, 'internal error: ' + err.message);
    else res.destroy();
  }
});

// ------------------------------------------------------------ WebSocket ---

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(opcode, payload) {
  const n = payload.length;
  let head;
  if (n < 126) {
    head = Buffer.from([0x80 | opcode, n]);
  } else if (n < 65536) {
    head = Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

// wsEcho echoes text and binary messages (reassembling fragmented ones),
// answers pings, and answers a close with the same status code.
function wsEcho(socket, head) {
  let buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
  let parts = [];
  let msgOpcode = 0;
  let closed = false;

  const fail = (code) => {
    if (closed) return;
    closed = true;
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code, 0);
    socket.end(frame(0x8, p));
  };

  const parse = () => {
    while (!closed) {
      if (buf.length < 2) return;
      const fin = (buf[0] & 0x80) !== 0;
      const opcode = buf[0] & 0x0f;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        const big = buf.readBigUInt64BE(2);
        if (big > BigInt(64 << 20)) return fail(1009);
        len = Number(big);
        off = 10;
      }
      if (!masked) return fail(1002); // clients must mask
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + len);

      switch (opcode) {
        case 0x0: // continuation
          if (!msgOpcode) return fail(1002);
          parts.push(payload);
          break;
        case 0x1:
        case 0x2:
          if (msgOpcode) return fail(1002);
          msgOpcode = opcode;
          parts = [payload];
          break;
        case 0x8: {
          closed = true;
          socket.end(frame(0x8, payload.subarray(0, 2)));
          return;
        }
        case 0x9:
          socket.write(frame(0xa, payload));
          continue;
        case 0xa:
          continue;
        default:
          return fail(1002);
      }
      if (fin) {
        socket.write(frame(msgOpcode, Buffer.concat(parts)));
        msgOpcode = 0;
        parts = [];
      }
    }
  };

  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    parse();
  });
  socket.on('error', () => socket.destroy());
  socket.on('end', () => socket.end());
  parse();
}

server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  const pathname = req.url.split('?')[0];
  if (pathname !== '/ws' || String(req.headers.upgrade).toLowerCase() !== 'websocket' || !key) {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\n' +
      'Upgrade: websocket\r\n' +
      'Connection: Upgrade\r\n' +
      'Sec-WebSocket-Accept: ' + accept + '\r\n' +
      'X-Remote-Addr: ' + socket.remoteAddress + '\r\n' +
      '\r\n',
  );
  wsEcho(socket, head);
});

server.listen(3000, () => {
  console.log('echo app listening on port 3000');
});
