#!/usr/bin/python3
"""A submission smarthost for relay's end-to-end tests, built on aiosmtpd.

Run with Debian's /usr/bin/python3 (python3-aiosmtpd 1.4.3).  See test/README
and --help.  Files written to --outdir:

  N.eml           message N (1, 2, ...) exactly as received after DATA:
                  CRLF kept, dot-stuffing removed
  N.json          its envelope; written after N.eml, so wait for N.json
  plaintext.log   every byte received before TLS started, all connections
                  appended (empty in smtps mode; everything in plain mode)
  events.log      one line per event, "EVENT CONN args..."; in smtps mode
                  "accept C" without "connect C" means the TLS handshake
                  failed (asyncio does not tell us why):
                    accept C, connect C, tls C ok VERSION CIPHER
                    [client=SUBJECT] (the client certificate's subject,
                    "/O=relay test/CN=client-ec", if one was shown),
                    tls C fail REASON (STARTTLS only), ehlo C NAME,
                    helo C NAME, starttls C, auth C ok|fail MECH USER,
                    mail C ADDR, rcpt C ADDR, reject C ADDR,
                    defer C ADDR, data C,
                    message C N, fault C STAGE ACTION, quit C, close C
  server.log      human-readable log with timestamps (the SMTP dialogue)

Started again on the same --outdir (and --port), it goes on numbering
messages and connections from where the last run stopped, so a test can
take the smarthost down and bring it back on the same port.
"""

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, TLSSetupException

