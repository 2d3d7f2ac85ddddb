#!/bin/bash
# Names and what callers write (issue 11): local names that arrive
# qualified (root@HOST, as GNU mailutils writes them), sender control for
# providers (allow_from_override, set_from_header), the default EHLO name
# and the domain of generated addresses (never a bare host name), -t with
# Resent- headers, a leading mbox "From " line, MIME labels for an 8-bit
# body, and input after a lone ".".  Every relay runs in a UTS namespace
# whose host name is "vm", so that nothing depends on this machine's name,
# against a smarthost that refuses what is not fully qualified, as a
# Postfix with reject_non_fqdn_* does.
. "$(dirname "$0")/lib.sh"
t_setup

if ! unshare --uts true 2>/dev/null; then
	ok "# skip names: unshare --uts is not allowed here"
	t_done
fi
cat >"$T/ashost" <<'EOF'
#!/bin/sh
# ashost NAME COMMAND...: run COMMAND with host name NAME (in a new UTS
# namespace: unshare --uts ashost NAME ...).
name=$1
shift
hostname "$name" || exit 71
exec "$@"
EOF
chmod +x "$T/ashost"
RELAY_PREFIX="unshare --uts $T/ashost vm"

start_smarthost strict --mode smtps --strict-fqdn --reject-rcpt refused
OUT=$SMARTHOST_strict_OUT

# conf NAME [KEY VALUE]...: $T/NAME.conf for the strict smarthost, from
# sender@example.org and helo relay.example.net unless given (the tests
# of the default EHLO name give "helo -"); sets CONF.
conf() {
	CONF=$T/$1.conf
	shift
	write_conf_for strict "$CONF" from sender@example.org \
	    helo relay.example.net "$@"
}

# deliver ARGS...: message on stdin to the strict smarthost with $CONF.
deliver() { deliver_to strict -C "$CONF" "$@"; }

# hdr NAME: the unfolded field(s) NAME of $EML, values only.
hdr() { field "$EML" "$1" | sed 's/^[^:]*: *//'; }

# ---- 1. local names that arrive qualified --------------------------------

# GNU mailutils with two recipients: To: <root@HOST> and -f root@HOST.
conf local domain example.org alias "root admin@example.org"
printf 'To: <root@vm>, other@example.org\nFrom: root@vm\nSubject: mu\n\nmailutils body\n' |
    deliver -f root@vm root@vm other@example.org
assert_exit 0 "mailutils root@vm: delivered past reject_non_fqdn_*"
assert_eq "$(msg_json strict "$N" mail_from)" sender@example.org \
    "-f root@vm: the envelope sender is from"
assert_eq "$(msg_json strict "$N" rcpt_tos)" \
    "admin@example.org other@example.org" \
    "root@vm aliased in the envelope, as root is"
assert_eq "$(hdr To)" "<admin@example.org>, other@example.org" \
    "To: <root@vm> aliased in the header"
assert_eq "$(hdr From)" "sender@example.org" \
    "From: root@vm becomes the envelope sender"

# localhost, local_domains, a name with no alias: qualified with domain.
conf locald domain example.org alias "root admin@example.org" \
    local_domains "vm.lan, mail.vm.lan"
printf 'Cc: Bob <bob@LOCALHOST>, carol@mail.vm.lan\nSubject: ld\n\nlocal_domains\n' |
    deliver -f carol@vm.lan -t root@localhost
assert_exit 0 "localhost and local_domains: delivered"
assert_eq "$(msg_json strict "$N" rcpt_tos)" \
    "admin@example.org bob@example.org carol@example.org" \
    "localhost and local_domains names aliased or qualified with domain"
assert_eq "$(hdr Cc)" "Bob <bob@example.org>, carol@example.org" \
    "local_domains names qualified in the header"
assert_eq "$(msg_json strict "$N" mail_from)" sender@example.org \
    "-f at a local_domains name: the envelope sender is from"

conf baddom local_domains "vm@lan"
printf 'Subject: x\n\nx\n' | run_relay -C "$CONF" a@example.org
assert_exit 78 "local_domains with an address: config error"
assert_error "local_domains vm@lan" "baddom.conf:" "local_domains" \
    "not a domain name"

# ---- 2. sender control ---------------------------------------------------

conf force allow_from_override no
printf 'Subject: fo\n\nforced sender\n' |
    deliver -f alice@other.example to@example.org
