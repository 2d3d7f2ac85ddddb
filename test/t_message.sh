#!/bin/bash
# Message pathologies (callers-and-test-servers.md section 2) against the
# aiosmtpd smarthost, which refuses lines over 1000 octets: NUL, bare CR,
# long lines (quoted-printable or folded), lone dot, no final newline,
# mixed line ends, 8-bit, empty body, headers only, long header lines, a
# hard -t header block, and addresses that must be refused before any
# connection is made.
. "$(dirname "$0")/lib.sh"
t_setup

# assert_maxline FILE NAME: no line over 998 octets.
assert_maxline() {
	local n
	n=$(eml maxline "$1" 2>&1)
	if [[ $n =~ ^[0-9]+$ ]] && [ "$n" -le 998 ]; then
		ok "$2"
	else
		fail "$2" "longest line: $n octets"
	fi
}

# deliver ARGS...: deliver_to main with $CONF; sets N and EML.
deliver() { deliver_to main -C "$CONF" "$@"; }

# When relay changed the message on the way, its log record says how.
# assert_note NOTE NAME: the last run's stderr is exactly one log record,
# status=sent, in the queue's form (id= and attempts=) and ending with
# note="NOTE".
LOGQ="status=sent reply=\"[^\"]*\" duration=[0-9]+\.[0-9]{2}s id=[0-9a-f]{14} attempts=1 uid=$(id -u)"
assert_note() {
	local got re
	got=$(cat "$RELAY_ERR")
	re="^relay: from=<[^ ]*> to=[^ ]+ size=[0-9]+ relay=[^ ]+ $LOGQ note=\"$1\"\$"
	if [[ $got =~ $re ]]; then
		ok "$2"
	else
		fail "$2" "want one record ending note=\"$1\"; stderr:" "$got"
	fi
}

start_smarthost main --mode smtps
CONF=$T/relay.conf
write_conf_for main "$CONF" from sender@example.org
EV=$SMARTHOST_main_OUT/events.log

# ---- refused before connecting ----------------------------------------------

# refused CODE NAME REASON ARGS...: relay exits CODE, says REASON on one
# line, sends nothing and never connects.  Runs before any delivery, so the
# smarthost must have seen nothing at all.
refused() {
	local code=$1 name=$2 reason=$3
	shift 3
	run_relay -C "$CONF" "$@"
	assert_exit "$code" "$name: exit $code"
	assert_eq "$(wc -l <"$RELAY_ERR")" 1 "$name: one line on stderr"
	assert_file_contains "$RELAY_ERR" "$reason" "$name: says \"$reason\""
	assert_eq "$(msg_count main)" 0 "$name: nothing stored"
	assert_file_lacks "$EV" "accept" "$name: no connection"
}
msg() { printf 'Subject: refused\n\nbody\n'; }

msg | refused 65 "CRLF in an argv recipient" "line break" \
    $'victim@example.org\r\nRCPT TO:<evil@example.org>'
assert_file_lacks "$RELAY_ERR" $'\r' "CRLF in an argv recipient: no raw CR in the message"
msg | refused 65 "LF in an argv recipient" "line break" \
    $'victim@example.org\nRCPT TO:<evil@example.org>'
msg | refused 65 "CRLF in -f" "line break" \
    -f $'a@example.org\r\nRCPT TO:<evil@example.org>' bob@example.org
msg | refused 65 "'>' inside a bare address" "unexpected '>'" 'bob>@example.org'
msg | refused 65 "'<' without '>'" "missing '>'" '<bob@example.org'
msg | refused 65 "'>' after a bare address" "unexpected '>'" 'bob@example.org>'
msg | refused 65 "non-ASCII argv recipient" "non-ASCII" $'j\303\266rg@example.org'
printf 'To: j\303\266rg@example.org\nSubject: x\n\nb\n' |
    refused 65 "non-ASCII To: with -t" "non-ASCII" -t
msg | refused 65 "local part over 64 octets" "longer than 64" \
    "$(printf 'a%.0s' {1..65})@example.org"
msg | refused 67 "unaliased local name, no domain" "no alias and no domain" alice
printf 'To: alice\nSubject: x\n\nb\n' |
    refused 67 "unaliased local name in To: with -t" "no alias and no domain" -t
printf 'Subject: no recipients\nFrom: a@example.org\n\nb\n' |
    refused 65 "-t without recipient headers" "no recipient addresses found" -t
