#!/bin/bash
# The real callers of sendmail, with their exact command lines and the
# messages they write (see callers-and-test-servers.md section 1): relay
# runs as "sendmail" through a symlink and must deliver each one with the
# right envelope and headers.  Also the option syntax (glued, separate,
# grouped, "--"), the lone-dot rule, and fds 1 and 2 closed.
. "$(dirname "$0")/lib.sh"
t_setup

# deliver ARGS...: deliver_to main, as "sendmail"; sets N and EML.
deliver() { deliver_to main "$@"; }
rcpts() { msg_json main "$N" rcpt_tos; }
sender() { msg_json main "$N" mail_from; }

# relay under the names callers use: argv[0] decides what it does.
ln -s "$RELAY" "$T/sendmail"
ln -s "$RELAY" "$T/newaliases"
ln -s "$RELAY" "$T/mailq"
RELAY=$T/sendmail

start_smarthost main --mode starttls
CONF=$T/relay.conf
write_conf_for main "$CONF"
printf '%s\n' 'from cron@example.org' 'alias root admin@example.org' \
    'domain example.net' >>"$CONF"
export RELAY_CONF=$CONF	# the callers' command lines have no -C

MID_RE='^Message-ID: <[0-9]{14}\.[0-9a-f]{16}@example\.org>$'

# ---- Debian cron ------------------------------------------------------------

cron_msg() {
	printf '%s\n' 'From: root (Cron Daemon)' "To: $1" \
	    'Subject: Cron <root@vm> /usr/local/bin/nightly' \
	    'MIME-Version: 1.0' 'Content-Type: text/plain; charset=UTF-8' \
	    'Content-Transfer-Encoding: 8bit' 'X-Cron-Env: <SHELL=/bin/sh>' \
	    'X-Cron-Env: <HOME=/root>' 'X-Cron-Env: <PATH=/usr/bin:/bin>' \
	    'X-Cron-Env: <LOGNAME=root>' '' 'nightly: 3 files rotated' 'done'
}
cron_msg root | deliver -FCronDaemon -i -B8BITMIME -oem root
assert_exit 0 "debian cron: exit 0"
assert_eq "$(sender)" cron@example.org "debian cron: envelope sender is the configured from"
assert_eq "$(rcpts)" admin@example.org "debian cron: root goes to its alias"
assert_eq "$(field "$EML" From)" "From: cron@example.org (Cron Daemon)" \
    "debian cron: From: root becomes the sender, comment kept"
assert_eq "$(field "$EML" To)" "To: admin@example.org" "debian cron: To: root aliased"
assert_match "$(field "$EML" Date)" "$DATE_RE" "debian cron: Date added"
assert_match "$(field "$EML" Message-ID)" "$MID_RE" "debian cron: Message-ID added"
assert_eq "$(eml names "$EML")" \
    "From To Subject MIME-Version Content-Type Content-Transfer-Encoding X-Cron-Env X-Cron-Env X-Cron-Env X-Cron-Env Date Message-ID" \
    "debian cron: fields kept in order, Date and Message-ID appended"
assert_eq "$(field "$EML" X-Cron-Env | tr '\n' '|')" \
    "X-Cron-Env: <SHELL=/bin/sh>|X-Cron-Env: <HOME=/root>|X-Cron-Env: <PATH=/usr/bin:/bin>|X-Cron-Env: <LOGNAME=root>|" \
    "debian cron: X-Cron-Env lines untouched"
assert_eq "$(eml body "$EML")" "$(printf 'nightly: 3 files rotated\r\ndone\r')" \
    "debian cron: body as CRLF"
assert_eq "$(msg_json main "$N" mail_options)" "SIZE=$(stat -c %s "$EML")" \
    "debian cron: -B8BITMIME ignored for a 7-bit body (no BODY=)"
assert_file_matches "$RELAY_ERR" \
    "^sendmail: from=<cron@example\.org> to=<admin@example\.org> size=[0-9]+ relay=[^ ]+ status=sent reply=\"[^\"]*\" duration=[0-9]+\.[0-9]{2}s id=[0-9a-f]{14} attempts=1 uid=$(id -u)\$" \
    "debian cron: logged under the name sendmail"

cron_msg 'alice@example.org,bob@example.net' |
    deliver -FCronDaemon -i -B8BITMIME -oem alice@example.org,bob@example.net
assert_exit 0 "debian cron MAILTO=a,b: exit 0"
assert_eq "$(rcpts)" "alice@example.org bob@example.net" \
    "debian cron MAILTO=a,b: one argument, two recipients"
assert_eq "$(field "$EML" To)" "To: alice@example.org,bob@example.net" \
    "debian cron MAILTO=a,b: To: as written"

