#!/bin/bash
# bench/postfix.sh: a real Postfix smarthost for the benchmark, run from a
# dpkg -x tree (nothing installed, /usr/sbin/sendmail untouched).
#
# Source it from bash (it sets no shell options of its own), or run
#   bash bench/postfix.sh selftest
#
#   pf_setup WORKDIR PKIDIR USER PASS
#       Fetch postfix and sasl2-bin .debs (cached in bench/cache), extract
#       them into WORKDIR/pkg, write a private config in WORKDIR/etc, a
#       Cyrus sasldb with USER/PASS (PLAIN LOGIN), pick free ports.
#       Exports PF_PORT_SMTPS (465-style, implicit TLS, AUTH required),
#       PF_PORT_SUBMIT (587-style, STARTTLS required, AUTH required),
#       PF_PORT_PLAIN (no TLS, no AUTH, open relay on loopback: for
#       smtp-source), PF_PORT_SINK (smtp-sink, internal), PF_DIR.
#       Every smtpd hands each message in real time to smtp-sink through
#       smtpd_proxy_filter: nothing is queued by Postfix.
#   pf_start            start smtp-sink and the Postfix master (by PID)
#   pf_stop             stop both by PID, wait for exit; idempotent
#   pf_count            messages smtp-sink has accepted so far (its -c counter)
#   pf_connections      client connections the smtpd listeners have accepted
#                       ("connect from" lines in Postfix's log)
#   pf_warm [CAFILE]    one session per listener (spawns the smtpds); resets
#                       the pf_connections base
#   pf_ceiling N SIZE   smtp-source over the plain listener: prints
#                       "one_conn=R several=R per_msg=R" (messages/s)
#
# Knobs: PF_SESSIONS (4, parallel sessions of "several"), PF_MAIN_EXTRA
# (newline-separated "name = value" lines appended to main.cf),
# PF_SINK_DUMP (a directory: smtp-sink also writes each message there),
# PF_DEBS (bench/cache).  The functions use the PF_* variables, so a driver
# that sources this file in a subshell must call pf_setup again there, or
# export PF_DIR and call pf_env.

PF_SELF=$(readlink -f "${BASH_SOURCE[0]}")
PF_BENCH=$(dirname "$PF_SELF")
: "${PF_DEBS:=$PF_BENCH/cache}"
PF_PKGS="postfix sasl2-bin"

pf_die() { echo "postfix.sh: $*" >&2; return 1; }

# pf_fetch: the .debs, downloaded once into $PF_DEBS with apt-get download.
pf_fetch() {
	local p
	mkdir -p "$PF_DEBS" || return 1
	for p in $PF_PKGS; do
		ls "$PF_DEBS/${p}_"*.deb >/dev/null 2>&1 && continue
		(cd "$PF_DEBS" && apt-get download "$p" >/dev/null 2>&1) ||
		{ (apt-get update >/dev/null 2>&1) &&
		  (cd "$PF_DEBS" && apt-get download "$p" >/dev/null 2>&1); } ||
		    { pf_die "apt-get download $p failed"; return 1; }
	done
}

# pf_freeports N: N distinct free TCP ports on 127.0.0.1 (bind port 0 for
# all of them at once, then close: a small race, acceptable here).
pf_freeports() {
	/usr/bin/python3 - "$1" <<'EOF'
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
}

# pf_env: derive the paths from PF_DIR (and the ports from PF_DIR/ports).
pf_env() {
	[ -n "${PF_DIR:-}" ] || { pf_die "PF_DIR not set"; return 1; }
	PF_PKG=$PF_DIR/pkg
	PF_ETC=$PF_DIR/etc
	PF_LOG=$PF_DIR/postfix.log
	PF_SINKOUT=$PF_DIR/sink.count
	# Only for Postfix's own programs (pf_run): not exported to the caller.
	PF_LDPATH=$PF_PKG/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	if [ -f "$PF_DIR/ports" ]; then
		read -r PF_PORT_SMTPS PF_PORT_SUBMIT PF_PORT_PLAIN \
		    PF_PORT_SINK <"$PF_DIR/ports"
		export PF_PORT_SMTPS PF_PORT_SUBMIT PF_PORT_PLAIN PF_PORT_SINK
	fi
	export PF_DIR
}