msg | refused 64 "no recipients at all" "no recipients given"
printf 'To: \nCc: undisclosed-recipients:;\nSubject: x\n\nb\n' |
    refused 65 "-t with only empty To: and an empty group" "no recipient addresses found" -t
printf 'Subject: x\nX-Nul: a\000b\n\nbody\n' |
    refused 65 "NUL in a header field" "NUL" bob@example.org
printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain\n\nnul\000byte\n--B--\n' |
    refused 65 "NUL in a multipart message" "NUL" bob@example.org

# ---- NUL byte and long lines: quoted-printable ------------------------------------

# qp_case NAME INPUT-BODY-FILE HEADERS: the single-part body comes back
# exactly after QP decoding.
qp_case() {
	local name=$1 bodyfile=$2 headers=$3
	{ printf '%s' "$headers"; printf '\n'; cat "$bodyfile"; } >"$T/$name.in"
	deliver -i bob@example.org <"$T/$name.in"
	assert_exit 0 "$name: exit 0"
	assert_eq "$(field "$EML" Content-Transfer-Encoding)" \
	    "Content-Transfer-Encoding: quoted-printable" \
	    "$name: one Content-Transfer-Encoding: quoted-printable"
	assert_eq "$(field "$EML" MIME-Version)" "MIME-Version: 1.0" \
	    "$name: MIME-Version: 1.0"
	assert_maxline "$EML" "$name: no line over 998 octets"
	assert_crlf "$EML" "$name: CRLF only"
	eml norm "$bodyfile" >"$T/$name.want"
	eml qp "$EML" >"$T/$name.got" 2>"$T/$name.qp.err"
	assert_eq "$(cat "$T/$name.qp.err")" "" "$name: QP lines within 76 octets"
	assert_same "$T/$name.got" "$T/$name.want" \
	    "$name: the QP body decodes to exactly the original (CRLF lines)"
	assert_eq "$(msg_json main "$N" mail_options)" "SIZE=$(stat -c %s "$EML")" \
	    "$name: 7-bit on the wire: no BODY=8BITMIME"
}

printf 'before\000after\nline two\n.\n\000\nlast' >"$T/nul.body"
qp_case nul "$T/nul.body" 'From: root (Cron Daemon)
To: bob@example.org
Subject: Cron <root@vm> job
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit
'
assert_eq "$(field "$EML" Content-Type)" "Content-Type: text/plain; charset=UTF-8" \
    "nul: Content-Type kept"
assert_file_contains "$EML" "before=00after" "nul: NUL written as =00"
assert_note "body converted to quoted-printable: 0 lines over 998 octets, 2 NULs" \
    "nul: the log line has note="

{ printf 'short line\n'; eml gen long; printf '\n.leading dot\ntrailing blank \ntab\tend\t\n'
  printf 'caf\303\251 = 1\nFrom the start\n'; } >"$T/long.body"
qp_case long "$T/long.body" 'Subject: long line
'
assert_eq "$(field "$EML" Content-Type)" "Content-Type: text/plain; charset=utf-8" \
    "long: Content-Type added, charset from the bytes"
assert_note "body converted to quoted-printable: 1 line over 998 octets, 0 NULs" \
    "long: the log line has note="
assert_file_contains "$EML" "trailing blank=20" "long: trailing blank encoded"

# The note in the other forms of the log record: without a queue (no id=,
# no attempts=); and with one, when the message was queued first and sent
# by a queue run, which logs the note the entry kept.
write_conf_for main "$T/noq.conf" from sender@example.org queue none
deliver_to main -C "$T/noq.conf" -i bob@example.org <"$T/nul.in"
assert_exit 0 "nul, queue none: exit 0"
assert_match "$(cat "$RELAY_ERR")" \
    "^relay: from=<sender@example\.org> to=<bob@example\.org> size=[0-9]+ relay=[^ ]+ status=sent reply=\"[^\"]*\" duration=[0-9]+\.[0-9]{2}s uid=$(id -u) note=\"body converted to quoted-printable: 0 lines over 998 octets, 2 NULs\"$" \
    "nul, queue none: the log record has note="
