#!/bin/bash
# Small holes (issue 11): a server reply quoted in the log, mailq and the
# bounce keeps its text (a backslash of the reply is written "\\"); a NUL
# byte inside an EHLO reply line is a malformed reply, not a hidden
# STARTTLS; a file size limit (SIGXFSZ) gives exit 75 with tmp/ clean;
# -C naming a FIFO is an error at once; the log's status words are those
# of relay(8) and size= is the same RFC 1870 size with and without a
# queue.  Spool intake: the descriptor opened is checked (a hard link
# swapped in after the check by name is refused: strace stops relay in
# between), a claim a producer made is checked too, a claim left by a
# crash after tmp/ID was made is taken in at once, and with the setgid
# install only root's run takes the spool in, with a fixed sender and
# the spool directory owner's uid (the setgid part as in t_privs.sh:
# root, setpriv, unshare, overlayfs, group "mail"; else "ok # skip").
. "$(dirname "$0")/lib.sh"
t_setup

# ---- a reply quoted in the log, mailq and the bounce ----------------------

start_smarthost r --mode smtps --reject-rcpt x --reject-text 'C:\012dir'
write_conf_for r "$T/r.conf" from sender@example.org
printf 'Subject: quoted\n\nbody\n' |
    run_relay -C "$T/r.conf" -v xbad@example.org good@example.org
assert_exit 0 "reply text: one recipient refused, the other sent (exit 0)"
WANT='C:\\012dir'
assert_contains "$(grep -a '^<<< 550' "$RELAY_ERR")" "$WANT" \
    "reply text: the -v trace shows C:\\\\012dir"
assert_log "reply text: the log" "status=bounced " \
    "error=.*xbad@example.org>: C:\\\\\\\\012dir \\(delivered"
run_relay -C "$T/r.conf" -bp
assert_contains "$(grep -a 'xbad@' "$RELAY_OUT")" "<xbad@example.org>: $WANT" \
    "reply text: mailq shows it as the log does"
if wait_msgs r 2 5; then
	assert_file_contains "$SMARTHOST_r_OUT/2.eml" \
	    "Diagnostic-Code: smtp; 550 5.1.1 <xbad@example.org>: $WANT" \
	    "reply text: the bounce's Diagnostic-Code as the log's"
	assert_file_lacks "$SMARTHOST_r_OUT/2.eml" 'C:\ / dir' \
	    "reply text: no line break made up in the bounce"
else
	fail "reply text: the bounce's Diagnostic-Code as the log's" "no bounce"
fi

# ---- a NUL byte inside an EHLO reply line ---------------------------------

start_raw nul --scenario nul-ehlo
write_conf_for nul "$T/nul.conf" from sender@example.org queue none
printf 'Subject: nul\n\nbody\n' | run_relay -C "$T/nul.conf" to@example.org
assert_exit 76 "NUL in the EHLO reply: malformed reply (76)"
assert_error "NUL in the EHLO reply" "malformed reply" "NUL byte"
assert_lacks "$(cat "$RELAY_ERR")" "does not offer" \
    "NUL in the EHLO reply: not taken for a missing STARTTLS"

# ---- a file size limit ----------------------------------------------------

start_smarthost f --mode smtps
write_conf_for f "$T/f.conf" from sender@example.org queue "$T/fq"
head -c 200000 /dev/zero | tr '\0' x | fold -w 70 >"$T/big.body"
{ printf 'Subject: big body\n\n'; cat "$T/big.body"; } >"$T/bigbody.txt"
RELAY_PREFIX="prlimit --fsize=65536 --" run_relay -C "$T/f.conf" \
    to@example.org <"$T/bigbody.txt"
assert_exit 75 "ulimit -f, big body: exit 75, not killed by SIGXFSZ"
assert_error "ulimit -f, big body" "File too large"
# A small body under a big header block: the queue's copy is what is cut.
{ printf 'Subject: big header\n'
  for i in $(seq 1500); do printf 'X-Filler-%d: %s\n' "$i" \
      "0123456789012345678901234567890123456789"; done
  printf '\nsmall body\n'; } >"$T/bighdr.txt"
