#!/bin/bash
# The durable queue (issue 3): a message the smarthost cannot take now is
# kept in the queue directory (exit 0) and delivered by "relay -q"; 4xx is
# retried with backoff, 5xx and expiry bounce to the sender (never for the
# null sender), a message refused for good at submission exits non-zero
# (and is kept in failed/, t_keep.sh), and "queue none" keeps the old
# exit-75 behaviour.  Time is simulated by editing the envelope's
# created/next-attempt lines (QUEUE-SPEC.md).
# Each section has its own queue directory ($QDIR) so the -q runs of one
# do not see the entries of another.
. "$(dirname "$0")/lib.sh"
t_setup

ME=$(id -u)
export QDIR

# one_id WHAT: exactly one entry in queue/; sets ID (empty if not).
one_id() {
	local ids n
	ids=$(q_ids)
	n=$(grep -c . <<<"$ids")
	ID=
	if [ "$n" = 1 ]; then
		ID=$ids
		ok "$1: one entry in queue/"
	else
		fail "$1: one entry in queue/" "$n entries in $(q_dir)/queue: $ids" \
		    "stderr: $(cat "$RELAY_ERR")"
	fi
}

# near WHAT ISO EPOCH TOLERANCE: the ISO time is EPOCH +- TOLERANCE s.
near() {
	local e
	e=$(iso_epoch "$2")
	if [ -n "$e" ] && [ "$e" -ge $(($3 - $4)) ] && [ "$e" -le $(($3 + $4)) ]; then
		ok "$1"
	else
		fail "$1" "got \"$2\", want $(date -u -d "@$3" +%FT%TZ) +- $4 s"
	fi
}

# env_is WHAT ID KEY WANT: the envelope line KEY of ID has value WANT.
env_is() {
	assert_eq "$(q_env "$2" "$3")" "$4" "$1: envelope \"$3 $4\""
}

# ev_count SERVER REGEX: lines of its events.log matching REGEX.
ev_count() {
	grep -cE -- "$2" "$(srv_out "$1")/events.log"
}

# queue_clean WHAT: nothing in queue/ nor tmp/.
queue_clean() {
	assert_eq "$(q_count queue)" 0 "$1: queue/ is empty"
	assert_eq "$(q_count tmp)" 0 "$1: nothing left in tmp/"
}

# backoff_is WHAT ID SECONDS: next-attempt = last-attempt + SECONDS (+-2).
backoff_is() {
	local last
	last=$(iso_epoch "$(q_env "$2" last-attempt)")
	if [ -z "$last" ]; then
		fail "$1: next-attempt is last-attempt + $3 s" \
		    "no last-attempt: $(cat "$(q_path "$2")")"
		return
	fi
	near "$1: next-attempt is last-attempt + $3 s" \
	    "$(q_env "$2" next-attempt)" $((last + $3)) 2
}

# ---- relay -q before any queue exists ---------------------------------------

start_smarthost main --mode smtps
write_conf_for main "$T/fresh.conf" queue "$T/q.fresh"
run_relay -C "$T/fresh.conf" -q
assert_exit 0 "relay -q, no queue directory yet: exit 0"
assert_eq "$(cat "$RELAY_OUT")" "" "relay -q, no queue directory yet: nothing on stdout"

# ---- smarthost down, then up on the same port: relay -q delivers -------

QDIR=$T/q.down
write_conf_for main "$T/main.conf" queue "$QDIR"
write_conf_for main "$T/direct.conf" queue none

# relay adds nothing to this message (From, Date, Message-ID are there),
# so a direct delivery and a queued one must arrive byte for byte the same.
printf '%s\n' 'From: Alice <alice@example.org>' 'To: Bob <bob@example.net>' \
    'Date: Mon, 02 Nov 2026 10:00:00 +0100' \
    'Message-ID: <queue.down@example.org>' 'Subject: queued while down' \
    '' 'first line' '.' '..two dots' '. dot space' >"$T/down.in"
