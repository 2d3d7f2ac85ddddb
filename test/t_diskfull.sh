#!/bin/bash
# A full disk under the queue (issue 3).  The queue directory is a small
# tmpfs.  A message bigger than the space left must be refused with exit
# 75 (EX_TEMPFAIL: the caller keeps it and tries again) and one clear line
# ("cannot queue the message: DIR: No space left on device"), leaving
# nothing behind: no entry in queue/, nothing in tmp/ (QUEUE-SPEC: "nothing
# visible in queue/", queue_add leaves nothing behind), every block given
# back.  The queue must keep working: what was queued before is flushed
# afterwards.  Then the same at every amount of free space around a
# message's size, and with inodes instead of blocks exhausted: whatever
# the point where the space runs out, either exit 0 and a whole entry, or
# exit 75 and no trace of the message -- never exit 75 with the message
# queued or delivered anyway (the caller's retry would send it twice).
# Needs root (mount); otherwise it says "ok # skip".
. "$(dirname "$0")/lib.sh"
# A run killed before its exit trap may have left its tmpfs mounted:
# t_setup's "rm -rf" cannot remove a mount point.
for m in q1 fs2 fs3; do
	m=$TESTDIR/tmp/$T_NAME/$m
	! mountpoint -q "$m" 2>/dev/null || umount "$m"
done
t_setup
. "$TESTDIR/robust.sh"

MNTS=()
umount_all() {
	local m
	for m in "${MNTS[@]}"; do
		mountpoint -q "$m" && umount "$m"
	done
}
trap '_rc=$?; umount_all; (exit $_rc); _t_exit' EXIT

# mount_tmpfs DIR OPTIONS
mount_tmpfs() {
	mkdir -p "$1"
	mount -t tmpfs -o "$2" tmpfs "$1" 2>"$T/mount.err" || return 1
	MNTS+=("$1")
}

if ! mount_tmpfs "$T/q1" size=256k,mode=0700; then
	echo "ok # skip cannot mount a tmpfs here: $(head -1 "$T/mount.err")"
	exit 0
fi

# avail DIR: free blocks (4 KiB pages on tmpfs) for an unprivileged user.
avail() { stat -f -c %a "$1"; }
# ifree DIR: free inodes.
ifree() { stat -f -c %d "$1"; }

rb_down down
start_smarthost up --mode smtps

# one_error DIR: the last run printed one line besides log records, and it
# is the one relay(8) documents: "relay: cannot queue the message: DIR:
# REASON" (DIR the queue directory, or a path in it).
one_error() {
	local lines
	lines=$(grep -avE '^relay: (id=[0-9a-f]+ )?from=<' "$RELAY_ERR")
	if [ "$(grep -c . <<<"$lines")" = 1 ] &&
	    [[ $lines == "relay: cannot queue the message: $1"*": No space left on device" ]]; then
		return 0
	fi
	ONE_ERROR_GOT=$lines
	return 1
}

# assert_one_error WHAT DIR
assert_one_error() {
	local name="$1: one line: relay: cannot queue the message: DIR: No space left on device"
	if one_error "$2"; then
		ok "$name"
	else
		fail "$name" "$ONE_ERROR_GOT"
	fi
}

# ---- a message bigger than the whole queue filesystem -----------------

Q1=$T/q1
write_conf_for down "$T/q1down.conf" queue "$Q1" from sender@example.org
write_conf_for up "$T/q1up.conf" queue "$Q1" from sender@example.org
rb_gen s 1 3 300 2000
for i in 1 2 3; do
	run_relay -C "$T/q1down.conf" to@example.org <"$MSGS/s$i.txt"
	assert_exit 0 "small message $i queued on the tmpfs (smarthost down)"
done
rb_queue "three small messages queued" "$T/q1down.conf"
assert_eq "$RB_QUEUED" 3 "three entries in the tmpfs queue"
ids_before=$(ls "$Q1/queue")
free_before=$(avail "$Q1")
note "tmpfs: $free_before blocks free with three entries queued"

rb_gen big 1 2 400000 400000
run_relay -C "$T/q1down.conf" to@example.org <"$MSGS/big1.txt"
assert_exit 75 "400 KB message, 256 KB queue: exit 75"
assert_one_error "400 KB message" "$Q1"
rb_queue "400 KB message refused" "$T/q1down.conf"
assert_eq "$(ls "$Q1/queue")" "$ids_before" "400 KB message: queue/ holds the same three entries"
assert_eq "$RB_TMP" 0 "400 KB message: nothing left in tmp/"
assert_eq "$(avail "$Q1")" "$free_before" "400 KB message: every block given back"

