#!/bin/bash
# What a submitting caller waits for, and what it never loses (issue 11):
# a secret source that fails (password_command, password_file,
# tls_client_key) leaves the message queued instead of exit 78, and is
# not even asked when nothing is due; a password_command that hangs is
# killed with its whole process group; submit_timeout bounds the first
# try of a submission, -odq and -odb are sendmail's; a smarthost that
# answers 452 past its recipient limit gets the rest in further
# transactions of the same session (RFC 5321 4.5.3.1.10).
. "$(dirname "$0")/lib.sh"
t_setup

printf 'Subject: waits\n\nwaits test body\n' >"$T/msg.txt"
(umask 077; printf '%s\n' "$T_PASS" >"$T/pass.txt")

# script NAME BODY: an executable /bin/sh script $T/NAME.
script() {
	printf '#!/bin/sh\n%s\n' "$2" >"$T/$1"
	chmod 700 "$T/$1"
}

# queued_ok TAG WORD...: the last run exited 0 with one line saying the
# message is queued, naming every WORD; one entry is in the queue, its
# last-error names the first WORD... too (mailq shows it).
queued_ok() {
	local tag=$1 id
	shift
	assert_exit 0 "$tag: exit 0, the message is kept"
	assert_error "$tag" "queued, will retry" "$@"
	assert_eq "$(q_count)" 1 "$tag: one entry queued"
	id=$(q_ids | head -n 1)
	assert_match "$(q_env "$id" last-error)" "$2" \
	    "$tag: the entry's last-error says why"
}

# ---- 1. a secret source that fails costs no message ----------------------

start_smarthost main --mode smtps

QDIR=$T/q1
script fails.sh "echo LEAKED-OUTPUT; exit 3"
send main queue "$QDIR" password - password_command "$T/fails.sh"
queued_ok "password_command exits 3" "password_command $T/fails.sh" \
    "exited with status 3"
assert_file_lacks "$RELAY_ERR" "LEAKED-OUTPUT" \
    "password_command exits 3: its output is not shown"
nothing_stored main "password_command exits 3"
run_relay -C "$T/main.conf" -bp
assert_file_contains "$RELAY_OUT" "exited with status 3" \
    "password_command exits 3: mailq shows the reason"

# Nothing due: relay -q runs no secret command at all.
script marker.sh "touch \"$T/marker\"; exec cat \"$T/pass.txt\""
write_conf_for main "$T/marker.conf" queue "$QDIR" password - \
    from sender@example.org password_command "$T/marker.sh"
run_relay -C "$T/marker.conf" -q
assert_exit 0 "relay -q, nothing due: exit 0"
check_not "relay -q, nothing due: password_command not run" \
    test -e "$T/marker"
# Due (-qf): it runs, once, and the entry goes.
run_relay -C "$T/marker.conf" -qf
assert_exit 0 "relay -qf with a working password_command: exit 0"
check "relay -qf: password_command run" test -e "$T/marker"
assert_eq "$(q_count)" 0 "relay -qf: the queued message went"
wait_msgs main 1 || fail "relay -qf: message stored"

QDIR=$T/q2
send main queue "$QDIR" password - password_file "$T/no-such-pw"
queued_ok "password_file missing" "password_file $T/no-such-pw" \
    "No such file"

QDIR=$T/q3
script empty.sh "exit 0"
send main queue "$QDIR" password - password_command "$T/empty.sh"
queued_ok "password_command prints nothing" "password_command" \
    "printed nothing"

# "queue none": nothing can be kept; the caller must retry (75).
send main queue none password - password_command "$T/fails.sh"
assert_exit 75 "queue none, password_command exits 3: exit 75"
assert_error "queue none, password_command exits 3" \
    "password_command $T/fails.sh" "exited with status 3"

# A hanging command is killed with its process group: a grandchild that
# holds stderr does not keep the caller's pipe open.
QDIR=$T/q4
script hang.sh "sleep 60 &
echo \$! >\"$T/grandchild.pid\"
exec sleep 60"
write_conf_for main "$T/hang.conf" queue "$QDIR" password - \
    from sender@example.org password_command "$T/hang.sh" timeout_command 1
