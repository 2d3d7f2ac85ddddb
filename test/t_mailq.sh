#!/bin/bash
# Listing the queue (issue 3): "relay -bp" and the name "mailq" list every
# queued entry (never tried; deferred with its last error and next
# attempt; partly sent with a failed recipient) and, after them, failed/
# with its reasons, then a summary line; exit 0.  An empty queue prints
# "Mail queue is empty".  Listing changes nothing.  (QUEUE-SPEC.md)
. "$(dirname "$0")/lib.sh"
t_setup

ME=$(id -u)
SP=$T/spool
mkdir -p "$SP" "$T/bin"
ln -s "$RELAY" "$T/bin/mailq"
start_smarthost m --mode smtps --defer-rcpt pend --reject-rcpt fail
write_conf_for m "$T/m.conf" spool "$SP" from spool@example.org
QD=$(q_dir)

# utc ISO: "2026-11-22T14:50:01Z" as mailq shows it, "2026-11-22 14:50:01 UTC".
utc() { [ -n "$1" ] && date -u -d "$1" '+%Y-%m-%d %H:%M:%S UTC'; }

# block ID: the lines mailq printed for entry ID (its line and the
# indented ones after it).
block() {
	awk -v id="$1" '$1 == id { on = 1; print; next }
	    on && /^[ \t]/ { print; next } { on = 0 }' "$LIST"
}

# line_of REGEX: number of the first line of $LIST matching, or 0.
line_of() {
	local n
	n=$(grep -nE -- "$1" "$LIST" | head -n 1 | cut -d: -f1)
	echo "${n:-0}"
}

# ---- an empty queue -----------------------------------------------------

run_relay -C "$T/m.conf" -bp
assert_exit 0 "relay -bp, no queue directory yet: exit 0"
assert_eq "$(cat "$RELAY_OUT")" "Mail queue is empty" \
    "relay -bp, no queue directory yet: \"Mail queue is empty\""
assert_eq "$(cat "$RELAY_ERR")" "" "relay -bp, empty: nothing on stderr"
RELAY=$T/bin/mailq RELAY_CONF=$T/m.conf run_relay
assert_exit 0 "mailq, empty queue: exit 0"
assert_eq "$(cat "$RELAY_OUT")" "Mail queue is empty" \
    "mailq, empty queue: \"Mail queue is empty\""

printf 'Subject: straight through\n\nok\n' |
    run_relay -C "$T/m.conf" -f alice@example.org direct@example.net
assert_exit 0 "a message delivered at once"
run_relay -C "$T/m.conf" -bp
assert_eq "$(cat "$RELAY_OUT")" "Mail queue is empty" \
    "relay -bp after a delivery: \"Mail queue is empty\""
N0=$(msg_count m)

# ---- one entry in each state --------------------------------------------

# Deferred: the smarthost is down.
stop_server m
printf 'Subject: deferred\n\nwaiting\n' |
    run_relay -C "$T/m.conf" -f alice@example.org bob@example.net
