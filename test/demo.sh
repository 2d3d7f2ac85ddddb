#!/bin/bash
# test/demo.sh: send one cron-style message through ./relay to a local test
# smarthost and show what arrived.  Run by "make demo" (which builds relay
# first); needs openssl and Debian's python3-aiosmtpd (/usr/bin/python3).
#
#   DEMO_DIR   where the config and the server's files go
#              (default test/tmp/demo; only the files named below are replaced)
#   DEMO_PKI   the test PKI (default test/tmp/pki, shared with the tests;
#              $DEMO_DIR/pki when DEMO_DIR is given)
#   RELAY      the binary (default ./relay, the production build)
#   PY         the Python that has aiosmtpd (default /usr/bin/python3)
#
# Exit status 0 only if relay exited 0 and the smarthost stored the message.
set -u

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PY:-/usr/bin/python3}
RELAY=${RELAY:-$TOP/relay}
if [ -n "${DEMO_DIR-}" ]; then
	PKI=${DEMO_PKI:-$DEMO_DIR/pki}
else
	DEMO_DIR=$TOP/test/tmp/demo
	PKI=${DEMO_PKI:-$TOP/test/tmp/pki}
fi
SRV=$DEMO_DIR/smarthost
CONF=$DEMO_DIR/relay.conf
USER_NAME=demo@example.org
PASSWORD="demo pass#word"	# a space and a '#': relay.conf takes them as is

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
indent() { sed 's/^/    /'; }
rel() { local p=$1; printf '%s\n' "${p#"$TOP"/}"; }
relbin() { case $RELAY in "$TOP"/*) printf './%s\n' "${RELAY#"$TOP"/}" ;; *) printf '%s\n' "$RELAY" ;; esac; }

[ -x "$RELAY" ] || die "no executable $RELAY (run \"make\" first)"
"$PY" -c 'import aiosmtpd' 2>/dev/null ||
    die "$PY cannot import aiosmtpd (apt-get install python3-aiosmtpd)"
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"

mkdir -p "$DEMO_DIR" || die "cannot create $DEMO_DIR"
rm -rf "$SRV" "$CONF" "$DEMO_DIR/message" "$DEMO_DIR/relay.err" \
    "$DEMO_DIR/pki.log" "$DEMO_DIR/smarthost.err" "$DEMO_DIR/queue" \
    "$DEMO_DIR/relay2.err"

# 1. Test PKI: a CA and a certificate for "localhost" (idempotent).
bash "$TOP/test/pki.sh" "$PKI" >"$DEMO_DIR/pki.log" 2>&1 ||
    die "test/pki.sh failed: $(cat "$DEMO_DIR/pki.log")"

# 2. The smarthost: implicit TLS (as on port 465), AUTH required, port
# picked by the kernel on 127.0.0.1.  Stopped by its PID on exit.
SRV_PID=
stop_server() {
	[ -n "$SRV_PID" ] || return 0
	kill -TERM "$SRV_PID" 2>/dev/null
	local n=0
	while kill -0 "$SRV_PID" 2>/dev/null && [ $n -lt 100 ]; do
		sleep 0.05
		n=$((n + 1))
	done
	kill -KILL "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server [PORT]: the smarthost in the background, its port in $SRV/port.
start_server() {
	rm -f "$SRV/port"
	"$PY" "$TOP/test/smarthost.py" --mode smtps --listen 127.0.0.1 \
	    --port "${1:-0}" --cert "$PKI/server.chain.pem" \
	    --key "$PKI/server.key" --user "$USER_NAME" --password "$PASSWORD" \
	    --outdir "$SRV" --portfile "$SRV/port" \
	    >>"$SRV/stdout.log" 2>>"$DEMO_DIR/smarthost.err" &
	SRV_PID=$!
	local n=0
	until [ -s "$SRV/port" ]; do
		{ kill -0 "$SRV_PID" 2>/dev/null && [ $n -lt 200 ]; } ||
		    die "the smarthost did not start: $(tail -n 20 "$DEMO_DIR/smarthost.err")"
		sleep 0.05
		n=$((n + 1))
	done
}

mkdir -p "$SRV"
start_server
PORT=$(cat "$SRV/port")

# 3. relay.conf, mode 0600 since it holds a password.
(umask 077; cat >"$CONF") <<EOF
# relay.conf for the demo smarthost (see relay.conf(5))
host localhost
port $PORT
tls implicit
user $USER_NAME
password $PASSWORD
ca_file $PKI/ca.crt
from cron@example.org
alias root admin@example.org, oncall@example.org
log stderr
queue $DEMO_DIR/queue
EOF
chmod 600 "$CONF"

# 4. The message, as Debian's cron writes it.
cat >"$DEMO_DIR/message" <<EOF
From: root (Cron Daemon)
To: root
Subject: Cron <root@$(uname -n)> /usr/local/bin/backup
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit
X-Cron-Env: <SHELL=/bin/sh>
X-Cron-Env: <LOGNAME=root>

backup: 3 archives written, 1.2 GB, café déjà vu
EOF

printf 'relay demo: one cron mail through %s to a test smarthost\n\n' "$(relbin)"
printf 'smarthost  aiosmtpd on 127.0.0.1:%s (PID %s), implicit TLS as on port 465,\n' \
    "$PORT" "$SRV_PID"
printf '           AUTH required, certificate for localhost from the test CA\n'
printf 'config     %s (mode 0%s):\n' "$(rel "$CONF")" "$(stat -c %a "$CONF")"
sed -e '/^#/d' -e "s|^password .*|password ********|" -e "s|$TOP/||" "$CONF" | indent
printf '\ninput (what cron pipes in):\n'
indent <"$DEMO_DIR/message"

printf '\n$ %s -C %s -FCronDaemon -i -B8BITMIME -oem root < message\n' \
    "$(relbin)" "$(rel "$CONF")"
status=0
timeout -k 5 60 "$RELAY" -C "$CONF" -FCronDaemon -i -B8BITMIME -oem root \
    <"$DEMO_DIR/message" 2>"$DEMO_DIR/relay.err" || status=$?
printf 'exit status %s\n' "$status"
printf '\nrelay'"'"'s log line (here on stderr: "log stderr"; syslog by default):\n'
indent <"$DEMO_DIR/relay.err"

if [ "$status" -ne 0 ]; then
	printf '\ndemo FAILED: relay exited %s; the smarthost'"'"'s log:\n' "$status"
	tail -n 20 "$SRV/server.log" 2>/dev/null | indent
	exit 1
fi

# N.json is written after N.eml.
n=0
until [ -e "$SRV/1.json" ]; do
	[ $n -lt 200 ] || die "relay exited 0 but the smarthost stored nothing"
	sleep 0.05
	n=$((n + 1))
done
"$PY" - "$SRV/1.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print("\nthe smarthost received, over %s, after AUTH %s as %s:"
      % (j["tls_version"] if j["tls"] else "plain text",
         j["auth_mechanism"], j["auth_user"]))
print("    MAIL FROM:<%s> %s" % (j["mail_from"], " ".join(j["mail_options"])))
for r in j["rcpt_tos"]:
    print("    RCPT TO:<%s>" % r)
EOF
printf '\nand the message as it arrived (From and To rewritten, Date and\nMessage-ID added, line ends CRLF on the wire):\n'
tr -d '\r' <"$SRV/1.eml" | indent

# 5. The smarthost goes away: the message waits in the queue.
stop_server
printf '\nnow the smarthost is stopped, and cron sends another mail:\n'
printf '\n$ %s -C %s -i root < message\n' "$(relbin)" "$(rel "$CONF")"
status=0
timeout -k 5 60 "$RELAY" -C "$CONF" -i root <"$DEMO_DIR/message" \
    2>"$DEMO_DIR/relay2.err" || status=$?
printf 'exit status %s (accepted: it is safe on disk)\n' "$status"
indent <"$DEMO_DIR/relay2.err"
[ "$status" -eq 0 ] || die "relay exited $status with the smarthost down"
printf '\n$ %s -C %s -bp       # mailq\n' "$(relbin)" "$(rel "$CONF")"
"$RELAY" -C "$CONF" -bp | sed "s|$TOP/||g" | indent

# 6. Back up; the cron-run flush delivers it.
start_server "$PORT"
printf '\nthe smarthost is back (same port).  Cron'"'"'s "relay -q" would wait\n'
printf 'for the next try (5 minutes, doubling); -qf runs the queue now:\n'
printf '\n$ %s -C %s -qf\n' "$(relbin)" "$(rel "$CONF")"
timeout -k 5 60 "$RELAY" -C "$CONF" -qf 2>&1 | indent
n=0
until [ -e "$SRV/2.json" ]; do
	[ $n -lt 200 ] || die "relay -q ran but the smarthost stored nothing"
	sleep 0.05
	n=$((n + 1))
done
printf '\n$ %s -C %s -bp\n' "$(relbin)" "$(rel "$CONF")"
"$RELAY" -C "$CONF" -bp | indent

stop_server
printf '\ndemo OK: delivered at once, then queued while the smarthost was down\n'
printf 'and delivered from the queue once it was back; files in %s\n' \
    "$(rel "$DEMO_DIR")"