RELAY_PREFIX="prlimit --fsize=65536 --" run_relay -C "$T/f.conf" \
    to@example.org <"$T/bighdr.txt"
assert_exit 75 "ulimit -f, big header block: exit 75 (EFBIG: try again)"
assert_error "ulimit -f, big header block" "cannot queue the message" \
    "File too large"
assert_log "ulimit -f" "status=tempfail " "error=cannot queue the message"
assert_eq "$(QDIR=$T/fq q_count tmp) $(QDIR=$T/fq q_count)" "0 0" \
    "ulimit -f: tmp/ and queue/ empty"
assert_eq "$(msg_count f)" 0 "ulimit -f: nothing sent"

# ---- -C naming a FIFO ------------------------------------------------------

mkfifo "$T/conf.fifo"
RELAY_TIMEOUT=5 run_relay -C "$T/conf.fifo" -bp
assert_exit 78 "-C FIFO: exit 78 at once, no wait"
assert_error "-C FIFO" "$T/conf.fifo: not a regular file"

# ---- status words and size= ------------------------------------------------

# relay.8's status words, from the list under Delivery.
DOC_WORDS=$(sed -n '/^The status is one of/,/^\.Cm note/p' "$TOP/relay.8" |
    sed -n 's/^\.Cm \([a-z]*\).*/\1/p' | tr '\n' ' ')
documented() {	# WORD WHAT
	if [[ " $DOC_WORDS " == *" $1 "* ]]; then
		ok "$2: status=$1 is one of relay(8)'s: $DOC_WORDS"
	else
		fail "$2: status=$1 is one of relay(8)'s" "relay(8): $DOC_WORDS"
	fi
}
write_conf_for r "$T/rn.conf" from sender@example.org queue none
printf 'Subject: refused\n\nbody\n' | run_relay -C "$T/rn.conf" xno@example.org
assert_exit 67 "queue none, recipient refused: exit 67"
assert_log "queue none, recipient refused" "status=refused "
documented refused "queue none, recipient refused"
printf 'x\n' >"$T/notadir"
write_conf_for r "$T/nq.conf" from sender@example.org queue "$T/notadir/q"
printf 'Subject: no queue\n\nbody\n' | run_relay -C "$T/nq.conf" to@example.org
assert_exit 73 "queue cannot be made: exit 73"
assert_log "queue cannot be made" "status=refused " "error=cannot queue"
write_conf_for r "$T/down.conf" from sender@example.org queue none \
    port "$(free_port)"
printf 'Subject: down\n\nbody\n' | run_relay -C "$T/down.conf" to@example.org
assert_exit 75 "queue none, smarthost down: exit 75"
assert_log "queue none, smarthost down" "status=tempfail "
documented tempfail "queue none, smarthost down"

# size=: the message as read (RFC 1870: CRLF, not dot-stuffed), also when
# it is converted to quoted-printable for a smarthost without 8BITMIME.
start_smarthost s7 --mode smtps --strip 8BITMIME
{ printf 'From: <sender@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n'
  printf 'Message-ID: <size.1@example.org>\nSubject: size\n\n'
  for i in $(seq 40); do printf '.caf\303\251 \303\251t\303\251 %02d\n' "$i"; done
} >"$T/eight.txt"
write_conf_for s7 "$T/s7q.conf" from sender@example.org queue "$T/sq" \
    port "$(free_port)"
run_relay -C "$T/s7q.conf" to@example.org <"$T/eight.txt"
ID=$(QDIR=$T/sq q_ids)
QSIZE=$(stat -c %s "$T/sq/queue/$ID/message" 2>/dev/null)
assert_log "queued: size= is the queue's" "status=deferred " "size=$QSIZE "
write_conf_for s7 "$T/s7n.conf" from sender@example.org queue none
run_relay -C "$T/s7n.conf" to@example.org <"$T/eight.txt"
assert_exit 0 "queue none, no 8BITMIME: sent"
assert_log "queue none, no 8BITMIME: size= as read, not as converted" \
    "status=sent " "size=$QSIZE "