STAGES = ("connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "dot")
NULL_SENDER = "null-sender@null-sender.invalid"

log = logging.getLogger("smarthost")


class Faults:
    """--fault STAGE:ACTION[:COUNT]; COUNT limits how often it fires."""

    def __init__(self, specs):
        self.faults = {}
        for spec in specs:
            parts = spec.split(":")
            if len(parts) not in (2, 3):
                raise ValueError(f"bad --fault {spec!r}: want STAGE:ACTION[:COUNT]")
            stage, action = parts[0], parts[1]
            count = int(parts[2]) if len(parts) == 3 else -1
            if action == "drop-after-dot" and stage == "data":
                stage = "dot"
            if stage not in STAGES:
                raise ValueError(f"bad --fault stage {stage!r}")
            ok = re.fullmatch(r"[2-5][0-9][0-9]", action) or action in (
                "drop", "stall")
            ok = ok or (stage == "data" and action == "drop-mid")
            ok = ok or (stage == "dot" and action == "drop-after-dot")
            if not ok:
                raise ValueError(f"bad --fault action {action!r} for {stage}")
            self.faults[stage] = [action, count]

    def take(self, stage):
        f = self.faults.get(stage)
        if f is None or f[1] == 0:
            return None
        if f[1] > 0:
            f[1] -= 1
        return f[0]


def fault_reply(code, stage):
    if code[0] in "45":
        return f"{code} {code[0]}.3.0 injected {stage} fault"
    return f"{code} injected {stage} fault"


class Store:
    """The output directory: messages and logs."""

    def __init__(self, outdir):
        self.outdir = outdir
        self.nmsg = 0
        self.nconn = 0
        os.makedirs(outdir, exist_ok=True)
        # A restart on the same directory goes on where the last run left.
        while os.path.exists(os.path.join(outdir, f"{self.nmsg + 1}.json")):
            self.nmsg += 1
        try:
            with open(os.path.join(outdir, "events.log")) as f:
                for line in f:
                    w = line.split()
                    if len(w) >= 2 and w[0] == "accept" and w[1].isdigit():
                        self.nconn = max(self.nconn, int(w[1]))
        except FileNotFoundError:
            pass
        self.plain = open(os.path.join(outdir, "plaintext.log"), "ab",
                          buffering=0)
        self.events = open(os.path.join(outdir, "events.log"), "a",
                           buffering=1)

    def event(self, *words):
        line = " ".join(str(w) for w in words)
        self.events.write(line + "\n")
        log.info("event: %s", line)

    def _atomic(self, name, data):
        path = os.path.join(self.outdir, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)

    def save(self, content, meta):
        self.nmsg += 1
        n = self.nmsg
        meta = dict(meta, n=n, size=len(content))
        self._atomic(f"{n}.eml", content)
        self._atomic(f"{n}.json",
                     (json.dumps(meta, indent=1, sort_keys=True) + "\n")
                     .encode())
        return n


class Handler:
    def __init__(self, opts, store):
        self.opts = opts
        self.store = store

    def _fix_ehlo(self, responses):
        o = self.opts
        keep = []
        for r in responses[1:]:
            word = r[4:].split(" ", 1)[0].upper()
            if word in o.strip:
                continue
            if word == "AUTH":
                if o.no_auth:
                    continue
                if o.auth_mech:
                    r = "250-AUTH " + " ".join(o.auth_mech)
            if word == "HELP":
                continue
            keep.append(r[4:])
        if "PIPELINING" not in o.strip:
            keep.append("PIPELINING")
        lines = [responses[0][4:]] + keep
        return [("250 " if i == len(lines) - 1 else "250-") + s
                for i, s in enumerate(lines)]

    def _not_fqdn(self, name):
        """Postfix's reject_non_fqdn_*: a dot, or an address literal."""
        return (self.opts.strict_fqdn and not name.startswith("[")
                and "." not in name.rstrip("."))

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        if self._not_fqdn(hostname):
            self.store.event("refuse-helo", server.conn_id, hostname)
            return [f"504 5.5.2 <{hostname}>: Helo command rejected: "
                    "need fully-qualified hostname"]
        # The 5-argument hook must set host_name itself, or every later
        # MAIL is answered "503 Error: send HELO first".
        session.host_name = hostname
        self.store.event("ehlo", server.conn_id, hostname)
        return self._fix_ehlo(responses)

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.store.event("helo", server.conn_id, hostname)
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, options):
        if address == NULL_SENDER and server.null_sender:
            address = "<>"      # truthy, so RCPT sees a MAIL was given
        server.null_sender = False
        if address != "<>" and self._not_fqdn(address.rpartition("@")[2]
                                             if "@" in address else ""):
            self.store.event("refuse-sender", server.conn_id, address)
            return (f"504 5.5.2 <{address}>: Sender address rejected: "
                    "need fully-qualified address")
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        self.store.event("mail", server.conn_id, address)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self._not_fqdn(address.rpartition("@")[2] if "@" in address
                          else ""):
            self.store.event("refuse-rcpt", server.conn_id, address)
            return (f"504 5.5.2 <{address}>: Recipient address rejected: "
                    "need fully-qualified address")
        for prefix in self.opts.reject_rcpt:
            if address.startswith(prefix):
                self.store.event("reject", server.conn_id, address)
                return (f"550 5.1.1 <{address}>: "
                        + (self.opts.reject_text or "recipient rejected"))
        if (self.opts.max_rcpts
                and len(envelope.rcpt_tos) >= self.opts.max_rcpts):
            self.store.event("too-many", server.conn_id, address)
            return "452 4.5.3 Error: too many recipients"
        for prefix in self.opts.defer_rcpt:
            if address.startswith(prefix):
                self.store.event("defer", server.conn_id, address)
                return (f"451 4.7.1 <{address}>: greylisted, "
                        "try again later")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        self.store.event("rcpt", server.conn_id, address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        action = self.opts.faults.take("dot")
        if action:
            self.store.event("fault", server.conn_id, "dot", action)
        if action == "stall":
            await asyncio.sleep(self.opts.stall_seconds)
        elif action == "drop":
            server.hangup()
            return "250 unsent"
        elif action and action != "drop-after-dot":
            if action == "421":
                server.close_after_reply = True
            return fault_reply(action, "dot")
        tls_version = server.tls_version()
        mail_from = envelope.mail_from
        meta = {
            "conn": server.conn_id,
            "mail_from": "" if mail_from == "<>" else mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "auth_user": server.auth_user,
            "auth_mechanism": server.auth_mech,
            "tls": tls_version is not None,
            "tls_version": tls_version,
            "helo": session.host_name,
            "mode": self.opts.mode,
        }
        n = self.store.save(envelope.original_content, meta)
        self.store.event("message", server.conn_id, n)
        if action == "drop-after-dot":
            server.hangup()
        return "250 2.0.0 OK queued as " + str(n)


class FaultySMTP(SMTP):
    """aiosmtpd's SMTP with fault injection and plaintext capture."""

    def __init__(self, handler, opts, store, implicit_tls, **kw):
        super().__init__(handler, **kw)
        self.opts = opts
        self.store = store
        self.implicit_tls = implicit_tls
        store.nconn += 1
        self.conn_id = store.nconn
        self.auth_user = None
        self.auth_mech = None
        self.muted = False
        self.close_after_reply = False
        self.null_sender = False
        store.event("accept", self.conn_id)

    # -- connection ------------------------------------------------------

    def connection_made(self, transport):
        starttls_done = self._original_transport is not None
        super().connection_made(transport)
        if starttls_done or self.implicit_tls:
            obj = transport.get_extra_info("ssl_object")
            words = ["tls", self.conn_id, "ok",
                     obj.version() if obj else "?",
                     obj.cipher()[0] if obj else "?"]
            subject = client_subject(obj)
            if subject:
                words.append("client=" + subject)
            self.store.event(*words)
        if not starttls_done:
            self.store.event("connect", self.conn_id)

    def connection_lost(self, error):
        self.store.event("close", self.conn_id)
        super().connection_lost(error)

    def data_received(self, data):
        # Called with raw socket bytes until STARTTLS swaps the protocol;
        # afterwards (and always in smtps mode) with decrypted bytes.
        if not self.implicit_tls and self._tls_protocol is None:
            self.store.plain.write(data)
        super().data_received(data)

    async def handle_exception(self, error):
        if isinstance(error, TLSSetupException):
            why = str(error.__cause__ or error).replace("\n", " ")
            self.store.event("tls", self.conn_id, "fail", why)
            return "454 4.7.0 TLS handshake failed"     # not sent: closes
        return await super().handle_exception(error)

    def tls_version(self):
        if self.implicit_tls or self._tls_protocol is not None:
            obj = self.transport.get_extra_info("ssl_object") \
                if self.transport else None
            return obj.version() if obj else "unknown"
        return None

    def hangup(self):
        """Close the connection and swallow any reply still to be sent."""
        self.muted = True
        if self.transport is not None:
            self.transport.close()
        # Stop reading commands already buffered: the client sees a drop.
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    async def push(self, status):
        if self.muted:
            log.info("%s << (not sent) %r", self.conn_id, status)
            return
        log.info("%s << %r", self.conn_id, status)
        await super().push(status)
        if self.close_after_reply:
            self.hangup()

    # -- faults ----------------------------------------------------------

    async def fault(self, stage):
        """Apply a fault for stage.  True: the command is answered."""
        action = self.opts.faults.take(stage)
        if action is None:
            return False
        self.store.event("fault", self.conn_id, stage, action)
        if action == "stall":
            await asyncio.sleep(self.opts.stall_seconds)
            return False
        if action == "drop":
            self.hangup()
            return True
        if action == "421":
            self.close_after_reply = True
        await self.push(fault_reply(action, stage))
        return True

    async def _handle_client(self):
        action = self.opts.faults.take("connect")
        if action is not None:
            self.store.event("fault", self.conn_id, "connect", action)
        if action == "stall":
            await asyncio.sleep(self.opts.stall_seconds)
        elif action == "drop":
            self.hangup()
            return
        elif action is not None:
            await self.connect_refused(action)
            return
        await super()._handle_client()

    async def connect_refused(self, code):
        # RFC 5321 3.1: after a 554 greeting, wait for QUIT and answer
        # anything else with 503.  421 closes at once.
        if code == "421":
            self.close_after_reply = True
        await self.push(fault_reply(code, "connect"))
        while self.transport is not None and not self.muted:
            line = await self._reader.readline()
            if not line:
                break
            if line.strip().upper() == b"QUIT":
                self.store.event("quit", self.conn_id)
                await self.push("221 2.0.0 Bye")
                self.hangup()
                break
            await self.push("503 5.5.1 No service")

    async def smtp_EHLO(self, hostname):
        if self.muted:      # hung up: ignore what was buffered
            return
        if not await self.fault("ehlo"):
            await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname):
        if self.muted:
            return
        if not await self.fault("ehlo"):
            await super().smtp_HELO(hostname)

    async def smtp_STARTTLS(self, arg):
        if self.muted:
            return
        self.store.event("starttls", self.conn_id)
        if not await self.fault("starttls"):
            await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        if self.muted:
            return
        if self.opts.no_auth:
            await self.push("502 5.5.1 AUTH not supported")
            return
        if await self.fault("auth"):
            return
        if arg:
            words = arg.split(" ", 1)
            words[0] = words[0].upper()  # aiosmtpd matches case-sensitively
            if self.opts.auth_mech and words[0] not in self.opts.auth_mech:
                await self.push("504 5.5.4 Mechanism not offered")
                return
            arg = " ".join(words)
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):
        if self.muted:
            return
        if await self.fault("mail"):
            return
        # aiosmtpd 1.4.3 answers 501 to the null reverse-path "<>"; real
        # servers take it, so pass a stand-in and undo it in handle_MAIL.
        m = re.match(r"(?i)FROM:\s*<>(.*)$", arg or "")
        if m:
            self.null_sender = True
            arg = f"FROM:<{NULL_SENDER}>{m.group(1)}"
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        if self.muted:
            return
        if not await self.fault("rcpt"):
            await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg):
        if self.muted:
            return
        action = self.opts.faults.faults.get("data", [None])[0]
        if action == "drop-mid" and self.envelope.rcpt_tos:
            if self.opts.faults.take("data"):
                self.store.event("fault", self.conn_id, "data", "drop-mid")
                await self.push("354 End data with <CR><LF>.<CR><LF>")
                line = await self._reader.readline()
                log.info("%s drop-mid after %r", self.conn_id, line[:80])
                self.hangup()
                return
        elif await self.fault("data"):
            return
        self.store.event("data", self.conn_id)
        await super().smtp_DATA(arg)

    async def smtp_QUIT(self, arg):
        if self.muted:
            return
        self.store.event("quit", self.conn_id)
        await super().smtp_QUIT(arg)


