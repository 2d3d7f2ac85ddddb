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
# "not ok - NAME", "# detail".  The helpers, by section (each is
# described where it is defined):
#
#   results          ok fail note check check_not t_bail t_done
#     on text        assert_eq assert_match (ERE) assert_exit
#                    assert_contains assert_lacks
#     on files       assert_file_contains assert_file_lacks
#                    assert_file_matches assert_same (a missing file fails)
#   setup            t_setup wait_for wait_file
#   servers          start_smarthost start_raw srv_port srv_out srv_pid
#                    stop_server stop_servers restart_smarthost free_port
#                    wait_event msg_count wait_msgs msg_json
#   relay            write_conf write_conf_for run_relay assert_error
#                    assert_log setgid_relay
#   the queue        q_dir q_ids q_count q_path q_env q_set q_rcpts
#                    iso_utc iso_epoch
#   one message to server after server ($T/msg.txt)
#                    send timed_send assert_elapsed delivered nothing_stored
#   secrets          secret_forms assert_no_secret no_creds
#   stored messages  eml (test/eml.py) field assert_crlf deliver_to added
#                    DATE_RE

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
declare -A _T_SRV_PID _T_SRV_OUT _T_SRV_PORT _T_SRV_KIND _T_SRV_MODE \
    _T_SRV_ARGS
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

# assert_match TEXT ERE [NAME]: TEXT (a variable's value) matches the
# extended regular expression ERE.
assert_match() {
	local name=${3:-"text matches /$2/"}
	if [[ $1 =~ $2 ]]; then
		ok "$name"
	else
		fail "$name" "\"$1\" does not match /$2/"
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
	_t_file_grep found -F "$1" "$2" "${3:-"$(basename "$1") contains \"$2\""}"
}

# assert_file_lacks FILE STRING [NAME]: a missing file is a failure too
# (a check on a file that was never written proves nothing).
assert_file_lacks() {
	_t_file_grep absent -F "$1" "$2" "${3:-"$(basename "$1") lacks \"$2\""}"
}

# assert_file_matches FILE ERE [NAME]: an extended regular expression.
assert_file_matches() {
	_t_file_grep found -E "$1" "$2" "${3:-"$(basename "$1") matches /$2/"}"
}

# assert_same FILE WANTFILE [NAME]: byte-for-byte equality.  A missing
# FILE is a failure.
assert_same() {
	local name=${3:-"$(basename "$1") is $(basename "$2")"}
	if [ ! -f "$1" ]; then
		fail "$name" "no such file: $1"
	elif cmp -s "$1" "$2"; then
		ok "$name"
	else
		fail "$name" "$(diff <(od -c "$2") <(od -c "$1") | head -20)"
	fi
}

# _t_file_grep found|absent -F|-E FILE PATTERN NAME: whether grep must find
# PATTERN in FILE.  A missing file, or grep failing, is a failure either way.
_t_file_grep() {
	local want=$1 how=$2 f=$3 pat=$4 name=$5 got=found
	if [ ! -f "$f" ]; then
		fail "$name" "no such file: $f"
		return 0
	fi
	grep -qa "$how" -- "$pat" "$f"
	case $? in
	0)	;;
	1)	got=absent ;;
	*)	fail "$name" "grep $how failed on $f"; return 0 ;;
	esac
	if [ "$got" = "$want" ]; then
		ok "$name"
	elif [ "$want" = absent ]; then
		fail "$name" "$f contains \"$pat\":" \
		    "$(grep -na "$how" -- "$pat" "$f" | head -5)"
	elif [ "$how" = -F ]; then
		fail "$name" "$f lacks \"$pat\"; it begins:" "$(head -c 1500 "$f")"
	else
		fail "$name" "$f does not match /$pat/; it begins:" \
		    "$(head -c 1500 "$f")"
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

