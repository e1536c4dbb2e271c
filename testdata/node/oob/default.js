'use strict';
// Test fixture: no 'ferry:outOfBandWork' listener, so the loader's default
// runs: global.gc() when the process exposes it. Under the tests node runs
// without --expose-gc, so the fixture stands in a counting global.gc (which
// calls the real one when there is one); /count tells how often it ran.

const http = require('http');

const state = { requests: 0, gcs: 0 };
const realGC = global.gc;
global.gc = function gc() {
  state.gcs++;
  if (typeof realGC === 'function') realGC();
};

http
  .createServer((req, res) => {
    state.requests++;
    const body = JSON.stringify(state);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  })
  .listen(3000);