def make_authenticator(opts, store):
    user = opts.user.encode() if opts.user is not None else None
    password = opts.password.encode() if opts.password is not None else None

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and user is not None
              and auth_data.login == user and auth_data.password == password)
        who = auth_data.login.decode("utf-8", "replace") \
            if isinstance(auth_data, LoginPassword) else "?"
        store.event("auth", server.conn_id, "ok" if ok else "fail",
                    mechanism, who)
        if ok:
            server.auth_user = who
            server.auth_mech = mechanism
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Authentication credentials "
                                  "invalid")
    return authenticator


def client_subject(obj):
    """The client certificate's subject as "/O=relay test/CN=x", or None."""
    cert = obj.getpeercert() if obj else None
    if not cert:
        return None
    return "".join(f"/{SHORT_NAMES.get(k, k)}={v}"
                   for rdn in cert.get("subject", ()) for k, v in rdn)


SHORT_NAMES = {"commonName": "CN", "organizationName": "O",
               "organizationalUnitName": "OU", "countryName": "C"}

TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def tls_context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    if opts.tls_min:
        ctx.minimum_version = TLS_VERSIONS[opts.tls_min]
    if opts.tls_max:
        ctx.maximum_version = TLS_VERSIONS[opts.tls_max]
        if opts.tls_max in ("1.0", "1.1"):
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # else OpenSSL 3 refuses
    if opts.ciphers:
        ctx.set_ciphers(opts.ciphers)   # TLS 1.2 and below only
    if opts.require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(opts.client_ca)
    return ctx


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("smtps", "starttls", "plain"),
                   required=True)
    p.add_argument("--cert", help="certificate chain, leaf first (PEM)")
    p.add_argument("--key", help="private key of the leaf (PEM)")
    p.add_argument("--user", help="the one accepted AUTH user")
    p.add_argument("--password", help="its password")
    p.add_argument("--outdir", required=True)
    p.add_argument("--portfile", required=True,
                   help="written (atomically) with the port once listening")
    p.add_argument("--listen", default="127.0.0.1",
                   help="address to bind (127.0.0.1 or ::1)")
    p.add_argument("--port", type=int, default=0,
                   help="port to bind; 0 (default): one the kernel picks")
    p.add_argument("--fault", action="append", default=[],
                   metavar="STAGE:ACTION[:COUNT]",
                   help="STAGE: " + " ".join(STAGES) + "; ACTION: a 3-digit "
                   "code, drop, stall, data:drop-mid, dot:drop-after-dot "
                   "(or data:drop-after-dot); COUNT: fire only that often")
    p.add_argument("--strip", action="append", default=[], metavar="CAP",
                   help="hide an EHLO keyword (STARTTLS AUTH 8BITMIME SIZE "
                   "PIPELINING SMTPUTF8)")
    p.add_argument("--reject-rcpt", action="append", default=[],
                   metavar="PREFIX", help="550 to RCPT addresses with PREFIX")
    p.add_argument("--defer-rcpt", action="append", default=[],
                   metavar="PREFIX", help="451 to RCPT addresses with PREFIX")
    p.add_argument("--max-rcpts", type=int, default=0,
                   help="452 to RCPTs past this many in one transaction")
    p.add_argument("--strict-fqdn", action="store_true",
                   help="504 to a HELO name, sender or recipient domain "
                   "that is not fully qualified (Postfix's reject_non_fqdn_*)")
    p.add_argument("--reject-text", metavar="TEXT",
                   help="the text of --reject-rcpt's 550")
    p.add_argument("--stall-seconds", type=float, default=30)
    p.add_argument("--size-limit", type=int, default=None,
                   help="advertised and enforced SIZE; 0: none")
    p.add_argument("--no-auth", action="store_true",
                   help="offer no AUTH and require none")
    p.add_argument("--auth-mech", action="append", default=[],
                   metavar="MECH", help="advertise only these mechanisms "
                   "(PLAIN, LOGIN, or an unsupported name like CRAM-MD5)")
    p.add_argument("--smtputf8", action="store_true")
    p.add_argument("--tls-min", choices=sorted(TLS_VERSIONS))
    p.add_argument("--tls-max", choices=sorted(TLS_VERSIONS))
    p.add_argument("--ciphers", metavar="LIST",
                   help="OpenSSL cipher list for TLS 1.2 (e.g. "
                   "ECDHE-RSA-AES128-SHA256: CBC only)")
    p.add_argument("--require-client-cert", action="store_true",
                   help="ask for a client certificate and refuse the "
                   "handshake without one that --client-ca verifies")
    p.add_argument("--client-ca", metavar="FILE",
                   help="CA for client certificates (default: ca.crt in "
                   "the directory of --cert, the test CA)")
    p.add_argument("--debug", action="store_true",
                   help="log aiosmtpd's debug output (every DATA line)")
    opts = p.parse_args(argv)
    opts.strip = {s.upper() for s in opts.strip}
    opts.auth_mech = [m.upper() for m in opts.auth_mech]
    if opts.mode != "plain" and not (opts.cert and opts.key):
        p.error("--cert and --key are needed for smtps and starttls")
    if opts.require_client_cert and opts.mode == "plain":
        p.error("--require-client-cert needs TLS")
    if opts.require_client_cert and not opts.client_ca:
        opts.client_ca = os.path.join(os.path.dirname(opts.cert), "ca.crt")
    if not opts.no_auth and opts.user is None:
        p.error("--user/--password needed (or --no-auth)")
    try:
        opts.faults = Faults(opts.fault)
    except ValueError as e:
        p.error(str(e))
    return opts


