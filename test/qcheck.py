#!/usr/bin/python3
"""Helpers for relay's queue robustness tests (t_crash, t_concurrency,
t_diskfull, t_flush1000).

  qcheck.py gen DIR PREFIX FIRST COUNT [MINSIZE MAXSIZE]
      Write DIR/PREFIXn.txt for n = FIRST .. FIRST+COUNT-1: a message with
      From, To, Date, Message-ID <PREFIXn@queue.test> and Subject
      "queue test PREFIXn", LF lines, and a body of MINSIZE..MAXSIZE
      (default 300..3000) octets whose every line names the message, so
      that a truncated or mixed-up copy is told from the original.

  qcheck.py tally SRVDIR MSGDIR
      Look at every N.eml a smarthost stored and match it to its original
      in MSGDIR by Message-ID.  Prints "key value" lines:
          stored N        messages stored
          distinct N      different originals among them
          duplicates N    stored copies beyond the first of each
          bad N           stored messages that are no whole original
          count NAME N    per original (stored at least once)
          order NAME...   the whole ones, in the order stored
          badmsg FILE WHY one per bad message
      A stored message is whole when its body is the original's body with
      CRLF line ends, byte for byte, and its header block holds the
      original's Subject and Message-ID.

  qcheck.py queue QDIR MSGDIR
      Check every entry of QDIR/queue and QDIR/failed as the queue design
      describes it (directory QDIR/queue/ID holding exactly "message" and
      "envelope", plus at most an "envelope.new" left by a crash; the
      envelope parses: version 1, id = the directory name, created, size
      = the message file's size, a sender, at least one rcpt with state
      pending|sent|failed; the message is a whole original).  Prints:
          queued N / failed N / tmp N      entries in each directory
          id ID                            each entry of queue/ and failed/
          entry ID NAME                    each sound one, and its original
          pending NAME                     originals with pending rcpts
          bad N, then badentry ID WHY      corrupt entries
      Exit status 1 if any entry is bad.
"""

import os
import re
import sys
import zlib


def body_line(name, k, width):
    s = "%s line %d " % (name, k)
    fill = "abcdefghijklmnopqrstuvwxyz0123456789"
    seed = zlib.crc32(("%s/%d" % (name, k)).encode())
    while len(s) < width:
        s += fill[seed % len(fill)]
        seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return s[:width]


def gen(outdir, prefix, first, count, lo=300, hi=3000):
    os.makedirs(outdir, exist_ok=True)
    for n in range(first, first + count):
        name = "%s%d" % (prefix, n)
        size = lo + zlib.crc32(name.encode()) % (hi - lo + 1)
        lines, total, k = [], 0, 0
        while total < size:
            k += 1
            ln = body_line(name, k, 20 + (k * 37) % 60)
            lines.append(ln)
            total += len(ln) + 1
        head = ("From: Sender <sender@example.org>\n"
                "To: to@example.org\n"
                "Date: Sun, 22 Nov 2026 14:35:01 +0000\n"
                "Message-ID: <%s@queue.test>\n"
                "Subject: queue test %s\n" % (name, name))
        with open(os.path.join(outdir, name + ".txt"), "w") as f:
            f.write(head + "\n" + "\n".join(lines) + "\n")


def split(data):
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return data, None
    return data[:i + 2], data[i + 4:]


MID = re.compile(rb"(?im)^Message-ID:\s*<([^@>\s]+)@queue\.test>")


def original(msgdir, name, cache):
    if name not in cache:
        try:
            with open(os.path.join(msgdir, name + ".txt"), "rb") as f:
                raw = f.read()
        except OSError:
            cache[name] = None
            return None
        crlf = raw.replace(b"\n", b"\r\n")
        cache[name] = split(crlf)
    return cache[name]


def whole(data, msgdir, cache):
    """(name, None) if data is a whole original, else (name|None, why)."""
    head, body = split(data)
    m = MID.search(head)
    if not m:
        return None, "no Message-ID of a test message"
    name = m.group(1).decode()
    orig = original(msgdir, name, cache)
    if orig is None:
        return name, "no original for %s" % name
    ohead, obody = orig
    if body is None:
        return name, "no end of header block"
    if body != obody:
        return name, "body differs: %d octets, original %d" % (
            len(body), len(obody))
    subj = b"Subject: queue test " + name.encode() + b"\r\n"
    if subj not in head:
        return name, "Subject missing or changed"
    return name, None


