#!/usr/bin/python3
"""Raw socket servers for faults aiosmtpd cannot produce (stdlib only).

  --scenario inject          587-style: EHLO offers STARTTLS + AUTH; STARTTLS
                             is answered "220 go ahead\\r\\n250-injected\\r\\n
                             250 AUTH PLAIN\\r\\n" in ONE send, then a TLS
                             handshake; after it a plain SMTP dialogue
                             (EHLO required before AUTH) that stores messages
  --scenario nostarttls      plaintext; EHLO offers AUTH PLAIN LOGIN but no
                             STARTTLS; accepts AUTH, MAIL, RCPT, DATA (so a
                             leaking client gets far and the log shows it)
  --scenario stall-greeting  accepts, never speaks
  --scenario garbage         greets with "HTTP/1.1 400 Bad Request"
  --scenario badreply        valid greeting, then "25O ok" to EHLO
  --scenario nul-ehlo        plaintext; the EHLO reply has a NUL byte inside
                             its first line, before "250-STARTTLS" and
                             "250 AUTH PLAIN LOGIN"; STARTTLS is refused
  --scenario tls-then-stall  implicit TLS handshake, then never greets
  --scenario close           accepts and closes at once
  --scenario noaccept        listen(0), backlog filled, never accepts: a
                             connect() to the port hangs (connect timeout)

Files in --outdir: received.log (every byte received, decrypted after TLS),
plaintext.log (bytes received before TLS), events.log ("EVENT CONN args":
accept C, tls C ok VERSION | tls C fail REASON, inject C, auth C ok|fail
MECH USER, mail C ADDR, rcpt C ADDR, message C N, quit C, close C), N.eml
and N.json for stored messages, server.log.
"""

import argparse
import base64
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

SCENARIOS = ("inject", "nostarttls", "stall-greeting", "garbage", "badreply",
             "tls-then-stall", "close", "noaccept", "nul-ehlo")


class Out:
    """Output directory shared by all connection threads."""

    def __init__(self, outdir):
        self.dir = outdir
        self.lock = threading.Lock()
        self.nconn = 0
        self.nmsg = 0
        os.makedirs(outdir, exist_ok=True)
        for name in ("received.log", "plaintext.log", "events.log"):
            open(self.path(name), "ab").close()

    def path(self, name):
        return os.path.join(self.dir, name)

    def append(self, name, data):
        with self.lock, open(self.path(name), "ab") as f:
            f.write(data)

    def log(self, msg):
        stamp = time.strftime("%H:%M:%S")
        self.append("server.log", f"{stamp} {msg}\n".encode())

    def event(self, *words):
        line = " ".join(str(w) for w in words)
        self.append("events.log", (line + "\n").encode())
        self.log("event: " + line)

    def next_conn(self):
        with self.lock:
            self.nconn += 1
            return self.nconn

    def save(self, content, meta):
        with self.lock:
            self.nmsg += 1
            n = self.nmsg
        for name, data in ((f"{n}.eml", content),
                           (f"{n}.json", json.dumps(
                               dict(meta, n=n, size=len(content)),
                               indent=1, sort_keys=True).encode() + b"\n")):
            tmp = self.path(name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, self.path(name))
        return n


class Conn:
    """One client connection with a line reader that logs what arrives."""

    def __init__(self, sock, out, opts):
        self.sock = sock
        self.out = out
        self.opts = opts
        self.id = out.next_conn()
        self.buf = b""
        self.tls = None     # TLS version once the handshake is done
        self.user = None
        sock.settimeout(opts.idle_timeout)

    def recv(self):
        try:
            data = self.sock.recv(65536)
        except (OSError, ssl.SSLError) as e:
            self.out.log(f"{self.id} recv: {e}")
            return b""
        if data:
            self.out.append("received.log", data)
            if self.tls is None:
                self.out.append("plaintext.log", data)
        return data

    def readline(self):
        while b"\n" not in self.buf:
            data = self.recv()
            if not data:
                return None
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        self.out.log(f"{self.id} >> {line!r}")
        return line.rstrip(b"\r")

    def send(self, data):
        self.out.log(f"{self.id} << {data!r}")
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.out.log(f"{self.id} send: {e}")

    def drain(self):
        """Read and log until the client closes (or the idle timeout)."""
        while self.recv():
            pass

    def start_tls(self, ctx):
        if self.buf:
            self.out.log(f"{self.id} discarding plaintext {self.buf!r}")
            self.buf = b""
        self.sock.settimeout(10)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as e:
            self.out.event("tls", self.id, "fail",
                           str(e).replace("\n", " ") or type(e).__name__)
            return False
        self.sock.settimeout(self.opts.idle_timeout)
        self.tls = self.sock.version()
        self.out.event("tls", self.id, "ok", self.tls)
        return True