start_smarthost later --mode smtps --fault dot:451:1
QDIR=$T/qlater
write_conf_for later "$T/later.conf" from sender@example.org queue "$QDIR"
run_relay -C "$T/later.conf" -i bob@example.org <"$T/nul.in"
assert_exit 0 "nul, 451 at first: exit 0 (queued)"
id=$(q_ids | head -n 1)
assert_file_matches "$RELAY_ERR" \
    "^relay: from=<sender@example\.org> .* status=deferred .* id=${id:-ID} attempts=1 uid=[0-9]+ note=\"body converted to quoted-printable: 0 lines over 998 octets, 2 NULs\" error=" \
    "nul, 451 at first: the deferred attempt's record has note="
run_relay -C "$T/later.conf" -qf </dev/null
assert_exit 0 "nul, sent by -qf: exit 0"
assert_match "$(cat "$RELAY_ERR")" \
    "^relay: from=<sender@example\.org> to=<bob@example\.org> size=[0-9]+ relay=[^ ]+ status=sent reply=\"[^\"]*\" duration=[0-9]+\.[0-9]{2}s id=${id:-ID} attempts=2 uid=[0-9]+ note=\"body converted to quoted-printable: 0 lines over 998 octets, 2 NULs\"$" \
    "nul, sent by -qf: the record still has note="
if wait_msgs later 1 5; then
	eml qp "$(srv_out later)/1.eml" >"$T/later.got" 2>/dev/null
	assert_same "$T/later.got" "$T/nul.want" \
	    "nul, sent by -qf: the QP body decodes to exactly the original"
else
	fail "nul, sent by -qf: the QP body decodes to exactly the original" \
	    "nothing stored"
fi
assert_eq "$(q_count) $(q_count failed)" "0 0" "nul, sent by -qf: removed from the queue"
unset QDIR
{ printf 'Subject: 998\nFrom: a@example.org\n\n'; printf 'y%.0s' {1..998}; printf '\n'; } >"$T/998.in"
deliver bob@example.org <"$T/998.in"
assert_exit 0 "998-octet line: exit 0"
assert_eq "$(eml body "$EML")" "$(printf 'y%.0s' {1..998})"$'\r' \
    "998-octet line: sent unchanged"
assert_file_lacks "$RELAY_ERR" "note=" "998-octet line: no note"
{ printf 'y%.0s' {1..999}; printf '\n'; } >"$T/999.body"
qp_case 999 "$T/999.body" 'Subject: 999
'
assert_note "body converted to quoted-printable: 1 line over 998 octets, 0 NULs" \
    "999-octet line: converted, with note="

# ---- multipart and already encoded: folded ----------------------------------------

{ printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="BOUNDARY"\nSubject: multipart long\n\n'
  printf -- '--BOUNDARY\nContent-Type: text/plain\n\n'; eml gen long
  printf '\n--BOUNDARY\nContent-Type: text/html\n\n<p>short</p>\n--BOUNDARY--\n'; } >"$T/mp.in"
deliver -i bob@example.org <"$T/mp.in"
assert_exit 0 "multipart long line: exit 0"
assert_maxline "$EML" "multipart long line: no line over 998 octets"
assert_crlf "$EML" "multipart long line: CRLF only"
eml norm "$T/mp.in" >"$T/mp.crlf"
eml body "$T/mp.crlf" >"$T/mp.want"
eml unfold "$EML" >"$T/mp.got"
assert_same "$T/mp.got" "$T/mp.want" "multipart long line: content kept but for the inserted CRLF SP"
long=$(eml gen long)
assert_eq "$(printf '\r\n%s\r\n %s\r\n--BOUNDARY\r\n' "${long:0:998}" "${long:998}" |
    eml has "$EML")" yes "multipart long line: folded after 998 octets with CRLF SP"
assert_eq "$(field "$EML" Content-Transfer-Encoding)" "" \
    "multipart long line: no transfer encoding added"
assert_note "1 body line over 998 octets folded" \
    "multipart long line: the log line has note="

{ printf 'MIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\nSubject: b64\n\n'
  eml gen b64line; printf '\n'; } >"$T/b64.in"
deliver bob@example.org <"$T/b64.in"
assert_exit 0 "base64 long line: exit 0"
assert_maxline "$EML" "base64 long line: no line over 998 octets"
assert_eq "$(field "$EML" Content-Transfer-Encoding)" "Content-Transfer-Encoding: base64" \
    "base64 long line: stays base64, not re-encoded"
eml norm "$T/b64.in" >"$T/b64.crlf"
eml b64 "$T/b64.crlf" >"$T/b64.want"
eml b64 "$EML" >"$T/b64.got"
assert_same "$T/b64.got" "$T/b64.want" "base64 long line: decodes to the same data"