# ---- spool: the descriptor opened is checked ------------------------------

SP=$T/spool
mkdir -p "$SP"
start_smarthost sp --mode smtps
write_conf_for sp "$T/sp.conf" spool "$SP" from spool@example.org \
    queue "$T/spq"
printf 'To: thief@example.net\nSubject: secret\n\nSECRET-NOT-FOR-THE-PRODUCER\n' \
    >"$T/secret"
chmod 600 "$T/secret"

# A claim a producer made itself, a hard link to a file it may not read.
ln "$T/secret" "$SP/.relay-0123456789abcd"
run_relay -C "$T/sp.conf" -q
assert_exit 0 "made-up claim: relay -q exits 0"
FR=$(for i in $(QDIR=$T/spq q_ids failed); do QDIR=$T/spq q_env "$i" reason; done)
assert_contains "$FR" "has 2 hard links" "made-up claim: refused (2 hard links)"
assert_eq "$(msg_count sp)" 0 "made-up claim: the linked file not sent"
check_not "made-up claim: gone from the spool" test -e "$SP/.relay-0123456789abcd"

if ! strace -qq -e trace=newfstatat -o /dev/null true 2>"$T/strace.err"; then
	echo "ok # skip strace cannot trace newfstatat here: $(head -1 "$T/strace.err")"
else
	printf 'To: victim@example.net\nSubject: swap\n\nharmless\n' >"$SP/z-swap"
	# Stop relay just after its check by name; swap; let it go on.
	(cd "$T" && ASAN_OPTIONS=detect_leaks=0 timeout -k 5 30 strace -f -qq \
	    -o "$T/swap.trace" -P z-swap -e trace=newfstatat \
	    -e inject=newfstatat:signal=SIGSTOP:when=1 \
	    "$RELAY" -C "$T/sp.conf" -q >"$T/swap.out" 2>"$T/swap.err") &
	SPID=$!
	if wait_for 10 grep -qs 'stopped by SIGSTOP' "$T/swap.trace"; then
		ok "swap: relay stopped after its check by name"
		ln -f "$T/secret" "$SP/z-swap"
		# strace -f starts each line with the traced process's id.
		kill -CONT "$(awk '/stopped by SIGSTOP/ { print $1; exit }' \
		    "$T/swap.trace")"
	else
		fail "swap: relay stopped after its check by name" \
		    "$(head -c 2000 "$T/swap.trace")"
	fi
	wait "$SPID"
	assert_eq "$?" 0 "swap: relay -q exits 0"
	FR=$(for i in $(QDIR=$T/spq q_ids failed); do QDIR=$T/spq q_env "$i" reason; done)
	assert_contains "$FR" "spool file z-swap: has 2 hard links" \
	    "swap: the file opened is refused (2 hard links)"
	sleep 0.5
	assert_eq "$(grep -l SECRET-NOT "$SMARTHOST_sp_OUT"/*.eml 2>/dev/null)" "" \
	    "swap: the linked file's text not sent"
	assert_eq "$(grep -rl SECRET-NOT "$T/spq" 2>/dev/null)" "" \
	    "swap: nor kept in the queue"
	assert_eq "$(stat -c %h "$T/secret")" 1 "swap: the link is gone"
fi

# ---- spool: a claim left by a crash after tmp/ID was made -------------------

CID=$(printf '%08x%06x' "$(date +%s)" 4660)
printf 'To: crashed@example.net\nSubject: crashed\n\nCRASHED-CLAIM\n' \
    >"$SP/.relay-$CID"
mkdir -p "$T/spq/tmp/$CID"
printf 'half written' >"$T/spq/tmp/$CID/message"
N0=$(msg_count sp)
run_relay -C "$T/sp.conf" -q
assert_exit 0 "crash claim: relay -q exits 0"
assert_lacks "$(cat "$RELAY_ERR")" "left for the next run" \
    "crash claim: not left for the next run"