pf_run() { LD_LIBRARY_PATH=$PF_LDPATH "$@"; }
pf_postconf() { pf_run "$PF_PKG/usr/sbin/postconf" -c "$PF_ETC" "$@"; }

pf_setup() {
	local work=${1:?usage: pf_setup WORKDIR PKIDIR USER PASS}
	local pki=${2:?} user=${3:?} pass=${4:?} f ports
	mkdir -p "$work" || return 1
	PF_DIR=$(cd "$work" && pwd)
	pki=$(cd "$pki" && pwd) || return 1
	for f in server.chain.pem server.key; do
		[ -r "$pki/$f" ] || { pf_die "no $pki/$f (run test/pki.sh)"; return 1; }
	done
	pf_fetch || return 1
	pf_env
	[ -f "$PF_DIR/master.pid.ours" ] &&
	    { pf_die "$PF_DIR is running: pf_stop first"; return 1; }
	rm -rf "$PF_PKG" "$PF_ETC" "$PF_DIR/queue" "$PF_DIR/data" "$PF_LOG" \
	    "$PF_SINKOUT" "$PF_DIR/ports"
	mkdir -p "$PF_PKG" "$PF_ETC/sasl" "$PF_DIR/queue" "$PF_DIR/data"
	for f in $PF_PKGS; do
		dpkg -x "$(ls "$PF_DEBS/${f}_"*.deb | tail -1)" "$PF_PKG" ||
		    { pf_die "dpkg -x $f failed"; return 1; }
	done
	# smtpd runs as nobody after start-up: it must reach the sasldb.
	chmod 755 "$PF_DIR" "$PF_ETC" "$PF_ETC/sasl"
	chown nobody "$PF_DIR/data"

	ports=$(pf_freeports 4) || return 1
	echo "$ports" >"$PF_DIR/ports"
	pf_env

	local P=$PF_PKG R=$PF_DIR
	: >"$PF_ETC/main.cf"
	cat >"$PF_ETC/main.cf" <<EOF
# Written by bench/postfix.sh.  Stock Postfix 3.7 defaults except:
compatibility_level = 3.6
# -- running from a dpkg -x tree, as root, without a postfix user
daemon_directory = $P/usr/lib/postfix/sbin
command_directory = $P/usr/sbin
shlib_directory = $P/usr/lib/postfix
meta_directory = $P/etc/postfix
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
queue_directory = $R/queue
data_directory = $R/data
mail_owner = nobody
default_privs = daemon
setgid_group = mail
maillog_file = $R/postfix.log
maillog_file_prefixes = $R
syslog_name = pfbench
# -- loopback only, no local delivery, relay only for the listeners below
myhostname = localhost
mydomain = localdomain
mydestination =
relay_domains =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# -- the benchmark sends up to 100 MB (default limit 10240000)
message_size_limit = 268435456
mailbox_size_limit = 0
# -- TLS + SASL (the 465/587 listeners require both, see master.cf)
smtpd_tls_chain_files = $pki/server.key, $pki/server.chain.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 0
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_local_domain =
cyrus_sasl_config_path = $R/etc/sasl
smtpd_relay_restrictions = permit_sasl_authenticated, reject
# -- keep the client's headers as sent (no Date/Message-ID/From added)
local_header_rewrite_clients =
# -- every message goes in real time to smtp-sink; nothing is queued
smtpd_proxy_filter = 127.0.0.1:$PF_PORT_SINK
EOF
	[ -n "${PF_MAIN_EXTRA:-}" ] && printf '%s\n' "$PF_MAIN_EXTRA" >>"$PF_ETC/main.cf"

	cp "$P/usr/share/postfix/master.cf.dist" "$PF_ETC/master.cf"
	pf_postconf -M# smtp/inet
	pf_postconf -F '*/*/chroot = n'
	pf_postconf -M "127.0.0.1:$PF_PORT_SMTPS/inet = 127.0.0.1:$PF_PORT_SMTPS inet n - n - - smtpd -o syslog_name=pfbench/smtps -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes"
	pf_postconf -M "127.0.0.1:$PF_PORT_SUBMIT/inet = 127.0.0.1:$PF_PORT_SUBMIT inet n - n - - smtpd -o syslog_name=pfbench/submission -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes"
	pf_postconf -M "127.0.0.1:$PF_PORT_PLAIN/inet = 127.0.0.1:$PF_PORT_PLAIN inet n - n - - smtpd -o syslog_name=pfbench/plain -o smtpd_tls_security_level=none -o smtpd_sasl_auth_enable=no -o smtpd_relay_restrictions=permit_mynetworks,reject"

	cat >"$PF_ETC/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $PF_ETC/sasldb2
EOF
	printf '%s' "$pass" | pf_run "$P/usr/sbin/saslpasswd2" -p -c \
	    -f "$PF_ETC/sasldb2" -u localhost "$user" ||
	    { pf_die "saslpasswd2 failed"; return 1; }
	chgrp nogroup "$PF_ETC/sasldb2" && chmod 640 "$PF_ETC/sasldb2"

	# Creates the queue directories; checks the configuration.
	pf_run "$P/usr/sbin/postfix" -c "$PF_ETC" check >"$PF_DIR/check.log" 2>&1 ||
	    { cat "$PF_DIR/check.log" >&2; pf_die "postfix check failed"; return 1; }
	echo "pf_setup: smtps=$PF_PORT_SMTPS submit=$PF_PORT_SUBMIT plain=$PF_PORT_PLAIN sink=$PF_PORT_SINK dir=$PF_DIR"
}