# The same with the smarthost up: still 75, and then not sent either.
run_relay -C "$T/q1up.conf" to@example.org <"$MSGS/big2.txt"
assert_exit 75 "400 KB message, smarthost up: exit 75 (cannot queue)"
assert_one_error "400 KB message, smarthost up" "$Q1"
assert_eq "$(msg_count up)" 0 "400 KB message, smarthost up: not sent (75 means not sent)"
assert_eq "$(ls "$Q1/queue")" "$ids_before" "400 KB message, smarthost up: queue/ unchanged"
assert_eq "$(ls -A "$Q1/tmp" | wc -l)" 0 "400 KB message, smarthost up: tmp/ empty"

# The queue still works: relay -q delivers what was queued before.
rb_no_next "$Q1"
run_relay -C "$T/q1up.conf" -q
assert_exit 0 "after the full disk: relay -q exits 0"
wait_msgs up 3 10
rb_tally up
assert_eq "$RB_STORED/$RB_DISTINCT/$RB_BAD" 3/3/0 \
    "after the full disk: the three small messages delivered, whole, once"
assert_eq "${RB_COUNT[s1]:-0}${RB_COUNT[s2]:-0}${RB_COUNT[s3]:-0}" 111 \
    "after the full disk: s1, s2, s3 each delivered"
rb_queue "after the flush" "$T/q1up.conf"
assert_eq "$RB_QUEUED/$RB_TMP" 0/0 "after the flush: queue/ and tmp/ empty"
# And a message that fits is queued and delivered on the emptied tmpfs.
rb_gen s 4 1 300 2000
run_relay -C "$T/q1up.conf" to@example.org <"$MSGS/s4.txt"
assert_exit 0 "after the full disk: a new message is delivered at once"
wait_msgs up 4 10 || fail "after the full disk: the new message stored"

# ---- every amount of free space around a message's size ---------------

