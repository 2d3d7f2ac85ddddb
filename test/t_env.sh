#!/bin/bash
# Configuration from the environment (issue 15): with no file at the
# default path, RELAY_* variables are the settings (one per keyword, and
# RELAY_SMARTHOST=smtps://user@host:port); "environment yes" in a file
# adds them to it, a setting in both is an error; a plain password is
# refused; bad values name the variable; a setgid relay ignores them.
# relay reads /etc/relay.conf by default: where one exists on this
# machine, each run gets a private /etc without it (a mount namespace).
. "$(dirname "$0")/lib.sh"
t_setup

if [ -e /etc/relay.conf ]; then
	[ "$(id -u)" = 0 ] || { echo "ok # skip /etc/relay.conf exists and this is not root"; t_done; }
	mkdir -p "$T/etc"
	cp -a /etc/. "$T/etc/" 2>/dev/null
	rm -f "$T/etc/relay.conf"
	RELAY_PREFIX=private-etc
fi

# env_relay VAR=VALUE... -- ARGS: relay with only these variables (and
# PATH), stdin $T/msg.txt; sets RELAY_STATUS, RELAY_ERR like run_relay.
env_relay() {
	local vars=()
	while [ "$1" != -- ]; do vars+=("$1"); shift; done
	shift
	_T_RUNS=$((_T_RUNS + 1))
	RELAY_ERR=$T/run.$_T_RUNS.err
	RELAY_OUT=$T/run.$_T_RUNS.out
	RELAY_NAME=relay
	if [ -n "${RELAY_PREFIX-}" ]; then
		unshare --mount sh -c 'mount --bind "$0" /etc && exec "$@"' \
		    "$T/etc" env -i PATH=/usr/bin:/bin "${vars[@]}" \
		    "$RELAY" "$@" <"$T/msg.txt" >"$RELAY_OUT" 2>"$RELAY_ERR"
	else
		env -i PATH=/usr/bin:/bin "${vars[@]}" "$RELAY" "$@" \
		    <"$T/msg.txt" >"$RELAY_OUT" 2>"$RELAY_ERR"
	fi
	RELAY_STATUS=$?
	grep -q "Sanitizer" "$RELAY_ERR" && fail "run $_T_RUNS: sanitizer report" "$(head -20 "$RELAY_ERR")"
	return 0
}

start_smarthost e --mode smtps
PORT=$(srv_port e)
printf '%s\n' "$T_PASS" >"$T/password"
chmod 600 "$T/password"
printf 'Subject: from the environment\n\nconfigured by RELAY_*\n' >"$T/msg.txt"
BASE=(RELAY_CA_FILE="$PKI/ca.crt" RELAY_LOG=stderr RELAY_QUEUE="$T/q"
    RELAY_FROM=app@example.org)