if wait_msgs sp $((N0 + 1)) 5; then
	assert_file_contains "$SMARTHOST_sp_OUT/$((N0 + 1)).eml" CRASHED-CLAIM \
	    "crash claim: taken in and sent at once"
else
	fail "crash claim: taken in and sent at once" "$(cat "$RELAY_ERR")"
fi
check_not "crash claim: the claim file is gone" test -e "$SP/.relay-$CID"
check_not "crash claim: its tmp/ID is gone" test -e "$T/spq/tmp/$CID"

# ---- spool: only root's run of the setgid install takes it in -----------------

G=mail
NOBODY=65534
WWW=33
AS=$TESTDIR/privs_as.sh
skip_setgid() {
	echo "ok # skip setgid spool intake: $*"
	t_done
}
setgid_relay skip_setgid

start_smarthost g --mode smtps
cp "$PKI/ca.crt" "$T/files/ca.crt"
printf '%s\n' "$T_PASS" >"$T/files/password"
GSP=$T/gspool
# No "from": the sender would be made from the runner's login.
write_conf_for g "$T/etc/relay.conf" password - \
    password_file "$T/files/password" ca_file "$T/files/ca.crt" \
    queue "$T/gq" spool "$GSP" domain example.org
install -d -o root -g "$G" -m 2770 "$T/gq"
# The producers' directory, www-data's, open to the group.
install -d -o $WWW -g "$G" -m 2770 "$GSP"
chown "root:$G" "$T/etc/relay.conf" "$T/files/password" "$T/files/ca.crt"
chmod 640 "$T/etc/relay.conf" "$T/files/password" "$T/files/ca.crt"
echo probe >"$T/etc/relay-probe"
chmod 644 "$T/etc/relay-probe"
out=$(bash "$AS" "$T/etc" $NOBODY $NOBODY cat /etc/relay-probe 2>&1)
[ "$out" = probe ] ||
    skip_setgid "no mount namespace with an overlay on /etc here: $out"

as() {	# UID ARGS...: run_relay with the setgid relay as UID
	local uid=$1
	shift
	RELAY=$SG RELAY_PREFIX="bash $AS $T/etc $uid $uid" run_relay "$@"
}
printf 'To: spooled@example.net\nSubject: spooled\n\nSPOOL-BODY\n' \
    >"$GSP/.w" && mv "$GSP/.w" "$GSP/dropped"
chown $WWW "$GSP/dropped"

printf 'Subject: own\n\nOWN-BODY\n' | as $NOBODY to@example.org
assert_exit 0 "setgid, nobody's submission: exit 0"
check "setgid, nobody's submission: the spool left alone" test -e "$GSP/dropped"
assert_lacks "$(cat "$RELAY_ERR")" "spooled@" \
    "setgid, nobody's submission: no spooled recipient on its stderr"
as $NOBODY -q
assert_exit 0 "setgid, nobody's -q: exit 0"
check "setgid, nobody's -q: the spool left alone" test -e "$GSP/dropped"
assert_lacks "$(cat "$RELAY_ERR")" "spooled@" \
    "setgid, nobody's -q: no spooled recipient on its stderr"
N0=$(msg_count g)
as 0 -q
assert_exit 0 "setgid, root's -q: exit 0"
check_not "setgid, root's -q: takes the spool in" test -e "$GSP/dropped"
N=$(grep -l SPOOL-BODY "$SMARTHOST_g_OUT"/*.eml 2>/dev/null | head -1)
N=${N##*/}
N=${N%.eml}
if [ -n "$N" ]; then
	assert_eq "$(msg_json g "$N" mail_from)" MAILER-DAEMON@example.org \
	    "setgid spool file: the fixed sender MAILER-DAEMON@domain"
	assert_eq "$(field "$SMARTHOST_g_OUT/$N.eml" From)" \
	    "From: <MAILER-DAEMON@example.org>" \
	    "setgid spool file: From: the fixed sender, no runner's name"
else
	fail "setgid spool file: sent" "$(cat "$RELAY_ERR")"
fi
assert_log "setgid spool file" "to=<spooled@example.net>" "status=sent " \
    "uid=$WWW( |$)"
t_done