cron_msg alice | deliver -FCronDaemon -i -B8BITMIME -oem alice
assert_exit 0 "debian cron, owner alice: exit 0"
assert_eq "$(rcpts)" alice@example.net "debian cron, owner alice: qualified with domain"
assert_eq "$(field "$EML" To)" "To: alice@example.net" \
    "debian cron, owner alice: To: qualified"

# ---- cronie -------------------------------------------------------------------

printf '%s\n' 'From: "(Cron Daemon)" <root>' 'To: root' \
    'Subject: Cron <root@vm> run-parts /etc/cron.hourly' 'MIME-Version: 1.0' \
    'Content-Type: text/plain; charset="UTF-8"' 'Content-Transfer-Encoding: 8bit' \
    'Auto-Submitted: auto-generated' 'Precedence: bulk' \
    'X-Cron-Env: <MAILTO=root>' 'X-Cron-Env: <LANG=C.UTF-8>' '' 'hourly output' |
    deliver -FCronDaemon -i -odi -oem -oi -t -f root
assert_exit 0 "cronie: exit 0"
assert_eq "$(sender)" cron@example.org "cronie: -f root becomes the configured from"
assert_eq "$(rcpts)" admin@example.org "cronie: -t: To: root aliased"
assert_eq "$(field "$EML" From)" 'From: "(Cron Daemon)" <cron@example.org>' \
    "cronie: From: quoted name kept, address replaced"
assert_eq "$(field "$EML" Auto-Submitted)$(field "$EML" Precedence)" \
    "Auto-Submitted: auto-generatedPrecedence: bulk" "cronie: other fields untouched"
assert_eq "$(field "$EML" Date | wc -l)$(field "$EML" Message-ID | wc -l)" 11 \
    "cronie: one Date and one Message-ID added"

# ---- PHP mail() -----------------------------------------------------------------

# PHP: To and Subject end in CRLF, the extra headers as the caller wrote
# them, then the body unchanged (LF) and a CRLF.
printf 'To: customer@example.com\r\nSubject: Your order\r\nFrom: shop@example.org\r\nBcc: audit@example.org\r\nX-Mailer: PHP/8.2.7\r\n\r\nHello,\nyour order has shipped.\n.\nRegards\r\n' \
    >"$T/php.in"
deliver -t -i <"$T/php.in"
assert_exit 0 "php: exit 0"
assert_eq "$(rcpts)" "customer@example.com audit@example.org" "php: To and Bcc recipients"
assert_eq "$(sender)" cron@example.org "php: envelope sender is the configured from"
{
	printf 'To: customer@example.com\r\nSubject: Your order\r\nFrom: shop@example.org\r\nX-Mailer: PHP/8.2.7\r\n'
	added
	printf '\r\nHello,\r\nyour order has shipped.\r\n.\r\nRegards\r\n'
} >"$T/php.want"
assert_same "$EML" "$T/php.want" \
    "php: mixed line ends made CRLF, Bcc gone, lone dot kept, Date/Message-ID added"
assert_match "$(field "$EML" Date)" "$DATE_RE" "php: Date well formed"

# ---- GNU mailutils ----------------------------------------------------------------

printf '%s\n' 'To: root' 'Subject: disk report' \
    'Date: Sun, 22 Nov 2026 06:25:01 +0000' 'From: user@host.example.com' '' \
    'all disks fine' | deliver -oi -f user@host.example.com -t
assert_exit 0 "mailutils: exit 0"
assert_eq "$(sender)" user@host.example.com "mailutils: -f (separate) is the sender"
assert_eq "$(rcpts)" admin@example.org "mailutils: -t: To: root aliased"
assert_eq "$(field "$EML" Date)" "Date: Sun, 22 Nov 2026 06:25:01 +0000" \
    "mailutils: its Date kept"
assert_eq "$(field "$EML" From)" "From: user@host.example.com" "mailutils: From kept"

# ---- busybox crond ------------------------------------------------------------------

printf 'To: ops@example.org\nSubject: cron: /etc/periodic/daily\n\ndaily run\n' |
    deliver -ti
assert_exit 0 "busybox crond: exit 0"
assert_eq "$(rcpts)" ops@example.org "busybox crond: -ti takes To:"
assert_match "$(field "$EML" From)" '^From: ([^<>]+ )?<cron@example\.org>$' \
    "busybox crond: From added with the configured sender"
assert_eq "$(field "$EML" From | wc -l)" 1 "busybox crond: one From"

# ---- s-nail -------------------------------------------------------------------------

printf '%s\n' 'Date: Sun, 22 Nov 2026 07:00:00 +0000' \
    'To: alice@example.org, bob@example.net' 'Cc: carol@example.org' \
    'Subject: s-nail' 'MIME-Version: 1.0' \
    'Content-Type: text/plain; charset=us-ascii' \
    'Content-Transfer-Encoding: 7bit' '' 'hi' |
    deliver -i -- alice@example.org bob@example.net carol@example.org dave@example.org