# ---- line ends, dots, 8-bit, empty ------------------------------------------------

printf 'Subject: bare CR\nFrom: a@example.org\n\nprogress 10%%\rprogress 100%%\rdone\r\n' |
    deliver bob@example.org
assert_exit 0 "bare CR: exit 0"
assert_eq "$(eml body "$EML" | od -An -c | tr -s ' ')" \
    "$(printf 'progress 10%%\r\nprogress 100%%\r\ndone\r\n' | od -An -c | tr -s ' ')" \
    "bare CR: each bare CR ends a line, sent as CRLF"
assert_crlf "$EML" "bare CR: no bare CR or LF on the wire"

printf 'Subject: dot\nFrom: a@example.org\n\n.\n..\n.\n' | deliver -i bob@example.org
assert_exit 0 "lone dot: exit 0"
assert_eq "$(eml body "$EML" | od -An -c | tr -s ' ')" \
    "$(printf '.\r\n..\r\n.\r\n' | od -An -c | tr -s ' ')" \
    "lone dot: '.', '..', '.' arrive as written with -i"

printf 'Subject: no newline\nFrom: a@example.org\n\nlast line without newline' |
    deliver bob@example.org
assert_exit 0 "no final newline: exit 0"
assert_eq "$(eml body "$EML" | od -An -c | tr -s ' ')" \
    "$(printf 'last line without newline\r\n' | od -An -c | tr -s ' ')" \
    "no final newline: one CRLF added"

printf 'To: bob@example.org\r\nSubject: mixed\r\nFrom: a@example.org\r\n\r\nline 1\nline 2\n\nline 4\n' |
    deliver bob@example.org
assert_exit 0 "CRLF headers, LF body: exit 0"
{ printf 'To: bob@example.org\r\nSubject: mixed\r\nFrom: a@example.org\r\n'; added
  printf '\r\nline 1\r\nline 2\r\n\r\nline 4\r\n'; } >"$T/mixed.want"
assert_same "$EML" "$T/mixed.want" "CRLF headers, LF body: all CRLF, nothing else changed"

printf 'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\nFrom: a@example.org\nContent-Type: text/plain; charset=UTF-8\n\nGr\303\274\303\237e, \342\202\254 5\n\360\237\230\200\n' \
    >"$T/utf8.in"
deliver bob@example.org <"$T/utf8.in"
assert_exit 0 "8-bit UTF-8 body: exit 0"
assert_eq "$(eml body "$EML" | od -An -tx1 | tr -d ' \n')" \
    "$(printf 'Gr\303\274\303\237e, \342\202\254 5\r\n\360\237\230\200\r\n' | od -An -tx1 | tr -d ' \n')" \
    "8-bit UTF-8 body: bytes unchanged"
assert_eq "$(msg_json main "$N" mail_options)" "SIZE=$(stat -c %s "$EML") BODY=8BITMIME" \
    "8-bit UTF-8 body: BODY=8BITMIME"
assert_eq "$(field "$EML" Content-Transfer-Encoding)" "" "8-bit UTF-8 body: not re-encoded"
assert_file_lacks "$RELAY_ERR" "note=" "8-bit UTF-8 body: no note in the log line"

printf 'Subject: \303\274ber\nFrom: a@example.org\n\nascii body\n' | deliver bob@example.org
assert_exit 0 "8-bit header, 7-bit body: exit 0"
assert_eq "$(msg_json main "$N" mail_options)" "SIZE=$(stat -c %s "$EML") BODY=8BITMIME" \
    "8-bit header, 7-bit body: BODY=8BITMIME"
assert_eq "$(field "$EML" Subject | od -An -tx1 | tr -d ' \n')" \
    "$(printf 'Subject: \303\274ber\n' | od -An -tx1 | tr -d ' \n')" \
    "8-bit header: bytes unchanged"

printf 'Subject: empty\nFrom: a@example.org\n\n' | deliver bob@example.org
assert_exit 0 "empty body: exit 0"
{ printf 'Subject: empty\r\nFrom: a@example.org\r\n'; added; printf '\r\n'; } >"$T/empty.want"
assert_same "$EML" "$T/empty.want" "empty body: header block and the empty line only"

printf 'Subject: headers only\nFrom: a@example.org\nX-Only: yes' | deliver bob@example.org
assert_exit 0 "headers only: exit 0"
{ printf 'Subject: headers only\r\nFrom: a@example.org\r\nX-Only: yes\r\n'; added
  printf '\r\n'; } >"$T/honly.want"
