#!/bin/bash
# End-to-end delivery against the aiosmtpd smarthost, which requires TLS
# and AUTH: implicit TLS (465-style) and STARTTLS (587-style).  Checks the
# exact bytes that arrive (N.eml), the envelope (N.json), what relay adds
# and removes, aliases, -v and the log line, PIPELINING, and both address
# families of "localhost".
. "$(dirname "$0")/lib.sh"
t_setup

UIDNUM=$(id -u)		# the submitter's, in the log line

# ---- servers ----------------------------------------------------------------

start_smarthost s465 --mode smtps
start_smarthost s587 --mode starttls
start_smarthost login --mode starttls --auth-mech LOGIN
start_smarthost nopipe --mode smtps --strip PIPELINING --strip 8BITMIME \
    --strip SIZE

# ---- the same suite over implicit TLS and over STARTTLS -----------------------

suite() {
	local s=$1 conf=$T/$1.conf tag=$1 d
	write_conf_for "$s" "$conf"

	# 1. A complete message: only Bcc, Resent-Bcc and Return-Path go;
	# every other byte arrives as given, in CRLF form, dots unstuffed.
	printf '%s\n' \
	    'From: Alice Sender <alice@example.org>' \
	    'To: Bob <bob@example.net>' \
	    'Bcc: Hidden Person <hidden@example.com>' \
	    'Date: Mon, 02 Nov 2026 10:00:00 +0100' \
	    'Message-ID: <fixed.1@example.org>' \
	    'Return-Path: <bounce@example.org>' \
	    'Subject: exact bytes' \
	    'Resent-Bcc: resent@example.com' \
	    'X-Folded: one' \
	    '	two' \
	    '' \
	    'first line' \
	    '.dot' \
	    '.' \
	    '..two dots' \
	    '. dot space' \
	    'last line' >"$T/$tag.exact.in"
	grep -v -e '^Bcc:' -e '^Return-Path:' -e '^Resent-Bcc:' \
	    "$T/$tag.exact.in" | sed 's/$/\r/' >"$T/$tag.exact.want"
	deliver_to "$s" -C "$conf" -i -t -f alice@example.org <"$T/$tag.exact.in"
	assert_exit 0 "$tag: complete message delivered"
	assert_same "$EML" "$T/$tag.exact.want" \
	    "$tag: complete message arrives byte for byte (Bcc/Return-Path gone, dots kept)"
	assert_crlf "$EML" "$tag: complete message: CRLF only"
	assert_eq "$(msg_json "$s" "$N" mail_from)" alice@example.org \
	    "$tag: envelope sender from -f"
	assert_eq "$(msg_json "$s" "$N" rcpt_tos)" \
	    "resent@example.com" \
	    "$tag: -t with a Resent-Bcc: its recipient, not To's and Bcc's"
	assert_eq "$(msg_json "$s" "$N" auth_user)" "$T_USER" "$tag: auth_user recorded"
	assert_eq "$(msg_json "$s" "$N" auth_mechanism)" PLAIN "$tag: AUTH PLAIN used"
	assert_eq "$(msg_json "$s" "$N" tls)" true "$tag: tls true"
	assert_match "$(msg_json "$s" "$N" tls_version)" '^TLSv1\.[23]$' \
	    "$tag: TLS 1.2 or later"
	assert_eq "$(msg_json "$s" "$N" mail_options)" \
	    "SIZE=$(stat -c %s "$EML")" \
	    "$tag: SIZE= is the exact size, no BODY= for 7-bit"
	assert_eq "$(cat "$RELAY_OUT")" "" "$tag: nothing on stdout"
	size=$(stat -c %s "$EML")
	assert_match "$(cat "$RELAY_ERR")" \
	    "^relay: from=<alice@example\.org> to=<resent@example\.com> size=$size relay=localhost\[127\.0\.0\.1\]:$(srv_port "$s") status=sent reply=\"250 2\.0\.0 OK queued as $N\" duration=[0-9]+\.[0-9][0-9]s id=[0-9a-f]{14} attempts=1 uid=$UIDNUM$" \
	    "$tag: stderr is exactly the one log line (from= to= size= relay= status=sent reply= duration= id= attempts=1 uid=)"
	assert_eq "$(q_count) $(q_count failed) $(q_count tmp)" "0 0 0" \
	    "$tag: sent, so nothing left in the queue"

	# 2. Missing From, Date and Message-ID are added after the others.
	printf 'To: carol@example.net\nSubject: bare\n\nhi\n' |
	    deliver_to "$s" -C "$conf" -F "Carol Sender" -f sender@example.org \
	    carol@example.net
	assert_exit 0 "$tag: bare message delivered"
	d=$(field "$EML" Date)
	assert_match "$d" "$DATE_RE" "$tag: Date added in RFC 5322 form"
	mid=$(field "$EML" Message-ID)
	assert_match "$mid" '^Message-ID: <[0-9]{14}\.[0-9a-f]{16}@example\.org>$' \
	    "$tag: Message-ID added with the sender's domain"
	printf 'To: carol@example.net\r\nSubject: bare\r\nFrom: Carol Sender <sender@example.org>\r\n%s\r\n%s\r\n\r\nhi\r\n' \
	    "$d" "$mid" >"$T/$tag.bare.want"
	assert_same "$EML" "$T/$tag.bare.want" \
	    "$tag: From (with -F name), Date, Message-ID added once each, nothing else changed"
	assert_eq "$(msg_json "$s" "$N" rcpt_tos)" carol@example.net \
	    "$tag: argv recipient only"

	# 3. Aliases and domain, in the envelope and in the header.
	cp "$conf" "$conf.alias"
	printf '%s\n' 'alias root admin@example.org' \
	    'alias staff ops1@example.org, ops2@example.org' \
	    'domain example.net' 'from relay@example.org' >>"$conf.alias"
	printf '%s\n' 'From: root (Cron Daemon)' \
	    'To: root, Staff Team <staff>, Alice <alice>' \
	    'Cc: Someone <bob@example.org>' 'Reply-To: Root <root>' \
	    'Sender: root' \
	    'Subject: aliases' '' 'body' |
	    deliver_to "$s" -C "$conf.alias" -t -f root
	assert_exit 0 "$tag: aliased message delivered"
	assert_eq "$(msg_json "$s" "$N" rcpt_tos)" \
	    "admin@example.org ops1@example.org ops2@example.org alice@example.net bob@example.org" \
	    "$tag: envelope: alias, two-target alias, domain qualification"
	assert_eq "$(field "$EML" To)" \
	    "To: admin@example.org, ops1@example.org, ops2@example.org, Alice <alice@example.net>" \
	    "$tag: To: rewritten through aliases and domain"
	assert_eq "$(field "$EML" Reply-To)" "Reply-To: Root <admin@example.org>" \
	    "$tag: Reply-To: alias applied, display name kept"
	assert_eq "$(field "$EML" Cc)" "Cc: Someone <bob@example.org>" \
	    "$tag: qualified Cc untouched"
	assert_eq "$(msg_json "$s" "$N" mail_from)" relay@example.org \
	    "$tag: -f root becomes the configured from"
	assert_eq "$(field "$EML" From)" "From: relay@example.org (Cron Daemon)" \
	    "$tag: local name in From: becomes the envelope sender, comment kept"
	assert_eq "$(field "$EML" Sender)" "Sender: relay@example.org" \
	    "$tag: local name in Sender: becomes the envelope sender"

	# Catch-all: every unaliased local name; duplicates sent once.
	cp "$conf" "$conf.star"
	printf '%s\n' 'alias root admin@example.org' \
	    'alias * catchall@example.org' 'from relay@example.org' >>"$conf.star"
	printf 'To: root, nobody\nSubject: star\n\nbody\n' |
	    deliver_to "$s" -C "$conf.star" -t www-data
	assert_exit 0 "$tag: catch-all message delivered"
	assert_eq "$(msg_json "$s" "$N" rcpt_tos)" \
	    "catchall@example.org admin@example.org" \
	    "$tag: catch-all for unaliased names, exact alias wins, no duplicate"
	assert_eq "$(field "$EML" To)" \
	    "To: admin@example.org, catchall@example.org" \
	    "$tag: catch-all applied in To:"

	# 4. An 8-bit body: BODY=8BITMIME and SIZE, bytes unchanged.
	printf 'Subject: 8bit\nContent-Type: text/plain; charset=utf-8\n\nGr\303\274\303\237e \342\202\254\n' \
	    >"$T/$tag.8bit.in"
	deliver_to "$s" -C "$conf" -f alice@example.org bob@example.net \
	    <"$T/$tag.8bit.in"
	assert_exit 0 "$tag: 8-bit message delivered"
	assert_eq "$(msg_json "$s" "$N" mail_options)" \
	    "SIZE=$(stat -c %s "$EML") BODY=8BITMIME" \
	    "$tag: MAIL has SIZE=<exact size> BODY=8BITMIME"
	assert_eq "$(tail -c 13 "$EML" | od -An -tx1 | tr -d ' \n')" \
	    "4772c3bcc39f6520e282ac0d0a" "$tag: 8-bit body bytes unchanged"

	# 5. -v: the dialogue on stderr, credentials hidden.
	printf 'Subject: verbose\n\nv\n' |
	    deliver_to "$s" -C "$conf" -v -f alice@example.org bob@example.net
	assert_exit 0 "$tag: -v delivery"
	assert_file_contains "$RELAY_ERR" ">>> AUTH PLAIN [credentials hidden]" \
	    "$tag: -v shows AUTH PLAIN [credentials hidden]"
	assert_file_contains "$RELAY_ERR" "<<< 235 " "$tag: -v shows the 235"
	assert_file_contains "$RELAY_ERR" ">>> MAIL FROM:<alice@example.org> SIZE=" \
	    "$tag: -v shows MAIL FROM"
	assert_file_contains "$RELAY_ERR" ">>> [message, $(stat -c %s "$EML") octets]" \
	    "$tag: -v shows the message as its size"
	assert_file_lacks "$RELAY_ERR" "Subject: verbose" \
	    "$tag: -v does not show the message"
	assert_no_secret "$RELAY_ERR" \
	    "$tag: -v stderr has no password, Base64 password or PLAIN token"
	assert_no_secret "$RELAY_OUT" "$tag: -v stdout has no secret"
	assert_eq "$(cat "$RELAY_OUT")" "" "$tag: -v prints nothing on stdout"
	assert_file_matches "$RELAY_ERR" "^relay: from=<alice@example.org> .* status=sent " \
	    "$tag: -v still logs the delivery line"
}

