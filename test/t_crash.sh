#!/bin/bash
# Crash safety of the queue (issue 3): relay is killed with SIGKILL at
# chosen and at random moments, well over 50 times, while it submits
# messages and while it flushes the queue; then a last "relay -qf" runs.
#
# What must hold:
# - after every kill, the queue is sound: each entry in queue/ has both
#   files, its envelope parses (relay -bp exits 0 and lists it) and its
#   message is whole (test/qcheck.py: size, bytes);
# - every message whose submission exited 0 is delivered in the end, at
#   least once; a message whose submission was killed (the caller saw a
#   failure) may be delivered or not; whatever reaches the smarthost is a
#   whole message, byte for byte, never part of one;
# - at the end queue/, failed/ and tmp/ are empty (tmp/ leftovers of the
#   crashes are removed by a run once they are an hour old: their
#   modification times are set back for that).
#
# Duplicates are counted and printed, not forbidden: there is exactly one
# window in which one can happen.  relay is killed after the smarthost
# accepted the final dot (it has the message) but before the entry was
# removed (or its recipients marked sent): the entry is still in queue/
# with its recipients pending, so the next run sends it again.  Nothing
# can close that window short of the smarthost deduplicating by
# Message-ID (RFC 1047); an entry killed at any other point either never
# reached the smarthost or is already gone from queue/.
#
# The kills: strace's fault injection (-e inject=SYSCALL:signal=KILL:
# when=N) kills relay as it enters its Nth call of one system call, for
# each call of mkdir, rename, fsync, write, unlink, flock, sendto, poll
# and openat (sampled where there are many) that a submission or a flush
# makes, with the smarthost up and down; then "timeout -s KILL" after a
# random delay (seed printed; CRASH_SEED=N repeats a run) against a
# smarthost that stalls before answering DATA and the final dot.
. "$(dirname "$0")/lib.sh"
t_setup
. "$TESTDIR/robust.sh"

SEED=${CRASH_SEED:-$$}
RANDOM=$SEED
echo "# seed $SEED (CRASH_SEED=$SEED bash $0 to repeat the random part)"

rb_down down
start_smarthost up --mode smtps
start_smarthost slow --mode smtps --fault data:stall --fault dot:stall \
    --stall-seconds 0.15
for s in up down slow; do
	write_conf_for "$s" "$T/$s.conf" queue "$T/queue" \
	    from sender@example.org
done

: >"$T/must"			# names whose submission exited 0
: >"$T/maybe"			# names whose submission was killed
: >"$T/precommit"		# ... killed before its entry was committed
: >"$T/postcommit"		# ... killed after
: >"$T/inwindow"		# ... killed where a duplicate may come of it
: >"$T/outwindow"		# ... killed elsewhere
KILLS=0				# runs that really died of SIGKILL
BROKEN=()			# unsound queue after a kill
ODD=()				# exits other than 0 or a kill

# msg [fixed]: the next message, of 2 to 60 KB (or, "fixed", of 20 KB
# like every other "fixed" one, so that the submissions of a sweep make
# the same system calls as its probe); sets NAME.  Made 100 at a time.
declare -A NEXT=([m]=0 [f]=0) MADE=([m]=0 [f]=0)
msg() {
	local p=m lo=2000 hi=60000
	[ "${1-}" = fixed ] && p=f lo=20000 hi=20000
	NEXT[$p]=$((NEXT[$p] + 1))
	NAME=$p${NEXT[$p]}
	if [ "${NEXT[$p]}" -gt "${MADE[$p]}" ]; then
		rb_gen "$p" "${NEXT[$p]}" 100 "$lo" "$hi"
		MADE[$p]=$((MADE[$p] + 100))
	fi
}

# record STATUS WHAT: file NAME under must or maybe by its submission's
# exit status.
record() {
	case $1 in
	0)	echo "$NAME" >>"$T/must" ;;
	137)	echo "$NAME" >>"$T/maybe" ;;
	*)	echo "$NAME" >>"$T/maybe"
		ODD+=("$2: exit $1") ;;
	esac
}

# sound WHAT: the queue is sound now (else recorded in BROKEN).
sound() {
	RB_QUIET=1 rb_queue "$1" "$T/up.conf" || BROKEN+=("$1: $RB_WHY")
}