assert_exit 0 "allow_from_override no: delivered"
assert_eq "$(msg_json strict "$N" mail_from)" sender@example.org \
    "allow_from_override no: -f alice@other.example gives way to from"

conf forcenofrom from - allow_from_override no
printf 'Subject: x\n\nx\n' | run_relay -C "$CONF" to@example.org
assert_exit 78 "allow_from_override no without from: config error"
assert_error "allow_from_override no without from" "forcenofrom.conf:" \
    "allow_from_override no needs \"from\""

conf sfh set_from_header on
printf 'From: "Alice Example" <alice@other.example>\nSubject: sfh\n\nrewritten\n' |
    deliver -f alice@other.example to@example.org
assert_exit 0 "set_from_header on: delivered"
assert_eq "$(hdr From)" '"Alice Example" <sender@example.org>' \
    "set_from_header on: From: is from, with the display name kept"
assert_eq "$(hdr Reply-To)" '"Alice Example" <alice@other.example>' \
    "set_from_header on: the caller's address moves to Reply-To"

printf 'From: alice@other.example\nReply-To: list@example.org\nSubject: sfh2\n\nkept\n' |
    deliver to@example.org
assert_eq "$(hdr From)" "<sender@example.org>" \
    "set_from_header on: From: without a display name"
assert_eq "$(hdr Reply-To)" "list@example.org" \
    "set_from_header on: an existing Reply-To stays, alone"

printf 'From: Me <SENDER@example.org>\nSubject: sfh3\n\nsame\n' |
    deliver to@example.org
assert_eq "$(field "$EML" Reply-To | wc -l)" 0 \
    "set_from_header on: no Reply-To when From: was from already"

printf 'Subject: sfh4\n\nnone\n' | deliver -F "Cron Daemon" \
    -f alice@other.example to@example.org
assert_eq "$(hdr From)" "Cron Daemon <sender@example.org>" \
    "set_from_header on: a missing From: is added as from"

conf sfhoff set_from_header off
printf 'Subject: off\n\nno from\n' | deliver to@example.org
assert_eq "$(field "$EML" From | wc -l)" 0 \
    "set_from_header off: no From: added"

conf sfhnofrom from - domain example.org set_from_header on
printf 'Subject: x\n\nx\n' | run_relay -C "$CONF" to@example.org
assert_exit 78 "set_from_header on without from: config error"
assert_error "set_from_header on without from" "set_from_header on needs"

# ---- 3. EHLO name and generated addresses --------------------------------

ehlos() { grep -c '^ehlo ' "$OUT/events.log"; }
before=$(ehlos)
conf literal helo -
printf 'Subject: lit\n\nliteral\n' | deliver to@example.org
assert_exit 0 "host name vm, no domain: delivered past reject_non_fqdn_helo"
last=$(grep '^ehlo ' "$OUT/events.log" | tail -n 1 | awk '{ print $3 }')
if [ "$(ehlos)" -gt "$before" ]; then
	assert_match "$last" '^\[(127\.0\.0\.1|IPv6:::1)\]$' \
	    "no FQDN and no domain: EHLO gives the socket's address literal"
else
	fail "no FQDN and no domain: EHLO gives the socket's address literal" \
	    "no EHLO accepted" "$(tail -n 5 "$OUT/events.log")"
fi

conf withdomain helo - domain example.org
printf 'Subject: dom\n\ndomain\n' | deliver to@example.org
last=$(grep '^ehlo ' "$OUT/events.log" | tail -n 1 | awk '{ print $3 }')
assert_eq "$last" example.org "no FQDN: EHLO gives domain"

conf nullsender helo -
printf 'Subject: null\n\nnull sender\n' | deliver -f '<>' to@example.org
assert_match "$(hdr Message-ID)" '@example\.org>$' \
    "null sender, host name vm: the Message-ID is at from's domain"

# A partial refusal: the bounce is sent at once, as the next message.
conf bounce helo -
printf 'Subject: b\n\nbounce me\n' | deliver to@example.org refused@example.org
assert_exit 0 "one recipient of two refused: exit 0"
if wait_msgs strict $((N + 1)); then
	EML=$OUT/$((N + 1)).eml
	assert_eq "$(hdr From)" \
	    "Mail Delivery System <MAILER-DAEMON@example.org>" \
	    "bounce From: MAILER-DAEMON at from's domain, not @vm"
	assert_match "$(hdr Message-ID)" '@example\.org>$' \
	    "bounce Message-ID not @vm"
	assert_file_lacks "$EML" "@vm>" "bounce: no address at the bare host name"