suite s465
assert_eq "$(stat -c %s "$SMARTHOST_s465_OUT/plaintext.log")" 0 \
    "s465: implicit TLS: not one byte in clear"

suite s587
assert_file_contains "$RELAY_ERR" ">>> STARTTLS" "s587: -v shows STARTTLS"
assert_file_contains "$RELAY_ERR" "*** TLS started" "s587: -v shows TLS started"
assert_file_contains "$RELAY_ERR" "*** TLS 1.2, ECDHE-" \
    "s587: -v shows the TLS version and an ECDHE suite"
assert_file_contains "$RELAY_ERR" "certificate verified for the host name" \
    "s587: -v says how the certificate was trusted"
p=$SMARTHOST_s587_OUT/plaintext.log
assert_file_contains "$p" "STARTTLS" "s587: STARTTLS sent in clear"
assert_file_lacks "$p" "AUTH" "s587: no AUTH in clear"
assert_file_lacks "$p" "MAIL FROM" "s587: no envelope in clear"
assert_no_secret "$p" "s587: no secret in clear"

# ---- without a queue: the same log line without id= and attempts= ------------

write_conf_for s465 "$T/noq.conf" queue none
printf 'Subject: no queue\n\nq\n' |
    deliver_to s465 -C "$T/noq.conf" -f alice@example.org bob@example.net