# traced OUT SC N ARGS...: relay ARGS under strace.  SC empty: trace the
# system calls in $SET to OUT, no kill.  Else kill relay as it enters its
# Nth call of SC.  Sets ST (137 when killed).
SET=mkdir,mkdirat,rename,renameat,renameat2,fsync,fdatasync,write,unlink,unlinkat,rmdir,flock,openat,sendto,poll
traced() {
	local out=$1 sc=$2 n=$3 e
	shift 3
	if [ -z "$sc" ]; then
		e=(-o "$out" -e "trace=$SET")
	else
		e=(-o /dev/null -e "trace=$sc" -e "inject=$sc:signal=KILL:when=$n")
	fi
	ST=0
	# (The braces keep bash's "Killed" notice out of the output.)
	{ ASAN_OPTIONS=abort_on_error=0:detect_leaks=0 timeout -k 5 60 \
	    strace -f -qq "${e[@]}" "$RELAY" "$@" >>"$T/runs.out" \
	    2>>"$T/runs.err"; } 2>/dev/null || ST=$?
	[ "$ST" = 137 ] && KILLS=$((KILLS + 1))
	return 0
}

# calls TRACE: "SYSCALL COUNT" for each system call in an strace log.
calls() {
	sed -E 's/^[0-9]+ +//; s/\(.*//' "$1" | grep -E '^[a-z0-9_]+$' |
	    sort | uniq -c | awk '{ print $2, $1 }'
}

# nth TRACE SC N: the line of the Nth call of SC among all the calls of an
# strace log (0 if there is none).
nth() {
	sed -E 's/^[0-9]+ +//; s/\(.*//' "$1" | grep -E '^[a-z0-9_]+$' |
	    awk -v sc="$2" -v n="$3" '$1 == sc && ++k == n { print NR; f = 1; exit }
	    END { if (!f) print 0 }'
}

# commit TRACE: the line of the first rename among all the calls of an
# strace log of a submission: the commit of its entry (tmp/ID to queue/ID).
commit() {
	sed -E 's/^[0-9]+ +//; s/\(.*//' "$1" | grep -E '^[a-z0-9_]+$' |
	    awk '/^rename/ { print NR; f = 1; exit } END { if (!f) print 0 }'
}

# window TRACE: "FROM TO", the lines (among all the calls of an strace log
# of a submission) that bound the one window where a kill may leave a
# duplicate: after the last sendto before the entry is taken out of
# queue/ (the second rename), up to and including that rename.  "0 0"
# when nothing was sent.
window() {
	sed -E 's/^[0-9]+ +//; s/\(.*//' "$1" | grep -E '^[a-z0-9_]+$' |
	    awk '/^rename/ && ++r == 2 { to = NR; exit }
	    $1 == "sendto" { from = NR }
	    END { if (to && from) print from, to; else print 0, 0 }'
}

# points COUNT K: the calls to kill at, up to K of 1..COUNT: all of them,
# or the first two, the last three and some evenly spread between.
points() {
	local c=$1 k=$2 i
	if [ "$c" -le "$k" ]; then
		seq 1 "$c"
		return
	fi
	{
		printf '%s\n' 1 2 $((c - 2)) $((c - 1)) "$c"
		for ((i = 1; i <= k - 5; i++)); do
			echo $((2 + i * (c - 4) / (k - 4)))
		done
	} | sort -nu
}

# budget SC: how many calls of SC to kill at, at most.
budget() {
	case $1 in
	openat)		echo 5 ;;
	sendto|poll)	echo 7 ;;
	unlinkat|write)	echo 8 ;;
	*)		echo 12 ;;
	esac
}

