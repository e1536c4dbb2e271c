// bench/node-cluster.js: examples/hello-node/app.js as a Node `cluster` of
// WORKERS (default 2) processes sharing one port, for bench/app-types.sh.
//
//   PORT=18000 WORKERS=2 node bench/node-cluster.js [path/to/app.js]
//
// The primary forks the workers; each worker loads the app unchanged, and its
// server.listen(PORT) is shared through the primary (cluster's default
// round-robin scheduling on Linux). SIGTERM/SIGINT to the primary stops the
// workers, then the primary. A worker that dies is not replaced (a benchmark
// should see it); the primary exits when no worker is left.
'use strict';
const cluster = require('cluster');
const path = require('path');

const app = path.resolve(process.argv[2] || path.join(__dirname, '..', 'examples', 'hello-node', 'app.js'));
const workers = parseInt(process.env.WORKERS || '2', 10);

if (cluster.isPrimary) {
  let stopping = false;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) console.error(`node-cluster: worker ${w.process.pid} exited (code ${code}, signal ${signal})`);
    if (Object.keys(cluster.workers).length === 0) process.exit(stopping ? 0 : 1);
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 10000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  console.log(`node-cluster: primary ${process.pid}, ${workers} workers, app ${app}, scheduling ${cluster.schedulingPolicy === cluster.SCHED_RR ? 'round-robin' : 'os'}`);
} else {
  require(app);
}
