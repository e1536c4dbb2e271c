"""Any program that listens on $PORT can run under Ferry as a generic app:

    ferry start examples/hello-generic --app-start-command 'python3 server.py'

Ferry picks a free loopback port, passes it in $PORT, waits until it accepts
connections, and proxies to it (with X-Forwarded-For/-Proto/-Host set).
"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("hello from a generic app, pid %d, client %s\n"
                % (os.getpid(), self.headers.get("X-Forwarded-For", "?"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # Ferry logs every request already


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