assert_same "$EML" "$T/honly.want" "headers only, no final newline: header block and empty line"

deliver bob@example.org </dev/null
assert_exit 0 "empty input: exit 0"
assert_eq "$(eml head "$EML" | cut -d: -f1 | tr -d '\r' | tr '\n' ' ')" \
    "From Date Message-ID " "empty input: From, Date, Message-ID added"
assert_eq "$(eml body "$EML" | wc -c)" 0 "empty input: empty body"

# ---- header lines over 998 octets ------------------------------------------------------

addrs=$(eml gen addrs)
printf 'From: a@example.org\nTo: %s\nSubject: many\n\nb\n' "$addrs" | deliver -t
assert_exit 0 "long To: exit 0"
assert_maxline "$EML" "long To: no line over 998 octets"
assert_eq "$(field "$EML" To)" "To: $addrs" "long To: folded at blanks only (unfolds to the original)"
assert_eq "$(msg_json main "$N" rcpt_tos)" "$(tr -d ',' <<<"$addrs")" \
    "long To: all 60 recipients"
assert_note "1 header field with lines over 998 octets folded" \
    "long To: the log line has note="
# The log line names recipients: a list cut short must not show half an
# address as if it were one.
bad=$(sed -n 's/.* to=\([^ ]*\) size=.*/\1/p' "$RELAY_ERR" | tr ',' '\n' |
    grep '^<' | grep -vxE '<user[0-9]{2}@example\.org>')
assert_eq "$bad" "" "long To: the log line's to= holds only whole addresses"

words=$(eml gen words)
printf 'From: a@example.org\nSubject: %s\n\nb\n' "$words" | deliver bob@example.org
assert_exit 0 "long Subject: exit 0"
assert_maxline "$EML" "long Subject: no line over 998 octets"
assert_eq "$(field "$EML" Subject)" "Subject: $words" "long Subject: unfolds to the original"

# The limit itself for a header line: 998 octets stay, 999 are folded.
edge=$(printf 'e%.0s' {1..980})
printf 'From: a@example.org\nX-Edge: 123456789 %s\nX-Over: 1234567890 %s\n\nb\n' "$edge" "$edge" |
    deliver bob@example.org
assert_exit 0 "header lines of 998 and 999 octets: exit 0"
assert_eq "$(eml head "$EML" | grep -c '^X-Edge: 123456789 e*'$'\r''$')" 1 \
    "header line of 998 octets: not folded"
assert_eq "$(eml head "$EML" | grep -A1 '^X-Over:' | tr -d '\r' | tr '\n' '|')" \
    "X-Over: 1234567890| $edge|" "header line of 999 octets: folded at the blank"

solid=$(eml gen solid)
printf 'From: a@example.org\nX-Solid: %s\n\nb\n' "$solid" | deliver bob@example.org
assert_exit 0 "long field without blanks: exit 0"
assert_maxline "$EML" "long field without blanks: no line over 998 octets"
assert_eq "$(eml head "$EML" | tr -d '\r\n' | grep -o 'X-Solid: [S ]*' | tr -d ' ')" \
    "X-Solid:$solid" "long field without blanks: broken with CRLF SP, nothing lost"

# ---- a hard -t header block ------------------------------------------------------------

cat >"$T/hard.in" <<'EOF'
From: Sender <sender@example.org>
To: "Doe, John" <john@example.org>,
 jane@example.org (Jane Roe), Group One: anne@example.org,
	"Bob \"the builder\" Smith" <bob@example.org>;, undisclosed-recipients:;
Cc: (leading comment) <carl@example.org> (trailing, comment),
  "quoted@name" <dora@example.org>
To: eve@example.org
Bcc: hidden@example.org,
 "Another, Hidden" <hidden2@example.org>
To: <@route.example,@two.example:frank@example.org>
Cc: Gina <gina@example.org>,
	john@example.org, "odd local"@example.org, J\303\266rg <joerg@example.org>
Cc: =?UTF-8?Q?J=C3=B6rg?= <j2@example.org>, lit@[192.0.2.1],
 x(comment)@(another)example.org, J. R. Doe <jrd@example.org>
Date: Sun, 22 Nov 2026 10:00:00 +0000
Message-ID: <hard@example.org>
Subject: hard headers

