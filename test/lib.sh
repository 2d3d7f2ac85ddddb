# test/lib.sh: helpers for relay's end-to-end test scripts (bash).
#
#	. "$(dirname "$0")/lib.sh"
#	t_setup
#	start_smarthost main --mode smtps
#	write_conf_for main "$T/relay.conf"
#	printf 'Subject: hi\n\nbody\n' | run_relay -C "$T/relay.conf" a@example.org
#	assert_exit 0 "delivered"
#	wait_msgs main 1
#	assert_file_contains "$SMARTHOST_main_OUT/1.eml" "body"
#	t_done
#
# See test/README for the conventions.  Output is TAP-like: "ok - NAME",
# "not ok - NAME", "# detail".

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTDIR=$TOP/test
PY=${PY:-/usr/bin/python3}		# Debian's, the one with aiosmtpd
RELAY=${RELAY:-$TESTDIR/obj/relay}	# the sanitizer build
RELAY_TIMEOUT=${RELAY_TIMEOUT:-60}	# seconds before run_relay kills it
PKI=$TESTDIR/tmp/pki			# shared by all tests, see test/pki.sh
T_USER=${T_USER:-relay-test}		# the smarthosts' account by default
T_PASS=${T_PASS:-s3cret.Pa55-word}

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# "printf ... | run_relay" must set RELAY_STATUS in this shell, not in a
# pipeline subshell.
shopt -s lastpipe

T_PASSED=0
T_FAILED=0
T_NAME=$(basename "${0%.sh}")
_T_PIDS=()			# every server started, for the exit trap
declare -A _T_SRV_PID _T_SRV_OUT _T_SRV_PORT _T_SRV_KIND _T_SRV_MODE
_T_RUNS=0

# ---- results ----------------------------------------------------------

# Print each argument line as a "# " comment (after a failure).
note() {
	local l
	for l in "$@"; do
		[ -n "$l" ] && printf '%s\n' "$l" | sed 's/^/#   /'
	done
	return 0
}

ok() {
	T_PASSED=$((T_PASSED + 1))
	printf 'ok - %s\n' "$1"
}

# fail NAME [DETAIL...]
fail() {
	T_FAILED=$((T_FAILED + 1))
	printf 'not ok - %s\n' "$1"
	shift
	[ $# -gt 0 ] && note "$@"
	return 0
}

# check NAME COMMAND [ARGS...]: ok if the command exits 0.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
	else
		fail "$name" "command failed (exit $?): $*" "$out"
	fi
}

# check_not NAME COMMAND [ARGS...]: ok if the command exits non-zero.
check_not() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		fail "$name" "command succeeded but should not have: $*" "$out"
	else
		ok "$name"
	fi
}

# assert_eq GOT WANT [NAME]
assert_eq() {
	local name=${3:-"\"$1\" = \"$2\""}
	if [ "$1" = "$2" ]; then
		ok "$name"
	else
		fail "$name" "got:  $1" "want: $2"
	fi
}

# assert_exit CODE [NAME]: the exit status of the last run_relay.
assert_exit() {
	local name=${2:-"relay exits $1"}
	if [ "${RELAY_STATUS-}" = "$1" ]; then
		ok "$name"
	else
		fail "$name" "exit status ${RELAY_STATUS-unset}, want $1" \
		    "stderr ($RELAY_ERR):" "$(head -c 3000 "$RELAY_ERR" 2>/dev/null)"
	fi
}

# assert_contains TEXT STRING [NAME]: TEXT (a variable's value) holds STRING.
assert_contains() {
	local name=${3:-"text contains \"$2\""}
	if [[ $1 == *"$2"* ]]; then
		ok "$name"
	else
		fail "$name" "lacks \"$2\":" "${1:0:1500}"
	fi
}

# assert_lacks TEXT STRING [NAME]
assert_lacks() {
	local name=${3:-"text lacks \"$2\""}
	if [[ $1 == *"$2"* ]]; then
		fail "$name" "contains \"$2\":" "${1:0:1500}"
	else
		ok "$name"
	fi
}

