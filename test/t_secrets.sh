#!/bin/bash
# Where the AUTH secret comes from (relay.conf(5)): inline "password",
# "password_file", "password_command", "password_env".  Each one delivers
# against the aiosmtpd smarthost, and none of them lets the secret reach
# the log, -v, an error message, argv or the environment of a child.
# A config file others can read is refused (78); a secret file others can
# read, or a password_command that fails, prints nothing or hangs, is a
# temporary failure: the message stays queued (t_waits.sh has more).  A 16 KiB secret (an OAuth token) goes
# through AUTH PLAIN's continuation line and AUTH LOGIN.
. "$(dirname "$0")/lib.sh"
t_setup

start_smarthost main --mode smtps
printf 'Subject: secrets\n\nsecret test body\n' >"$T/msg.txt"

# The secret in a file for the commands to print: never on a command line.
(umask 077; printf '%s\n' "$T_PASS" >"$T/pass.txt")

# script NAME BODY: an executable /bin/sh script $T/NAME.
script() {
	printf '#!/bin/sh\n%s\n' "$2" >"$T/$1"
	chmod 700 "$T/$1"
}

# via TAG [KEY VALUE]...: $T/msg.txt to server main with -v, relay.conf
# for main with its default password dropped and the pairs given; it
# must arrive, relay having logged in, and neither stderr (-v and the
# log line) nor stdout may hold the secret ($PW, default $T_PASS).
via() {
	local tag=$1
	shift
	write_conf_for main "$T/$tag.conf" password - from sender@example.org \
	    "$@"
	deliver_to main -v -C "$T/$tag.conf" to@example.org <"$T/msg.txt"
	assert_exit 0 "$tag: delivered"
	assert_eq "$(msg_json main "$N" auth_user)" "$T_USER" \
	    "$tag: logged in as $T_USER"
	assert_file_contains "$RELAY_ERR" "[credentials hidden]" \
	    "$tag: -v hides the credentials"
	assert_no_secret "$RELAY_ERR" "$tag: -v and the log hold no secret" \
	    "${PW-}"
	assert_no_secret "$RELAY_OUT" "$tag: stdout holds no secret" "${PW-}"
}

# refused TAG WORD... : the last run exited 78 with one error line naming
# every WORD, sent nothing and showed no secret.
refused() {
	local tag=$1 before=$2
	shift 2
	assert_exit 78 "$tag: refused (78)"
	assert_error "$tag" "$@"
	assert_eq "$(msg_count main)" "$before" "$tag: nothing sent"
	assert_no_secret "$RELAY_ERR" "$tag: the error holds no secret"
}

# ---- each source delivers ----------------------------------------------

via inline password "$T_PASS"

cp "$T/pass.txt" "$T/pw.file"
chmod 600 "$T/pw.file"
via file password_file "$T/pw.file"
# A group (a setgid relay's) may read it; others may not.
chmod 640 "$T/pw.file"
via file-0640 password_file "$T/pw.file"

# password_command: no shell, a clean environment, stdin /dev/null.
script pw.sh "env >\"$T/cmd.env\"
printf '%s\n' \"\$@\" >\"$T/cmd.args\"
if read x; then echo stdin-open >>\"$T/cmd.args\"; fi
exec /bin/cat \"$T/pass.txt\""
RELAY_TEST_SECRET=leaked-through-env \
    via command password_command "$T/pw.sh a;b \$(id) \`id\` >$T/shell-ran |x"
printf '%s\n' 'a;b' '$(id)' '`id`' ">$T/shell-ran" '|x' >"$T/cmd.args.want"
assert_same "$T/cmd.args" "$T/cmd.args.want" \
    "command: split at blanks, no shell, stdin empty"
check_not "command: no shell ran the redirection" test -e "$T/shell-ran"
assert_file_contains "$T/cmd.env" "PATH=/usr/bin:/bin" \
    "command: PATH=/usr/bin:/bin"
assert_file_contains "$T/cmd.env" "HOME=$(getent passwd "$(id -u)" |
    cut -d: -f6)" "command: HOME of the real uid"
