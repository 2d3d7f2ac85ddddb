# test/robust.sh: helpers shared by the queue robustness tests
# (t_crash.sh, t_concurrency.sh, t_diskfull.sh, t_flush1000.sh); sourced
# after lib.sh and t_setup.  Messages come from test/qcheck.py (see its
# docstring): each has a unique Message-ID <NAME@queue.test> and a body
# that names it on every line, so a stored copy can be matched to its
# original and checked byte for byte.
#
#   rb_gen PREFIX FIRST COUNT [MIN MAX]   write $MSGS/PREFIXn.txt
#   rb_down NAME                 a raw server's port with nothing listening
#                                (the smarthost is down), for write_conf_for
#   rb_submit CONF NAME [ARGS]   one submission of $MSGS/NAME.txt to
#                                to@example.org, not through run_relay (no
#                                run.K files); sets RB_STATUS, stderr
#                                appended to $T/submit.err
#   rb_tally SRV                 qcheck.py tally of smarthost SRV into
#                                RB_STORED RB_DISTINCT RB_DUPS RB_BAD, the
#                                array RB_COUNT[NAME] and RB_ORDER (names
#                                in the order stored)
#   rb_queue WHAT CONF           the queue of CONF is sound: qcheck.py queue
#                                finds no bad entry, and relay -bp exits 0,
#                                prints no error and lists every entry.
#                                Sets RB_QUEUED RB_FAILED RB_TMP RB_PENDING
#                                (names with a pending recipient) and
#                                RB_ENTRY[NAME] (its entry's id).  Prints
#                                "ok"/"not ok" only if RB_QUIET is unset;
#                                returns 1 when unsound either way (and
#                                leaves the reasons in RB_WHY).
#   rb_san FILE WHAT             FILE holds no sanitizer report
#   rb_no_next QDIR              drop every next-attempt line (QUEUE-SPEC:
#                                tests may edit it): every entry due now
#   rb_accepts SRV               connections smarthost SRV accepted so far

MSGS=${MSGS:-$T/msgs}

rb_gen() {
	"$PY" "$TESTDIR/qcheck.py" gen "$MSGS" "$@" ||
	    t_bail "qcheck.py gen $* failed"
}

rb_down() {
	start_raw "$1" --scenario close
	stop_server "$1"
}

rb_submit() {
	local conf=$1 name=$2
	shift 2
	RB_STATUS=0
	timeout -k 5 "$RELAY_TIMEOUT" "$RELAY" -C "$conf" "$@" to@example.org \
	    <"$MSGS/$name.txt" >>"$T/submit.out" 2>>"$T/submit.err" ||
	    RB_STATUS=$?
}

rb_tally() {
	local k a b
	RB_STORED=0 RB_DISTINCT=0 RB_DUPS=0 RB_BAD=0
	unset RB_COUNT
	declare -gA RB_COUNT=()
	RB_BADMSG='' RB_ORDER=''
	while read -r k a b; do
		case $k in
		stored)		RB_STORED=$a ;;
		distinct)	RB_DISTINCT=$a ;;
		duplicates)	RB_DUPS=$a ;;
		bad)		RB_BAD=$a ;;
		count)		RB_COUNT[$a]=$b ;;
		badmsg)		RB_BADMSG+="$a $b"$'\n' ;;
		order)		RB_ORDER="$a $b" ;;
		esac
	done < <("$PY" "$TESTDIR/qcheck.py" tally "$(srv_out "$1")" "$MSGS")
}

rb_queue() {
	local what=$1 conf=$2 qdir out k a b id missing=() rc=0 bperr
	qdir=$(awk '$1 == "queue" { print $2 }' "$conf")
	RB_QUEUED=0 RB_FAILED=0 RB_TMP=0 RB_PENDING=() RB_WHY=
	unset RB_ENTRY
	declare -gA RB_ENTRY=()
	local ids=()
	out=$("$PY" "$TESTDIR/qcheck.py" queue "$qdir" "$MSGS" 2>&1) || rc=1
	while read -r k a b; do
		case $k in
		queued)		RB_QUEUED=$a ;;
		failed)		RB_FAILED=$a ;;
		tmp)		RB_TMP=$a ;;
		id)		ids+=("$a") ;;
		pending)	RB_PENDING+=("$a") ;;
		entry)		RB_ENTRY[$b]=$a ;;
		esac
	done <<<"$out"
	[ "$rc" -eq 0 ] || RB_WHY=$(grep -v '^\(id\|pending\) ' <<<"$out")
	local bp=0
	ASAN_OPTIONS=detect_leaks=0 timeout -k 5 30 "$RELAY" -C "$conf" -bp \
	    >"$T/bp.out" 2>"$T/bp.err" || bp=$?
	bperr=$(grep -avE '^relay: (id=[0-9a-f]+ )?from=<.* status=' "$T/bp.err")
	if [ "$bp" -ne 0 ] || [ -n "$bperr" ]; then
		rc=1
		RB_WHY+=$'\n'"relay -bp exited $bp: $(head -c 600 "$T/bp.err")"
	fi
	for id in "${ids[@]}"; do
		grep -q "^$id " "$T/bp.out" || missing+=("$id")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		rc=1
		RB_WHY+=$'\n'"relay -bp does not list: ${missing[*]:0:5}"
		RB_WHY+=$'\n'"$(head -c 600 "$T/bp.out")"
	fi
	if [ -z "${RB_QUIET-}" ]; then
		if [ "$rc" -eq 0 ]; then
			ok "$what: queue sound ($RB_QUEUED queued, $RB_TMP in tmp/), relay -bp lists it"
		else
			fail "$what: queue sound, relay -bp lists it" "$RB_WHY"
		fi
	fi
	return "$rc"
}

rb_san() {
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1" \
	    2>/dev/null; then
		fail "$2: no sanitizer report" "$(grep -m3 -A8 -E \
		    'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1")"
	else
		ok "$2: no sanitizer report"
	fi
}

rb_no_next() {
	local f
	for f in "$1"/queue/*/envelope; do
		[ -f "$f" ] || continue
		grep -v '^next-attempt ' "$f" >"$f.test-edit" &&
		    mv "$f.test-edit" "$f"
	done
}

rb_accepts() {
	grep -c '^accept ' "$(srv_out "$1")/events.log"
}