def b64(data):
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return None


def check_login(c, mech, user, password):
    o = c.opts
    ok = (o.user is None or (user == o.user.encode()
                             and password == o.password.encode()))
    who = user.decode("utf-8", "replace")
    c.out.event("auth", c.id, "ok" if ok else "fail", mech, who)
    if ok:
        c.user = who
        c.send(b"235 2.7.0 Authentication successful\r\n")
    else:
        c.send(b"535 5.7.8 Authentication credentials invalid\r\n")


def auth_response(c, args, prompt):
    """The initial response (args[1]) if there is one, else the reply to
    "334 PROMPT"; Base64-decoded, or None."""
    if len(args) > 1:
        return b64(args[1])
    c.send(b"334 " + prompt + b"\r\n")
    line = c.readline()
    return b64(line) if line is not None else None


def do_auth(c, args):
    mech = args[0].upper() if args else b""
    if mech == b"PLAIN":
        blob = auth_response(c, args, b"")
        parts = blob.split(b"\0") if blob is not None else []
        if len(parts) != 3:
            c.send(b"501 5.5.2 Bad PLAIN response\r\n")
            return
        check_login(c, "PLAIN", parts[1], parts[2])
    elif mech == b"LOGIN":
        user = auth_response(c, args, b"VXNlcm5hbWU6")
        if user is None:
            c.send(b"501 5.5.2 Bad LOGIN response\r\n")
            return
        password = auth_response(c, [], b"UGFzc3dvcmQ6")
        if password is None:
            c.send(b"501 5.5.2 Bad LOGIN response\r\n")
            return
        check_login(c, "LOGIN", user, password)
    else:
        c.send(b"504 5.5.4 Unrecognized authentication type\r\n")


def addr(arg):
    a = arg.split(b":", 1)[1] if b":" in arg else b""
    a = a.strip().split(b" ")[0]
    return a.strip(b"<>").decode("utf-8", "replace")


def dialogue(c, caps, starttls=None):
    """A permissive SMTP server loop.  caps: EHLO keywords.  starttls: a
    function run on STARTTLS (None: answer 502)."""
    greeted = False
    mail_from, rcpts = None, []
    while True:
        line = c.readline()
        if line is None:
            return
        words = line.split(b" ")
        verb = words[0].upper()
        if verb in (b"EHLO", b"HELO"):
            greeted = True
            mail_from, rcpts = None, []
            if verb == b"HELO":
                c.send(b"250 localhost\r\n")
            else:
                lines = [b"localhost"] + caps
                c.send(b"".join((b"250 " if i == len(lines) - 1 else b"250-")
                                + s + b"\r\n" for i, s in enumerate(lines)))
        elif verb == b"STARTTLS" and starttls is not None:
            starttls()
            return
        elif verb == b"STARTTLS":
            c.send(b"502 5.5.1 STARTTLS not offered\r\n")
        elif verb == b"AUTH":
            if not greeted:
                c.send(b"503 5.5.1 EHLO first\r\n")
            else:
                do_auth(c, words[1:])
        elif verb == b"MAIL":
            mail_from, rcpts = addr(line), []
            c.out.event("mail", c.id, mail_from or "<>")
            c.send(b"250 2.1.0 OK\r\n")
        elif verb == b"RCPT":
            rcpts.append(addr(line))
            c.out.event("rcpt", c.id, rcpts[-1])
            c.send(b"250 2.1.5 OK\r\n")
        elif verb == b"DATA":
            if mail_from is None or not rcpts:
                c.send(b"503 5.5.1 need MAIL and RCPT\r\n")
                continue
            c.send(b"354 go ahead\r\n")
            body = []
            while True:
                dl = c.readline()
                if dl is None:
                    return
                if dl == b".":
                    break
                body.append(dl[1:] if dl.startswith(b".") else dl)
            content = b"".join(x + b"\r\n" for x in body)
            n = c.out.save(content, {"conn": c.id, "mail_from": mail_from,
                                     "rcpt_tos": rcpts, "auth_user": c.user,
                                     "tls": c.tls is not None,
                                     "tls_version": c.tls})
            c.out.event("message", c.id, n)
            c.send(b"250 2.0.0 OK\r\n")
            mail_from, rcpts = None, []
        elif verb in (b"RSET", b"NOOP"):
            c.send(b"250 2.0.0 OK\r\n")
        elif verb == b"QUIT":
            c.out.event("quit", c.id)
            c.send(b"221 2.0.0 Bye\r\n")
            return
        else:
            c.send(b"500 5.5.2 command not recognized\r\n")