# topup N: submit with the smarthost down until N entries are pending.
topup() {
	local want=$1
	RB_QUIET=1 rb_queue topup "$T/up.conf"
	local have=${#RB_PENDING[@]}
	while [ "$have" -lt "$want" ]; do
		msg
		rb_submit "$T/down.conf" "$NAME"
		record "$RB_STATUS" "queued with the smarthost down"
		have=$((have + 1))
	done
}

# ---- kills at system calls (strace) -----------------------------------

if ! command -v strace >/dev/null; then
	echo "ok # skip strace not installed: no kills at chosen system calls"
elif ! strace -qq -o /dev/null true 2>"$T/strace.err"; then
	echo "ok # skip strace cannot trace here: $(head -1 "$T/strace.err")"
else
	# sub_sweep WHAT CONF: probe one submission, then kill one at each
	# chosen call.
	# A submission killed as it enters the rename that commits its entry,
	# or before, leaves nothing in queue/ and has sent nothing (it sends
	# only from the queue): its message must never arrive, or the
	# caller's retry would make it twice.  Killed after that rename, its
	# entry is durable: the message must arrive in the end.  These go to
	# $T/precommit and $T/postcommit.
	sub_sweep() {
		local what=$1 conf=$2 sc c n at cp wfrom wto before=$KILLS
		local tr=$T/probe.${what//[^a-z]/_}.trace
		msg fixed
		traced "$tr" "" 0 -C "$conf" to@example.org <"$MSGS/$NAME.txt"
		record "$ST" "$what: probe"
		cp=$(commit "$tr")
		[ "$cp" -gt 0 ] || ODD+=("$what: no rename in the probe's trace")
		read -r wfrom wto < <(window "$tr")
		while read -r sc c; do
			for n in $(points "$c" "$(budget "$sc")"); do
				msg fixed
				traced - "$sc" "$n" -C "$conf" to@example.org \
				    <"$MSGS/$NAME.txt"
				record "$ST" "$what: killed at $sc #$n"
				sound "$what: killed at $sc #$n"
				[ "$ST" = 137 ] || continue
				at=$(nth "$tr" "$sc" "$n")
				# How many polls a session takes depends on
				# timing: a poll is not placed for sure.
				if [ "$at" -gt "$wfrom" ] && [ "$at" -le "$wto" ]; then
					echo "$NAME" >>"$T/inwindow"
				elif [ "$sc" != poll ]; then
					echo "$NAME $what: killed at $sc #$n" >>"$T/outwindow"
				fi
				if [ "$at" -le "$cp" ]; then
					echo "$NAME $what: killed at $sc #$n" >>"$T/precommit"
				else
					echo "$NAME $what: killed at $sc #$n" >>"$T/postcommit"
				fi
			done
		done < <(calls "$tr")
		note "$what: $((KILLS - before)) kills at: $(calls "$tr" |
		    tr '\n' ' ')"
	}

	# flush_sweep WHAT CONF: the same for "relay -qf" over 5 pending
	# entries (topped up before each run).
	flush_sweep() {
		local what=$1 conf=$2 sc c n before=$KILLS
		local tr=$T/probe.${what//[^a-z]/_}.trace
		# Start from 5 pending entries, as each killed run will.
		run_relay -C "$T/up.conf" -qf
		[ "$RELAY_STATUS" = 0 ] || ODD+=("$what: drain: exit $RELAY_STATUS")
		topup 5
		traced "$tr" "" 0 -C "$conf" -qf
		[ "$ST" = 0 ] || ODD+=("$what: probe: exit $ST")
		sound "$what: probe"
		while read -r sc c; do
			for n in $(points "$c" "$(budget "$sc")"); do
				topup 5
				traced - "$sc" "$n" -C "$conf" -qf
				[ "$ST" = 0 ] || [ "$ST" = 137 ] ||
				    ODD+=("$what: killed at $sc #$n: exit $ST")
				sound "$what: killed at $sc #$n"
			done
		done < <(calls "$tr")
		note "$what: $((KILLS - before)) kills at: $(calls "$tr" |
		    tr '\n' ' ')"
	}

	sub_sweep "submission, smarthost up" "$T/up.conf"
	sub_sweep "submission, smarthost down" "$T/down.conf"
	flush_sweep "flush, smarthost up" "$T/up.conf"
	flush_sweep "flush, smarthost down" "$T/down.conf"
	if [ "$KILLS" -ge 50 ]; then
		ok "strace: $KILLS runs killed at chosen system calls"
	else
		fail "strace: at least 50 runs killed at chosen system calls" \
		    "only $KILLS died of SIGKILL; strace -e inject not working?" \
		    "$(tail -n 3 "$T/runs.err")"
	fi
fi

# ---- kills at random moments (timeout -s KILL) ------------------------

# A random delay in seconds, from MIN to MAX milliseconds.
delay() { printf '0.%03d' $(($1 + RANDOM % ($2 - $1 + 1))); }

before=$KILLS
for ((i = 1; i <= 20; i++)); do
	msg
	d=$(delay 10 550)
	ST=0
	{ timeout -s KILL "$d" "$RELAY" -C "$T/slow.conf" to@example.org \
	    <"$MSGS/$NAME.txt" >>"$T/runs.out" 2>>"$T/runs.err"; } \
	    2>/dev/null || ST=$?
	[ "$ST" = 137 ] && KILLS=$((KILLS + 1))
	record "$ST" "submission killed after ${d}s"
	sound "submission killed after ${d}s"
done
for ((i = 1; i <= 12; i++)); do
	topup 4
	d=$(delay 50 999)
	ST=0
	{ timeout -s KILL "$d" "$RELAY" -C "$T/slow.conf" -qf \
	    >>"$T/runs.out" 2>>"$T/runs.err"; } 2>/dev/null || ST=$?
	[ "$ST" = 137 ] && KILLS=$((KILLS + 1))
	[ "$ST" = 0 ] || [ "$ST" = 137 ] ||
	    ODD+=("flush killed after ${d}s: exit $ST")
	sound "flush killed after ${d}s"
done
note "timeout -s KILL: $((KILLS - before)) of 32 runs killed at random moments"
if [ $((KILLS - before)) -ge 16 ]; then
	ok "timeout -s KILL: most runs really killed mid-way"
else
	fail "timeout -s KILL: most runs really killed mid-way" \
	    "only $((KILLS - before)) of 32 (is the slow smarthost slow?)"
fi

# ---- after all the kills ----------------------------------------------

assert_eq "${#BROKEN[@]}" 0 "after each of $KILLS kills, the queue is sound"
[ ${#BROKEN[@]} -eq 0 ] || note "${BROKEN[@]:0:4}"
assert_eq "${#ODD[@]}" 0 "every run exits 0 unless killed"
[ ${#ODD[@]} -eq 0 ] || note "${ODD[@]:0:6}"
rb_queue "after the kills" "$T/up.conf"
assert_eq "$RB_FAILED" 0 "after the kills: nothing in failed/"
note "after the kills: $RB_QUEUED entries queued, $RB_TMP leftovers in tmp/"

# Crash leftovers in tmp/ go once they are an hour old.
if [ "$RB_TMP" -gt 0 ]; then
	find "$T/queue/tmp" -mindepth 1 -exec touch -h -d '-2 hours' {} +
fi
run_relay -C "$T/up.conf" -qf
assert_exit 0 "final relay -qf exits 0"
rb_queue "after the final flush" "$T/up.conf"
assert_eq "$RB_QUEUED/$RB_FAILED" 0/0 "after the final flush: queue/ and failed/ empty"
assert_eq "$RB_TMP" 0 "after the final flush: crash leftovers in tmp/ removed"
[ "$RB_TMP" = 0 ] || note "$(ls -la "$T/queue/tmp" | head)"
rb_san "$T/runs.err" "runs that were not killed"

rb_tally up
declare -A ALL=()
for n in "${!RB_COUNT[@]}"; do ALL[$n]=${RB_COUNT[$n]}; done
bad=$RB_BAD badmsg=$RB_BADMSG
rb_tally slow
for n in "${!RB_COUNT[@]}"; do ALL[$n]=$((${ALL[$n]:-0} + RB_COUNT[$n])); done
bad=$((bad + RB_BAD)) badmsg+=$RB_BADMSG
assert_eq "$bad" 0 "every message the smarthosts stored is whole, byte for byte" \
    "$badmsg"
missing=()
while read -r n; do
	[ "${ALL[$n]:-0}" -ge 1 ] || missing+=("$n")
done <"$T/must"
nmust=$(grep -c . "$T/must")
assert_eq "${missing[*]}" "" "all $nmust messages whose submission exited 0 delivered"
got=0
while read -r n; do
	[ "${ALL[$n]:-0}" -ge 1 ] && got=$((got + 1))
done <"$T/maybe"
dups=0 dupnames=()
for n in "${!ALL[@]}"; do
	if [ "${ALL[$n]}" -gt 1 ]; then
		dups=$((dups + ALL[$n] - 1))
		dupnames+=("$n x${ALL[$n]}")
	fi
done
unknown=0
for n in "${!ALL[@]}"; do
	grep -qx "$n" "$T/must" "$T/maybe" || unknown=$((unknown + 1))
done
assert_eq "$unknown" 0 "nothing delivered that was not submitted"
if [ -s "$T/precommit" ] || [ -s "$T/postcommit" ]; then
	pre=() post=()
	while read -r n rest; do
		[ "${ALL[$n]:-0}" = 0 ] || pre+=("$n (${rest})")
	done <"$T/precommit"
	while read -r n rest; do
		[ "${ALL[$n]:-0}" -ge 1 ] || post+=("$n (${rest})")
	done <"$T/postcommit"
	assert_eq "${#pre[@]}" 0 "$(grep -c . "$T/precommit") submissions killed before their entry's commit: none delivered"
	[ ${#pre[@]} -eq 0 ] || note "${pre[@]:0:5}"
	assert_eq "${#post[@]}" 0 "$(grep -c . "$T/postcommit") submissions killed after their entry's commit: all delivered"
	[ ${#post[@]} -eq 0 ] || note "${post[@]:0:5}"
fi
# A submission killed at a chosen call outside the window must not be
# delivered twice.
out=()
while read -r n rest; do
	[ "${ALL[$n]:-0}" -le 1 ] || out+=("$n x${ALL[$n]} ($rest)")
done <"$T/outwindow"
assert_eq "${#out[@]}" 0 "$(grep -c . "$T/outwindow") submissions killed outside the duplicate window: none delivered twice"
[ ${#out[@]} -eq 0 ] || note "${out[@]:0:5}"
echo "# $KILLS kills; $nmust messages had to be delivered, all were;" \
    "$got of $(grep -c . "$T/maybe") killed submissions were delivered anyway"
echo "# duplicates: $dups ${dupnames[*]:0:10}"
t_done