# assert_file_contains FILE STRING [NAME]: a fixed string, binary-safe.
# A missing file is a failure.
assert_file_contains() {
	local name=${3:-"$(basename "$1") contains \"$2\""}
	if [ ! -f "$1" ]; then
		fail "$name" "no such file: $1"
	elif grep -qaF -- "$2" "$1"; then
		ok "$name"
	else
		fail "$name" "$1 lacks \"$2\"; it begins:" "$(head -c 1500 "$1")"
	fi
}

# assert_file_lacks FILE STRING [NAME]: a missing file is a failure too
# (a check on a file that was never written proves nothing).
assert_file_lacks() {
	local name=${3:-"$(basename "$1") lacks \"$2\""}
	if [ ! -f "$1" ]; then
		fail "$name" "no such file: $1"
	elif grep -qaF -- "$2" "$1"; then
		fail "$name" "$1 contains \"$2\":" "$(grep -naF -- "$2" "$1" | head -5)"
	else
		ok "$name"
	fi
}

# assert_file_matches FILE ERE [NAME]: an extended regular expression.
assert_file_matches() {
	local name=${3:-"$(basename "$1") matches /$2/"}
	if [ ! -f "$1" ]; then
		fail "$name" "no such file: $1"
	elif grep -qaE -- "$2" "$1"; then
		ok "$name"
	else
		fail "$name" "$1 does not match /$2/; it begins:" "$(head -c 1500 "$1")"
	fi
}

# t_bail REASON: record a failure and end the script (servers are stopped).
t_bail() {
	fail "$*"
	exit 1
}

# t_done: print the tally; the exit status says whether all passed.
# Optional: the exit trap does the same check.
t_done() {
	printf '# %s: %d passed, %d failed\n' "$T_NAME" "$T_PASSED" "$T_FAILED"
	[ "$T_FAILED" -eq 0 ]
	exit
}

_t_exit() {
	local rc=$?
	trap - EXIT
	stop_servers
	if [ "$T_FAILED" -gt 0 ] && [ "$rc" -eq 0 ]; then
		rc=1
	fi
	exit "$rc"
}

# ---- setup ------------------------------------------------------------

# t_setup: make a fresh per-test directory $T (test/tmp/NAME, kept after
# the run for inspection) and the shared PKI in $PKI; install the trap that
# stops every server on exit.
t_setup() {
	T=$TESTDIR/tmp/$T_NAME
	rm -rf "$T"
	mkdir -p "$T" || t_bail "cannot create $T"
	trap _t_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	bash "$TESTDIR/pki.sh" "$PKI" >"$T/pki.log" 2>&1 ||
	    t_bail "test PKI: $(cat "$T/pki.log")"
	export T PKI
}

# wait_for DEADLINE_SECONDS COMMAND [ARGS...]: poll until the command
# succeeds; returns 1 on timeout.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ "$SECONDS" -ge "$end" ] && { "$@"; return; }
		sleep 0.05
	done
}

# wait_file FILE [SECONDS=10]
wait_file() {
	wait_for "${2:-10}" test -e "$1"
}

# ---- servers ----------------------------------------------------------

_t_name_ok() {
	[[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
	    t_bail "server name \"$1\" must be a shell identifier"
	[ -z "${_T_SRV_PID[$1]-}" ] || t_bail "server \"$1\" already started"
}

# _t_start KIND NAME SCRIPT ARGS...
_t_start() {
	local kind=$1 name=$2 script=$3 out have_cert='' have_user='' mode=''
	shift 3
	[ -n "${T-}" ] || t_bail "start_$kind: call t_setup first"
	_t_name_ok "$name"
	out=$T/$name
	mkdir -p "$out"
	local args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--certname)	# shorthand: --certname wronghost
			args+=(--cert "$PKI/$2.chain.pem" --key "$PKI/$2.key")
			have_cert=1; shift 2; continue ;;
		--cert)		have_cert=1 ;;
		--user|--no-auth) have_user=1 ;;
		--mode|--scenario) mode=$2 ;;
		esac
		args+=("$1")
		shift
	done
	[ -n "$have_cert" ] ||
	    args+=(--cert "$PKI/server.chain.pem" --key "$PKI/server.key")
	[ -n "$have_user" ] || args+=(--user "$T_USER" --password "$T_PASS")
	rm -f "$out/port"
	"$PY" "$TESTDIR/$script" --outdir "$out" --portfile "$out/port" \
	    "${args[@]}" >"$out/stdout.log" 2>"$out/stderr.log" &
	local pid=$!
	_T_PIDS+=("$pid")
	_T_SRV_PID[$name]=$pid
	_T_SRV_OUT[$name]=$out
	_T_SRV_KIND[$name]=$kind
	_T_SRV_MODE[$name]=$mode
	local end=$((SECONDS + 10))
	until [ -s "$out/port" ]; do
		if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$end" ]; then
			t_bail "start $kind $name ($*): no port file; stderr:
