#!/bin/bash
# Concurrency (issue 3): 20 submissions at once while two "relay -q"
# flushes run over a queue that already holds work (messages queued while
# the smarthost was down), against a smarthost slowed a little so that
# everything overlaps; meanwhile mailq (relay -bp) is run again and again.
# Each message must reach the smarthost exactly once (the lock on each
# entry's message file is what keeps two processes from sending it), every
# run must exit 0 with no error, and the queue must end empty and clean.
# Repeated over a few rounds, since races are a matter of luck.
. "$(dirname "$0")/lib.sh"
t_setup
. "$TESTDIR/robust.sh"

ROUNDS=${CONC_ROUNDS:-3}
PRE=10				# queued beforehand, per round
SUBS=20				# parallel submissions, per round

rb_down down
write_conf_for down "$T/down.conf" queue "$T/queue" from sender@example.org
# Each transaction waits 0.15 s at MAIL: a round takes a few seconds.
start_smarthost up --mode smtps --fault mail:stall --stall-seconds 0.15
write_conf_for up "$T/up.conf" queue "$T/queue" from sender@example.org \
    timeout_command 10

# run_bg NAME ARGS...: relay ARGS in the background, stdout/stderr/status in
# $T/NAME.{out,err,rc}; its PID appended to PIDS.
run_bg() {
	local name=$1
	shift
	(
		rc=0
		timeout -k 5 "$RELAY_TIMEOUT" "$RELAY" "$@" >"$T/$name.out" \
		    2>"$T/$name.err" || rc=$?
		echo "$rc" >"$T/$name.rc"
	) &
	PIDS+=($!)
}

# maxconc SRV LINE: the most connections the smarthost had open at once,
# from line LINE of its events.log on.
maxconc() {
	tail -n "+$2" "$(srv_out "$1")/events.log" |
	    awk '$1 == "accept" { n++; if (n > m) m = n } $1 == "close" { n-- }
	    END { print m + 0 }'
}

before=0
for ((r = 1; r <= ROUNDS; r++)); do
	p=r${r}p s=r${r}s
	rb_gen "$p" 1 "$PRE" 300 4000
	rb_gen "$s" 1 "$SUBS" 300 4000
	: >"$T/submit.err"
	bad=()
	for ((i = 1; i <= PRE; i++)); do
		rb_submit "$T/down.conf" "$p$i"
		[ "$RB_STATUS" = 0 ] || bad+=("$p$i: exit $RB_STATUS")
	done
	assert_eq "${bad[*]}" "" "round $r: $PRE messages queued with the smarthost down"
	rb_queue "round $r: before" "$T/down.conf"
	assert_eq "$RB_QUEUED" "$PRE" "round $r: $PRE entries queued beforehand"
	rb_no_next "$T/queue"

	evline=$(($(wc -l <"$SMARTHOST_up_OUT/events.log") + 1))
	PIDS=()
	run_bg "r$r.flush1" -C "$T/up.conf" -q
	run_bg "r$r.flush2" -C "$T/up.conf" -q
	for ((i = 1; i <= SUBS; i++)); do
		run_bg "r$r.sub$i" -C "$T/up.conf" to@example.org <"$MSGS/$s$i.txt"
	done
	# mailq while it all happens: entries come and go under its feet.
	(
		for ((k = 1; k <= 15; k++)); do
			rc=0
			ASAN_OPTIONS=detect_leaks=0 "$RELAY" -C "$T/up.conf" -bp \
			    >>"$T/r$r.bp.out" 2>>"$T/r$r.bp.err" || rc=$?
			echo "$rc" >>"$T/r$r.bp.rc"
			sleep 0.1
		done
	) &
	PIDS+=($!)
	wait "${PIDS[@]}"

	bad=()
	runs=("r$r.flush1" "r$r.flush2")
	for ((i = 1; i <= SUBS; i++)); do runs+=("r$r.sub$i"); done
	for f in "${runs[@]}"; do
		rc=$(cat "$T/$f.rc" 2>/dev/null)
		[ "$rc" = 0 ] || bad+=("$f: exit ${rc:-?}: $(head -c 300 "$T/$f.err")")
	done
	assert_eq "${#bad[@]}" 0 "round $r: two flushes and $SUBS submissions exit 0"
	[ ${#bad[@]} -eq 0 ] || note "${bad[@]:0:5}"
	for f in "${runs[@]}"; do cat "$T/$f.err"; done >"$T/r$r.all.err"
	rb_san "$T/r$r.all.err" "round $r"
	# Nothing but log records: a flush that found an entry busy skips it
	# silently, and a submission that delivered says nothing.
	errs=$(grep -avE '^relay: (id=[0-9a-f]+ )?from=<.* status=' "$T/r$r.all.err")
	assert_eq "$errs" "" "round $r: no error or warning from any of them"
	assert_eq "$(sort -u "$T/r$r.bp.rc" | tr '\n' ' ')" "0 " \
	    "round $r: relay -bp during the churn always exits 0"
	assert_eq "$(grep -avE '^relay: (id=[0-9a-f]+ )?from=<.* status=' "$T/r$r.bp.err")" "" \
	    "round $r: relay -bp during the churn prints no error"

	want=$((before + PRE + SUBS))
	wait_msgs up "$want" 10
	rb_tally up
	assert_eq "$RB_BAD" 0 "round $r: every stored message whole" "$RB_BADMSG"
	dup=() miss=()
	for n in $(seq -f "$p%g" 1 "$PRE") $(seq -f "$s%g" 1 "$SUBS"); do
		c=${RB_COUNT[$n]:-0}
		[ "$c" = 1 ] || { [ "$c" = 0 ] && miss+=("$n") || dup+=("$n x$c"); }
	done
	assert_eq "${miss[*]}" "" "round $r: each of the $((PRE + SUBS)) messages delivered"
	assert_eq "${dup[*]}" "" "round $r: none delivered twice"
	assert_eq "$RB_STORED" "$want" "round $r: the smarthost stored $want in all, no more"
	before=$RB_STORED

	rb_queue "round $r: after" "$T/up.conf"
	assert_eq "$RB_QUEUED/$RB_FAILED/$RB_TMP" 0/0/0 \
	    "round $r: queue/, failed/ and tmp/ empty afterwards"
	mc=$(maxconc up "$evline")
	if [ "$mc" -ge 3 ]; then
		ok "round $r: the runs overlapped ($mc connections open at once)"
	else
		fail "round $r: the runs overlapped" "at most $mc connections at once"
	fi
	f1=$(grep -c 'status=sent' "$T/r$r.flush1.err")
	f2=$(grep -c 'status=sent' "$T/r$r.flush2.err")
	note "round $r: flush 1 sent $f1, flush 2 sent $f2 of the $PRE queued"
	assert_eq "$((f1 + f2))" "$PRE" \
	    "round $r: the two flushes together sent each queued message once"
done

t_done