# pf_waitport PORT: wait (5 s) until something listens on 127.0.0.1:PORT.
pf_waitport() {
	local i
	for i in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	pf_die "nothing listens on port $1"
}

pf_start() {
	pf_env || return 1
	[ -f "$PF_DIR/master.pid.ours" ] && { pf_die "already started"; return 1; }
	# smtp-sink: no AUTH advertised (-a), counters on stdout (-c), as
	# nobody; with PF_SINK_DUMP=DIR, each message is also written to
	# DIR/<minute>.<random> (slower: disk).
	local dump=()
	[ -n "${PF_SINK_DUMP:-}" ] && mkdir -p "$PF_SINK_DUMP" &&
	    chown nobody "$PF_SINK_DUMP" && dump=(-d "$PF_SINK_DUMP/%M.")
	: >"$PF_SINKOUT"
	LD_LIBRARY_PATH=$PF_LDPATH "$PF_PKG/usr/sbin/smtp-sink" -a -c -u nobody "${dump[@]}" \
	    "127.0.0.1:$PF_PORT_SINK" 256 </dev/null >"$PF_SINKOUT" \
	    2>"$PF_DIR/sink.err" &
	echo $! >"$PF_DIR/sink.pid.ours"
	# master in the foreground (-d: no detach), so $! is its PID.
	LD_LIBRARY_PATH=$PF_LDPATH "$PF_PKG/usr/lib/postfix/sbin/master" -c "$PF_ETC" -d \
	    </dev/null >>"$PF_DIR/master.out" 2>&1 &
	echo $! >"$PF_DIR/master.pid.ours"
	# (plain commands, not pf_run: "$!" must be the daemon itself)
	pf_waitport "$PF_PORT_SINK" && pf_waitport "$PF_PORT_SMTPS" &&
	    pf_waitport "$PF_PORT_SUBMIT" && pf_waitport "$PF_PORT_PLAIN" ||
	    { cat "$PF_DIR/master.out" "$PF_DIR/sink.err" >&2; pf_stop; return 1; }
	# The connect probes above are logged: count from here on.
	sleep 0.3
	pf_connections_base=$(pf_connections_raw)
	echo "$pf_connections_base" >"$PF_DIR/connections.base"
}