start=$EPOCHREALTIME
timeout 20 bash -c '"$1" -C "$2" to@example.org <"$3" 2>&1 | cat >"$4"' \
    _ "$RELAY" "$T/hang.conf" "$T/msg.txt" "$T/hang.out"
ELAPSED=$(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $start }")
assert_elapsed 0.9 6 "password_command hangs, grandchild on stderr"
assert_file_contains "$T/hang.out" "queued, will retry" \
    "password_command hangs: queued"
assert_file_contains "$T/hang.out" "was killed" \
    "password_command hangs: the reason given"
# gone PID: no such process, or a zombie not yet reaped by init.
gone() { ! kill -0 "$1" 2>/dev/null || _t_zombie "$1"; }
gc=$(cat "$T/grandchild.pid" 2>/dev/null)
if [ -n "$gc" ] && wait_for 2 gone "$gc"; then
	ok "password_command hangs: its grandchild was killed too"
else
	fail "password_command hangs: its grandchild was killed too" \
	    "pid ${gc:-unknown}"
	[ -n "$gc" ] && kill "$gc" 2>/dev/null
fi
assert_eq "$(q_count)" 1 "password_command hangs: one entry queued"

# tls_client_key: checked when it is read, each time, on its descriptor.
start_smarthost cc --mode smtps --require-client-cert
QDIR=$T/q5
(umask 077; cp "$PKI/client-ec.key" "$T/client.key")
chmod 644 "$T/client.key"
send cc queue "$QDIR" tls_client_cert "$PKI/client-ec.crt" \
    tls_client_key "$T/client.key"
queued_ok "tls_client_key 0644" "tls_client_key $T/client.key" \
    "readable by others"
chmod 600 "$T/client.key"
run_relay -C "$T/cc.conf" -qf
assert_exit 0 "tls_client_key fixed, relay -qf: exit 0"
assert_eq "$(q_count)" 0 "tls_client_key fixed: the queued message went"
if [ "$(id -u)" = 0 ]; then
	chown 65534 "$T/client.key"
	send cc queue none tls_client_cert "$PKI/client-ec.crt" \
	    tls_client_key "$T/client.key"
	check_not "tls_client_key of another user: not used (exit $RELAY_STATUS)" \
	    test "$RELAY_STATUS" = 0
	assert_error "tls_client_key of another user" \
	    "tls_client_key $T/client.key is owned by uid 65534"
	chown 0 "$T/client.key"
else
	ok "# SKIP tls_client_key of another user (not root)"
fi

# ---- 2. a caller never waits minutes ---------------------------------------

start_smarthost stall --mode smtps --fault mail:stall --stall-seconds 60
QDIR=$T/q6
timed_send stall queue "$QDIR" submit_timeout 2
assert_elapsed 1.5 6 "submit_timeout 2, stalling smarthost"
queued_ok "submit_timeout 2" "submit_timeout" "2 s"

# relay -q keeps the RFC timeouts (here timeout_command 4), not the cap.
write_conf_for stall "$T/stallq.conf" queue "$QDIR" from sender@example.org \
    submit_timeout 2 timeout_command 4
start=$EPOCHREALTIME
run_relay -C "$T/stallq.conf" -qf
ELAPSED=$(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $start }")
assert_elapsed 3.8 10 "relay -q: timeout_command 4, not submit_timeout 2"
assert_eq "$(q_count)" 1 "relay -q on the stalling smarthost: still queued"

# submit_timeout 0: the per-command timeouts alone.
QDIR=$T/q7
timed_send stall queue "$QDIR" submit_timeout 0 timeout_command 3
assert_elapsed 2.8 10 "submit_timeout 0: timeout_command 3 applies"
queued_ok "submit_timeout 0" "timed out after 3 s"