assert_file_contains "$T/cmd.env" "LOGNAME=$(id -un)" "command: LOGNAME"
assert_eq "$(cut -d= -f1 "$T/cmd.env" | grep -vxE 'PATH|HOME|LOGNAME|USER|PWD|SHLVL|_' |
    tr '\n' ' ')" "" "command: nothing else from the caller's environment"
assert_file_lacks "$T/cmd.env" "leaked-through-env" \
    "command: the caller's variables do not reach it"
assert_no_secret "$T/cmd.env" "command: its environment holds no secret"

# password_env: read, removed and wiped before anything else runs.
RELAY_TEST_PW_ENV=$T_PASS via env password_env RELAY_TEST_PW_ENV

# The environment of a running relay (/proc/PID/environ, readable by
# the same user) no longer shows the secret once it has been read.
start_smarthost stall --mode smtps --fault mail:stall --stall-seconds 10
write_conf_for stall "$T/stall.conf" password - from sender@example.org \
    password_env RELAY_TEST_PW_ENV timeout_command 3 queue none
RELAY_TEST_PW_ENV=$T_PASS "$RELAY" -C "$T/stall.conf" to@example.org \
    <"$T/msg.txt" >"$T/stall.out" 2>"$T/stall.err" &
stall_pid=$!
if wait_event stall "fault 1 mail stall"; then
	tr '\0' '\n' <"/proc/$stall_pid/environ" >"$T/stall.environ" 2>/dev/null
	assert_file_lacks "$T/stall.environ" "$T_PASS" \
	    "env: /proc/PID/environ no longer holds the secret"
else
	fail "env: relay reached MAIL on the stalling server"
fi
wait "$stall_pid"
assert_eq "$?" 75 "env: the stalled delivery ends (75, queue none)"

# ---- a 16 KiB secret (an OAuth token) ------------------------------------

# aiosmtpd reads lines of at most 1001 octets; a real server takes AUTH
# responses of 12288 and more (RFC 4954 4).  This one takes 64 KiB.
cat >"$T/smarthost_long.py" <<EOF
import sys
sys.path.insert(0, "$TESTDIR")
import aiosmtpd.smtp
import smarthost
aiosmtpd.smtp.SMTP.line_length_limit = 65536
sys.exit(smarthost.main())
EOF
LONG=$(head -c 12288 /dev/urandom | base64 -w0)	# 16384 characters
(umask 077; printf '%s\n' "$LONG" >"$T/long.pw")
_t_start smarthost long "tmp/$T_NAME/smarthost_long.py" --mode smtps \
    --user "$T_USER" --password "$LONG"
_t_start smarthost longlogin "tmp/$T_NAME/smarthost_long.py" --mode smtps \
    --user "$T_USER" --password "$LONG" --auth-mech LOGIN
# long16 SERVER TAG [KEY VALUE]...: deliver to SERVER with the 16 KiB
# secret given by the pairs.
long16() {
	local s=$1 tag=$2
	shift 2
	write_conf_for "$s" "$T/$tag.conf" password - from sender@example.org \
	    "$@"
	deliver_to "$s" -v -C "$T/$tag.conf" to@example.org <"$T/msg.txt"
	assert_exit 0 "$tag: a 16 KiB password delivers"
	assert_eq "$(msg_json "$s" "$N" auth_user)" "$T_USER" \
	    "$tag: logged in with the 16 KiB password"
	assert_no_secret "$RELAY_ERR" "$tag: -v and the log hold no secret" \
	    "$LONG"
}
long16 long long-file password_file "$T/long.pw"
grep -a -A2 '^>>> AUTH PLAIN$' "$RELAY_ERR" | tr '\n' '|' >"$T/long.dialogue"
assert_file_contains "$T/long.dialogue" \
    ">>> AUTH PLAIN|<<< 334 |>>> [credentials hidden]|" \
    "long-file: AUTH PLAIN without an initial response, then 334, the token"
assert_file_contains "$SMARTHOST_long_OUT/events.log" "auth 1 ok PLAIN" \
    "long-file: the server took AUTH PLAIN"
long16 long long-inline password "$LONG"
long16 longlogin long-login password_file "$T/long.pw"
assert_file_contains "$RELAY_ERR" ">>> AUTH LOGIN" "long-login: AUTH LOGIN used"

