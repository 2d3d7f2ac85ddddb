#!/bin/bash
# Spool intake (issue 3, "spool DIR"): files dropped into the spool
# directory (written as a dot-file, then renamed) are read as with -t -i
# and delivered by "relay -q" and by any submission run.  A bad entry (no
# recipient, a bad address, not a regular file, a symbolic link, unreadable)
# goes to failed/ with a reason and never blocks the others; dot-files are
# left alone; a stale ".relay-ID" claim is taken in again, or dropped if
# its entry exists already (QUEUE-SPEC.md).
. "$(dirname "$0")/lib.sh"
t_setup

SP=$T/spool
mkdir -p "$SP"
start_smarthost s --mode smtps --defer-rcpt later
write_conf_for s "$T/s.conf" spool "$SP" from spool-sender@example.org

# drop NAME: stdin into the spool as NAME, the way a writer should.
drop() {
	cat >"$SP/.$1.writing" && mv "$SP/.$1.writing" "$SP/$1"
}

# failed_for NAME: the id of the failed/ entry whose reason is about spool
# file NAME ("spool file NAME: WHY"); empty if none.
failed_for() {
	local id
	for id in $(q_ids failed); do
		if q_env "$id" reason | grep -qF "spool file $1: "; then
			printf '%s\n' "$id"
			return
		fi
	done
}

# bad_entry NAME WHAT: spool file NAME went to failed/ with a reason, and
# is gone from the spool.  Sets FID.
bad_entry() {
	FID=$(failed_for "$1")
	if [ -n "$FID" ]; then
		ok "$2: in failed/ with reason \"spool file $1: ...\""
		note "reason: $(q_env "$FID" reason)"
	else
		fail "$2: in failed/ with reason \"spool file $1: ...\"" \
		    "failed/ reasons: $(for i in $(q_ids failed); do q_env "$i" reason; done)" \
		    "stderr: $(cat "$RELAY_ERR")"
	fi
	check_not "$2: removed from the spool" test -e "$SP/$1" -o -L "$SP/$1"
}

# spool_left: what is left in the spool directory, names on one line.
spool_left() { ls -A "$SP" | LC_ALL=C sort | tr '\n' ' '; }

# ---- relay -q: good files delivered, bad ones to failed/ ----------------

printf '%s\n' 'To: a1@example.net' 'Cc: Carl <c1@example.net>' \
    'Bcc: hidden1@example.net' 'Subject: spool one' '' 'line one' '.' \
    'after a lone dot (-i)' | drop z-good
printf 'Subject: nobody to send to\r\nX-Keep: me\r\n\r\nno recipients\r\n' |
    drop a-norcpt
cp "$SP/a-norcpt" "$T/a-norcpt.bytes"
printf 'To: <broken@example.net\nSubject: bad address\n\nbad\n' | drop b-badaddr
mkfifo "$SP/c-fifo"
printf 'To: target@example.net\nSubject: the target\n\nSECRET-TARGET\n' \
    >"$T/secret.txt"
cp "$T/secret.txt" "$T/secret.orig"
ln -s "$T/secret.txt" "$SP/d-link"
printf 'To: dot@example.net\n\nbeing written\n' >"$SP/.being-written"

run_relay -C "$T/s.conf" -q
assert_exit 0 "relay -q with a spool exits 0"
if wait_msgs s 1 5; then
	M=$SMARTHOST_s_OUT/1.eml
	assert_eq "$(msg_json s 1 rcpt_tos)" \
	    "a1@example.net c1@example.net hidden1@example.net" \
	    "spool file: recipients from To, Cc and Bcc (-t)"
	assert_eq "$(msg_json s 1 mail_from)" spool-sender@example.org \
	    "spool file: envelope sender from the configuration"
	assert_file_contains "$M" "after a lone dot (-i)" \
	    "spool file: a lone dot does not end it (-i)"
	assert_file_lacks "$M" "hidden1@" "spool file: Bcc removed"
	assert_file_contains "$M" "Subject: spool one" "spool file: delivered"
else
	fail "spool file: delivered by relay -q" "$(cat "$RELAY_ERR")"
fi
assert_eq "$(msg_count s)" 1 "relay -q: only the good spool file was sent"
assert_log "spool file" " id=[0-9a-f]{14}( |$)" \
    " to=<a1@example\.net>,<c1@example\.net>,<hidden1@example\.net> " \
    " status=sent "
assert_eq "$(spool_left)" ".being-written " \
    "spool: everything taken, the dot-file left alone (no .relay-ID left)"
assert_eq "$(q_count queue)" 0 "spool: nothing left in queue/"

bad_entry a-norcpt "no recipient"
# By its bytes, so that these checks do not hang on the reason's wording.
BID=
for i in $(q_ids failed); do
	cmp -s "$(q_path "$i" message)" "$T/a-norcpt.bytes" && BID=$i
done
check "no recipient: a failed/ entry keeps the file's bytes" test -n "$BID"
assert_eq "$(q_env "$BID" size)" "$(stat -c %s "$T/a-norcpt.bytes")" \
    "no recipient: failed/ envelope size is the message's (mailq shows it)"
assert_eq "$(q_env "$BID" origin)" "spool a-norcpt" \
    "no recipient: failed/ envelope \"origin spool a-norcpt\""
bad_entry b-badaddr "bad address in To:"
bad_entry c-fifo "a FIFO (not a regular file)"
bad_entry d-link "a symbolic link"
assert_same "$T/secret.txt" "$T/secret.orig" "symbolic link: its target untouched"
check_not "symbolic link: the target's text is not in the queue" \
    grep -rqF SECRET-TARGET "$(q_dir)"