$(tail -n 20 "$out/stderr.log")"
		fi
		sleep 0.02
	done
	local port
	port=$(cat "$out/port")
	_T_SRV_PORT[$name]=$port
	local var
	[ "$kind" = smarthost ] && var=SMARTHOST_$name || var=RAW_$name
	printf -v "${var}_PORT" %s "$port"
	printf -v "${var}_OUT" %s "$out"
	printf -v "${var}_PID" %s "$pid"
	export "${var}_PORT" "${var}_OUT" "${var}_PID"
}

# start_smarthost NAME ARGS...: run test/smarthost.py with ARGS (see its
# --help).  Defaults added unless given: --cert/--key of $PKI/server,
# --user $T_USER --password $T_PASS.  "--certname X" means --cert
# $PKI/X.chain.pem --key $PKI/X.key.  Output in $T/NAME; sets
# SMARTHOST_NAME_PORT, SMARTHOST_NAME_OUT, SMARTHOST_NAME_PID.  Bails out of
# the script if the server does not come up within 10 s.
start_smarthost() {
	local name=$1
	shift
	_t_start smarthost "$name" smarthost.py "$@"
}

# start_raw NAME --scenario S [ARGS...]: test/rawserver.py likewise; sets
# RAW_NAME_PORT, RAW_NAME_OUT, RAW_NAME_PID.
start_raw() {
	local name=$1
	shift
	_t_start raw "$name" rawserver.py "$@"
}

# srv_port NAME / srv_out NAME / srv_pid NAME: for either kind.
srv_port() { printf '%s\n' "${_T_SRV_PORT[$1]}"; }
srv_out()  { printf '%s\n' "${_T_SRV_OUT[$1]}"; }
srv_pid()  { printf '%s\n' "${_T_SRV_PID[$1]}"; }

_t_zombie() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" = Z ]
}

# _t_kill PID: SIGTERM, wait up to 5 s, then SIGKILL; reaps the child.
_t_kill() {
	local pid=$1 end=$((SECONDS + 5))
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null; do
		# An unreaped zombie still answers kill -0.
		_t_zombie "$pid" && break
		if [ "$SECONDS" -ge "$end" ]; then
			kill -KILL "$pid" 2>/dev/null
			break
		fi
		sleep 0.02
	done
	wait "$pid" 2>/dev/null
	return 0
}

# stop_server NAME: stop one server by its PID.
stop_server() {
	local pid=${_T_SRV_PID[$1]-}
	[ -n "$pid" ] || return 0
	_t_kill "$pid"
}

# stop_servers: stop every server this script started.
stop_servers() {
	local pid
	for pid in "${_T_PIDS[@]}"; do
		_t_kill "$pid"
	done
	_T_PIDS=()
}

# wait_event NAME STRING [SECONDS=10]: wait until the server's events.log
# holds STRING (e.g. "fault 1 mail stall").  Returns 1 on timeout.
wait_event() {
	wait_for "${3:-10}" grep -qF -- "$2" "${_T_SRV_OUT[$1]}/events.log"
}

# msg_count NAME: messages the server stored so far.
msg_count() {
	local out=${_T_SRV_OUT[$1]} n=0
	while [ -e "$out/$((n + 1)).json" ]; do n=$((n + 1)); done
	echo "$n"
}

# wait_msgs NAME COUNT [SECONDS=10]: wait until the server stored COUNT
# messages (N.json is written last).  Returns 1 on timeout.
wait_msgs() {
	wait_for "${3:-10}" test -e "${_T_SRV_OUT[$1]}/$2.json"
}