# deferred TAG WORD... : the last run exited 0 with the message queued and
# one line naming every WORD, sent nothing and showed no secret.
deferred() {
	local tag=$1 before=$2
	shift 2
	assert_exit 0 "$tag: queued (0)"
	assert_error "$tag" "queued, will retry" "$@"
	assert_eq "$(msg_count main)" "$before" "$tag: nothing sent"
	assert_no_secret "$RELAY_ERR" "$tag: the error holds no secret"
}

# ---- refused --------------------------------------------------------------

sent=$(msg_count main)

write_conf_for main "$T/world.conf" from sender@example.org
chmod 644 "$T/world.conf"
run_relay -C "$T/world.conf" to@example.org <"$T/msg.txt"
refused "inline password, config 0644" "$sent" "password given inline" \
    "readable by others" "chmod o-rwx"
chmod 600 "$T/world.conf"

chmod 644 "$T/pw.file"
write_conf_for main "$T/pwfile.conf" password - password_file "$T/pw.file" \
    from sender@example.org
run_relay -C "$T/pwfile.conf" to@example.org <"$T/msg.txt"
deferred "password_file 0644" "$sent" "password_file" "readable by others" \
    "chmod o-rwx"
chmod 600 "$T/pw.file"

: >"$T/client.crt"
printf 'key\n' >"$T/client.key"
chmod 644 "$T/client.key"
write_conf_for main "$T/key.conf" from sender@example.org \
    tls_client_cert "$PKI/client-ec.crt" tls_client_key "$T/client.key"
run_relay -C "$T/key.conf" to@example.org <"$T/msg.txt"
deferred "client key 0644" "$sent" "tls_client_key" "readable by others" \
    "chmod o-rwx"

# cmd TAG BODY [KEY VALUE]...: a conf whose password_command is the
# script BODY (as $T/TAG.sh); run relay with it.
cmd() {
	local tag=$1 body=$2
	shift 2
	script "$tag.sh" "$body"
	write_conf_for main "$T/$tag.conf" password - from sender@example.org \
	    password_command "$T/$tag.sh" "$@"
	run_relay -C "$T/$tag.conf" to@example.org <"$T/msg.txt"
}

cmd fails "echo LEAKED-OUTPUT; exit 3"
deferred "command exits 3" "$sent" "password_command $T/fails.sh" \
    "exited with status 3"
assert_file_lacks "$RELAY_ERR" "LEAKED-OUTPUT" \
    "command exits 3: its output is not shown"

cmd silent "exit 0"
deferred "command prints nothing" "$sent" "password_command" "printed nothing"

start=$EPOCHREALTIME
cmd slow "echo \$\$ >\"$T/slow.pid\"; echo LEAKED-OUTPUT; exec sleep 60" \
    timeout_command 1
ELAPSED=$(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $start }")
deferred "command hangs" "$sent" "password_command" \
    "did not finish in 1s and was killed"
assert_elapsed 0.9 10 "command hangs (timeout_command 1)"
pid=$(cat "$T/slow.pid" 2>/dev/null)
if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
	ok "command hangs: the command was killed"
else
	fail "command hangs: the command was killed" "pid ${pid:-unknown}"
fi
assert_file_lacks "$RELAY_ERR" "LEAKED-OUTPUT" \
    "command hangs: its output is not shown"

write_conf_for main "$T/relative.conf" password - from sender@example.org \
    password_command "pw.sh --plain"
run_relay -C "$T/relative.conf" to@example.org <"$T/msg.txt"
refused "relative command" "$sent" "password_command \"pw.sh\"" \
    "absolute path" "without a shell"

write_conf_for main "$T/noenv.conf" password - from sender@example.org \
    password_env RELAY_TEST_UNSET
run_relay -C "$T/noenv.conf" to@example.org <"$T/msg.txt"
deferred "password_env unset" "$sent" "password_env RELAY_TEST_UNSET" \
    "not set"

# Listing the queue needs no secret: the command is not run.
script ran.sh "touch \"$T/ran\"; cat \"$T/pass.txt\""
write_conf_for main "$T/list.conf" password - from sender@example.org \
    password_command "$T/ran.sh"
run_relay -C "$T/list.conf" -bp
assert_exit 0 "-bp with password_command: exit 0"
check_not "-bp does not run password_command" test -e "$T/ran"

t_done