async def serve(opts):
    store = Store(opts.outdir)
    handler = Handler(opts, store)
    ctx = tls_context(opts) if opts.mode != "plain" else None
    kw = dict(
        hostname="localhost",   # never socket.getfqdn(): no DNS here
        ident="ESMTP relay-test-smarthost",
        auth_required=not opts.no_auth,
        authenticator=make_authenticator(opts, store),
        enable_SMTPUTF8=opts.smtputf8,
        timeout=120,
    )
    if opts.size_limit is not None:
        kw["data_size_limit"] = opts.size_limit or None
    if opts.mode == "starttls":
        kw.update(tls_context=ctx, require_starttls=True,
                  auth_require_tls=True)
    else:
        # smtps: aiosmtpd does not count TLS done by the transport, so with
        # auth_require_tls=True it would hide AUTH and answer 538.
        kw.update(auth_require_tls=False)
    implicit = opts.mode == "smtps"
    loop = asyncio.get_running_loop()

    def factory():
        return FaultySMTP(handler, opts, store, implicit, loop=loop, **kw)

    server = await loop.create_server(
        factory, host=opts.listen, port=opts.port,
        ssl=ctx if implicit else None, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    log.info("listening on %s port %d mode %s", opts.listen, port, opts.mode)
    tmp = opts.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, opts.portfile)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    server.close()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
    store.events.close()
    store.plain.close()


def main():
    # smtps needs AUTH without aiosmtpd's notion of TLS (see serve()), and
    # AuthResult(auth_data=...) trips a deprecation: both are expected.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    opts = parse_args(sys.argv[1:])
    os.makedirs(opts.outdir, exist_ok=True)
    logging.basicConfig(
        filename=os.path.join(opts.outdir, "server.log"),
        level=logging.DEBUG if opts.debug else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(message)s",
        datefmt="%H:%M:%S")
    logging.Formatter.converter = time.gmtime
    try:
        asyncio.run(serve(opts))
    except Exception:
        log.exception("fatal")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