# pf_kill FILE: TERM the PID in FILE, wait up to 10 s, then KILL; rm FILE.
pf_kill() {
	local f=$1 pid i
	[ -f "$f" ] || return 0
	read -r pid <"$f"
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$f"
}

pf_stop() {
	pf_env || return 1
	local mpid pids p i
	if [ -f "$PF_DIR/master.pid.ours" ]; then
		read -r mpid <"$PF_DIR/master.pid.ours"
		# The master's children (smtpd, anvil, ...) exit when it does;
		# wait for them too, by PID.
		pids=$(ps -o pid= --ppid "$mpid" 2>/dev/null || true)
		pf_kill "$PF_DIR/master.pid.ours"
		for i in $(seq 50); do
			p=
			for p in $pids; do kill -0 "$p" 2>/dev/null && break; p=; done
			[ -z "$p" ] && break
			sleep 0.1
		done
		for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
	fi
	pf_kill "$PF_DIR/sink.pid.ours"
	return 0
}

# pf_count: messages accepted by smtp-sink.  smtp-sink -c appends
# "sess=N quit=N mesg=N\r" at every session end, QUIT and "."; only the
# last bytes of that file are read.
pf_count() {
	local last
	last=$(tail -c 200 "$PF_SINKOUT" 2>/dev/null | tr '\r' '\n' |
	    grep -E '^sess=[0-9]+ quit=[0-9]+ mesg=[0-9]+$' | tail -1)
	echo "${last##*mesg=}" | grep -E '^[0-9]+$' || echo 0
}

pf_connections_raw() {
	awk '/: connect from /{n++} END{print n+0}' "$PF_LOG" 2>/dev/null || echo 0
}
# pf_connections: client connections to the three listeners since pf_start.
# Postfix logs through postlogd (asynchronous): allow ~0.2 s after the
# client exits before reading this.
pf_connections() {
	local base=0
	[ -f "$PF_DIR/connections.base" ] && read -r base <"$PF_DIR/connections.base"
	echo $(( $(pf_connections_raw) - base ))
}

# pf_warm [CAFILE]: one EHLO/QUIT session per listener (TLS for 465 and
# after STARTTLS on 587, with CAFILE or without verification), so that the
# first measured connection does not pay for spawning smtpd (master then
# keeps an idle smtpd per listener, max_idle 100 s, reused up to max_use 100
# times).  pf_connections counts from here on afterwards.
pf_warm() {
	pf_env || return 1
	/usr/bin/python3 - "$PF_PORT_SMTPS" "$PF_PORT_SUBMIT" "$PF_PORT_PLAIN" \
	    "${1:-}" <<'EOF2' || return 1
import smtplib, ssl, sys
smtps, submit, plain, ca = sys.argv[1:5]
if ca:
    ctx = ssl.create_default_context(cafile=ca)
else:
    ctx = ssl._create_unverified_context()
s = smtplib.SMTP_SSL("localhost", int(smtps), context=ctx, timeout=20); s.ehlo(); s.quit()
s = smtplib.SMTP("localhost", int(submit), timeout=20); s.starttls(context=ctx); s.ehlo(); s.quit()
s = smtplib.SMTP("localhost", int(plain), timeout=20); s.ehlo(); s.quit()
EOF2
	sleep 0.3
	pf_connections_raw >"$PF_DIR/connections.base"
}

# pf_rate N CMD...: run CMD, print N / wall seconds.
pf_rate() {
	local n=$1 t0 t1; shift
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>"$PF_DIR/source.err" ||
	    { cat "$PF_DIR/source.err" >&2; echo "FAIL"; return 1; }
	t1=$(date +%s.%N)
	awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }'
}

