#!/bin/bash
# The static relay in an empty container (issue 15): a root that holds
# nothing but relay, a CA bundle and its configuration, read-only but for
# the queue; no /etc/passwd entry for the uid it runs as, no /etc/hosts,
# /etc/services, /dev/log or syslog socket (the log comes on stderr by
# itself); it delivers to the loopback
# test smarthost, and queues when that is down.  Runs only with a static
# relay (make check-static sets RELAY to static/relay); needs root for the
# mount namespace and chroot.
. "$(dirname "$0")/lib.sh"
t_setup

skip_all() {
	echo "ok # skip $*"
	exit 0
}
[ -x "$RELAY" ] || skip_all "no $RELAY"
ldd "$RELAY" >/dev/null 2>&1 &&
    skip_all "$RELAY is not static (make check-static runs this test)"
[ "$(id -u)" = 0 ] || skip_all "needs root (mount namespace, chroot)"
command -v unshare >/dev/null || skip_all "no unshare"

UID_C=54321			# in no /etc/passwd: the container has none
R=$T/root
mkdir -p "$R/q" "$R/etc"
cp "$RELAY" "$R/relay"
cp "$PKI/ca.crt" "$R/ca.crt"
chown "$UID_C:$UID_C" "$R/q"
chmod 700 "$R/q"

start_smarthost c --mode smtps
PORT=$(srv_port c)
# No /etc/hosts and no DNS in the box: the smarthost by address, trusted
# by the pin of its public key (relay checks names only against a name).
PIN=$(openssl x509 -in "$PKI/server.crt" -pubkey -noout |
    openssl pkey -pubin -outform der | sha256sum | cut -c1-64)
printf '%s\n' "host 127.0.0.1" "tls_pubkey_fingerprint $PIN" "port $PORT" "tls implicit" "user $T_USER" \
    "password $T_PASS" "ca_file /ca.crt" "from app@example.org" \
    "queue /q" "retry_min 1s" >"$R/relay.conf"	# no "log": no /dev/log here
chown "$UID_C" "$R/relay.conf"
chmod 600 "$R/relay.conf"
printf 'Subject: from the container\n\nhello from nowhere\n' >"$T/msg.txt"

# in_box ARGS...: relay ARGS in the container, stdin $T/msg.txt; sets
# RELAY_STATUS and RELAY_ERR as run_relay does.
in_box() {
	_T_RUNS=$((_T_RUNS + 1))
	RELAY_ERR=$T/run.$_T_RUNS.err
	RELAY_NAME=relay
	unshare --mount --propagation private sh -c '
		r=$1; shift
		mount --bind "$r" "$r" &&
		mount --bind "$r/q" "$r/q" &&
		mount -o remount,bind,ro "$r" || exit 125
		exec chroot --userspec='"$UID_C:$UID_C"' "$r" /relay "$@"
	' sh "$R" "$@" <"$T/msg.txt" >"$T/run.$_T_RUNS.out" 2>"$RELAY_ERR"
	RELAY_STATUS=$?
}

in_box -C /relay.conf to@example.org
[ "$RELAY_STATUS" = 125 ] && skip_all "cannot make the read-only root here"
assert_exit 0 "empty container: delivered, exit 0"
check "empty container: the smarthost got the message" wait_msgs c 1
assert_eq "$(msg_json c 1 rcpt_tos)" "to@example.org" "empty container: envelope recipient"
assert_eq "$(msg_json c 1 mail_from)" "app@example.org" "empty container: envelope sender"
assert_file_contains "$(srv_out c)/1.eml" "hello from nowhere" "empty container: the body arrived"
# No syslog socket in the box: the log line comes on stderr by itself.
assert_log "empty container" "status=sent" "uid=$UID_C"
unshare --mount sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" &&
    ! touch "$1/etc/probe" 2>/dev/null' sh "$R" &&
    ok "empty container: a write to the read-only root fails" ||
    fail "empty container: a write to the read-only root fails"
assert_eq "$(ls "$R/q/queue" 2>/dev/null | wc -l)" 0 "empty container: nothing left in the queue"

# The smarthost down: queued in the one writable directory, sent later.
stop_server c
in_box -C /relay.conf to@example.org
assert_exit 0 "empty container, smarthost down: exit 0 (queued)"
assert_eq "$(ls "$R/q/queue" 2>/dev/null | wc -l)" 1 "empty container, smarthost down: one entry queued"
restart_smarthost c
sleep 1.1			# retry_min 1s
in_box -C /relay.conf -q
assert_exit 0 "empty container: relay -q exit 0"
check "empty container: relay -q delivered the queued message" wait_msgs c 2
assert_eq "$(ls "$R/q/queue" 2>/dev/null | wc -l)" 0 "empty container: the queue is empty again"
assert_file_lacks "$RELAY_ERR" "AddressSanitizer" "empty container: no crash"

t_done