# sweep WHAT CONF QDIR FILL PREFIX FROM TO UNIT: for each k in FROM..TO,
# fill the filesystem (FILL is a function: fill K leaves K units free) and
# submit PREFIXk with the smarthost down.  Then: exit 0 and a sound entry
# for it, or exit 75, the one error line, and no trace of it.  Sets
# SWEEP_OK (names queued) and SWEEP_REFUSED (names refused).
sweep() {
	local what=$1 conf=$2 qdir=$3 fill=$4 p=$5 from=$6 to=$7 unit=$8 k
	local n0=0 n75=0 other=() fmt=() broken=() leftover=()
	SWEEP_OK=() SWEEP_REFUSED=()
	for ((k = from; k <= to; k++)); do
		"$fill" "$k"
		run_relay -C "$conf" to@example.org <"$MSGS/$p$k.txt"
		RB_QUIET=1 rb_queue "$what" "$conf" ||
		    broken+=("$k $unit free: $RB_WHY")
		[ "$RB_TMP" = 0 ] || leftover+=("$k $unit free: $(ls "$qdir/tmp")")
		local queued=no n
		for n in "${RB_PENDING[@]}"; do
			[ "$n" = "$p$k" ] && queued=yes
		done
		case $RELAY_STATUS in
		0)	n0=$((n0 + 1))
			SWEEP_OK+=("$p$k")
			[ $queued = yes ] ||
			    other+=("$k $unit free: exit 0 but $p$k is not in queue/") ;;
		75)	n75=$((n75 + 1))
			SWEEP_REFUSED+=("$p$k")
			[ $queued = no ] ||
			    other+=("$k $unit free: exit 75 but $p$k is queued")
			one_error "$qdir" ||
			    fmt+=("$k $unit free: $ONE_ERROR_GOT") ;;
		*)	other+=("$k $unit free: exit $RELAY_STATUS: $(head -c 300 "$RELAY_ERR")") ;;
		esac
	done
	note "$what: $n0 queued, $n75 refused (exit 75), $((to - from + 1)) tries"
	assert_eq "${#other[@]}" 0 "$what: each try exit 0 with the message queued, or 75 with nothing queued"
	[ ${#other[@]} -eq 0 ] || note "${other[@]:0:6}"
	assert_eq "${#fmt[@]}" 0 "$what: each exit 75 with one line: relay: cannot queue the message: DIR: No space left on device"
	[ ${#fmt[@]} -eq 0 ] || note "${fmt[@]:0:3}"
	assert_eq "${#broken[@]}" 0 "$what: the queue stays sound after each try"
	[ ${#broken[@]} -eq 0 ] || note "${broken[@]:0:3}"
	assert_eq "${#leftover[@]}" 0 "$what: nothing left in tmp/ after any try"
	[ ${#leftover[@]} -eq 0 ] || note "${leftover[@]:0:3}"
	if [ "$n0" -gt 0 ] && [ "$n75" -gt 0 ]; then
		ok "$what: the sweep crossed the boundary (both outcomes seen)"
	else
		fail "$what: the sweep crossed the boundary (both outcomes seen)" \
		    "$n0 queued, $n75 refused"
	fi
}

# flushed WHAT UPCONF QDIR: after freeing the space, relay -q delivers
# every message queued in the sweep once, and none of the refused ones.
flushed() {
	local what=$1 conf=$2 qdir=$3 n miss=() extra=() dup=()
	rb_no_next "$qdir"
	rb_tally up
	run_relay -C "$conf" -q
	assert_exit 0 "$what: relay -q exits 0 once space is back"
	wait_msgs up $((RB_STORED + ${#SWEEP_OK[@]})) 10
	rb_tally up
	for n in "${SWEEP_OK[@]}"; do
		case ${RB_COUNT[$n]:-0} in
		1) ;;
		0) miss+=("$n") ;;
		*) dup+=("$n") ;;
		esac
	done
	for n in "${SWEEP_REFUSED[@]}"; do
		[ "${RB_COUNT[$n]:-0}" = 0 ] || extra+=("$n")
	done
	assert_eq "${miss[*]}" "" "$what: every message queued in the sweep delivered"
	assert_eq "${dup[*]}" "" "$what: none of them twice"
	assert_eq "${extra[*]}" "" "$what: no refused (exit 75) message delivered"
	assert_eq "$RB_BAD" 0 "$what: all whole" "$RB_BADMSG"
	rb_queue "$what: flushed" "$conf"
	assert_eq "$RB_QUEUED/$RB_TMP" 0/0 "$what: queue/ and tmp/ empty afterwards"
}

if mount_tmpfs "$T/fs2" size=2m,mode=0700; then
	Q2=$T/fs2/queue
	write_conf_for down "$T/q2down.conf" queue "$Q2" from sender@example.org
	write_conf_for up "$T/q2up.conf" queue "$Q2" from sender@example.org
	# A 30 KB message: about 8 pages for the message file, one for the
	# envelope, one for envelope.new after the failed attempt.
	rb_gen w 0 16 30000 30000
	fillblocks() {
		local a
		rm -f "$T/fs2/filler"
		a=$(avail "$T/fs2")
		[ "$a" -gt "$1" ] || return 0
		fallocate -l $(((a - $1) * 4096)) "$T/fs2/filler" 2>/dev/null ||
		    head -c $(((a - $1) * 4096)) /dev/zero >"$T/fs2/filler"
	}
	# The queue directories exist before the sweep (first use creates them).
	run_relay -C "$T/q2down.conf" -bp
	sweep "blocks" "$T/q2down.conf" "$Q2" fillblocks w 0 15 blocks
	rm -f "$T/fs2/filler"
	flushed "blocks" "$T/q2up.conf" "$Q2"
else
	fail "second tmpfs mounted" "$(cat "$T/mount.err")"
fi

# ---- inodes exhausted ---------------------------------------------------

if mount_tmpfs "$T/fs3" size=2m,nr_inodes=48,mode=0700; then
	Q3=$T/fs3/queue
	write_conf_for down "$T/q3down.conf" queue "$Q3" from sender@example.org
	write_conf_for up "$T/q3up.conf" queue "$Q3" from sender@example.org
	rb_gen i 0 7 300 1000
	rb_gen i 98 2 300 1000
	mkdir -p "$T/fs3/fill"
	fillinodes() {
		local j=0
		rm -f "$T/fs3/fill/"*
		while : 2>/dev/null >"$T/fs3/fill/$j"; do
			j=$((j + 1))
			[ "$j" -lt 1000 ] || break
		done
		for ((j = j - 1; j >= 0 && $(ifree "$T/fs3") < $1; j--)); do
			rm -f "$T/fs3/fill/$j"
		done
	}
	# First use on a filesystem without a free inode: the queue
	# directories cannot be made either.
	fillinodes 0
	run_relay -C "$T/q3down.conf" to@example.org <"$MSGS/i98.txt"
	assert_exit 75 "no inode left, first use of the queue: exit 75"
	assert_one_error "no inode left, first use of the queue" "$Q3"
	assert_eq "$(ls "$Q3/queue" 2>/dev/null | wc -l)" 0 \
	    "no inode left, first use of the queue: nothing queued"
	# Make the queue directories (and see it work) before the sweep.
	rm -f "$T/fs3/fill/"*
	run_relay -C "$T/q3up.conf" to@example.org <"$MSGS/i99.txt"
	assert_exit 0 "inodes back: a message is delivered"
	sweep "inodes" "$T/q3down.conf" "$Q3" fillinodes i 0 6 inodes
	rm -f "$T/fs3/fill/"*
	flushed "inodes" "$T/q3up.conf" "$Q3"
else
	fail "third tmpfs (nr_inodes) mounted" "$(cat "$T/mount.err")"
fi

umount_all
still=()
for m in "${MNTS[@]}"; do
	mountpoint -q "$m" && still+=("$m")
done
assert_eq "${still[*]}" "" "every tmpfs unmounted"
MNTS=()
t_done
