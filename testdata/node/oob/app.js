'use strict';
// Test fixture: out-of-band work and SIGQUIT under the Node loader.
//
// Two 'ferry:outOfBandWork' listeners, a plain one and an async one (whose
// promise the loader awaits). The endpoints:
//
//   /count           JSON: requests the app has seen (this one included),
//                    runs of each listener, the pid
//   /ask             a response asking the core for out-of-band work
//                    (X-Ferry-Request-OOB-Work: true)
//   /ask-passenger   the same with Passenger's header (!~Request-OOB-Work)
//   /fail-next       the next out-of-band work: the async listener rejects
//   /sleep           writes "oob fixture: asleep" on stderr, then waits (the
//                    event loop is free) until /release
//   /release         ends every /sleep
//   /busy?release=PATH  writes "oob fixture: busy" on stderr, then blocks the
//                    event loop in a busy loop until the file PATH exists
//   anything else    404
//
// Standard library only.

const fs = require('fs');
const http = require('http');

const state = { requests: 0, hooks: 0, asyncHooks: 0 };
let fail = false;
let sleepers = [];

process.on('ferry:outOfBandWork', function countOOB() {
  state.hooks++;
});

process.on('ferry:outOfBandWork', async function countOOBAsync() {
  await new Promise((resolve) => setImmediate(resolve));
  state.asyncHooks++;
  if (fail) {
    fail = false;
    throw new Error('async listener failed on purpose');
  }
});

function reply(res, status, body, extra) {
  res.writeHead(status, Object.assign({ 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) }, extra));
  res.end(body);
}

function busyLoop(release) {
  while (!fs.existsSync(release)) {
    // the event loop is blocked
  }
}

http
  .createServer((req, res) => {
    state.requests++;
    const url = new URL(req.url, 'http://x');
    switch (url.pathname) {
      case '/count':
        reply(res, 200, JSON.stringify(Object.assign({ pid: process.pid }, state)));
        break;
      case '/ask':
        reply(res, 200, 'asked', { 'X-Ferry-Request-OOB-Work': 'true' });
        break;
      case '/ask-passenger':
        reply(res, 200, 'asked', { '!~Request-OOB-Work': 'true' });
        break;
      case '/fail-next':
        fail = true;
        reply(res, 200, 'the next async listener fails');
        break;
      case '/sleep':
        process.stderr.write('oob fixture: asleep\n');
        sleepers.push(() => reply(res, 200, 'awake'));
        break;
      case '/release': {
        const s = sleepers;
        sleepers = [];
        for (const wake of s) wake();
        reply(res, 200, 'released');
        break;
      }
      case '/busy':
        process.stderr.write('oob fixture: busy\n');
        busyLoop(url.searchParams.get('release'));
        reply(res, 200, 'not busy any more');
        break;
      default:
        reply(res, 404, 'not found');
    }
  })
  .listen(3000);