assert_exit 0 "s-nail: exit 0"
assert_eq "$(rcpts)" \
    "alice@example.org bob@example.net carol@example.org dave@example.org" \
    "s-nail: recipients after --, the Bcc one only on argv"
assert_lacks "$(cat "$EML")" "dave@" "s-nail: the argv-only Bcc is not in the message"

# Without -t, header recipients are not used.
printf 'To: alice@example.org\nCc: carol@example.org\nBcc: secret@example.org\nSubject: no -t\n\nx\n' |
    deliver -i alice@example.org
assert_exit 0 "no -t: exit 0"
assert_eq "$(rcpts)" alice@example.org "no -t: Cc: and Bcc: in the header are no recipients"
assert_eq "$(eml names "$EML")" "To Cc Subject From Date Message-ID" \
    "no -t: Bcc: removed all the same"

# ---- PHPMailer ------------------------------------------------------------------------

printf '%s\n' 'Date: Sun, 22 Nov 2026 08:00:00 +0000' \
    'To: Customer <customer@example.com>' 'From: Shop <shop@example.org>' \
    'Subject: Newsletter' 'Message-ID: <abc123@shop.example.org>' \
    'X-Mailer: PHPMailer 6.8.0 (https://github.com/PHPMailer/PHPMailer)' \
    'MIME-Version: 1.0' 'Content-Type: text/plain; charset=iso-8859-1' '' \
    'News.' >"$T/phpmailer.in"
deliver -oi -fbounce@example.org -t <"$T/phpmailer.in"
assert_exit 0 "phpmailer: exit 0"
assert_eq "$(sender)" bounce@example.org "phpmailer: glued -f is the sender"
assert_eq "$(rcpts)" customer@example.com "phpmailer: -t recipient"
eml norm "$T/phpmailer.in" >"$T/phpmailer.want"
assert_same "$EML" "$T/phpmailer.want" "phpmailer: complete message arrives unchanged"

# ---- mailutils with stdout and stderr closed ----------------------------------------------

# Run by hand: run_relay would give it open fds.  Sanitizer reports go to
# files, since stderr is closed.
closed_run() {
	local before
	before=$(msg_count main)
	rm -f "$T"/san.*
	ASAN_OPTIONS=$ASAN_OPTIONS:log_path=$T/san.asan \
	UBSAN_OPTIONS=$UBSAN_OPTIONS:log_path=$T/san.ubsan \
	    timeout -k 5 "$RELAY_TIMEOUT" "$RELAY" "$@" <"$T/closed.in" >&- 2>&-
	CLOSED_STATUS=$?
	N=$((before + 1))
	EML=$SMARTHOST_main_OUT/$N.eml
	[ "$CLOSED_STATUS" = 0 ] && { wait_msgs main "$N" || fail "message $N stored"; }
	assert_eq "$(cat "$T"/san.* 2>/dev/null | head -c 2000)" "" \
	    "closed fds ($*): no sanitizer report"
}
printf '%s\n' 'To: root' 'Subject: closed fds' \
    'Date: Sun, 22 Nov 2026 09:00:00 +0000' 'From: u@h.example.com' '' \
    'the only body line' >"$T/closed.in"
# What must arrive: the input, To: aliased, and the Message-ID relay made.
closed_want() {
	local mid
	mid=$(field "$EML" Message-ID)
	assert_match "$mid" '^Message-ID: <[0-9]{14}\.[0-9a-f]{16}@h\.example\.com>$' \
	    "$1: Message-ID added"
	eml norm "$T/closed.in" | sed -e 's/^To: root\r$/To: admin@example.org\r/' \
	    -e "s/^From: .*/&\\n$mid\r/" >"$T/closed.want"
}
closed_run -oi -f u@h.example.com -t
assert_eq "$CLOSED_STATUS" 0 "closed fds: exit 0"
assert_eq "$(sender) $(rcpts)" "u@h.example.com admin@example.org" \
    "closed fds: envelope"
closed_want "closed fds"
assert_same "$EML" "$T/closed.want" \
    "closed fds: the message holds nothing relay wrote"
# With -v too: the dialogue and the log line must go nowhere.
closed_run -v -oi -f u@h.example.com -t
assert_eq "$CLOSED_STATUS" 0 "closed fds with -v: exit 0"
closed_want "closed fds with -v"
assert_same "$EML" "$T/closed.want" \
    "closed fds with -v: the message holds nothing relay wrote"

# ---- the lone dot ------------------------------------------------------------------------

printf 'Subject: dot end\n\nfirst\n.\nafter the dot\n' |
    deliver -f a@example.org bob@example.net
assert_exit 0 "no -i: exit 0"
assert_eq "$(eml body "$EML")" "$(printf 'first\r')" \
    "no -i: a lone dot ends the message, the rest is not sent"