assert_exit 0 "deferred entry: queued"
D=$(q_ids)
restart_smarthost m
# The next entry's id must sort after this one's (ids start with the
# creation second): wait for the next second.
later_than() { [ "$(date +%s)" -gt "$1" ]; }
wait_for 3 later_than $((16#${D:0:8})) || note "the clock did not move on"
# Two hours and five minutes old (and ten seconds, so that rounding and
# truncating agree).
q_set "$D" created "$(iso_utc $((-(2 * 3600 + 5 * 60 + 10))))"

# Partly sent: 451 to one recipient, 250 to one, 550 to one (bounced).
printf 'Subject: partly\n\nthree ways\n' |
    run_relay -C "$T/m.conf" -f carol@example.org pend@example.net \
    ok@example.net fail@example.net
assert_exit 0 "partly sent entry: exit 0"
P=$(q_ids | grep -vx "$D")
assert_eq "$(q_count)" 2 "partly sent entry: stays queued"

# Failed: a spool file with no recipient, taken in by relay -q (nothing
# is due, so nothing else happens).
printf 'Subject: no recipient\n\nnothing\n' >"$SP/.bad-one"
mv "$SP/.bad-one" "$SP/bad-one"
run_relay -C "$T/m.conf" -q
assert_exit 0 "failed entry: relay -q takes in the bad spool file"
F=$(q_ids failed)
assert_eq "$(q_count failed)" 1 "failed entry: one in failed/"

# Never tried: an entry as a crash between queueing and the first
# attempt leaves it (the documented envelope format, built by hand).
NID=$(printf '%08x%06x' "$(($(date +%s) + 5))" $((0xa11ce5)))
mkdir -p "$T/craft/$NID"
cp "$QD/queue/$D/message" "$T/craft/$NID/message"
printf '%s\n' 'version 1' "id $NID" 'origin stdin' "uid $ME" \
    "created $(iso_utc)" "size $(q_env "$D" size)" 'body 7bit' 'attempts 0' \
    'sender <nina@example.org>' 'rcpt pending <never@example.net>' \
    >"$T/craft/$NID/envelope"
chmod 700 "$T/craft/$NID"
chmod 600 "$T/craft/$NID"/*
mv "$T/craft/$NID" "$QD/queue/$NID"

assert_eq "$(q_count) $(q_count failed)" "3 1" "three queued entries, one failed"
SUMBEFORE=$(cd "$QD" && find . -type f -exec md5sum {} + | sort)
N1=$(msg_count m)

# ---- relay -bp ----------------------------------------------------------

run_relay -C "$T/m.conf" -bp
LIST=$RELAY_OUT
cp "$LIST" "$T/bp.txt"
assert_exit 0 "relay -bp: exit 0"
assert_eq "$(cat "$RELAY_ERR")" "" "relay -bp: nothing on stderr"

# The deferred entry.
SD=$(q_env "$D" size)
B=$(block "$D")
assert_match "$B" "^$D +$SD octets +2h05m old +from <alice@example\.org> +uid $ME +\(stdin\)"$'\n' \
    "deferred: id, size, age 2h05m, sender, uid, origin"
assert_match "$B" $'\n'" +attempts 1, last $(utc "$(q_env "$D" last-attempt)"), next $(utc "$(q_env "$D" next-attempt)")"$'\n' \
    "deferred: attempts 1, last and next attempt in UTC"
assert_match "$B" $'\n'" +last error: [^"$'\n'"]*refused" "deferred: the last error (connection refused)"
assert_match "$B" $'\n'" +pending +<bob@example\.net>" "deferred: bob pending"

# The partly sent entry.
B=$(block "$P")
assert_match "$B" "^$P +$(q_env "$P" size) octets +[0-9][0-9dhms]* old +from <carol@example\.org> +uid $ME +\(stdin\)" \
    "partly sent: its line"
assert_match "$B" $'\n'" +pending +<pend@example\.net> +451 4\.7\.1 <pend@example\.net>: greylisted" \
    "partly sent: pend@ pending with the 451 reply"
assert_match "$B" $'\n'" +sent +<ok@example\.net> +250 " "partly sent: ok@ sent with the 250 reply"
assert_match "$B" $'\n'" +failed +<fail@example\.net> +550 5\.1\.1 <fail@example\.net>: recipient rejected" \
    "partly sent: fail@ failed with the 550 reply"

# The never-tried entry.
B=$(block "$NID")
assert_match "$B" "^$NID +$SD octets +[0-9][0-9dhms]* old +from <nina@example\.org> +uid $ME +\(stdin\)" \
    "never tried: its line"
assert_match "$B" $'\n'" +pending +<never@example\.net>" "never tried: recipient pending"
assert_lacks "$B" "last error" "never tried: no last error"
assert_lacks "$B" "attempts 1" "never tried: not shown as attempted"

# Order: queued oldest first, then "failed...:" and the failed entry with its
# reason, then the summary.
LD=$(line_of "^$D ") LP=$(line_of "^$P ") LN=$(line_of "^$NID ")
LH=$(line_of "^failed( .*)?:$") LF=$(line_of "$F")
if [ "$LD" -gt 0 ] && [ "$LD" -lt "$LP" ] && [ "$LP" -lt "$LN" ] &&
    [ "$LN" -lt "$LH" ] && [ "$LH" -lt "$LF" ]; then
	ok "order: queued entries oldest first, then \"failed...:\" and its entry"
else
	fail "order: queued entries oldest first, then \"failed...:\" and its entry" \
	    "lines: deferred $LD, partly $LP, never $LN, failed: $LH, failed entry $LF" \
	    "$(cat "$LIST")"
fi
B=$(sed -n "$LF,\$p" "$LIST")
assert_contains "$B" "spool file bad-one: " "failed: the entry's reason"
TOTAL=$(($(q_env "$D" size) + $(q_env "$P" size) + $(q_env "$NID" size)))
assert_eq "$(tail -n 1 "$LIST")" \
    "-- 3 messages queued ($TOTAL octets); 1 in $QD/failed" \
    "summary: count, total octets, failed count and where"

# ---- the name mailq ------------------------------------------------------

# Ages may tick over between two listings.
noage() { sed -E 's/ [0-9dhms]+ old / AGE old /' "$1"; }
RELAY=$T/bin/mailq RELAY_CONF=$T/m.conf run_relay
assert_exit 0 "mailq (RELAY_CONF): exit 0"
assert_eq "$(noage "$RELAY_OUT")" "$(noage "$T/bp.txt")" \
    "mailq (RELAY_CONF): the same listing as relay -bp"
RELAY=$T/bin/mailq run_relay -C "$T/m.conf"
assert_exit 0 "mailq -C: exit 0"
assert_eq "$(noage "$RELAY_OUT")" "$(noage "$T/bp.txt")" \
    "mailq -C: the same listing as relay -bp"

# ---- listing changes nothing ---------------------------------------------

assert_eq "$(cd "$QD" && find . -type f -exec md5sum {} + | sort)" "$SUMBEFORE" \
    "listing left every queue file as it was"
assert_eq "$(msg_count m)" "$N1" "listing sent nothing"
assert_eq "$(q_env "$NID" attempts)" 0 "listing did not try the never-tried entry"
assert_eq "$((N1 - N0))" 2 "the partly sent entry: ok@ got it and carol got a bounce"

t_done