else
	fail "bounce From: MAILER-DAEMON at from's domain, not @vm" "no bounce"
fi

# ---- 4. -t with Resent- headers, a leading mbox From line ----------------

conf resent
printf 'To: orig@example.org\nResent-To: new@example.org\nResent-Bcc: hidden@example.org\nSubject: resent\n\nresent body\n' |
    deliver -t
assert_exit 0 "-t with Resent-To: delivered"
assert_eq "$(msg_json strict "$N" rcpt_tos)" \
    "new@example.org hidden@example.org" \
    "-t takes Resent-To and Resent-Bcc, not To"
assert_file_lacks "$EML" "hidden@" "Resent-Bcc removed"
assert_file_contains "$EML" "To: orig@example.org" "To: kept as it is"

printf 'From someone@example.org Mon Jan  1 00:00:00 2024\nTo: mbox@example.org\nSubject: mbox\n\nmbox body\n' |
    deliver -t
assert_exit 0 "-t with a leading mbox From line: delivered"
assert_eq "$(msg_json strict "$N" rcpt_tos)" mbox@example.org \
    "mbox From line: the header after it is the header"
assert_file_lacks "$EML" "From someone" "mbox From line dropped, not body"
assert_eq "$(hdr Subject)" mbox "mbox From line: Subject: read as a field"

# ---- 5. MIME labels for an 8-bit body -------------------------------------

conf mime
printf 'Subject: utf8\n\ncaf\xc3\xa9\n' | deliver to@example.org
assert_eq "$(hdr MIME-Version)" 1.0 "8-bit body: MIME-Version added"
assert_eq "$(hdr Content-Type)" "text/plain; charset=utf-8" \
    "valid UTF-8 body: charset=utf-8"
assert_eq "$(hdr Content-Transfer-Encoding)" 8bit \
    "8-bit body: Content-Transfer-Encoding 8bit"

printf 'Subject: latin1\n\ncaf\xe9\n' | deliver to@example.org
assert_eq "$(hdr Content-Type)" "text/plain; charset=unknown-8bit" \
    "8-bit body, not UTF-8: charset=unknown-8bit (RFC 1428)"

printf 'Subject: labelled\nContent-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n' |
    deliver to@example.org
assert_eq "$(field "$EML" MIME-Version | wc -l)" 0 \
    "a Content-Type given: nothing added"

printf 'Subject: ascii\n\nplain\n' | deliver to@example.org
assert_eq "$(field "$EML" Content-Type | wc -l)" 0 \
    "7-bit body: no MIME headers added"

start_smarthost no8 --mode smtps --strip 8BITMIME
write_conf_for no8 "$T/no8.conf" from sender@example.org \
    helo relay.example.net
printf 'Subject: utf8 qp\n\ncaf\xc3\xa9\n' | deliver_to no8 -C "$T/no8.conf" \
    to@example.org
assert_eq "$(field "$EML" Content-Type)" \
    "Content-Type: text/plain; charset=utf-8" \
    "no 8BITMIME: charset=utf-8 kept"
assert_eq "$(field "$EML" Content-Transfer-Encoding)" \
    "Content-Transfer-Encoding: quoted-printable" \
    "no 8BITMIME: one Content-Transfer-Encoding, quoted-printable"

# ---- 6. input after a lone "." ---------------------------------------------

conf dot
printf 'Subject: dot\n\nline one\n.\nline two\n' | deliver to@example.org
assert_exit 0 "lone dot with more input: delivered"
assert_file_lacks "$EML" "line two" "lone dot ends the message"
assert_log "input after a lone dot" "status=sent" \
    "note=\"[^\"]*input after a lone '.' line was ignored"
assert_eq "$(grep -c 'input after a lone' "$RELAY_ERR")" 2 \
    "stderr: one warning, besides the log record"

printf 'Subject: dot2\r\n\r\nline one\r\n.\r\n' | deliver to@example.org
assert_exit 0 "lone dot at the end, CRLF: delivered"
assert_eq "$(grep -c 'lone' "$RELAY_ERR")" 0 \
    "lone dot ending the input: nothing said"

# ---- 7. the manual --------------------------------------------------------

check "relay.8: header lines without white space are folded inside the word" \
    grep -q 'no white space' "$TOP/relay.8"

t_done