GREETING = b"220 localhost ESMTP relay-test-rawserver\r\n"


def sc_inject(c):
    def starttls():
        c.out.event("inject", c.id)
        c.send(b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
        if c.start_tls(c.opts.ctx):
            dialogue(c, [b"AUTH PLAIN LOGIN"])
    c.send(GREETING)
    dialogue(c, [b"STARTTLS", b"AUTH PLAIN LOGIN"], starttls)


def sc_nostarttls(c):
    c.send(GREETING)
    dialogue(c, [b"AUTH PLAIN LOGIN", b"8BITMIME"])


def sc_stall_greeting(c):
    c.drain()


def sc_garbage(c):
    c.send(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
           b"Connection: close\r\n\r\n")
    c.drain()


def sc_badreply(c):
    c.send(GREETING)
    line = c.readline()
    if line is None:
        return
    c.send(b"25O ok\r\n")
    while True:
        line = c.readline()
        if line is None:
            return
        if line.upper() == b"QUIT":
            c.send(b"221 2.0.0 Bye\r\n")
            return
        c.send(b"500 5.5.2 what?\r\n")


def sc_nul_ehlo(c):
    c.send(GREETING)
    dialogue(c, [b"SIZE 1000\0hidden", b"STARTTLS", b"AUTH PLAIN LOGIN"])


def sc_tls_then_stall(c):
    if c.start_tls(c.opts.ctx):
        c.drain()


def sc_close(c):
    pass


HANDLERS = {
    "inject": sc_inject, "nostarttls": sc_nostarttls,
    "stall-greeting": sc_stall_greeting, "garbage": sc_garbage,
    "badreply": sc_badreply, "tls-then-stall": sc_tls_then_stall,
    "close": sc_close, "nul-ehlo": sc_nul_ehlo,
}


def handle(sock, peer, out, opts):
    c = Conn(sock, out, opts)
    out.event("accept", c.id)
    out.log(f"{c.id} peer {peer}")
    try:
        HANDLERS[opts.scenario](c)
    except Exception as e:      # keep serving; the log shows what broke
        out.log(f"{c.id} exception {e!r}")
    finally:
        try:
            c.sock.close()
        except OSError:
            pass
        out.event("close", c.id)


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", choices=SCENARIOS, required=True)
    p.add_argument("--cert", help="certificate chain, leaf first (PEM)")
    p.add_argument("--key")
    p.add_argument("--user", help="accepted AUTH user (default: any)")
    p.add_argument("--password")
    p.add_argument("--outdir", required=True)
    p.add_argument("--portfile", required=True)
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--idle-timeout", type=float, default=120,
                   help="seconds a silent client is kept")
    opts = p.parse_args()
    opts.ctx = None
    if opts.scenario in ("inject", "tls-then-stall"):
        if not (opts.cert and opts.key):
            p.error(f"--cert and --key are needed for {opts.scenario}")
        opts.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        opts.ctx.load_cert_chain(opts.cert, opts.key)
    if opts.user is not None and opts.password is None:
        p.error("--user needs --password")

    out = Out(opts.outdir)
    family = socket.AF_INET6 if ":" in opts.listen else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((opts.listen, 0))
    port = ls.getsockname()[1]
    parked = []
    if opts.scenario == "noaccept":
        # Fill the accept queue (listen(0) holds one) so that further SYNs
        # are dropped and the client's connect() hangs.
        ls.listen(0)
        for _ in range(3):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((opts.listen, port))
            except BlockingIOError:
                pass
            parked.append(s)
        time.sleep(0.1)
    else:
        ls.listen(16)
    out.log(f"listening on {opts.listen} port {port} "
            f"scenario {opts.scenario}")
    tmp = opts.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, opts.portfile)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while True:
            if opts.scenario == "noaccept":
                signal.pause()
                continue
            sock, peer = ls.accept()
            threading.Thread(target=handle, args=(sock, peer, out, opts),
                             daemon=True).start()
    except Stop:
        out.log("stopping")
    ls.close()
    for s in parked:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