assert_exit 0 "queue none: delivered"
assert_match "$(cat "$RELAY_ERR")" \
    "^relay: from=<alice@example\.org> to=<bob@example\.net> size=$(stat -c %s "$EML") relay=localhost\[127\.0\.0\.1\]:$(srv_port s465) status=sent reply=\"250 2\.0\.0 OK queued as $N\" duration=[0-9]+\.[0-9][0-9]s uid=$UIDNUM$" \
    "queue none: stderr is exactly the one log line (from= to= size= relay= status=sent reply= duration= uid=)"
assert_file_contains "$EML" "Subject: no queue" "queue none: message stored"

# ---- AUTH LOGIN: both steps hidden ----------------------------------------------

write_conf_for login "$T/login.conf"
printf 'Subject: login\n\nl\n' |
    deliver_to login -C "$T/login.conf" -v -f alice@example.org bob@example.net
assert_exit 0 "login: delivered with AUTH LOGIN"
assert_eq "$(msg_json login 1 auth_mechanism)" LOGIN "login: LOGIN recorded"
assert_eq "$(grep -c '^>>> \[credentials hidden\]$' "$RELAY_ERR")" 2 \
    "login: user and password lines shown as [credentials hidden]"
assert_no_secret "$RELAY_ERR" "login: -v stderr has no password in any form"