printf 'Gr\303\274\303\237e \342\202\254\r\nbare CR\rand LF\nlast line\n' \
    >>"$T/down.in"

deliver_to main -C "$T/direct.conf" -i -f alice@example.org bob@example.net \
    <"$T/down.in"
assert_exit 0 "direct delivery (queue none) of the reference message"
cp "$EML" "$T/direct.eml" 2>/dev/null
DIRECT_OPTS=$(msg_json main 1 mail_options)
check_not "queue none: no queue directory made" test -e "$QDIR"

stop_server main
T0=$(date +%s)
run_relay -C "$T/main.conf" -i -f alice@example.org bob@example.net \
    <"$T/down.in"
assert_exit 0 "smarthost down: submission exits 0 (queued)"
one_id "smarthost down"
assert_match "$ID" '^[0-9a-f]{14}$' "smarthost down: id is 14 hex digits"
if [[ $ID =~ ^[0-9a-f]{14}$ ]] && [ $((16#${ID:0:8})) -ge $((T0 - 2)) ] &&
    [ $((16#${ID:0:8})) -le $(($(date +%s) + 2)) ]; then
	ok "smarthost down: id starts with the creation time in hex"
else
	fail "smarthost down: id starts with the creation time in hex" "id $ID, now $T0"
fi
assert_error "smarthost down" "$ID queued, will retry" "refused"
assert_log "smarthost down" "^relay: .*id=$ID( |$)" " from=<alice@example\.org> " \
    " to=<bob@example\.net> " " size=$(stat -c %s "$T/direct.eml") " \
    " status=deferred " " attempts=1 " " uid=$ME( |$)" " error=.*refused"
E=$QDIR/queue/$ID
assert_eq "$(ls -A "$E" 2>&1 | tr '\n' ' ')" "envelope message " \
    "smarthost down: the entry holds exactly envelope and message"
assert_eq "$(stat -c %a "$QDIR" "$QDIR/queue" "$E" 2>&1 | tr '\n' ' ')" \
    "700 700 700 " "smarthost down: queue directories are mode 0700"
assert_match "$(stat -c %a "$E/message" "$E/envelope" 2>&1 | tr '\n' ' ')" \
    '^[0-7]00 [0-7]00 $' "smarthost down: message and envelope not readable by others"
assert_same "$E/message" "$T/direct.eml" \
    "smarthost down: queued message file = what a direct delivery sends (CRLF, not dot-stuffed)"
cp "$E/message" "$T/down.message" 2>/dev/null
cp "$E/envelope" "$T/down.envelope" 2>/dev/null
env_is "smarthost down" "$ID" version 1
env_is "smarthost down" "$ID" id "$ID"
env_is "smarthost down" "$ID" origin stdin
env_is "smarthost down" "$ID" uid "$ME"
env_is "smarthost down" "$ID" size "$(stat -c %s "$T/direct.eml")"
assert_eq "SIZE=$(q_env "$ID" size) BODY=8BITMIME" "$DIRECT_OPTS" \
    "smarthost down: envelope size is the SIZE= a direct delivery announces"
env_is "smarthost down" "$ID" body 8bit
env_is "smarthost down" "$ID" attempts 1
env_is "smarthost down" "$ID" sender "<alice@example.org>"
assert_eq "$(q_rcpts "$ID")" "pending <bob@example.net>" \
    "smarthost down: envelope \"rcpt pending <bob@example.net>\""
NOW=$(date +%s)
near "smarthost down: created is now (UTC ISO 8601)" "$(q_env "$ID" created)" "$NOW" 5
near "smarthost down: last-attempt is now" "$(q_env "$ID" last-attempt)" "$NOW" 5
backoff_is "smarthost down (retry_min 5m)" "$ID" 300
assert_match "$(q_env "$ID" last-error)" "localhost.*refused" \
    "smarthost down: last-error names the host and the refused connection"

# Still down: "relay -q" changes nothing (not due), exits 0.
run_relay -C "$T/main.conf" -q
assert_exit 0 "smarthost still down, entry not due: relay -q exits 0"
assert_same "$E/envelope" "$T/down.envelope" \
    "entry not due: relay -q leaves its envelope alone"

restart_smarthost main
q_set "$ID" next-attempt "$(iso_utc -60)"
run_relay -C "$T/main.conf" -q
assert_exit 0 "smarthost up again: relay -q exits 0"
if wait_msgs main 2 5; then
	assert_same "$SMARTHOST_main_OUT/2.eml" "$T/direct.eml" \
	    "relay -q: delivered byte for byte as a direct delivery"
	assert_same "$SMARTHOST_main_OUT/2.eml" "$T/down.message" \
	    "relay -q: delivered byte for byte as the queued message file"
	assert_eq "$(msg_json main 2 mail_options)" "$DIRECT_OPTS" \
	    "relay -q: same MAIL parameters (SIZE, BODY=8BITMIME) as a direct delivery"
	assert_eq "$(msg_json main 2 mail_from) $(msg_json main 2 rcpt_tos)" \
	    "alice@example.org bob@example.net" "relay -q: envelope from the queue entry"
else
	fail "relay -q: the queued message arrives" "$(cat "$RELAY_ERR")"
fi
assert_log "relay -q" " id=$ID( |$)" "^relay: from=<alice@example\.org> " \
    " to=<bob@example\.net> " \
    " relay=localhost\[127\.0\.0\.1\]:$SMARTHOST_main_PORT " " status=sent " \
    " reply=\"250 2\.0\.0 OK queued as 2\" " " attempts=2 " " uid=$ME( |$)"
queue_clean "delivered by relay -q"
assert_eq "$(q_count failed)" 0 "delivered by relay -q: nothing in failed/"
run_relay -C "$T/main.conf" -q
assert_exit 0 "relay -q on an empty queue exits 0"
assert_eq "$(msg_count main)" 2 "relay -q on an empty queue sends nothing"

# ---- 4xx, then success: backoff, -q waits, -qf / due entry delivers -------

QDIR=$T/q.grey
start_smarthost grey --mode starttls --fault rcpt:451:1
write_conf_for grey "$T/grey.conf" queue "$QDIR"
printf 'Subject: greylisted\n\ngrey body\n' >"$T/grey.in"
run_relay -C "$T/grey.conf" -f alice@example.org bob@example.net <"$T/grey.in"
assert_exit 0 "451 to RCPT: submission exits 0 (queued)"
one_id "451 to RCPT"
assert_error "451 to RCPT" "$ID queued, will retry" "451"
assert_eq "$(q_env "$ID" rcpt)" "pending <bob@example.net> 451 4.3.0 injected rcpt fault" \
    "451 to RCPT: recipient pending with the 451 reply"
env_is "451 to RCPT" "$ID" attempts 1
backoff_is "451 to RCPT" "$ID" 300
nothing_stored grey "451 to RCPT"
cp "$(q_path "$ID")" "$T/grey.envelope"
MAILS=$(ev_count grey '^mail ')
run_relay -C "$T/grey.conf" -q
assert_exit 0 "451 entry not due: relay -q exits 0"
assert_eq "$(ev_count grey '^mail ')" "$MAILS" \
    "451 entry not due: relay -q does not retry it (no MAIL)"
assert_same "$(q_path "$ID")" "$T/grey.envelope" \
    "451 entry not due: envelope unchanged (attempts still 1)"
nothing_stored grey "451 entry not due"
run_relay -C "$T/grey.conf" -qf
assert_exit 0 "relay -qf exits 0"
if wait_msgs grey 1 5; then
	assert_file_contains "$SMARTHOST_grey_OUT/1.eml" "grey body" \
	    "relay -qf: the deferred message is delivered before it is due"
else
	fail "relay -qf: the deferred message is delivered before it is due"
fi
assert_log "relay -qf" " id=$ID( |$)" " status=sent " " attempts=2 "
queue_clean "delivered by relay -qf"

# Again, this time by making it due (as time passing would).
restart_smarthost grey
run_relay -C "$T/grey.conf" -f alice@example.org carol@example.net <"$T/grey.in"
assert_exit 0 "451 again: queued"
one_id "451 again"
run_relay -C "$T/grey.conf" -q
assert_eq "$(msg_count grey)" 1 "451 again: not due, relay -q sends nothing"
q_set "$ID" next-attempt "$(iso_utc -1)"
run_relay -C "$T/grey.conf" -q
assert_exit 0 "451 again, now due: relay -q exits 0"
if wait_msgs grey 2 5; then
	assert_eq "$(msg_json grey 2 rcpt_tos)" carol@example.net \
	    "451 again, now due: relay -q delivers it"
else
	fail "451 again, now due: relay -q delivers it"
fi
queue_clean "due entry delivered"

# -qIID: that entry only, due or not.
restart_smarthost grey --mode starttls --defer-rcpt later
run_relay -C "$T/grey.conf" -f alice@example.org later1@example.net <"$T/grey.in"
run_relay -C "$T/grey.conf" -f alice@example.org later2@example.net <"$T/grey.in"
ID1=$(grep -l 'later1@' "$QDIR"/queue/*/envelope 2>/dev/null | awk -F/ '{ print $(NF - 1) }')
ID2=$(grep -l 'later2@' "$QDIR"/queue/*/envelope 2>/dev/null | awk -F/ '{ print $(NF - 1) }')
assert_eq "$(q_count) $(ev_count grey '^defer .* later[12]@')" "2 2" \
    "two deferred entries (451 greylisted)"
restart_smarthost grey --mode starttls
run_relay -C "$T/grey.conf" "-qI$ID2"
assert_exit 0 "relay -qIID exits 0"
if wait_msgs grey 3 5; then
	assert_eq "$(msg_json grey 3 rcpt_tos)" later2@example.net \
	    "relay -qIID: delivers that entry"
else
	fail "relay -qIID: delivers that entry" "$(cat "$RELAY_ERR")"
fi
assert_eq "$(msg_count grey) $(q_ids)" "3 $ID1" "relay -qIID: the other entry stays"
# -q30m (a sendmail daemon interval): a plain -q, no daemon.
q_set "$ID1" next-attempt "$(iso_utc -1)"
run_relay -C "$T/grey.conf" -q30m
assert_exit 0 "relay -q30m exits 0 (does not stay running)"
if wait_msgs grey 4 5; then
	assert_eq "$(msg_json grey 4 rcpt_tos)" later1@example.net \
	    "relay -q30m: delivers the due entry"
else
	fail "relay -q30m: delivers the due entry" "$(cat "$RELAY_ERR")"
fi
queue_clean "relay -q30m"

# Backoff: retry_min * 2^(attempts-1), capped at retry_max.
QDIR=$T/q.backoff
write_conf_for grey "$T/backoff.conf" queue "$QDIR" retry_min 1m retry_max 3m
restart_smarthost grey --mode starttls --defer-rcpt slow
run_relay -C "$T/backoff.conf" -f alice@example.org slow@example.net <"$T/grey.in"
one_id "backoff"
backoff_is "backoff, attempt 1 (retry_min 1m)" "$ID" 60
cp "$QDIR/queue/$ID/message" "$T/backoff.message"
run_relay -C "$T/backoff.conf" -qf
env_is "backoff" "$ID" attempts 2
backoff_is "backoff, attempt 2" "$ID" 120
run_relay -C "$T/backoff.conf" -qf
env_is "backoff" "$ID" attempts 3
backoff_is "backoff, attempt 3 (retry_max 3m caps 4m)" "$ID" 180
assert_eq "$(q_env "$ID" rcpt)" \
    "pending <slow@example.net> 451 4.7.1 <slow@example.net>: greylisted, try again later" \
    "backoff: the last 451 reply is kept with the recipient"
assert_same "$QDIR/queue/$ID/message" "$T/backoff.message" \
    "backoff: the message file is never rewritten by attempts"

# ---- 5xx at a queue run: a bounce to the sender ---------------------------

QDIR=$T/q.bounce
start_smarthost b --mode smtps
write_conf_for b "$T/b.conf" queue "$QDIR"
stop_server b
printf '%s\n' 'From: Alice <alice@example.org>' 'To: bob@example.net' \
    'Subject: report me' 'X-Original: kept in the bounce' '' \
    'BODY-NOT-IN-BOUNCE' >"$T/b.in"
run_relay -C "$T/b.conf" -f alice@example.org bob@example.net <"$T/b.in"
assert_exit 0 "5xx later: queued while down"
one_id "5xx later"
restart_smarthost b --mode smtps --reject-rcpt bob@
q_set "$ID" next-attempt "$(iso_utc -1)"
run_relay -C "$T/b.conf" -q
assert_exit 0 "5xx at relay -q: exits 0"
assert_eq "$(ev_count b "^reject [0-9]+ bob@example.net$")" 1 \
    "5xx at relay -q: the smarthost refused bob once"
if wait_msgs b 1 5; then
	B=$SMARTHOST_b_OUT/1.eml
	assert_eq "$(msg_json b 1 mail_from)|$(msg_json b 1 rcpt_tos)" \
	    "|alice@example.org" "bounce: from the null sender <> to the original sender"
	assert_crlf "$B" "bounce: CRLF only"
	assert_match "$(field "$B" Content-Type)" \
	    '^Content-Type: multipart/report;.*report-type="?delivery-status' \
	    "bounce: multipart/report; report-type=delivery-status"
	assert_match "$(field "$B" From)" 'MAILER-DAEMON@' "bounce: From MAILER-DAEMON"
	assert_match "$(field "$B" To)" '<?alice@example\.org>?' "bounce: To the sender"
	assert_match "$(field "$B" Auto-Submitted)" 'auto-replied' \
	    "bounce: Auto-Submitted: auto-replied"
	assert_file_contains "$B" "550 5.1.1 <bob@example.net>: recipient rejected" \
	    "bounce: holds the smarthost's 550 reply"
	assert_file_matches "$B" "^Final-Recipient: rfc822; ?bob@example\.net" \
	    "bounce: Final-Recipient"
	assert_file_matches "$B" "^Action: failed" "bounce: Action: failed"
	assert_file_matches "$B" "^Status: 5\.1\.1" "bounce: Status 5.1.1 from the reply"
	assert_file_matches "$B" "^Diagnostic-Code: smtp; ?550 5\.1\.1" \
	    "bounce: Diagnostic-Code: smtp; 550 ..."
	assert_file_matches "$B" "^Content-Type: text/rfc822-headers" \
	    "bounce: a text/rfc822-headers part"
	assert_file_contains "$B" "Subject: report me" "bounce: original Subject"
	assert_file_contains "$B" "X-Original: kept in the bounce" \
	    "bounce: original headers"
	assert_file_lacks "$B" "BODY-NOT-IN-BOUNCE" "bounce: not the original body"
else
	fail "5xx at relay -q: a bounce arrives" "$(cat "$RELAY_ERR")"
fi
assert_eq "$(q_count queue) $(q_ids failed)" "0 $ID" \
    "5xx at relay -q: the entry moved to failed/"
assert_match "$(q_env "$ID" rcpt)" "^failed <bob@example\.net> 550 5\.1\.1" \
    "5xx at relay -q: failed/ envelope: rcpt failed with the reply"
assert_match "$(q_env "$ID" reason)" . "5xx at relay -q: failed/ envelope has a reason"
run_relay -C "$T/b.conf" -qf
assert_eq "$(msg_count b)" 1 "after the bounce: relay -qf sends nothing more"

# ---- expiry: created 6 days ago (max_age 5d) -> bounce 4.4.7 -----------------

QDIR=$T/q.expire
start_smarthost x --mode smtps
write_conf_for x "$T/x.conf" queue "$QDIR"
stop_server x
printf 'From: alice@example.org\nSubject: too old\n\nold body\n' |
    run_relay -C "$T/x.conf" -f alice@example.org bob@example.net
assert_exit 0 "expiry: queued while down"
one_id "expiry"
restart_smarthost x
q_set "$ID" created "$(iso_utc $((-6 * 86400)))"
run_relay -C "$T/x.conf" -q
assert_exit 0 "expiry: relay -q exits 0"
assert_eq "$(ev_count x "^rcpt [0-9]+ bob@")" 0 "expiry: no delivery attempt to bob"
if wait_msgs x 1 5; then
	B=$SMARTHOST_x_OUT/1.eml
	assert_eq "$(msg_json x 1 mail_from)|$(msg_json x 1 rcpt_tos)" \
	    "|alice@example.org" "expiry bounce: from <> to the sender"
	assert_file_matches "$B" "^Status: 4\.4\.7" "expiry bounce: Status: 4.4.7"
	assert_file_contains "$B" "expired after 6 days" "expiry bounce: says expired after 6 days"
	assert_file_contains "$B" "refused" "expiry bounce: gives the last error"
	assert_file_matches "$B" "^Final-Recipient: rfc822; ?bob@example\.net" \
	    "expiry bounce: Final-Recipient"
	assert_file_contains "$B" "Subject: too old" "expiry bounce: original headers"
else
	fail "expiry: a bounce arrives" "$(cat "$RELAY_ERR")"
fi
assert_eq "$(msg_count x)" 1 "expiry: only the bounce was sent"
assert_eq "$(q_count queue) $(q_ids failed)" "0 $ID" "expiry: entry moved to failed/"
assert_match "$(q_env "$ID" reason)" . "expiry: failed/ envelope has a reason"

# ---- the null sender is never bounced ------------------------------------

QDIR=$T/q.null
start_smarthost n --mode smtps
write_conf_for n "$T/n.conf" queue "$QDIR"
stop_server n
printf 'Subject: a bounce itself\n\nnull 1\n' |
    run_relay -C "$T/n.conf" -f '<>' bob@example.net
assert_exit 0 "null sender, 5xx later: queued"
one_id "null sender, 5xx later"
N1=$ID
env_is "null sender" "$N1" sender "<>"
printf 'Subject: a bounce itself\n\nnull 2\n' |
    run_relay -C "$T/n.conf" -f '<>' carol@example.net
assert_exit 0 "null sender, expiring: queued"
N2=$(q_ids | grep -vx "$N1")
restart_smarthost n --mode smtps --reject-rcpt bob@
q_set "$N1" next-attempt "$(iso_utc -1)"
q_set "$N2" created "$(iso_utc $((-6 * 86400)))"
q_set "$N2" next-attempt "$(iso_utc -1)"
run_relay -C "$T/n.conf" -q
assert_exit 0 "null sender: relay -q exits 0"
assert_eq "$(ev_count n "^reject [0-9]+ bob@example.net$")" 1 \
    "null sender: the smarthost refused the message (550)"
assert_eq "$(q_count queue) $(q_ids failed | tr '\n' ' ')" "0 $(printf '%s\n' "$N1" "$N2" | sort | tr '\n' ' ')" \
    "null sender: both entries (550, expired) moved to failed/"
run_relay -C "$T/n.conf" -qf
assert_eq "$(msg_count n)" 0 "null sender: no bounce sent, ever"
assert_eq "$(ev_count n '^mail [0-9]+ <>$')" 1 \
    "null sender: only the one MAIL FROM:<> attempt for the 550"

# ---- two recipients: one 550, one 250 ------------------------------------

QDIR=$T/q.two
start_smarthost two --mode smtps --reject-rcpt bad
write_conf_for two "$T/two.conf" queue "$QDIR"
printf 'Subject: half\n\nhalf body\n' |
    run_relay -C "$T/two.conf" -f alice@example.org good@example.net bad@example.net
assert_exit 0 "one of two refused (550): exit 0 (bounce for the other)"
assert_error "one of two refused" "bad@example.net"
if wait_msgs two 2 5; then
	assert_eq "$(msg_json two 1 rcpt_tos)" good@example.net \
	    "one of two refused: delivered to the accepted one only"
	assert_eq "$(msg_json two 2 mail_from)|$(msg_json two 2 rcpt_tos)" \
	    "|alice@example.org" "one of two refused: bounce from <> to the sender"
	assert_file_matches "$SMARTHOST_two_OUT/2.eml" \
	    "^Final-Recipient: rfc822; ?bad@example\.net" \
	    "one of two refused: bounce names the refused one"
	assert_file_lacks "$SMARTHOST_two_OUT/2.eml" "good@example.net" \
	    "one of two refused: bounce does not name the accepted one"
else
	fail "one of two refused: message and bounce arrive" "$(cat "$RELAY_ERR")"
fi
assert_eq "$(q_count queue)" 0 "one of two refused: nothing left in queue/"
F=$(q_ids failed)
assert_eq "$(q_rcpts "$F" | sort | tr '\n' ' ')" \
    "failed <bad@example.net> sent <good@example.net> " \
    "one of two refused: failed/ entry records sent and failed recipients"
RCPTS=$(ev_count two '^rcpt ')
run_relay -C "$T/two.conf" -qf
assert_exit 0 "one of two refused: relay -qf exits 0"
assert_eq "$(msg_count two) $(ev_count two '^rcpt ')" "2 $RCPTS" \
    "one of two refused: relay -qf resends nothing"

# ---- every recipient refused at submission: 67, no bounce, kept in failed/ --

QDIR=$T/q.all
write_conf_for two "$T/all.conf" queue "$QDIR"
printf 'Subject: nobody\n\nnobody body\n' |
    run_relay -C "$T/all.conf" -f alice@example.org bad1@example.net bad2@example.net
assert_exit 67 "every recipient refused (550): exit 67"
assert_error "every recipient refused" "bad1@example.net" "bad2@example.net" "550"
assert_eq "$(ev_count two '^reject [0-9]+ bad[12]@example.net$')" 2 \
    "every recipient refused: the smarthost refused both"
assert_eq "$(msg_count two)" 2 "every recipient refused: no bounce"
queue_clean "every recipient refused"
assert_eq "$(q_count failed)" 1 "every recipient refused: a copy kept in failed/ (t_keep)"

start_smarthost d554 --mode smtps --fault dot:554
write_conf_for d554 "$T/d554.conf" queue "$QDIR"
printf 'Subject: refused\n\nrefused body\n' |
    run_relay -C "$T/d554.conf" -f alice@example.org bob@example.net
assert_exit 69 "554 after the data: exit 69"
assert_error "554 after the data" "554"
nothing_stored d554 "554 after the data (no bounce either)"
queue_clean "554 after the data"
assert_eq "$(q_count failed)" 2 "554 after the data: a copy kept in failed/ too"

# ---- queue none: the old behaviour -----------------------------------------

start_smarthost none --mode smtps
write_conf_for none "$T/none.conf" queue none
stop_server none
SPOOL_BEFORE=$(ls -lA /var/spool/relay 2>&1)
printf 'Subject: no queue\n\nnot kept\n' |
    run_relay -C "$T/none.conf" -f alice@example.org bob@example.net
assert_exit 75 "queue none, smarthost down: exit 75"
assert_error "queue none, smarthost down" "refused"
assert_file_lacks "$RELAY_ERR" "queued" "queue none: does not claim to have queued"
assert_eq "$(ls -lA /var/spool/relay 2>&1)" "$SPOOL_BEFORE" \
    "queue none: /var/spool/relay untouched"
check_not "queue none: the message is stored nowhere under $T" \
    grep -rl "not kept" "$T" --include=message
restart_smarthost none
assert_eq "$(msg_count none)" 0 "queue none: nothing delivered later either"

t_done