# msg_json NAME N KEY: one field of N.json (lists joined by spaces,
# null/None as the empty string, booleans as true/false).
msg_json() {
	"$PY" - "${_T_SRV_OUT[$1]}/$2.json" "$3" <<'EOF'
import json, sys
try:
    v = json.load(open(sys.argv[1])).get(sys.argv[2])
except OSError as e:
    sys.exit("msg_json: %s" % e)
if isinstance(v, bool):
    v = "true" if v else "false"
elif isinstance(v, list):
    v = " ".join(map(str, v))
print("" if v is None else v)
EOF
}

# ---- relay ------------------------------------------------------------

# write_conf FILE [KEY VALUE]...: a relay.conf with one "KEY VALUE" line
# per pair, mode 0600.  VALUE may hold spaces: write_conf f alias "root
# a@example.org".
write_conf() {
	local file=$1
	shift
	[ $(($# % 2)) -eq 0 ] || t_bail "write_conf: odd number of key/value args"
	(umask 077; : >"$file")
	while [ $# -gt 0 ]; do
		printf '%s %s\n' "$1" "$2" >>"$file"
		shift 2
	done
	chmod 600 "$file"
}

# write_conf_for NAME FILE [KEY VALUE]...: a relay.conf for server NAME:
# host localhost, its port, tls implicit|starttls|none from its mode
# (raw: implicit for tls-then-stall, else starttls), user $T_USER,
# password $T_PASS, ca_file $PKI/ca.crt, log stderr.  A KEY given replaces
# the default; VALUE "-" drops the key.  Extra keys are appended.
write_conf_for() {
	local name=$1 file=$2 tls
	shift 2
	[ -n "${_T_SRV_PORT[$name]-}" ] || t_bail "write_conf_for: no server $name"
	case ${_T_SRV_MODE[$name]} in
	smtps|tls-then-stall)	tls=implicit ;;
	plain)			tls=none ;;
	*)			tls=starttls ;;
	esac
	local -A val=([host]=localhost [port]=${_T_SRV_PORT[$name]} [tls]=$tls
	    [user]=$T_USER [password]=$T_PASS [ca_file]=$PKI/ca.crt [log]=stderr)
	local keys=(host port tls user password ca_file log) k
	while [ $# -gt 0 ]; do
		[ $# -ge 2 ] || t_bail "write_conf_for: key $1 without a value"
		[ -n "${val[$1]+x}" ] || keys+=("$1")
		val[$1]=$2
		shift 2
	done
	local pairs=()
	for k in "${keys[@]}"; do
		[ "${val[$k]}" = - ] || pairs+=("$k" "${val[$k]}")
	done
	write_conf "$file" "${pairs[@]}"
}

# run_relay [ARGS...]: run $RELAY with ARGS, stdin from the caller, under
# a $RELAY_TIMEOUT-second timeout.  $RELAY_PREFIX (word-split) goes before
# it, e.g. RELAY_PREFIX="setpriv --reuid=65534 --regid=65534
# --clear-groups".  Sets RELAY_STATUS, RELAY_OUT and RELAY_ERR (files
# $T/run.K.out and .err; the command line is in $T/run.K.cmd).  A sanitizer
# report in stderr is recorded as a failure at once.  Always returns 0.
# In "printf ... | run_relay" it must be the last command of the pipeline.
run_relay() {
	[ -n "${T-}" ] || t_bail "run_relay: call t_setup first"
	[ -x "$RELAY" ] || note "no executable $RELAY (make test/obj/relay)"
	_T_RUNS=$((_T_RUNS + 1))
	RELAY_OUT=$T/run.$_T_RUNS.out
	RELAY_ERR=$T/run.$_T_RUNS.err
	printf '%s\n' "${RELAY_PREFIX-} $RELAY $*" >"$T/run.$_T_RUNS.cmd"
	RELAY_STATUS=0
	# shellcheck disable=SC2086
	timeout -k 5 "$RELAY_TIMEOUT" ${RELAY_PREFIX-} "$RELAY" "$@" >"$RELAY_OUT" \
	    2>"$RELAY_ERR" || RELAY_STATUS=$?
	case $RELAY_STATUS in
	124|137) note "run $_T_RUNS: relay timed out after ${RELAY_TIMEOUT}s" ;;
	esac
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
	    "$RELAY_ERR"; then
		fail "run $_T_RUNS ($*): sanitizer report" \
		    "$(head -c 3000 "$RELAY_ERR")"
	fi
	return 0
}