check_not "symbolic link: the target's text was not sent" \
    grep -qF SECRET-TARGET "$SMARTHOST_s_OUT/1.eml"
assert_eq "$(q_count failed)" 4 "four bad entries, four failed/ entries"

# ---- a submission takes in the spool too -----------------------------------

printf 'To: a2@example.net\nSubject: spool two\n\nsecond spool file\n' | drop good2
printf 'Subject: submitted\n\nsubmitted body\n' |
    run_relay -C "$T/s.conf" -f alice@example.org sub@example.net
assert_exit 0 "submission with a spool: exit 0"
if wait_msgs s 3 5; then
	assert_eq "$(cat "$SMARTHOST_s_OUT/2.json" "$SMARTHOST_s_OUT/3.json" |
	    grep -cE '"(sub|a2)@example.net"')" 2 \
	    "submission: its own message and the spool file both delivered"
	assert_eq "$(msg_json s 2 rcpt_tos)" sub@example.net \
	    "submission: its own message goes first"
else
	fail "submission: its own message and the spool file both delivered" \
	    "$(msg_count s) messages; $(cat "$RELAY_ERR")"
fi
assert_eq "$(spool_left)" ".being-written " "submission: spool file taken"
assert_eq "$(q_count queue)" 0 "submission: nothing left in queue/"

# ---- stale claims (.relay-ID left by a crash) ------------------------------

# Its entry exists (queue/ID, deferred and not due): the claim is dropped.
printf 'Subject: later\n\nqueued body\n' |
    run_relay -C "$T/s.conf" -f alice@example.org later@example.net
assert_exit 0 "deferred entry for the duplicate claim: queued"
DID=$(q_ids)
# Its entry does not exist: taken in again as ID and delivered.
SID=$(printf '%08x%06x' "$(date +%s)" $((0xc1a1e0)))
printf 'To: stale@example.net\nSubject: stale claim\n\nSTALE-CLAIM-BODY\n' \
    >"$SP/.relay-$SID"
printf 'To: dup@example.net\nSubject: duplicate\n\nDUPLICATE-CLAIM\n' \
    >"$SP/.relay-$DID"
cp "$(q_path "$DID")" "$T/dup.envelope"
N0=$(msg_count s)
run_relay -C "$T/s.conf" -q
assert_exit 0 "stale claims: relay -q exits 0"
if wait_msgs s $((N0 + 1)) 5; then
	assert_file_contains "$SMARTHOST_s_OUT/$((N0 + 1)).eml" STALE-CLAIM-BODY \
	    "stale claim without an entry: taken in again and delivered"
else
	fail "stale claim without an entry: taken in again and delivered" \
	    "$(cat "$RELAY_ERR")"
fi
assert_log "stale claim without an entry: delivered under its id" \
    " id=$SID( |$)" " status=sent "
assert_eq "$(msg_count s)" $((N0 + 1)) "stale claims: one message, not the duplicate"
check_not "duplicate claim: never sent" grep -rqF DUPLICATE-CLAIM "$SMARTHOST_s_OUT"
check_not "duplicate claim: not in the queue" grep -rqF DUPLICATE-CLAIM "$(q_dir)"
assert_eq "$(spool_left)" ".being-written " "stale claims: both .relay-ID files removed"
assert_eq "$(q_ids)" "$DID" "duplicate claim: the existing entry is still queued"
assert_same "$(q_path "$DID")" "$T/dup.envelope" \
    "duplicate claim: the existing entry is untouched"

# ---- an unreadable spool file ---------------------------------------------
# Root reads anything, so as root this part runs relay as nobody (65534)
# with a queue and spool it owns, and the file owned by root, mode 0600.

U=$T/unreadable
mkdir -p "$U/spool"
printf 'To: u@example.net\nSubject: cannot read me\n\nUNREADABLE-BODY\n' \
    >"$U/spool/e-unreadable"
chmod 600 "$U/spool/e-unreadable"
printf 'To: u3@example.net\nSubject: readable\n\nREADABLE-BODY\n' \
    >"$U/spool/good3"
cp "$PKI/ca.crt" "$U/ca.crt"		# $PKI is root's alone
write_conf_for s "$U/relay.conf" queue "$U/queue" spool "$U/spool" \
    from spool-sender@example.org ca_file "$U/ca.crt"
prefix=
if [ "$(id -u)" = 0 ]; then
	chown -R 65534:65534 "$U"
	chown 0:0 "$U/spool/e-unreadable"
	prefix="setpriv --reuid=65534 --regid=65534 --clear-groups"
else
	chmod 000 "$U/spool/e-unreadable"
fi
N0=$(msg_count s)
RELAY_PREFIX=$prefix run_relay -C "$U/relay.conf" -q
assert_exit 0 "unreadable spool file: relay -q exits 0"
if wait_msgs s $((N0 + 1)) 5; then
	assert_file_contains "$SMARTHOST_s_OUT/$((N0 + 1)).eml" READABLE-BODY \
	    "unreadable spool file: the readable one is still delivered"
else
	fail "unreadable spool file: the readable one is still delivered" \
	    "$(cat "$RELAY_ERR")"
fi
SP_SAVE=$SP
SP=$U/spool
QDIR=$U/queue
bad_entry e-unreadable "unreadable file"
assert_match "$(q_env "$FID" reason)" "[Pp]ermission denied" \
    "unreadable file: the reason says permission denied"
check_not "unreadable file: its text is nowhere in the queue" \
    grep -rqF UNREADABLE-BODY "$U/queue"
assert_eq "$(spool_left)" "" "unreadable: spool emptied"
SP=$SP_SAVE
unset QDIR

t_done