# ---- PIPELINING -------------------------------------------------------------------

# Pipelined: MAIL, every RCPT and DATA go out before the first reply.
printf 'Subject: pipe\n\np\n' | deliver_to s465 -C "$T/s465.conf" -v \
    -f alice@example.org one@example.net two@example.net
assert_exit 0 "pipelining: delivered"
assert_file_contains "$RELAY_ERR" "<<< 250 PIPELINING" \
    "pipelining: the server offered it"
c=$(msg_json s465 "$N" conn)
assert_eq "$(grep -E "^(mail|rcpt|data) $c( |$)" "$SMARTHOST_s465_OUT/events.log" |
    cut -d' ' -f1,3 | tr '\n' '|')" \
    "mail alice@example.org|rcpt one@example.net|rcpt two@example.net|data|" \
    "pipelining: events.log shows MAIL, both RCPTs, DATA"
assert_eq "$(grep -E '^(>>>|<<<) ' "$RELAY_ERR" |
    sed -n '/^>>> MAIL/,/^<<< 354/p' | cut -c1-13 | tr '\n' '|')" \
    ">>> MAIL FROM|>>> RCPT TO:<|>>> RCPT TO:<|>>> DATA|<<< 250 2.1.0|<<< 250 2.1.5|<<< 250 2.1.5|<<< 354 End d|" \
    "pipelining: the envelope is sent in one go, replies read after"

# More recipients than relay pipelines in one go (100): all still get it.
many=$(printf 'r%03d@example.net ' {1..101})
printf 'Subject: many\n\nm\n' |
    deliver_to s465 -C "$T/s465.conf" -f alice@example.org $many
assert_exit 0 "101 recipients: delivered"
assert_eq "$(msg_json s465 "$N" rcpt_tos) " "$many" "101 recipients: all accepted, in order"

write_conf_for nopipe "$T/nopipe.conf"
printf 'Subject: nopipe \303\251\n\n.\nn\n' |
    deliver_to nopipe -C "$T/nopipe.conf" -v -i \
    -f alice@example.org one@example.net two@example.net
assert_exit 0 "no PIPELINING: delivered"
assert_file_lacks "$RELAY_ERR" "PIPELINING" \
    "no PIPELINING: the server did not offer it"
assert_eq "$(grep -E '^(>>>|<<<) ' "$RELAY_ERR" |
    sed -n '/^>>> MAIL/,/^<<< 354/p' | cut -c1-13 | tr '\n' '|')" \
    ">>> MAIL FROM|<<< 250 2.1.0|>>> RCPT TO:<|<<< 250 2.1.5|>>> RCPT TO:<|<<< 250 2.1.5|>>> DATA|<<< 354 End d|" \
    "no PIPELINING: one command, one reply"