body
EOF
printf '%b' "$(cat "$T/hard.in")\n" >"$T/hard.in.tmp" && mv "$T/hard.in.tmp" "$T/hard.in"
deliver -t <"$T/hard.in"
assert_exit 0 "hard -t block: exit 0"
assert_eq "$(msg_json main "$N" rcpt_tos)" \
    "john@example.org jane@example.org anne@example.org bob@example.org carl@example.org dora@example.org eve@example.org hidden@example.org hidden2@example.org frank@example.org gina@example.org \"odd local\"@example.org joerg@example.org j2@example.org lit@[192.0.2.1] x@example.org jrd@example.org" \
    "hard -t block: exactly the recipients, in order, repeated one once"
"$PY" - "$T/hard.in" >"$T/hard.want" <<'EOF'
import re, sys
d = open(sys.argv[1], "rb").read().replace(b"\n", b"\r\n")
d = re.sub(rb"Bcc:.*\r\n( .*\r\n)*", b"", d)
sys.stdout.buffer.write(d)
EOF
assert_same "$EML" "$T/hard.want" "hard -t block: Bcc and its folded line gone, the rest unchanged"


# ---- a smarthost without 8BITMIME (RFC 6152 3) -----------------------------
# A single-part 8-bit body becomes quoted-printable; what cannot be
# re-encoded (a multipart body, 8-bit headers) goes as it is.

start_smarthost seven --mode smtps --strip 8BITMIME
SEVEN=$T/seven.conf
write_conf_for seven "$SEVEN" from sender@example.org

deliver_to seven -C "$SEVEN" bob@example.org <"$T/utf8.in"
assert_exit 0 "no 8BITMIME, UTF-8 body: exit 0"
assert_eq "$(msg_json seven "$N" mail_options)" "SIZE=$(stat -c %s "$EML")" \
    "no 8BITMIME, UTF-8 body: no BODY= parameter"
assert_eq "$(field "$EML" Content-Transfer-Encoding)" \
    "Content-Transfer-Encoding: quoted-printable" \
    "no 8BITMIME, UTF-8 body: Content-Transfer-Encoding: quoted-printable"
assert_eq "$(field "$EML" Content-Type)" "Content-Type: text/plain; charset=UTF-8" \
    "no 8BITMIME, UTF-8 body: the caller's Content-Type kept"
check_not "no 8BITMIME, UTF-8 body: every octet 7-bit" \
    grep -qaP '[\x80-\xff]' "$EML"
eml qp "$EML" >"$T/seven.got"
printf 'Gr\303\274\303\237e, \342\202\254 5\r\n\360\237\230\200\r\n' >"$T/seven.want"
assert_same "$T/seven.got" "$T/seven.want" \
    "no 8BITMIME, UTF-8 body: decodes to the original"
assert_note "body converted to quoted-printable: the smarthost does not offer 8BITMIME" \
    "no 8BITMIME, UTF-8 body: the log line says why it was converted"

# Debian cron's message: CTE 8bit replaced, not doubled.
printf 'From: root (Cron Daemon)\nTo: bob@example.org\nSubject: Cron <root@h> x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n\303\251t\303\251 = summer\n' |
    deliver_to seven -C "$SEVEN" -i bob@example.org
assert_exit 0 "no 8BITMIME, cron message: exit 0"
assert_eq "$(field "$EML" Content-Transfer-Encoding)" \
    "Content-Transfer-Encoding: quoted-printable" \
    "no 8BITMIME, cron message: one CTE, quoted-printable"
assert_eq "$(eml qp "$EML" | od -An -tx1 | tr -d ' \n')" \
    "$(printf '\303\251t\303\251 = summer\r\n' | od -An -tx1 | tr -d ' \n')" \
    "no 8BITMIME, cron message: decodes to the original"

# A multipart body is not re-encoded: it goes unchanged.
printf 'From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=UTF-8\n\n\303\274\n--b--\n' >"$T/mp8.in"
deliver_to seven -C "$SEVEN" bob@example.org <"$T/mp8.in"
assert_exit 0 "no 8BITMIME, multipart 8-bit: exit 0"
assert_eq "$(eml body "$EML" | od -An -tx1 | tr -d ' \n')" \
    "$(printf -- '--b\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n\303\274\r\n--b--\r\n' | od -An -tx1 | tr -d ' \n')" \
    "no 8BITMIME, multipart 8-bit: body unchanged"

t_done
