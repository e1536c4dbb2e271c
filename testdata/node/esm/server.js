// An ES module app: import syntax and top-level await before it listens.
import http from 'node:http';

const greeting = await new Promise((resolve) => setTimeout(() => resolve('hello from esm'), 10));

const server = http.createServer((req, res) => {
  if (req.url === '/pid') {
    res.end(String(process.pid));
    return;
  }
  if (req.url !== '/') {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('not found: ' + req.url);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(greeting);
});

server.listen(8080);
