#!/bin/bash
# A big queue goes out over one connection (issue 3): 1000 messages queued
# while the smarthost is down are all delivered by one "relay -q" over ONE
# SMTP session (RSET between messages), each exactly once and whole.  And
# when the server drops the session in the middle of the run (or closes it
# with 421), the flush reconnects once and still delivers everything: two
# connections, nothing lost, nothing twice.  When the session is lost
# between the end of the data and the reply (relay cannot tell whether the
# message was taken), the run goes on over a second connection and the
# message is not lost.  The flush's time and rate are printed (never
# asserted).
. "$(dirname "$0")/lib.sh"
t_setup
. "$TESTDIR/robust.sh"

N=${FLUSH_N:-1000}		# the big queue
M=${FLUSH_M:-100}		# the queues of the reconnection cases

rb_down down

# enqueue CONF PREFIX COUNT: submit PREFIX1..PREFIXCOUNT with the smarthost
# down, two at a time; each must exit 0 (queued).  Failures in $T/PREFIX.fail.
enqueue() {
	local conf=$1 p=$2 n=$3 w pids=()
	: >"$T/$p.fail"
	for w in 0 1; do
		(
			for ((i = 1 + w; i <= n; i += 2)); do
				timeout -k 5 "$RELAY_TIMEOUT" "$RELAY" -C "$conf" \
				    to@example.org <"$MSGS/$p$i.txt" \
				    2>>"$T/$p.enqueue.$w.err" ||
				    echo "$p$i exit $?" >>"$T/$p.fail"
			done
		) &
		pids+=($!)
	done
	wait "${pids[@]}"	# not "wait": the servers are children too
	cat "$T/$p.enqueue.0.err" "$T/$p.enqueue.1.err" >"$T/$p.enqueue.err"
}

# queued_all WHAT CONF PREFIX COUNT: every submission exited 0 and the
# queue holds COUNT sound entries; then make them all due.
queued_all() {
	local what=$1 conf=$2 p=$3 n=$4 qdir
	qdir=$(awk '$1 == "queue" { print $2 }' "$conf")
	assert_eq "$(grep -c . "$T/$p.fail")" 0 \
	    "$what: all $n submissions with the smarthost down exit 0"
	[ -s "$T/$p.fail" ] && note "$(head -5 "$T/$p.fail")" \
	    "$(head -5 "$T/$p.enqueue.err")"
	rb_san "$T/$p.enqueue.err" "$what: submissions"
	assert_eq "$(grep -c 'queued, will retry' "$T/$p.enqueue.err")" "$n" \
	    "$what: each submission said \"queued, will retry\""
	rb_queue "$what: $n queued" "$conf"
	assert_eq "$RB_QUEUED" "$n" "$what: $n entries in queue/"
	assert_match "$(tail -n 1 "$T/bp.out")" "^-- $n messages? queued" \
	    "$what: relay -bp counts $n"
	rb_no_next "$qdir"
}

# delivered_all WHAT SRV CONF PREFIX COUNT: every message stored by SRV
# exactly once and whole; nothing left in the queue.
delivered_all() {
	local what=$1 srv=$2 conf=$3 p=$4 n=$5
	wait_msgs "$srv" "$n" 10 || note "$what: only $(msg_count "$srv") stored"
	rb_tally "$srv"
	assert_eq "$RB_STORED" "$n" "$what: the smarthost stored $n messages"
	assert_eq "$RB_DISTINCT" "$n" "$what: all $n different messages"
	assert_eq "$RB_DUPS" 0 "$what: none twice"
	assert_eq "$RB_BAD" 0 "$what: each whole, byte for byte" "$RB_BADMSG"
	rb_queue "$what: after the flush" "$conf"
	assert_eq "$RB_QUEUED/$RB_FAILED/$RB_TMP" 0/0/0 \
	    "$what: queue/, failed/ and tmp/ empty afterwards"
}

# flush WHAT CONF: run "relay -q" and time it; sets SECS.
flush() {
	local start=$EPOCHREALTIME
	run_relay -C "$2" -q
	SECS=$(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $start }")
	assert_exit 0 "$1: relay -q exits 0"
}

# ---- 1000 over one connection -----------------------------------------

rb_gen a 1 "$N" 200 1500
write_conf_for down "$T/down.conf" queue "$T/q1" from sender@example.org
start=$EPOCHREALTIME
enqueue "$T/down.conf" a "$N"
note "queued $N messages in $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }") s (two at a time)"
queued_all "$N messages" "$T/down.conf" a "$N"
declare -A ID=()
for n in "${!RB_ENTRY[@]}"; do ID[$n]=${RB_ENTRY[$n]}; done

start_smarthost up --mode smtps
write_conf_for up "$T/up.conf" queue "$T/q1" from sender@example.org
flush "$N messages" "$T/up.conf"
printf '# flush of %d messages: %s s, %s messages/s (informational)\n' "$N" \
    "$SECS" "$(awk "BEGIN { printf \"%.0f\", $N / ($SECS > 0 ? $SECS : 1) }")"
delivered_all "$N messages" up "$T/up.conf" a "$N"
assert_eq "$(rb_accepts up)" 1 "$N messages: over exactly one connection"
assert_eq "$(grep -c '^mail 1 ' "$SMARTHOST_up_OUT/events.log")" "$N" \
    "$N messages: $N MAIL commands on that connection"