assert_eq "$(msg_json nopipe 1 rcpt_tos)" "one@example.net two@example.net" \
    "no PIPELINING: both recipients"
assert_eq "$(tail -c 10 "$SMARTHOST_nopipe_OUT/1.eml" | od -An -tx1 | tr -d ' \n')" \
    0d0a0d0a2e0d0a6e0d0a "no PIPELINING: body with a lone dot intact"
assert_eq "$(msg_json nopipe 1 mail_options)" "" \
    "no SIZE, no 8BITMIME offered: MAIL has neither SIZE= nor BODY="
assert_eq "$(field "$SMARTHOST_nopipe_OUT/1.eml" Subject | od -An -tx1 | tr -d ' \n')" \
    "$(printf 'Subject: nopipe \303\251\n' | od -An -tx1 | tr -d ' \n')" \
    "no 8BITMIME offered: 8-bit header sent unchanged"

# ---- a second address family ------------------------------------------------------

# "localhost" as ::1 first, then 127.0.0.1: inside a private mount namespace
# with its own /etc/hosts, so the machine's file is not touched.
printf '::1 localhost\n127.0.0.1 localhost\n' >"$T/hosts.v6"
cat >"$T/v6ns" <<EOF
#!/bin/sh
exec unshare --mount sh -c 'mount --bind "\$0" /etc/hosts && exec "\$@"' "$T/hosts.v6" "\$@"
EOF
chmod +x "$T/v6ns"
if [ "$(getent ahosts localhost | awk 'NR == 1 { print $1 }')" = ::1 ]; then
	V6NS=			# the resolver already says ::1 first
else
	V6NS=$T/v6ns
fi
fam=$($V6NS getent ahosts localhost 2>&1 | awk '$2 == "STREAM" { print $1 }' |
    tr '\n' ' ')
assert_eq "$fam" "::1 127.0.0.1 " "two families: localhost is ::1 first, then 127.0.0.1"
# Without that (unshare needs root) the rest cannot run.
[ "$fam" = "::1 127.0.0.1 " ] || t_done

printf 'Subject: family\n\nf\n' | RELAY_PREFIX=$V6NS \
    deliver_to s465 -C "$T/s465.conf" -v -f alice@example.org bob@example.net
assert_exit 0 "two families: delivered to the 127.0.0.1-only smarthost"
assert_file_contains "$RELAY_ERR" "*** localhost[127.0.0.1]:$SMARTHOST_s465_PORT" \
    "two families: connected over 127.0.0.1 after ::1"
assert_file_contains "$EML" "Subject: family" "two families: message stored"

start_smarthost v6 --mode smtps --listen ::1
write_conf_for v6 "$T/v6.conf"
printf 'Subject: v6\n\nsix\n' | RELAY_PREFIX=$V6NS \
    deliver_to v6 -C "$T/v6.conf" -v -f alice@example.org bob@example.net
assert_exit 0 "two families: delivered to a ::1-only smarthost"
assert_file_contains "$RELAY_ERR" "*** localhost[::1]:$SMARTHOST_v6_PORT" \
    "two families: ::1 used when it answers"
assert_eq "$(msg_json v6 1 tls)" true "two families: ::1 delivery over TLS"

# Nothing listening on either: both addresses tried, in order, then 75
# (without a queue, where the exit status says it).
write_conf_for s465 "$T/closed.conf" port 1 timeout_connect 5 queue none
printf 'Subject: closed\n\nc\n' | RELAY_PREFIX=$V6NS \
    run_relay -C "$T/closed.conf" -f alice@example.org bob@example.net
assert_exit 75 "two families: nothing listening gives 75"
assert_file_contains "$RELAY_ERR" \
    "cannot connect to localhost port 1 (::1: Connection refused, 127.0.0.1: Connection refused)" \
    "two families: error names both addresses, ::1 first"

t_done