# _t_start KIND NAME SCRIPT ARGS...  (_T_RESTART=1: NAME may exist.)
_t_start() {
	local kind=$1 name=$2 script=$3 out have_cert='' have_user='' mode=''
	shift 3
	[ -n "${T-}" ] || t_bail "start_$kind: call t_setup first"
	[ -n "${_T_RESTART-}" ] || _t_name_ok "$name"
	_T_SRV_ARGS[$name]=$(printf '%q ' "$@")
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
	# A restart keeps what the earlier run said.
	[ -n "${_T_RESTART-}" ] || : >"$out/stdout.log" >"$out/stderr.log"
	"$PY" "$TESTDIR/$script" --outdir "$out" --portfile "$out/port" \
	    "${args[@]}" >>"$out/stdout.log" 2>>"$out/stderr.log" &
	local pid=$!
	_T_PIDS+=("$pid")
	_T_SRV_PID[$name]=$pid
	_T_SRV_OUT[$name]=$out
	_T_SRV_KIND[$name]=$kind
	_T_SRV_MODE[$name]=$mode
	local end=$((SECONDS + 10))
	until [ -s "$out/port" ]; do
		if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$end" ]; then
			[ -z "${_T_RESTART-}" ] || { _t_kill "$pid"; return 1; }
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

# restart_smarthost NAME [ARGS...]: stop smarthost NAME if it runs, and
# start it again on the same port and output directory, with ARGS, or
# without ARGS those it was started with last time (a "--port" among them
# is replaced).  Message and connection numbers go on from the last run
# (1.eml is not overwritten).  Sets the same variables as start_smarthost.
# For "the smarthost is down, then up again": start_smarthost NAME ...;
# write_conf_for NAME ...; stop_server NAME; (relay queues); restart_smarthost
# NAME.  Bails out if the port cannot be bound again within 10 s.
restart_smarthost() {
	local name=$1 port old p a keep=()
	shift
	[ -n "${_T_SRV_PORT[$name]-}" ] ||
	    t_bail "restart_smarthost: no server $name"
	[ "${_T_SRV_KIND[$name]}" = smarthost ] ||
	    t_bail "restart_smarthost: $name is not a smarthost"
	port=${_T_SRV_PORT[$name]}
	old=${_T_SRV_PID[$name]}
	_t_kill "$old"
	for p in "${_T_PIDS[@]}"; do
		[ "$p" = "$old" ] || keep+=("$p")
	done
	_T_PIDS=("${keep[@]}")
	if [ $# -eq 0 ]; then
		eval "set -- ${_T_SRV_ARGS[$name]}"
	fi
	keep=()
	while [ $# -gt 0 ]; do
		a=$1
		shift
		if [ "$a" = --port ]; then
			shift
			continue
		fi
		keep+=("$a")
	done
	local end=$((SECONDS + 10))
	while :; do
		_T_RESTART=1 _t_start smarthost "$name" smarthost.py \
		    "${keep[@]}" --port "$port" && break
		[ "$SECONDS" -lt "$end" ] || break
		sleep 0.1
	done
	[ "${_T_SRV_PORT[$name]}" = "$port" ] && kill -0 "${_T_SRV_PID[$name]}" ||
	    t_bail "restart_smarthost $name: cannot listen on port $port again; stderr:
$(tail -n 5 "${_T_SRV_OUT[$name]}/stderr.log")"
}

# free_port: print a TCP port on 127.0.0.1 that nothing listens on (the
# kernel's pick, released at once: a port a test can start a server on
# later, or connect to and be refused).
free_port() {
	"$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
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
# password $T_PASS, ca_file $PKI/ca.crt, log stderr, queue $T/queue (so
# that no test uses /var/spool/relay; "queue none" for no queue, "queue -"
# for relay's default).  A KEY given replaces the default; VALUE "-" drops
# the key.  Extra keys are appended.
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
	    [user]=$T_USER [password]=$T_PASS [ca_file]=$PKI/ca.crt [log]=stderr
	    [queue]=$T/queue)
	local keys=(host port tls user password ca_file log queue) k
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
# $T/run.K.out and .err; the command line is in $T/run.K.cmd), RELAY_NAME
# (the name it ran under: relay, sendmail, mailq...) and RELAY_ARGS.  A
# sanitizer report in stderr is recorded as a failure at once.  Always
# returns 0.
# In "printf ... | run_relay" it must be the last command of the pipeline.
run_relay() {
	[ -n "${T-}" ] || t_bail "run_relay: call t_setup first"
	[ -x "$RELAY" ] || note "no executable $RELAY (make test/obj/relay)"
	_T_RUNS=$((_T_RUNS + 1))
	RELAY_OUT=$T/run.$_T_RUNS.out
	RELAY_ERR=$T/run.$_T_RUNS.err
	RELAY_NAME=$(basename "$RELAY")
	RELAY_ARGS=("$@")
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

# assert_error WHAT WORD...: the last run_relay printed exactly one error
# line, "$RELAY_NAME: ...", and it holds every WORD.  Its log records
# ("NAME: from=<...> status=...", "NAME: id=ID from=<...> status=...") do
# not count, nor, when it ran with -v, the dialogue (">>> ", "<<< " and
# "*** " lines).
assert_error() {
	local what=$1 lines n w missing=()
	local skip=(-e "^$RELAY_NAME: from=<.* status="
	    -e "^$RELAY_NAME: id=[0-9a-f]* from=<.* status=")
	shift
	[[ " ${RELAY_ARGS[*]} " == *" -v "* ]] &&
	    skip+=(-e '^>>> ' -e '^<<< ' -e '^\*\*\* ')
	lines=$(grep -av "${skip[@]}" "$RELAY_ERR")
	n=$(grep -c . <<<"$lines")
	for w in "$@"; do
		[[ $lines == *"$w"* ]] || missing+=("\"$w\"")
	done
	if [ "$n" -eq 1 ] && [[ $lines == "$RELAY_NAME: "* ]] &&
	    [ ${#missing[@]} -eq 0 ]; then
		ok "$what: one error line naming: $*"
	else
		fail "$what: one error line naming: $*" \
		    "$n error lines; missing: ${missing[*]:-none}" "$lines"
	fi
}

# assert_log WHAT ERE...: one log record of the last run_relay ("NAME:
# ... status=...", on stderr with "log stderr") matches every ERE, in any
# order (the fields' order is not fixed here): assert_log "queued"
# "id=$ID( |$)" "status=deferred " "attempts=1( |$)".
assert_log() {
	local what=$1 line r all
	shift
	while IFS= read -r line; do
		all=1
		for r in "$@"; do
			[[ $line =~ $r ]] || { all=; break; }
		done
		if [ -n "$all" ]; then
			ok "$what: log record with $*"
			return 0
		fi
	done < <(grep -a "^$RELAY_NAME: .*status=" "$RELAY_ERR")
	fail "$what: log record with $*" "records:" \
	    "$(grep -a "^$RELAY_NAME: .*status=" "$RELAY_ERR" | head -c 2000)"
}

# ---- one message to server after server -------------------------------
# For scripts that write $T/msg.txt (a short message whose last line is
# its own) and send it to a server per case.

# send NAME [-v] [KEY VALUE]...: write $T/NAME.conf for server NAME
# (write_conf_for, from sender@example.org, plus the pairs given) and send
# $T/msg.txt to to@example.org.
send() {
	local name=$1 v=()
	shift
	[ "${1-}" = -v ] && { v=(-v); shift; }
	write_conf_for "$name" "$T/$name.conf" from sender@example.org "$@"
	run_relay "${v[@]}" -C "$T/$name.conf" to@example.org <"$T/msg.txt"
}

# timed_send NAME [-v] [KEY VALUE]...: send, and set ELAPSED (seconds).
timed_send() {
	local start=$EPOCHREALTIME
	send "$@"
	ELAPSED=$(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $start }")
}

# assert_elapsed MIN MAX WHAT: MIN <= ELAPSED < MAX.
assert_elapsed() {
	if awk "BEGIN { exit !($ELAPSED >= $1 && $ELAPSED < $2) }"; then
		ok "$3: gave up after ${ELAPSED}s (${1}-${2}s)"
	else
		fail "$3: gave up after ${ELAPSED}s (${1}-${2}s)"
	fi
}

# delivered NAME WHAT: the last run exited 0 and server NAME stored
# $T/msg.txt as its first message (within 5 s).
delivered() {
	local out
	out=$(srv_out "$1")
	assert_exit 0 "$2: delivered (exit 0)"
	if wait_msgs "$1" 1 5; then
		assert_file_contains "$out/1.eml" "$(tail -n 1 "$T/msg.txt")" \
		    "$2: message stored"
	else
		fail "$2: message stored" "no $out/1.json"
	fi
}

# nothing_stored NAME WHAT: server NAME stored no message.
nothing_stored() {
	assert_eq "$(msg_count "$1")" 0 "$2: no message stored"
}

# ---- secrets ----------------------------------------------------------

# secret_forms [PASSWORD]: what must not show where PASSWORD ($T_PASS)
# could leak, one a line: PASSWORD, the AUTH PLAIN token for $T_USER, and
# PASSWORD in Base64 at each of the three offsets it can have inside a
# longer Base64 text (the characters that depend on its neighbours left
# out), which also catches it alone, in an AUTH LOGIN line or in a token.
secret_forms() {
	local pw=${1:-$T_PASS} k len b64
	len=$(printf %s "$pw" | wc -c)
	printf '%s\n' "$pw"
	printf '\0%s\0%s' "$T_USER" "$pw" | base64 -w0
	echo
	for k in 0 1 2; do
		b64=$(printf '%.*s%s' "$k" xx "$pw" | base64 -w0)
		# Characters ceil(8k/6) to floor(8(k+len)/6) - 1 are pw's alone.
		printf '%s\n' "${b64:(8 * k + 5) / 6:(8 * (k + len)) / 6 - (8 * k + 5) / 6}"
	done
}

# assert_no_secret FILE NAME [PASSWORD [STRING...]]: FILE holds none of
# secret_forms PASSWORD (default $T_PASS) and no STRING.  A missing file,
# or a password too short to give every form, is a failure.
assert_no_secret() {
	local f=$1 name=$2 pw=${3-} s forms=() hits=() empty=0
	shift 2
	[ $# -gt 0 ] && shift
	mapfile -t forms < <(secret_forms "$pw")
	if [ ! -f "$f" ]; then
		fail "$name" "no such file: $f"
		return
	fi
	for s in "${forms[@]}" "$@"; do
		if [ -z "$s" ]; then
			empty=$((empty + 1))
		elif grep -qaF -- "$s" "$f"; then
			hits+=("$s")
		fi
	done
	if [ ${#hits[@]} -eq 0 ] && [ ${#forms[@]} -eq 5 ] &&
	    [ "$empty" -eq 0 ]; then
		ok "$name"
	else
		fail "$name" "$f holds: ${hits[*]}" "forms: ${forms[*]}" \
		    "$(head -c 1500 "$f")"
	fi
}

# no_creds FILE WHAT [PASSWORD]: FILE (what a server got in clear) holds
# no secret_forms PASSWORD and no AUTH command.
no_creds() {
	assert_no_secret "$1" "$2: no credentials in clear ($(basename "$1"))" \
	    "${3-}" AUTH
}

# ---- stored messages --------------------------------------------------

# eml COMMAND ARGS...: test/eml.py, byte-level views of a stored message
# (crlf, maxline, field, names, head, body, norm, qp, unfold, b64, has,
# gen; see its --help).
eml() { "$PY" "$TESTDIR/eml.py" "$@"; }

# field FILE NAME: the unfolded field(s) NAME of a stored message, one a
# line; nothing if FILE is missing.
field() { [ ! -f "$1" ] || eml field "$1" "$2"; }

# assert_crlf FILE NAME: no bare CR or LF anywhere.
assert_crlf() {
	assert_eq "$(eml crlf "$1" 2>&1)" ok "$2"
}

# deliver_to NAME ARGS...: run_relay ARGS (stdin: the message) and, if it
# exits 0, wait for the message server NAME stores next and check that it
# is CRLF only.  Sets N to its number and EML to its file.
deliver_to() {
	local srv=$1 before
	shift
	before=$(msg_count "$srv")
	run_relay "$@"
	N=$((before + 1))
	EML=$(srv_out "$srv")/$N.eml
	if [ "$RELAY_STATUS" = 0 ]; then
		wait_msgs "$srv" "$N" || fail "$srv: message $N stored" \
		    "$(cat "$RELAY_ERR")"
		assert_crlf "$EML" "$srv: message $N: CRLF only, no bare CR or LF"
	fi
}

# added: the Date and Message-ID fields of $EML, CRLF-ended, for building
# the expected message around what relay added.
added() {
	field "$EML" Date | sed 's/$/\r/'
	field "$EML" Message-ID | sed 's/$/\r/'
}

# The Date field relay adds (RFC 5322, English names).
# shellcheck disable=SC2034
DATE_RE='^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) 2[0-9]{3} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [+-][0-9]{4}$'

# setgid_relay SKIP: a setgid copy of relay, root:$G mode 2755, in
# $T/sbin/relay (sets SG, and GID to $G's number), with $T/sbin, $T/etc and $T/files made
# (0755).  The sanitizer build is test/obj/relay-setgid (no
# LeakSanitizer, which cannot run setgid).  When setgid cannot work here
# (not root, no setpriv/unshare/findmnt, no group $G, no_new_privs, a
# nosuid $T, $T out of nobody's reach) it calls "SKIP REASON" instead.
setgid_relay() {
	local skip=$1 c
	[ "$(id -u)" = 0 ] || { "$skip" "needs root (setgid files, setpriv, mount)"; return 1; }
	for c in setpriv unshare findmnt; do
		command -v "$c" >/dev/null || { "$skip" "no $c"; return 1; }
	done
	GID=$(getent group "$G" | cut -d: -f3)
	[ -n "$GID" ] || { "$skip" "no group $G"; return 1; }
	! grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status ||
	    { "$skip" "this process runs with no_new_privs: setgid cannot work"; return 1; }
	findmnt -n -o OPTIONS -T "$T" | tr , '\n' | grep -qx nosuid &&
	    { "$skip" "$T is on a nosuid file system"; return 1; }
	# Every user must reach $T (the repository may sit in a private home).
	setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$T" ||
	    { "$skip" "nobody cannot reach $T"; return 1; }
	mkdir -p "$T/sbin" "$T/etc" "$T/files"
	chmod 755 "$T/sbin" "$T/etc" "$T/files"
	SG=$T/sbin/relay
	if [ "$RELAY" = "$TESTDIR/obj/relay" ]; then
		cp "$TESTDIR/obj/relay-setgid" "$SG" ||
		    t_bail "no $TESTDIR/obj/relay-setgid (make test/obj/relay-setgid)"
	else
		cp "$RELAY" "$SG" || t_bail "cannot copy $RELAY"
	fi
	chown "root:$G" "$SG" && chmod 2755 "$SG" || t_bail "cannot make $SG setgid"
}

# ---- the queue --------------------------------------------------------
# relay's queue (QUEUE-SPEC / relay(8)): DIR/queue/ID/{message,envelope},
# DIR/failed/ID/..., DIR/tmp/ID/.  DIR is $QDIR if set, else $T/queue (what
# write_conf_for configures).  The envelope is "key value" lines; created,
# last-attempt and next-attempt are UTC "2026-11-22T14:35:01Z".

# q_dir: the queue directory the helpers look at.
q_dir() { printf '%s\n' "${QDIR:-$T/queue}"; }

# q_ids [queue|failed|tmp]: the entry ids there (default queue), sorted,
# one a line; nothing if the directory does not exist.
q_ids() {
	local d
	d=$(q_dir)/${1:-queue}
	[ -d "$d" ] || return 0
	find "$d" -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort
}

# q_count [queue|failed|tmp]: how many entries there.
q_count() { q_ids "$@" | grep -c .; }

# q_path ID [FILE=envelope]: the file of entry ID, in queue/ or else in
# failed/ (printed even if missing, as queue/ID/FILE).
q_path() {
	local d f=${2:-envelope}
	d=$(q_dir)
	if [ ! -e "$d/queue/$1/$f" ] && [ -e "$d/failed/$1/$f" ]; then
		printf '%s\n' "$d/failed/$1/$f"
	else
		printf '%s\n' "$d/queue/$1/$f"
	fi
}

# q_env ID KEY: the value of KEY in entry ID's envelope (every such line's,
# one a line; "rcpt" gives "STATE <ADDR> REPLY").  Returns 1 if absent.
q_env() {
	local f
	f=$(q_path "$1")
	[ -f "$f" ] || return 1
	awk -v k="$2" 'index($0, k " ") == 1 { print substr($0, length(k) + 2); n++ }
	    END { exit !n }' "$f"
}

# q_rcpts ID: "STATE <ADDR>" of each recipient of entry ID, one a line.
q_rcpts() { q_env "$1" rcpt | awk '{ print $1, $2 }'; }

# q_set ID KEY VALUE: replace the KEY line of entry ID's envelope (added
# if missing), as an administrator or a test simulating time would: the
# documented lines are created and next-attempt.
q_set() {
	local f
	f=$(q_path "$1")
	[ -f "$f" ] || t_bail "q_set: no envelope $f"
	awk -v k="$2" -v v="$3" 'index($0, k " ") == 1 { if (!done) print k " " v;
	    done = 1; next } { print } END { if (!done) print k " " v }' \
	    "$f" >"$f.test-edit" && mv "$f.test-edit" "$f" ||
	    t_bail "q_set: cannot rewrite $f"
}

# iso_utc [OFFSET_SECONDS=0]: now plus OFFSET as the envelope writes it.
iso_utc() { date -u -d "@$(($(date +%s) + ${1:-0}))" +%Y-%m-%dT%H:%M:%SZ; }

# iso_epoch ISO: seconds since the epoch of "2026-11-22T14:35:01Z"; empty
# (and status 1) if it is not in that form.
iso_epoch() {
	[[ $1 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] ||
	    return 1
	date -u -d "$1" +%s
}