pf_ceiling() {
	local n=${1:-200} size=${2:-4096} s=${PF_SESSIONS:-4} src one sev per
	pf_env || return 1
	src=(pf_run "$PF_PKG/usr/sbin/smtp-source" -M localhost -f bench@localhost
	    -t sink@example.com -l "$size")
	one=$(pf_rate "$n" "${src[@]}" -d -s 1 -m "$n" "127.0.0.1:$PF_PORT_PLAIN")
	sev=$(pf_rate "$n" "${src[@]}" -d -s "$s" -m "$n" "127.0.0.1:$PF_PORT_PLAIN")
	per=$(pf_rate "$n" "${src[@]}" -s 1 -m "$n" "127.0.0.1:$PF_PORT_PLAIN")
	echo "one_conn=$one several=$sev per_msg=$per"
}

# ---- self-test -------------------------------------------------------
pf_selftest() {
	local top tmp user='bench@example.org' pass='s3cret pass' c0 c1 k0 k1 rc=0
	top=$(dirname "$PF_BENCH")
	tmp=$PF_BENCH/tmp/pfselftest
	bash "$top/test/pki.sh" "$PF_BENCH/tmp/pki" || return 1
	pf_setup "$tmp/pf" "$PF_BENCH/tmp/pki" "$user" "$pass" || return 1
	trap pf_stop EXIT
	pf_start || return 1
	pf_warm "$PF_BENCH/tmp/pki/ca.crt" || { echo "FAIL: pf_warm"; rc=1; }
	c0=$(pf_count); k0=$(pf_connections)
	/usr/bin/python3 - "$PF_PORT_SMTPS" "$PF_PORT_SUBMIT" \
	    "$PF_BENCH/tmp/pki/ca.crt" "$user" "$pass" <<'EOF' || rc=1
import smtplib, ssl, sys
smtps, submit, ca, user, pw = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
msg = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: %s\r\n\r\nhello\r\n"
s = smtplib.SMTP_SSL("localhost", int(smtps), context=ctx, timeout=20)
s.login(user, pw)
s.sendmail("a@example.org", ["b@example.com"], msg % b"465")
s.quit()
s = smtplib.SMTP("localhost", int(submit), timeout=20)
s.ehlo()
# AUTH must not be offered before STARTTLS, and MAIL must be refused.
assert "auth" not in s.esmtp_features, s.esmtp_features
code, _ = s.mail("a@example.org"); assert code == 530, code
s.rset()
s.starttls(context=ctx)
s.ehlo()
assert "PLAIN" in s.esmtp_features.get("auth", ""), s.esmtp_features
try:
    s.login(user, pw + "x"); raise SystemExit("bad password accepted")
except smtplib.SMTPAuthenticationError:
    pass
s.login(user, pw)
s.sendmail("a@example.org", ["b@example.com"], msg % b"587")
s.quit()
# 465 without AUTH: relay refused.
s = smtplib.SMTP_SSL("localhost", int(smtps), context=ctx, timeout=20)
s.ehlo(); s.mail("a@example.org")
code, _ = s.rcpt("b@example.com"); assert code == 554, code
s.quit()
print("python: 465 and 587 with AUTH delivered; refusals as expected")
EOF
	sleep 0.3
	c1=$(pf_count); k1=$(pf_connections)
	echo "count: $c0 -> $c1 (expect +2); connections: $k0 -> $k1 (expect +3)"
	[ $((c1 - c0)) -eq 2 ] || { echo "FAIL: count"; rc=1; }
	[ $((k1 - k0)) -eq 3 ] || { echo "FAIL: connections"; rc=1; }
	echo "ceiling (200 x 4096 B, messages/s): $(pf_ceiling 200 4096)"
	echo "count after ceiling: $(pf_count) (expect $((c1 + 600)))"
	[ "$(pf_count)" -eq $((c1 + 600)) ] || { echo "FAIL: count after ceiling"; rc=1; }
	pf_stop; trap - EXIT
	pf_stop   # idempotent
	[ $rc -eq 0 ] && echo "selftest: OK" || echo "selftest: FAILED (see $tmp/pf/postfix.log)"
	return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case ${1:-} in
	selftest) pf_selftest; exit ;;
	*) echo "usage: bash $0 selftest   (or source it)" >&2; exit 2 ;;
	esac
fi