# -odq: queued, no connection at all.
start_smarthost plain --mode smtps
QDIR=$T/q8
write_conf_for plain "$T/odq.conf" queue "$QDIR" from sender@example.org
run_relay -C "$T/odq.conf" -odq to@example.org <"$T/msg.txt"
assert_exit 0 "-odq: exit 0"
assert_eq "$(q_count)" 1 "-odq: one entry queued"
sleep 0.3
assert_file_lacks "$(srv_out plain)/events.log" "accept" \
    "-odq: the smarthost saw no connection"
run_relay -C "$T/odq.conf" -q
assert_exit 0 "-odq, then relay -q: exit 0"
assert_eq "$(q_count)" 0 "-odq, then relay -q: sent"
assert_eq "$(msg_count plain)" 1 "-odq, then relay -q: stored once"

# -odb: back at once; a detached child sends it (holding the lock).
start_smarthost slow --mode smtps --fault mail:stall:1 --stall-seconds 3
QDIR=$T/q9
write_conf_for slow "$T/odb.conf" queue "$QDIR" from sender@example.org
start=$EPOCHREALTIME
run_relay -C "$T/odb.conf" -odb to@example.org <"$T/msg.txt"
ELAPSED=$(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $start }")
assert_exit 0 "-odb: exit 0"
assert_elapsed 0 1.5 "-odb: returns at once"
if wait_event slow "fault 1 mail stall" 5; then
	id=$(q_ids | head -n 1)
	run_relay -C "$T/odb.conf" -qI"$id"
	assert_exit 75 "-odb: the child holds the entry's lock (-qI: 75)"
	assert_error "-odb: locked" "being delivered by another relay"
else
	fail "-odb: the child connected and reached MAIL"
fi
wait_msgs slow 1 10 || fail "-odb: the child delivered it"
wait_for 5 test "$(q_count)" = 0
assert_eq "$(q_count)" 0 "-odb: the queue is empty afterwards"

# ---- 3. 452 past the server's recipient limit -----------------------------

# rcpts5 NAME TAG: 5 recipients to server NAME (--max-rcpts 2) in one run.
rcpts5() {
	local name=$1 tag=$2
	QDIR=$T/q-$name
	write_conf_for "$name" "$T/$name.conf" queue "$QDIR" \
	    from sender@example.org
	run_relay -C "$T/$name.conf" r1@example.org r2@example.org \
	    r3@example.org r4@example.org r5@example.org <"$T/msg.txt"
	assert_exit 0 "$tag: exit 0"
	assert_eq "$(q_count)" 0 "$tag: nothing left in the queue"
	assert_eq "$(grep -c '^accept ' "$(srv_out "$name")/events.log")" 1 \
	    "$tag: one connection"
	wait_msgs "$name" 3 5
	assert_eq "$(msg_count "$name")" 3 "$tag: three transactions (2+2+1)"
	assert_eq "$(for n in 1 2 3; do msg_json "$name" "$n" rcpt_tos; done |
	    tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ')" \
	    "r1@example.org r2@example.org r3@example.org r4@example.org r5@example.org " \
	    "$tag: every recipient delivered once"
	assert_file_lacks "$RELAY_ERR" "will retry" "$tag: nothing deferred"
	assert_log "$tag" "status=sent " "attempts=1( |$)"
}
start_smarthost lim --mode smtps --max-rcpts 2
rcpts5 lim "--max-rcpts 2, pipelined"
start_smarthost limstep --mode smtps --max-rcpts 2 --strip PIPELINING
rcpts5 limstep "--max-rcpts 2, without PIPELINING"

# queue none too: the caller learns one outcome, all delivered.
start_smarthost limnone --mode smtps --max-rcpts 2
write_conf_for limnone "$T/limnone.conf" queue none from sender@example.org
run_relay -C "$T/limnone.conf" r1@example.org r2@example.org r3@example.org \
    <"$T/msg.txt"
assert_exit 0 "--max-rcpts 2, queue none, 3 recipients: exit 0"
wait_msgs limnone 2 5
assert_eq "$(msg_count limnone)" 2 "--max-rcpts 2, queue none: two transactions"

t_done