printf 'Subject: dot end\n\nfirst\n.\r\nafter the dot\n' |
    deliver -f a@example.org bob@example.net
assert_eq "$(eml body "$EML")" "$(printf 'first\r')" \
    "no -i: a lone dot with CRLF ends the message too"
printf 'Subject: dots\n\n..\n.x\n. \nend\n' |
    deliver -f a@example.org bob@example.net
assert_eq "$(eml body "$EML")" "$(printf '..\r\n.x\r\n. \r\nend\r')" \
    "no -i: '..', '.x', '. ' are content"
for opt in -i -oi; do
	printf 'Subject: dot kept\n\nfirst\n.\nafter the dot\n' |
	    deliver "$opt" -f a@example.org bob@example.net
	assert_exit 0 "$opt: exit 0"
	assert_eq "$(eml body "$EML")" "$(printf 'first\r\n.\r\nafter the dot\r')" \
	    "$opt: a lone dot is content"
done

# ---- option syntax --------------------------------------------------------------------------

msg() { printf 'Subject: opts\n\nx\n'; }
msg | deliver -f a@example.org bob@example.net
assert_eq "$(sender)" a@example.org "-f ADDR (separate)"
msg | deliver -fa@example.org bob@example.net
assert_eq "$(sender)" a@example.org "-fADDR (glued)"
msg | deliver -r r@example.org bob@example.net
assert_eq "$(sender)" r@example.org "-r ADDR is -f"
msg | deliver -F "Full Name" -f a@example.org bob@example.net
assert_eq "$(field "$EML" From)" "From: Full Name <a@example.org>" \
    '-F "Full Name" (separate) names the added From'
msg | deliver -FName -fa@example.org bob@example.net
assert_eq "$(field "$EML" From)" "From: Name <a@example.org>" \
    "-FName (glued) names the added From"
msg | deliver -F $'Evil\r\nBcc: x@example.org' -f a@example.org bob@example.net
assert_eq "$(field "$EML" From)" 'From: "Evil  Bcc: x@example.org" <a@example.org>' \
    "-F with a line break cannot add a header line"
assert_eq "$(rcpts)" bob@example.net "-F with a line break adds no recipient"
msg | deliver -F 'Doe, John "JD"' -f a@example.org bob@example.net
assert_eq "$(field "$EML" From)" 'From: "Doe, John \"JD\"" <a@example.org>' \
    "-F with specials becomes a quoted string"
msg | deliver -F $'J\303\266rg M\303\274ller' -f a@example.org bob@example.net
assert_eq "$(field "$EML" From)" 'From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <a@example.org>' \
    "-F with non-ASCII becomes an RFC 2047 encoded-word"
printf 'To: bob@example.net\nSubject: grouped\n\nx\n' | deliver -it
assert_exit 0 "-it grouped: exit 0"
assert_eq "$(rcpts)" bob@example.net "-it grouped: -t applied"
printf 'Subject: x\n\n.\nx\n' | deliver -oem -ti -oi bob@example.net
assert_eq "$(rcpts)" bob@example.net "-t with an argv recipient and no header recipient"
assert_eq "$(eml body "$EML")" "$(printf '.\r\nx\r')" "-oem -ti -oi: options after options"
msg | deliver -f a@example.org -- -dash@example.org
assert_exit 0 "--: exit 0"
assert_eq "$(rcpts)" -dash@example.org "-- ends the options: -dash@... is a recipient"
n=$(msg_count main)
msg | run_relay -f a@example.org -dash@example.org
assert_exit 64 "without --, -dash@... is an unknown option (64)"
assert_file_contains "$RELAY_ERR" "unknown option -d" "unknown option named"
msg | run_relay -f
assert_exit 64 "-f without its argument: 64"
assert_eq "$(msg_count main)" "$n" "bad command lines sent nothing"
msg | deliver -f a@example.org 'Bob Example <bob@example.net>'
assert_eq "$(rcpts)" bob@example.net '"Name <addr>" accepted as a recipient'
msg | deliver -f '<>' bob@example.net
assert_eq "$(sender)" "" "-f '<>' is the null sender"

# ---- other names ----------------------------------------------------------------------------

: >"$T/empty.in"
n=$(msg_count main)
RELAY=$T/newaliases run_relay <"$T/empty.in"
assert_exit 0 "newaliases: exit 0"
msg | run_relay -bi
assert_exit 0 "sendmail -bi: exit 0"
# Every message above was sent: the queue is empty.
RELAY=$T/mailq run_relay <"$T/empty.in"
assert_exit 0 "mailq: exit 0"
assert_eq "$(cat "$RELAY_OUT")" "Mail queue is empty" \
    "mailq: \"Mail queue is empty\" on stdout, all having been sent"
assert_eq "$(msg_count main)" "$n" "newaliases/mailq sent nothing"

t_done
