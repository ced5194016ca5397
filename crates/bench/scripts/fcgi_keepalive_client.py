"""Sends N FastCGI requests over one kept connection to SOCKET, each GET /bob/x, reading each
response to its END_REQUEST. Usage: client.py SOCKET N. With $COOKIE set, each request
carries it as its Cookie header (HTTP_COOKIE)."""
import os, socket, struct, sys

def record(rtype, rid, body):
    pad = (8 - len(body) % 8) % 8
    return struct.pack(">BBHHBx", 1, rtype, rid, len(body), pad) + body + b"\0" * pad

def pair(n, v):
    n, v = n.encode(), v.encode()
    def ln(x):
        return bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
    return ln(n) + ln(v) + n + v

PARAMS = [("GATEWAY_INTERFACE", "CGI/1.1"), ("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/bob/x"),
          ("DOCUMENT_URI", "/bob/x"), ("SCRIPT_NAME", "/bob/x"), ("QUERY_STRING", ""),
          ("SERVER_PROTOCOL", "HTTP/1.1"), ("REMOTE_ADDR", "127.0.0.1"), ("SERVER_NAME", "localhost"),
          ("SERVER_PORT", "80"), ("HTTP_HOST", "localhost"), ("HTTP_USER_AGENT", "cg-client")]
if os.environ.get("COOKIE"):
    PARAMS.append(("HTTP_COOKIE", os.environ["COOKIE"]))
body = b"".join(pair(n, v) for n, v in PARAMS)
REQ = (record(1, 1, struct.pack(">HB5x", 1, 1)) + record(4, 1, body) + record(4, 1, b"")
       + record(5, 1, b""))

def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("closed")
        buf += chunk
    return buf

s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
for _ in range(int(sys.argv[2])):
    s.sendall(REQ)
    while True:
        _, rtype, _, clen, pad = struct.unpack(">BBHHBx", read_exact(s, 8))
        read_exact(s, clen + pad)
        if rtype == 3:
            break
print("ok")