def tally(srvdir, msgdir):
    cache, counts, bad, order = {}, {}, [], []
    n = 0
    while os.path.exists(os.path.join(srvdir, "%d.json" % (n + 1))):
        n += 1
        path = os.path.join(srvdir, "%d.eml" % n)
        with open(path, "rb") as f:
            data = f.read()
        name, why = whole(data, msgdir, cache)
        if why:
            bad.append((path, "%s: %s" % (name, why)))
            continue
        counts[name] = counts.get(name, 0) + 1
        order.append(name)
    print("stored %d" % n)
    print("distinct %d" % len(counts))
    print("duplicates %d" % sum(c - 1 for c in counts.values()))
    print("bad %d" % len(bad))
    for name in sorted(counts):
        print("count %s %d" % (name, counts[name]))
    for path, why in bad:
        print("badmsg %s %s" % (os.path.basename(path), why))
    print("order %s" % " ".join(order))
    return 0


ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
RCPT = re.compile(r"(pending|sent|failed) <([^<>\s]*)>( .*)?$")


def check_entry(d, ident, msgdir, cache, failed):
    """(name, pending, why): the original's name, whether a recipient is
    pending, what is wrong (or None)."""
    try:
        files = sorted(os.listdir(d))
    except OSError as e:
        return None, False, "cannot list: %s" % e
    extra = [f for f in files if f not in ("message", "envelope",
                                           "envelope.new")]
    if "message" not in files or "envelope" not in files:
        return None, False, "files %s: want message and envelope" % files
    if extra:
        return None, False, "unexpected files %s" % extra
    with open(os.path.join(d, "message"), "rb") as f:
        data = f.read()
    try:
        with open(os.path.join(d, "envelope"), encoding="utf-8") as f:
            env = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return None, False, "envelope unreadable: %s" % e
    if not env.endswith("\n"):
        return None, False, "envelope does not end with a newline (cut short?)"
    keys, rcpts = {}, []
    for ln in env.split("\n")[:-1]:
        k, _, v = ln.partition(" ")
        if not k or not v:
            return None, False, "envelope line %r is not \"key value\"" % ln
        if k == "rcpt":
            m = RCPT.match(v)
            if not m:
                return None, False, "bad rcpt line %r" % ln
            rcpts.append(m.group(1))
        else:
            keys[k] = v
    if keys.get("version") != "1":
        return None, False, "version %r, want 1" % keys.get("version")
    if keys.get("id") != ident:
        return None, False, "id %r in directory %s" % (keys.get("id"), ident)
    if not ISO.match(keys.get("created", "")):
        return None, False, "created %r" % keys.get("created")
    for k in ("last-attempt", "next-attempt"):
        if k in keys and not ISO.match(keys[k]):
            return None, False, "%s %r" % (k, keys[k])
    if not re.fullmatch(r"<[^<>\s]*>", keys.get("sender", "")):
        return None, False, "sender %r" % keys.get("sender")
    if not keys.get("size", "").isdigit():
        return None, False, "size %r" % keys.get("size")
    if int(keys["size"]) != len(data):
        return None, False, "size %s but the message file has %d octets" % (
            keys["size"], len(data))
    if "attempts" in keys and not keys["attempts"].isdigit():
        return None, False, "attempts %r" % keys["attempts"]
    if not rcpts:
        return None, False, "no rcpt line"
    if failed and "reason" not in keys:
        return None, False, "failed entry without a reason"
    name, why = whole(data, msgdir, cache)
    if why:
        return None, False, "message file: %s" % why
    return name, "pending" in rcpts, None


def queue(qdir, msgdir):
    cache, bad, pend, names = {}, [], [], []
    out = {}
    for sub in ("queue", "failed"):
        p = os.path.join(qdir, sub)
        ids = sorted(os.listdir(p)) if os.path.isdir(p) else []
        out[sub] = ids
        for ident in ids:
            name, pending, why = check_entry(os.path.join(p, ident), ident,
                                             msgdir, cache, sub == "failed")
            if why:
                bad.append((sub + "/" + ident, why))
                continue
            names.append((ident, name))
            if pending and sub == "queue":
                pend.append(name)
    t = os.path.join(qdir, "tmp")
    ntmp = len(os.listdir(t)) if os.path.isdir(t) else 0
    print("queued %d" % len(out["queue"]))
    print("failed %d" % len(out["failed"]))
    print("tmp %d" % ntmp)
    for ident in out["queue"] + out["failed"]:
        print("id %s" % ident)
    for ident, name in names:
        print("entry %s %s" % (ident, name))
    for name in pend:
        print("pending %s" % name)
    print("bad %d" % len(bad))
    for ident, why in bad:
        print("badentry %s %s" % (ident, why))
    return 1 if bad else 0


def main(argv):
    if len(argv) in (6, 8) and argv[1] == "gen":
        extra = [int(x) for x in argv[6:8]]
        gen(argv[2], argv[3], int(argv[4]), int(argv[5]), *extra)
        return 0
    if len(argv) == 4 and argv[1] == "tally":
        return tally(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "queue":
        return queue(argv[2], argv[3])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