assert_eq "$(grep -c '^auth 1 ok' "$SMARTHOST_up_OUT/events.log")" 1 \
    "$N messages: one AUTH"
assert_eq "$(grep -c 'status=sent' "$RELAY_ERR")" "$N" \
    "$N messages: one log record with status=sent each"
# Oldest first: an id begins with its creation time (8 hex digits, in
# seconds), so in the order sent those never go down.
prev=0 back=()
for n in $RB_ORDER; do
	t=$((16#${ID[$n]:0:8}))
	[ "$t" -ge "$prev" ] || back+=("$n (${ID[$n]})")
	prev=$t
done
assert_eq "${#back[@]}" 0 "$N messages: sent oldest first (by the time in their ids)"
[ ${#back[@]} -eq 0 ] || note "${back[@]:0:5}"

# ---- the server drops the session in the middle -----------------------

# A smarthost whose --fault fires only from the Nth time its stage is
# reached (test/smarthost_nth.py), through lib.sh's starter.
start_nth() {
	declare -F _t_start >/dev/null || t_bail "lib.sh has no _t_start"
	_t_start smarthost "$@"
}

# midrun WHAT PREFIX FAULT: M messages queued; the server applies FAULT
# (STAGE:ACTION) once, to message M/2; one relay -q delivers everything
# over exactly two connections.
midrun() {
	local what=$1 p=$2 fault=$3 srv=$2srv
	rb_gen "$p" 1 "$M" 200 1500
	write_conf_for down "$T/$p.down.conf" queue "$T/$p.q" \
	    from sender@example.org
	enqueue "$T/$p.down.conf" "$p" "$M"
	queued_all "$what" "$T/$p.down.conf" "$p" "$M"
	start_nth "$srv" smarthost_nth.py --mode smtps \
	    --fault "$fault:1" --fault-from $((M / 2))
	write_conf_for "$srv" "$T/$p.up.conf" queue "$T/$p.q" \
	    from sender@example.org
	flush "$what" "$T/$p.up.conf"
	note "$what: flush of $M messages took $SECS s"
	assert_file_contains "$(srv_out "$srv")/events.log" \
	    "fault 1 ${fault/:/ }" "$what: the server did it on the first connection"
	delivered_all "$what" "$srv" "$T/$p.up.conf" "$p" "$M"
	assert_eq "$(rb_accepts "$srv")" 2 "$what: exactly two connections"
}

midrun "dropped at MAIL mid-run" b mail:drop
midrun "421 to MAIL mid-run" c mail:421
midrun "dropped at RCPT mid-run" d rcpt:drop

# unsure WHAT PREFIX FAULT DUPS: as midrun, but the session is lost after
# the message data, before the reply to the dot: relay cannot know whether
# message M/2 was taken.  The run still goes on over a second connection;
# whatever it leaves queued, a forced run (relay -qf) delivers; in the end
# every message arrived, and only that one may have arrived twice (DUPS:
# at most 1 when the server had stored it before hanging up).
unsure() {
	local what=$1 p=$2 fault=$3 maxdups=$4 srv=$2srv
	rb_gen "$p" 1 "$M" 200 1500
	write_conf_for down "$T/$p.down.conf" queue "$T/$p.q" \
	    from sender@example.org
	enqueue "$T/$p.down.conf" "$p" "$M"
	queued_all "$what" "$T/$p.down.conf" "$p" "$M"
	start_nth "$srv" smarthost_nth.py --mode smtps \
	    --fault "$fault:1" --fault-from $((M / 2))
	write_conf_for "$srv" "$T/$p.up.conf" queue "$T/$p.q" \
	    from sender@example.org
	flush "$what" "$T/$p.up.conf"
	assert_file_contains "$(srv_out "$srv")/events.log" \
	    "fault 1 ${fault/:/ }" "$what: the server did it on the first connection"
	assert_eq "$(rb_accepts "$srv")" 2 "$what: the run went on over a second connection"
	rb_queue "$what: after the run" "$T/$p.up.conf"
	note "$what: $RB_QUEUED left queued by the run"
	if [ "$RB_QUEUED" -gt 0 ]; then
		run_relay -C "$T/$p.up.conf" -qf
		assert_exit 0 "$what: relay -qf exits 0"
	fi
	wait_msgs "$srv" "$M" 10
	rb_tally "$srv"
	assert_eq "$RB_DISTINCT" "$M" "$what: all $M messages delivered in the end"
	assert_eq "$RB_BAD" 0 "$what: each whole" "$RB_BADMSG"
	if [ "$RB_DUPS" -le "$maxdups" ]; then
		ok "$what: at most $maxdups duplicate ($RB_DUPS)"
	else
		fail "$what: at most $maxdups duplicate" "$RB_DUPS duplicates"
	fi
	rb_queue "$what: in the end" "$T/$p.up.conf"
	assert_eq "$RB_QUEUED/$RB_FAILED/$RB_TMP" 0/0/0 \
	    "$what: queue/, failed/ and tmp/ empty in the end"
}

unsure "dropped after the data, not stored" e dot:drop 0
unsure "dropped after the dot, stored" f dot:drop-after-dot 1

t_done
