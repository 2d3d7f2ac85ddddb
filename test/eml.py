#!/usr/bin/python3
"""Byte-level checks on stored messages (N.eml, CRLF) for the t_*.sh scripts
(stdlib only).  From the shell: eml COMMAND ARGS... (test/lib.sh).

  crlf FILE         "ok" if every CR is followed by LF and every LF preceded
                    by CR, else the offsets of the first bare ones
  maxline FILE      the length of the longest CRLF-ended line, in octets
  field FILE NAME   every header field NAME (any case), unfolded, one a line
  names FILE        the header field names in order (as written, blanks
                    before the colon kept), on one line
  head FILE         the header block, up to and with its last CRLF
  body FILE         what follows the empty line ("" if there is none)
  norm FILE         the file with CRLF, LF and lone CR all made CRLF, and a
                    final CRLF added if missing (what relay sends)
  qp FILE           the body decoded as quoted-printable; fails if a QP line
                    is over 76 octets
  unfold FILE       the body with every CRLF SP taken out (undoes folding)
  b64 FILE          the body decoded as Base64
  has FILE          "yes" if FILE holds the bytes given on stdin, else "no"
  gen WHAT          test input printf cannot write comfortably: long (a
                    1205-octet line with "=", tabs and a trailing blank),
                    words (300 words), solid (1200 octets, no blank), addrs
                    (60 addresses), b64line (a 1100-octet Base64 line)

The header block ends at the first empty line (CRLF CRLF); a file without
one is all header.
"""

import base64
import quopri
import re
import sys


def load(path):
    with open(path, "rb") as f:
        return f.read()


def split(data):
    """(header block with its last CRLF, body)."""
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return data, b""
    return data[:i + 2], data[i + 4:]


def fields(head):
    """Header fields, unfolded (CRLF before WSP removed)."""
    out = []
    for line in re.split(rb"\r\n(?![ \t])", head.rstrip(b"\r\n")):
        if line:
            out.append(re.sub(rb"\r\n(?=[ \t])", b"", line))
    return out


def norm(data):
    """What relay promises on the wire: CRLF, LF and lone CR end a line."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def gen(what):
    if what == "long":
        # What quoted-printable must encode: '=', a trailing blank, tabs.
        line = (b"col=1\tvalue  " * 100)[:1204] + b" "
        assert len(line) == 1205
        return line
    if what == "words":
        return b" ".join(b"word%d" % i for i in range(300))
    if what == "solid":
        return b"S" * 1200
    if what == "addrs":
        return b", ".join(b"user%02d@example.org" % i for i in range(60))
    if what == "b64line":
        return base64.b64encode(bytes(range(256)) * 4)[:1100]
    sys.exit("eml.py: gen: unknown input " + what)


def main(cmd, args):
    out = sys.stdout.buffer
    if cmd == "gen":
        out.write(gen(args[0]))
        return
    d = load(args[0])
    head, body = split(d)
    if cmd == "crlf":
        bad = [m.start() for m in re.finditer(rb"\r(?!\n)|(?<!\r)\n", d)]
        print("ok" if not bad else "bare CR/LF at offsets %s" % bad[:5])
    elif cmd == "maxline":
        print(max(len(l) for l in d.split(b"\r\n")))
    elif cmd == "field":
        name = args[1].encode().lower()
        for f in fields(head):
            if f.split(b":", 1)[0].strip().lower() == name:
                out.write(f + b"\n")
    elif cmd == "names":
        print(" ".join(f.split(b":", 1)[0].decode() for f in fields(head)))
    elif cmd == "head":
        out.write(head)
    elif cmd == "body":
        out.write(body)
    elif cmd == "norm":
        out.write(norm(d))
    elif cmd == "qp":
        long = [l for l in body.split(b"\r\n") if len(l) > 76]
        if long:
            sys.exit("QP line over 76 octets: %r" % long[0][:90])
        out.write(quopri.decodestring(body))
    elif cmd == "unfold":
        out.write(body.replace(b"\r\n ", b""))
    elif cmd == "b64":
        out.write(base64.b64decode(re.sub(rb"\s", b"", body)))
    elif cmd == "has":
        print("yes" if sys.stdin.buffer.read() in d else "no")
    else:
        sys.exit("eml.py: unknown command " + cmd)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