ASAN=(ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS")

# ---- the environment alone -----------------------------------------------

env_relay "${ASAN[@]}" "${BASE[@]}" RELAY_HOST=localhost RELAY_PORT="$PORT" \
    RELAY_TLS=implicit RELAY_USER="$T_USER" RELAY_PASSWORD_FILE="$T/password" \
    -- to@example.org
assert_exit 0 "RELAY_HOST, RELAY_PORT...: delivered"
check "RELAY_*: the smarthost got it" wait_msgs e 1
assert_eq "$(msg_json e 1 mail_from) $(msg_json e 1 auth_user)" \
    "app@example.org $T_USER" "RELAY_*: sender from RELAY_FROM, AUTH as RELAY_USER"

env_relay "${ASAN[@]}" "${BASE[@]}" \
    RELAY_SMARTHOST="smtps://$T_USER@localhost:$PORT" \
    RELAY_PASSWORD_FILE="$T/password" -- to2@example.org
assert_exit 0 "RELAY_SMARTHOST=smtps://user@host:port: delivered"
check "RELAY_SMARTHOST: the smarthost got it" wait_msgs e 2
assert_eq "$(msg_json e 2 rcpt_tos) $(msg_json e 2 auth_user)" \
    "to2@example.org $T_USER" "RELAY_SMARTHOST: the URL's user, host and port"

# A repeatable keyword takes one value a line.
env_relay "${ASAN[@]}" "${BASE[@]}" RELAY_SMARTHOST="smtps://$T_USER@localhost:$PORT" \
    RELAY_PASSWORD_FILE="$T/password" RELAY_ALIAS="root ops@example.org
cron dev@example.org" -- root cron
assert_exit 0 "RELAY_ALIAS with two lines: delivered"
check "RELAY_ALIAS: the smarthost got it" wait_msgs e 3
assert_eq "$(msg_json e 3 rcpt_tos)" "ops@example.org dev@example.org" \
    "RELAY_ALIAS: both aliases applied"

# ---- refused, with the variable named --------------------------------------

# expect_error WHAT STRING VAR=VALUE...: exit 78 and STRING on stderr.
expect_error() {
	local what=$1 want=$2
	shift 2
	env_relay "${ASAN[@]}" "${BASE[@]}" "$@" -- to@example.org
	assert_exit 78 "$what: exit 78"
	assert_file_contains "$RELAY_ERR" "$want" "$what: says \"$want\""
}
expect_error "RELAY_PASSWORD" "RELAY_PASSWORD: a password in the environment" \
    RELAY_HOST=localhost RELAY_USER=u RELAY_PASSWORD=not-here
assert_file_lacks "$RELAY_ERR" "not-here" "RELAY_PASSWORD: its value is not shown"
expect_error "RELAY_PORT=abc" "RELAY_PORT: " RELAY_HOST=localhost RELAY_PORT=abc
expect_error "a misspelt variable" "RELAY_HOTS: no such setting (did you mean RELAY_HOST?)" \
    RELAY_HOST=localhost RELAY_HOTS=x
expect_error "Kubernetes' RELAY_PORT" "RELAY_PORT: looks like Kubernetes" \
    RELAY_HOST=localhost RELAY_PORT=tcp://10.0.0.1:25
expect_error "a password in RELAY_SMARTHOST" "RELAY_SMARTHOST: no password in the URL" \
    RELAY_SMARTHOST=smtps://u:secret@localhost:465
assert_file_lacks "$RELAY_ERR" "secret" "RELAY_SMARTHOST: the password is not shown"
expect_error "RELAY_SMARTHOST without a scheme" "RELAY_SMARTHOST: want smtps://" \
    RELAY_SMARTHOST=localhost:465
expect_error "no host" "missing required keyword \"host\"" RELAY_PORT=465
expect_error "RELAY_ENVIRONMENT" "RELAY_ENVIRONMENT: means something only in a file" \
    RELAY_HOST=localhost RELAY_ENVIRONMENT=yes
env_relay "${ASAN[@]}" RELAY_SERVICE_HOST=10.0.0.1 RELAY_PORT_25_TCP=tcp://10.0.0.1:25 \
    -- to@example.org
assert_exit 78 "only Kubernetes' service variables: no settings, exit 78"
assert_file_contains "$RELAY_ERR" "/etc/relay.conf" \
    "only Kubernetes' service variables: the missing file is the error"

# ---- a file, and "environment yes" ----------------------------------------

write_conf_for e "$T/file.conf" from - password - password_file "$T/password"
env_relay "${ASAN[@]}" RELAY_FROM=envfrom@example.org -- -C "$T/file.conf" to@example.org
assert_exit 78 "a file without \"environment yes\": RELAY_FROM is ignored (no sender)"
printf 'environment yes\n' >>"$T/file.conf"
env_relay "${ASAN[@]}" RELAY_FROM=envfrom@example.org -- -C "$T/file.conf" to3@example.org
assert_exit 0 "\"environment yes\": the file and RELAY_FROM together"
check "environment yes: the smarthost got it" wait_msgs e 4
assert_eq "$(msg_json e 4 mail_from)" "envfrom@example.org" "environment yes: the sender from RELAY_FROM"
env_relay "${ASAN[@]}" RELAY_HOST=elsewhere.example -- -C "$T/file.conf" to@example.org
assert_exit 78 "a setting in the file and the environment: exit 78"
assert_file_contains "$RELAY_ERR" "RELAY_HOST: \"host\" is set in" \
    "a setting in both: the error names the variable and the file's line"

# ---- a setgid relay ignores the environment ---------------------------------

G=mail
skip_setgid() {
	echo "ok # skip setgid: $*"
	t_done
}
setgid_relay skip_setgid
_T_RUNS=$((_T_RUNS + 1))
RELAY_ERR=$T/run.$_T_RUNS.err
if [ -n "${RELAY_PREFIX-}" ]; then
	unshare --mount sh -c 'mount --bind "$0" /etc && exec "$@"' "$T/etc" \
	    setpriv --reuid=65534 --regid=65534 --clear-groups \
	    env -i RELAY_HOST=localhost "$SG" -bp >/dev/null 2>"$RELAY_ERR"
else
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	    env -i RELAY_HOST=localhost "$SG" -bp >/dev/null 2>"$RELAY_ERR"
fi
RELAY_STATUS=$?
assert_exit 78 "setgid relay run by nobody: RELAY_HOST is ignored, exit 78"
assert_file_contains "$RELAY_ERR" "/etc/relay.conf" \
    "setgid relay: the missing file is the error, not the environment"

t_done
