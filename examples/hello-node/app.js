// The smallest useful Node.js app: run it with `ferry start examples/hello-node`.
//
// It listens on a port like any Node app (PORT, or 3000), so `node app.js`
// works on its own too; under Ferry the listen() is redirected to the app
// process's socket.
const http = require('http');

const body = 'Hello from Ferry!\n';

const server = http.createServer((req, res) => {
  res.writeHead(200, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
});

server.listen(process.env.PORT || 3000, () => {
  console.log('hello-node listening');
});
