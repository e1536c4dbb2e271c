'use strict';
// Test fixture: an Express 4 app. Run `npm install` here first (the tests do
// it when node_modules is missing).
//
//   GET  /        hello from express
//   POST /json    echoes a JSON body: {"received": <body>}
//   GET  /stream  three chunks, 50 ms apart
//   GET  /error   passes an error to next(): Express's 500
//   GET  /pid     the process id
//   GET  /whoami  {"ip", "ips", "protocol", "secure", "hostname"} as Express sees them

const express = require('express');

const app = express();
app.use(express.json());

app.get('/', (req, res) => {
  res.type('text/plain').send('hello from express');
});

app.post('/json', (req, res) => {
  res.json({ received: req.body });
});

app.get('/stream', (req, res) => {
  res.type('text/plain');
  let i = 0;
  const next = () => {
    res.write('chunk ' + i + '\n');
    i++;
    if (i < 3) setTimeout(next, 50);
    else res.end();
  };
  next();
});

app.get('/error', (req, res, next) => {
  next(new Error('boom from express'));
});

app.get('/pid', (req, res) => {
  res.type('text/plain').send(String(process.pid));
});

app.get('/whoami', (req, res) => {
  res.json({ ip: req.ip, ips: req.ips, protocol: req.protocol, secure: req.secure, hostname: req.hostname });
});

module.exports = app;

// Listens only when run as the main module, as Express apps often do: the
// loader runs the entry as the main module, so this holds under Ferry too.
if (require.main === module) {
  app.listen(process.env.PORT || 3000, () => {
    console.log('express app listening');
  });
}
