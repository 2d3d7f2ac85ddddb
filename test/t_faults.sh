#!/bin/bash
# Faults of the smarthost and of the path to it.  Each must end with the
# documented exit status (relay(8), EXIT STATUS), one clear error line on
# stderr, and nothing secret in clear: the servers run STARTTLS (or are raw
# servers) so that their plaintext.log / received.log show exactly what
# relay sent before TLS, and each check says what that must be.
#
# The SMTP client's classification of each fault (75 try again, 76
# protocol, 77 credentials, 69/67 refused for good) shows as such only with
# "queue none", so the fault cases run in that mode.  With a queue (the
# default), "queue mode" at the end runs a table of the same faults: a
# temporary one leaves the message queued and exits 0, one refused for
# good at submission exits 69/67 and keeps nothing.
. "$(dirname "$0")/lib.sh"
t_setup

printf 'Subject: fault test\n\nhello from t_faults\n' >"$T/msg.txt"
STLS='EHLO \S+\r\nSTARTTLS\r\n'		# all that may go in clear on 587

# clear_is NAME FILE PATTERN WHAT [PASSWORD]: once server NAME has seen
# the connection close, its FILE (plaintext.log or received.log) is exactly
# what PATTERN (a Python regular expression, "" for nothing) matches; and
# no_creds on it.  Checks of events.log that say "no X" come after this.
clear_is() {
	local f got
	f=$(srv_out "$1")/$2
	wait_event "$1" "close 1" 5 || note "$4: the server saw no close yet"
	if got=$("$PY" -c 'import re, sys
d = open(sys.argv[1], "rb").read()
if not re.fullmatch(sys.argv[2].encode(), d):
    sys.exit(repr(d[:800]))' "$f" "$3" 2>&1); then
		ok "$4: in clear only /$3/"
	else
		fail "$4: in clear only /$3/" "$2: $got"
	fi
	no_creds "$f" "$4" "${5-}"
}

# clear_after_starttls WHAT: the -v trace of the last run shows that once
# the server had accepted STARTTLS, relay sent nothing until TLS was up.
# (The server's TLS layer eats such bytes, so its logs cannot tell.)
clear_after_starttls() {
	local sent
	assert_file_contains "$RELAY_ERR" ">>> STARTTLS" \
	    "$1: -v shows the dialogue"
	sent=$(awk '/^\*\*\* TLS started/ { exit } s && /^>>> / { print }
	    /^>>> STARTTLS$/ { s = 1 }' "$RELAY_ERR")
	assert_eq "$sent" "" "$1: nothing sent in clear after STARTTLS"
}

# assert_log_status WORD WHAT: the log record of a "queue none" run says
# status=WORD, in that mode's form (no id=, no attempts=).
assert_log_status() {
	assert_file_matches "$RELAY_ERR" \
	    "^relay: from=<[^ ]*> to=<[^ ]*> size=[0-9]+ relay=[^ ]+ status=$1 reply=\"[^\"]*\" duration=[0-9]+\.[0-9]{2}s uid=$(id -u)( error=.*)?\$" \
	    "$2: log record says status=$1"
}

# ---- credentials ------------------------------------------------------

start_smarthost badpw --mode starttls
send badpw queue none password wrong-Passw0rd
assert_exit 77 "wrong password: exit 77"
assert_error "wrong password" "refused AUTH" "as $T_USER" "535"
assert_log_status refused "wrong password"
assert_file_contains "$SMARTHOST_badpw_OUT/events.log" "auth 1 fail PLAIN $T_USER" \
    "wrong password: the server saw the failed AUTH"
clear_is badpw plaintext.log "$STLS" "wrong password" \
    wrong-Passw0rd
assert_file_lacks "$SMARTHOST_badpw_OUT/events.log" "mail 1" \
    "wrong password: no MAIL after the refusal"

# 454 to AUTH is temporary (RFC 4954 6); 535 to AUTH LOGIN is a refusal.
start_smarthost auth454 --mode starttls --fault auth:454
send auth454 queue none
assert_exit 75 "454 to AUTH: exit 75"
assert_error "454 to AUTH" "refused AUTH PLAIN as $T_USER" "454"
clear_is auth454 plaintext.log "$STLS" "454 to AUTH"
assert_file_lacks "$SMARTHOST_auth454_OUT/events.log" "mail 1" \
    "454 to AUTH: no MAIL"

start_smarthost login535 --mode starttls --auth-mech LOGIN --fault auth:535
send login535 queue none
assert_exit 77 "535 to AUTH LOGIN: exit 77"
assert_error "535 to AUTH LOGIN" "refused AUTH LOGIN as $T_USER" "535"
clear_is login535 plaintext.log "$STLS" "535 to AUTH LOGIN"

# ---- certificates -----------------------------------------------------

start_smarthost unknownca --mode starttls --certname unknown
send unknownca -v queue none
assert_exit 75 "unknown CA: exit 75"
assert_error "unknown CA" "TLS" "not signed by a CA"
assert_log_status tempfail "unknown CA"
clear_is unknownca plaintext.log "$STLS" "unknown CA"
clear_after_starttls "unknown CA"
assert_file_lacks "$SMARTHOST_unknownca_OUT/events.log" "tls 1 ok" \
    "unknown CA: no TLS session completed"
nothing_stored unknownca "unknown CA"

start_smarthost wronghost --mode starttls --certname wronghost
send wronghost -v queue none
assert_exit 75 "wrong host name: exit 75"
assert_error "wrong host name" \
    "certificate for wrong.example does not match localhost"
clear_is wronghost plaintext.log "$STLS" "wrong host name"
clear_after_starttls "wrong host name"
nothing_stored wronghost "wrong host name"

# The same with implicit TLS: the handshake must not complete.
start_smarthost wronghost465 --mode smtps --certname wronghost
send wronghost465 queue none
assert_exit 75 "wrong host name, implicit TLS: exit 75"
assert_error "wrong host name, implicit TLS" \
    "certificate for wrong.example does not match localhost"
assert_file_lacks "$SMARTHOST_wronghost465_OUT/events.log" "connect 1" \
    "wrong host name, implicit TLS: the handshake never completed"

start_smarthost expired --mode starttls --certname expired
send expired -v queue none
assert_exit 75 "expired certificate: exit 75"
assert_error "expired certificate" "TLS: certificate of localhost" "expired"
clear_is expired plaintext.log "$STLS" "expired certificate"
clear_after_starttls "expired certificate"
nothing_stored expired "expired certificate"

# ---- STARTTLS missing or tampered with --------------------------------

start_smarthost strip --mode starttls --strip STARTTLS
send strip queue none
assert_exit 75 "STARTTLS stripped: exit 75"
assert_error "STARTTLS stripped" "does not offer STARTTLS"
assert_log_status tempfail "STARTTLS stripped"
clear_is strip plaintext.log 'EHLO \S+\r\n(QUIT\r\n)?' \
    "STARTTLS stripped"

# A server that offers AUTH in clear and takes anything: a leaking client
# would get far, and received.log would show it.
start_raw nostls --scenario nostarttls
send nostls queue none
assert_exit 75 "no STARTTLS, AUTH offered in clear: exit 75"
assert_error "no STARTTLS, AUTH offered in clear" "does not offer STARTTLS"
clear_is nostls received.log 'EHLO \S+\r\n(QUIT\r\n)?' \
    "no STARTTLS, AUTH offered in clear"
assert_file_lacks "$RAW_nostls_OUT/events.log" "mail 1" \
    "no STARTTLS: no MAIL"

# The reply to STARTTLS comes with plaintext lines glued to it (an
# attacker's "250 AUTH PLAIN"): relay must stop, before TLS and in clear.
start_raw inject --scenario inject
send inject -v queue none
assert_exit 76 "bytes after the STARTTLS reply: exit 76"
assert_error "bytes after the STARTTLS reply" "after its reply to STARTTLS"
assert_file_contains "$RAW_inject_OUT/events.log" "inject 1" \
    "injection: the server injected"
clear_is inject plaintext.log "$STLS" "injection"
clear_after_starttls "injection"
assert_file_lacks "$RAW_inject_OUT/events.log" "WRONG_VERSION_NUMBER" \
    "injection: the server's TLS layer got no plaintext record"

# STARTTLS refused: still in clear, so a QUIT may go, credentials not.
start_smarthost tls454 --mode starttls --fault starttls:454
send tls454 queue none
assert_exit 75 "454 to STARTTLS: exit 75"
assert_error "454 to STARTTLS" "refused STARTTLS" "454"
clear_is tls454 plaintext.log "${STLS}(QUIT\r\n)?" \
    "454 to STARTTLS"

# ---- refusals in the envelope and the data ----------------------------

start_smarthost mail451 --mode starttls --fault mail:451
send mail451 queue none
assert_exit 75 "451 to MAIL: exit 75"
assert_error "451 to MAIL" "MAIL FROM:<sender@example.org>" "451"
assert_log_status tempfail "451 to MAIL"
clear_is mail451 plaintext.log "$STLS" "451 to MAIL"
nothing_stored mail451 "451 to MAIL"

start_smarthost mail550 --mode starttls --fault mail:550
send mail550 queue none
assert_exit 69 "550 to MAIL: exit 69"
assert_error "550 to MAIL" "MAIL FROM:<sender@example.org>" "550"
assert_log_status refused "550 to MAIL"
clear_is mail550 plaintext.log "$STLS" "550 to MAIL"
nothing_stored mail550 "550 to MAIL"

start_smarthost rcptbad --mode starttls --reject-rcpt bad
write_conf_for rcptbad "$T/rcptbad.conf" from sender@example.org queue none
run_relay -C "$T/rcptbad.conf" good@example.org bad@example.org <"$T/msg.txt"
assert_exit 67 "one of two recipients refused (550): exit 67"
assert_error "one recipient refused" "<bad@example.org>" "550" \
    "delivered to the other 1 recipient"
if wait_msgs rcptbad 1 5; then
	assert_eq "$(msg_json rcptbad 1 rcpt_tos)" good@example.org \
	    "one recipient refused: the other one got the message"
else
	fail "one recipient refused: the other one got the message"
fi
assert_eq "$(msg_count rcptbad)" 1 "one recipient refused: stored once"
clear_is rcptbad plaintext.log "$STLS" "one recipient refused"

start_smarthost rcpt451 --mode starttls --fault rcpt:451
write_conf_for rcpt451 "$T/rcpt451.conf" from sender@example.org queue none
run_relay -C "$T/rcpt451.conf" a@example.org b@example.org <"$T/msg.txt"
assert_exit 75 "451 to every RCPT: exit 75"
assert_error "451 to every RCPT" "<a@example.org>: 451" "<b@example.org>: 451"
clear_is rcpt451 plaintext.log "$STLS" "451 to every RCPT"
nothing_stored rcpt451 "451 to every RCPT"

start_smarthost dot451 --mode starttls --fault dot:451
send dot451 queue none
assert_exit 75 "451 after the dot: exit 75"
assert_error "451 after the dot" "refused the message" "451"
clear_is dot451 plaintext.log "$STLS" "451 after the dot"
nothing_stored dot451 "451 after the dot"

start_smarthost dot554 --mode starttls --fault dot:554
send dot554 queue none
assert_exit 69 "554 after the dot: exit 69"
assert_error "554 after the dot" "refused the message" "554"
assert_file_contains "$SMARTHOST_dot554_OUT/events.log" "fault 1 dot 554" \
    "554 after the dot: the data went through"
clear_is dot554 plaintext.log "$STLS" "554 after the dot"
nothing_stored dot554 "554 after the dot"

start_smarthost data554 --mode starttls --fault data:554
send data554 queue none
assert_exit 69 "554 to DATA: exit 69"
assert_error "554 to DATA" "refused DATA" "554"
clear_is data554 plaintext.log "$STLS" "554 to DATA"
nothing_stored data554 "554 to DATA"

start_smarthost data451 --mode starttls --fault data:451 --strip PIPELINING
send data451 queue none
assert_exit 75 "451 to DATA (no PIPELINING): exit 75"
assert_error "451 to DATA" "refused DATA" "451"
clear_is data451 plaintext.log "$STLS" "451 to DATA"
nothing_stored data451 "451 to DATA"

# ---- the connection lost ----------------------------------------------

# Big enough that the writes outlast the server's hang-up.
{ printf 'Subject: big\n\n'; head -c 3000000 /dev/zero | tr '\0' 'x' |
    fold -w 76; } >"$T/big.txt"
start_smarthost dropmid --mode starttls --fault data:drop-mid
write_conf_for dropmid "$T/dropmid.conf" from sender@example.org queue none
run_relay -C "$T/dropmid.conf" to@example.org <"$T/big.txt"
assert_exit 75 "dropped in the middle of the data: exit 75"
# Lost while writing, or (should the kernel have buffered it all) while
# waiting for the reply: both are true.
if grep -q "no reply to end of data" "$RELAY_ERR"; then
	assert_error "dropped mid-DATA" "no reply to end of data" \
	    "may or may not have been delivered"
else
	assert_error "dropped mid-DATA" "lost while sending the message"
fi
assert_file_contains "$SMARTHOST_dropmid_OUT/events.log" "fault 1 data drop-mid" \
    "dropped mid-DATA: the server dropped it"
clear_is dropmid plaintext.log "$STLS" "dropped mid-DATA"
nothing_stored dropmid "dropped mid-DATA"

start_smarthost dropdot --mode starttls --fault dot:drop-after-dot
send dropdot queue none
assert_exit 75 "dropped after the dot: exit 75"
assert_error "dropped after the dot" "no reply to end of data" \
    "may or may not have been delivered"
assert_log_status tempfail "dropped after the dot"
clear_is dropdot plaintext.log "$STLS" "dropped after the dot"
# The server did store it: that is why relay cannot say more.
check "dropped after the dot: the server had stored it" wait_msgs dropdot 1 3

# A 421 greeting ends the session at once: relay sends nothing at all.
start_smarthost c421 --mode starttls --fault connect:421
send c421 queue none
assert_exit 75 "421 greeting: exit 75"
assert_error "421 greeting" "closed the session at the greeting" "421"
clear_is c421 plaintext.log "" "421 greeting"

start_smarthost m421 --mode starttls --fault mail:421
send m421 queue none
assert_exit 75 "421 to MAIL: exit 75"
assert_error "421 to MAIL" "closed the session at MAIL FROM" "421"
clear_is m421 plaintext.log "$STLS" "421 to MAIL"
nothing_stored m421 "421 to MAIL"

# After a 554 greeting only QUIT is allowed (RFC 5321 3.1), if anything.
start_smarthost c554 --mode starttls --fault connect:554
send c554 queue none
assert_exit 69 "554 greeting: exit 69"
assert_error "554 greeting" "refused the session" "554"
clear_is c554 plaintext.log '(QUIT\r\n)?' "554 greeting"

# ---- silence and nonsense ---------------------------------------------

start_raw stall --scenario stall-greeting
timed_send stall queue none timeout_greeting 2
assert_exit 75 "silent server: exit 75"
assert_error "silent server" "timed out" "greeting"
assert_elapsed 1.9 6 "silent server"
clear_is stall received.log "" "silent server"

start_smarthost mstall --mode starttls --fault mail:stall
timed_send mstall queue none timeout_command 2
assert_exit 75 "MAIL reply stalls: exit 75"
assert_error "MAIL reply stalls" "timed out" "MAIL FROM"
assert_elapsed 1.9 6 "MAIL reply stalls"
clear_is mstall plaintext.log "$STLS" "MAIL reply stalls"
nothing_stored mstall "MAIL reply stalls"

start_raw tlsstall --scenario tls-then-stall
timed_send tlsstall queue none timeout_greeting 2
assert_exit 75 "TLS, then silence: exit 75"
assert_error "TLS, then silence" "timed out" "greeting"
assert_elapsed 1.9 6 "TLS, then silence"
assert_file_contains "$RAW_tlsstall_OUT/events.log" "tls 1 ok" \
    "TLS, then silence: the handshake was done"
clear_is tlsstall plaintext.log "" "TLS, then silence"

start_raw garbage --scenario garbage
send garbage queue none
assert_exit 76 "HTTP banner: exit 76"
assert_error "HTTP banner" "malformed reply" "HTTP/1.1 400"
clear_is garbage received.log "" "HTTP banner"

start_raw badreply --scenario badreply
send badreply queue none
assert_exit 76 "malformed EHLO reply: exit 76"
assert_error "malformed EHLO reply" "malformed reply" "25O ok" "EHLO"
clear_is badreply received.log 'EHLO \S+\r\n' \
    "malformed EHLO reply"

# ---- reaching the smarthost -------------------------------------------

start_raw closed --scenario close
stop_server closed
send closed queue none
assert_exit 75 "closed port: exit 75"
assert_error "closed port" "cannot connect to localhost port $RAW_closed_PORT" \
    "Connection refused"

start_raw noaccept --scenario noaccept
timed_send noaccept queue none timeout_connect 2
assert_exit 75 "connect never completes: exit 75"
assert_error "connect never completes" "cannot connect" "timed out"
assert_elapsed 1.9 6 "connect never completes"

start_smarthost unused --mode starttls
send unused queue none host nosuch.invalid
assert_exit 75 "unresolvable host: exit 75"
assert_error "unresolvable host" "cannot resolve nosuch.invalid"
assert_file_lacks "$SMARTHOST_unused_OUT/events.log" "accept" \
    "unresolvable host: nothing connected"

# ---- SIZE -------------------------------------------------------------

start_smarthost size --mode starttls --size-limit 100
{ printf 'Subject: too big\n\n'; head -c 500 /dev/zero | tr '\0' 'y'; echo; } \
    >"$T/size.txt"
write_conf_for size "$T/size.conf" from sender@example.org queue none
run_relay -C "$T/size.conf" to@example.org <"$T/size.txt"
assert_exit 69 "bigger than SIZE: exit 69"
assert_error "bigger than SIZE" "accepts at most 100"
assert_file_contains "$SMARTHOST_size_OUT/events.log" "auth 1 ok" \
    "bigger than SIZE: the session got as far as AUTH"
clear_is size plaintext.log "$STLS" "bigger than SIZE"
assert_file_lacks "$SMARTHOST_size_OUT/events.log" "data 1" \
    "bigger than SIZE: refused before DATA"
nothing_stored size "bigger than SIZE"

# ---- AUTH mechanisms --------------------------------------------------

start_smarthost login --mode starttls --auth-mech LOGIN
send login
delivered login "only AUTH LOGIN offered"
assert_eq "$(msg_json login 1 auth_mechanism)" LOGIN \
    "only AUTH LOGIN offered: LOGIN used"
clear_is login plaintext.log "$STLS" "AUTH LOGIN"

start_smarthost cram --mode starttls --auth-mech CRAM-MD5
send cram queue none
assert_exit 69 "only CRAM-MD5 offered: exit 69"
assert_error "only CRAM-MD5 offered" "offers AUTH CRAM-MD5" "PLAIN or LOGIN"
clear_is cram plaintext.log "$STLS" "only CRAM-MD5 offered"
assert_file_lacks "$SMARTHOST_cram_OUT/events.log" "auth 1" \
    "only CRAM-MD5 offered: no AUTH attempted"
assert_file_lacks "$SMARTHOST_cram_OUT/events.log" "mail 1" \
    "only CRAM-MD5 offered: no MAIL without AUTH"

start_smarthost noauth --mode starttls --no-auth
send noauth queue none
assert_exit 69 "user set, no AUTH offered: exit 69"
assert_error "user set, no AUTH offered" "does not offer AUTH" "user is set"
clear_is noauth plaintext.log "$STLS" "user set, no AUTH offered"
assert_file_lacks "$SMARTHOST_noauth_OUT/events.log" "mail 1" \
    "user set, no AUTH offered: no MAIL without AUTH"
nothing_stored noauth "user set, no AUTH offered"

# ---- after STARTTLS, a fresh EHLO and only its capabilities -----------

start_smarthost good --mode starttls
send good
delivered good "STARTTLS"
assert_eq "$(grep -E '^(ehlo 1 |tls 1 ok )' "$SMARTHOST_good_OUT/events.log" |
    cut -d' ' -f1 | tr '\n' ' ')" "ehlo tls ehlo " \
    "STARTTLS: EHLO, TLS, then EHLO again"
clear_is good plaintext.log "$STLS" "STARTTLS delivery"

# ---- more envelope and dialogue cases ---------------------------------

# 451 for one recipient, 550 for another, 250 for the third: the message
# goes to the third, and a temporary refusal among them makes it 75.
start_smarthost mix --mode starttls --fault rcpt:451:1 --reject-rcpt bad
write_conf_for mix "$T/mix.conf" from sender@example.org queue none
run_relay -C "$T/mix.conf" x@example.org bad@example.org good@example.org \
    <"$T/msg.txt"
assert_exit 75 "451, 550 and 250 to RCPT: exit 75"
assert_error "451, 550 and 250 to RCPT" "<x@example.org>: 451" \
    "<bad@example.org>: 550" "delivered to the other 1 recipient"
if wait_msgs mix 1 5; then
	assert_eq "$(msg_json mix 1 rcpt_tos)" good@example.org \
	    "451, 550 and 250 to RCPT: only the third got it"
else
	fail "451, 550 and 250 to RCPT: only the third got it" "nothing stored"
fi

# Timeouts on the reply to DATA and after the dot.
start_smarthost datastall --mode starttls --fault data:stall
timed_send datastall queue none timeout_data_init 2
assert_exit 75 "reply to DATA stalls: exit 75"
assert_error "reply to DATA stalls" "no reply to DATA" "timed out after 2 s"
assert_elapsed 1.9 6 "reply to DATA stalls"

start_smarthost dotstall --mode starttls --fault dot:stall
timed_send dotstall queue none timeout_data_end 2
assert_exit 75 "reply after the dot stalls: exit 75"
assert_error "reply after the dot stalls" "no reply to end of data" \
    "timed out after 2 s" "may or may not have been delivered"
assert_elapsed 1.9 6 "reply after the dot stalls"

# EHLO refused: HELO only where nothing needs EHLO (tls none, no user).
start_smarthost ehlo502 --mode starttls --fault ehlo:502
send ehlo502 queue none
assert_exit 69 "EHLO refused on a STARTTLS session: exit 69"
assert_error "EHLO refused on a STARTTLS session" "refused EHLO" "502"
clear_is ehlo502 plaintext.log 'EHLO \S+\r\n(QUIT\r\n)?' \
    "EHLO refused on a STARTTLS session"

start_smarthost helo --mode plain --no-auth --fault ehlo:502:1
send helo tls none user - password -
delivered helo "EHLO refused, tls none"
assert_file_matches "$SMARTHOST_helo_OUT/events.log" '^helo 1 ' \
    "EHLO refused, tls none: HELO sent"

# Credentials too long for an initial response (RFC 4954 4: 512 octets):
# AUTH PLAIN, then the token after the 334.
LONGPW=$(printf 'Lp%.0s' {1..200})
start_smarthost longpw --mode starttls --user "$T_USER" --password "$LONGPW"
send longpw password "$LONGPW"
delivered longpw "400-octet password"
assert_file_contains "$SMARTHOST_longpw_OUT/server.log" ">> b'AUTH PLAIN'" \
    "400-octet password: AUTH PLAIN without initial response"
assert_file_contains "$SMARTHOST_longpw_OUT/events.log" "auth 1 ok PLAIN $T_USER" \
    "400-octet password: accepted"
clear_is longpw plaintext.log "$STLS" "400-octet password" \
    "$LONGPW"

# A server whose capabilities change with TLS, which neither smarthost.py
# nor rawserver.py can do.  In clear: SIZE 50, AUTH PLAIN, STARTTLS.
# After TLS: AUTH LOGIN and 8BITMIME only.  A client that kept what it
# learnt in clear would refuse the message for SIZE, try AUTH PLAIN (504
# here) or send SIZE=; one that did not ask again would never see LOGIN.
cat >"$T/capsrv.py" <<'EOF'
import base64, os, socket, ssl, sys
portfile, cert, key, log = sys.argv[1:5]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % ls.getsockname()[1])
os.rename(portfile + ".tmp", portfile)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
out = open(log, "ab", buffering=0)
while True:
    so, _ = ls.accept()
    so.settimeout(20)
    f, tls = so.makefile("rb"), False
    def send(b):
        out.write(b"S: " + b)
        so.sendall(b)
    def line():         # None at EOF
        l = f.readline()
        out.write(b"C%s: %s" % (b" TLS" if tls else b"", l))
        return l.rstrip(b"\r\n") if l else None
    send(b"220 localhost capsrv\r\n")
    try:
        while True:
            l = line()
            if l is None:
                break
            v = l[:4].upper()
            if v == b"EHLO" and not tls:
                send(b"250-localhost\r\n250-SIZE 50\r\n250-AUTH PLAIN\r\n"
                     b"250 STARTTLS\r\n")
            elif v == b"EHLO":
                send(b"250-localhost\r\n250-AUTH LOGIN\r\n250 8BITMIME\r\n")
            elif v == b"STAR" and not tls:
                send(b"220 go ahead\r\n")
                so = ctx.wrap_socket(so, server_side=True)
                f, tls = so.makefile("rb"), True
            elif l.upper() == b"AUTH LOGIN" and tls:
                send(b"334 VXNlcm5hbWU6\r\n")
                u = base64.b64decode(line())
                send(b"334 UGFzc3dvcmQ6\r\n")
                p = base64.b64decode(line())
                out.write(b"LOGIN %s %s\n" % (u, p))
                send(b"235 2.7.0 ok\r\n")
            elif v in (b"MAIL", b"RCPT"):
                send(b"250 2.0.0 ok\r\n")
            elif v == b"DATA":
                send(b"354 go ahead\r\n")
                while line() not in (b".", None):
                    pass
                send(b"250 2.0.0 stored\r\n")
            elif v == b"QUIT":
                send(b"221 2.0.0 bye\r\n")
                break
            else:
                send(b"504 5.5.4 not offered now\r\n")
    except (OSError, ssl.SSLError) as e:
        out.write(b"E: %s\n" % str(e).encode())
    so.close()
EOF
mkdir -p "$T/caps"
"$PY" "$T/capsrv.py" "$T/caps/port" "$PKI/server.chain.pem" "$PKI/server.key" \
    "$T/caps/dialogue.log" 2>"$T/caps/stderr.log" &
_T_PIDS+=($!)		# stopped by the exit trap like the other servers
wait_file "$T/caps/port" 10 ||
    t_bail "capsrv.py did not start: $(cat "$T/caps/stderr.log")"
write_conf "$T/caps.conf" host localhost port "$(cat "$T/caps/port")" \
    tls starttls user "$T_USER" password "$T_PASS" ca_file "$PKI/ca.crt" \
    log stderr from sender@example.org queue "$T/queue"
printf 'Subject: caps\n\n8-bit \xc3\xa9t\xc3\xa9, and longer than fifty octets in all\n' |
    run_relay -C "$T/caps.conf" to@example.org
assert_exit 0 "capabilities change with TLS: delivered"
D=$T/caps/dialogue.log
assert_eq "$(grep -ac '^C.*: EHLO ' "$D")" 2 "capabilities: EHLO sent twice"
assert_file_matches "$D" '^C TLS: EHLO ' "capabilities: second EHLO inside TLS"
assert_file_contains "$D" "LOGIN $T_USER $T_PASS" \
    "capabilities: AUTH LOGIN, offered only after TLS, used"
assert_eq "$(grep -ac '^C.*AUTH PLAIN' "$D")" 0 \
    "capabilities: AUTH PLAIN, offered only in clear, not tried"
assert_file_matches "$D" '^C TLS: MAIL FROM:<sender@example.org> BODY=8BITMIME' \
    "capabilities: 8BITMIME, offered only after TLS, used"
assert_file_lacks "$D" "SIZE=" "capabilities: SIZE, offered only in clear, not used"
assert_file_matches "$D" '^C TLS: 8-bit .*fifty octets' \
    "capabilities: message body sent"
assert_file_contains "$D" "S: 250 2.0.0 stored" "capabilities: message stored"


# ---- queue mode -----------------------------------------------------------

# The same faults with a queue, each case with its own queue directory
# ($T/qmode/NAME) and its own server.  Columns: NAME | EXPECT | SERVER |
# CONF | RECIPIENTS | REASON.  EXPECT "queued": a temporary fault: exit 0,
# one line "relay: ID queued, will retry: REASON", the entry in queue/ with
# every recipient pending, REASON as last-error, 1 attempt, due later, and
# nothing at the smarthost.  EXPECT a number: refused for good at
# submission: that exit status, REASON on one line, nothing in queue/,
# a copy in failed/ (t_keep.sh), no bounce.  SERVER: "smarthost ARGS", "raw ARGS", or "-" for none (the port
# then is one nothing listens on).  CONF: extra relay.conf pairs.
# RECIPIENTS: default to@example.org.  REASON: phrases joined by " + ",
# each of which the error line and last-error must hold.  In every case:
# nothing secret on stderr, in any file of the queue, or in clear; and one
# connection only: a submission makes one attempt (as "queue none" does),
# it does not connect again at once to a smarthost that just failed it.
mapfile -t QTABLE <<'EOF'
badpw    |queued|smarthost --mode starttls                 |password wrong-Passw0rd|  |refused AUTH PLAIN as relay-test: 535
auth454  |queued|smarthost --mode starttls --fault auth:454|  |  |refused AUTH PLAIN as relay-test: 454
cram     |queued|smarthost --mode starttls --auth-mech CRAM-MD5|  |  |offers AUTH CRAM-MD5 + PLAIN or LOGIN
unknownca|queued|smarthost --mode starttls --certname unknown|  |  |TLS: certificate of localhost is not signed by a CA
wrongname|queued|smarthost --mode smtps --certname wronghost|  |  |certificate for wrong.example does not match localhost
strip    |queued|smarthost --mode starttls --strip STARTTLS|  |  |does not offer STARTTLS
inject   |queued|raw --scenario inject                     |  |  |unexpected bytes after its reply to STARTTLS
tls454   |queued|smarthost --mode starttls --fault starttls:454|  |  |refused STARTTLS: 454
c421     |queued|smarthost --mode starttls --fault connect:421|  |  |closed the session at the greeting: 421
m421     |queued|smarthost --mode starttls --fault mail:421|  |  |closed the session at MAIL FROM: 421
mail451  |queued|smarthost --mode starttls --fault mail:451|  |  |refused MAIL FROM:<sender@example.org>: 451
rcpt451  |queued|smarthost --mode starttls --fault rcpt:451|  |a@example.org b@example.org|<a@example.org>: 451 + <b@example.org>: 451
data451  |queued|smarthost --mode starttls --fault data:451 --strip PIPELINING|  |  |refused DATA: 451
dot451   |queued|smarthost --mode starttls --fault dot:451 |  |  |refused the message: 451
mstall   |queued|smarthost --mode starttls --fault mail:stall|timeout_command 2|  |no reply to MAIL FROM: timed out after 2 s
garbage  |queued|raw --scenario garbage                    |  |  |malformed reply "HTTP/1.1 400
badreply |queued|raw --scenario badreply                   |  |  |malformed reply "25O ok" to EHLO
closed   |queued|-                                         |  |  |cannot connect to localhost port + Connection refused
nosuch   |queued|-                                         |host nosuch.invalid|  |cannot resolve nosuch.invalid
mail550  |69    |smarthost --mode starttls --fault mail:550|  |  |refused MAIL FROM:<sender@example.org>: 550
rcpt550  |67    |smarthost --mode starttls --reject-rcpt bad|  |bad1@example.org bad2@example.org|<bad1@example.org>: 550 + <bad2@example.org>: 550
dot554   |69    |smarthost --mode starttls --fault dot:554 |  |  |refused the message: 554
size     |69    |smarthost --mode starttls --size-limit 100|  |  |accepts at most 100
EOF

# trim TEXT: without leading and trailing blanks.
trim() { local t=${1#"${1%%[! ]*}"}; printf '%s' "${t%"${t##*[! ]}"}"; }

# q_secrets WHAT SERVER PASSWORD: nothing secret on stderr, in the files of
# the queue ($QDIR), or in what SERVER got in clear.
q_secrets() {
	local f
	assert_no_secret "$RELAY_ERR" "$1: no secret on stderr" "$3"
	find "$QDIR" -type f -exec cat {} + >"$QDIR.all" 2>/dev/null
	assert_no_secret "$QDIR.all" "$1: no secret in the queue's files" "$3"
	[ "$2" = - ] && return
	# Once the connection is closed the server has logged all it got.
	if [ -s "$(srv_out "$2")/plaintext.log" ] ||
	    [ -s "$(srv_out "$2")/received.log" ]; then
		wait_event "$2" "close 1" 5 || note "$1: the server saw no close yet"
	fi
	for f in plaintext.log received.log; do
		[ -f "$(srv_out "$2")/$f" ] && no_creds "$(srv_out "$2")/$f" "$1" "$3"
	done
}

UIDNUM=$(id -u)
LOGQ="duration=[0-9]+\\.[0-9]{2}s id=[0-9a-f]{14} attempts=1 uid=$UIDNUM"
mkdir -p "$T/qmode"
for row in "${QTABLE[@]}"; do
	IFS='|' read -r name expect server conf rcpts reason <<<"$row"
	name=$(trim "$name") expect=$(trim "$expect") server=$(trim "$server")
	conf=$(trim "$conf") rcpts=$(trim "$rcpts") reason=$(trim "$reason")
	[ -n "$rcpts" ] || rcpts=to@example.org
	what="queue mode, $name"
	srv=q_$name
	QDIR=$T/qmode/$name
	read -ra sargs <<<"$server"
	read -ra cpairs <<<"$conf"
	read -ra to <<<"$rcpts"
	reasons=()
	while [[ $reason == *" + "* ]]; do
		reasons+=("${reason%% + *}")
		reason=${reason#* + }
	done
	reasons+=("$reason")
	pw=$T_PASS
	[ "${cpairs[0]-}" = password ] && pw=${cpairs[1]}
	if [ "$server" = - ]; then
		srv=- host=localhost
		if [ "${cpairs[0]-}" = host ]; then
			host=${cpairs[1]}
			cpairs=("${cpairs[@]:2}")
		fi
		write_conf "$T/$name.q.conf" host "$host" port "$(free_port)" \
		    tls implicit user "$T_USER" password "$T_PASS" \
		    ca_file "$PKI/ca.crt" log stderr from sender@example.org \
		    queue "$QDIR" "${cpairs[@]}"
	else
		"start_${sargs[0]}" "$srv" "${sargs[@]:1}"
		write_conf_for "$srv" "$T/$name.q.conf" from sender@example.org \
		    queue "$QDIR" "${cpairs[@]}"
	fi
	run_relay -C "$T/$name.q.conf" "${to[@]}" <"$T/msg.txt"
	if [ "$expect" = queued ]; then
		assert_exit 0 "$what: exit 0, the message is queued"
		assert_eq "$(q_count queue) $(q_count failed) $(q_count tmp)" "1 0 0" \
		    "$what: one entry in queue/, none in failed/ or tmp/"
		id=$(q_ids | head -n 1)
		assert_error "$what" "relay: ${id:-ID} queued, will retry:" \
		    "${reasons[@]}"
		assert_eq "$(q_rcpts "$id")" \
		    "$(printf 'pending <%s>\n' "${to[@]}")" \
		    "$what: every recipient pending"
		le=$(q_env "$id" last-error)
		absent=
		for r in "${reasons[@]}"; do
			[[ $le == *"$r"* ]] || absent+=" \"$r\""
		done
		if [ -n "$le" ] && [ -z "$absent" ]; then
			ok "$what: last-error names the reason"
		else
			fail "$what: last-error names the reason" \
			    "lacks:${absent:- (no last-error)}" "last-error: $le"
		fi
		next=$(iso_epoch "$(q_env "$id" next-attempt)")
		assert_eq "$(q_env "$id" attempts) $((${next:-0} > $(date +%s)))" "1 1" \
		    "$what: 1 attempt, the next one later"
		assert_file_matches "$RELAY_ERR" \
		    "^relay: from=<sender@example\\.org> .* status=deferred reply=\"[^\"]*\" $LOGQ error=" \
		    "$what: log record says status=deferred, with id= and attempts="
		[ "$srv" = - ] || nothing_stored "$srv" "$what"
	else
		assert_exit "$expect" "$what: exit $expect, refused for good"
		assert_error "$what" "${reasons[@]}"
		assert_eq "$(q_count queue) $(q_count failed) $(q_count tmp)" "0 1 0" \
		    "$what: nothing in queue/ or tmp/, a copy in failed/"
		assert_file_matches "$RELAY_ERR" \
		    "^relay: from=<sender@example\\.org> .* status=refused reply=\"[^\"]*\" $LOGQ error=" \
		    "$what: log record says status=refused, with id= and attempts="
		nothing_stored "$srv" "$what"
		assert_eq "$(grep -c '^mail [0-9]* <>$' "$(srv_out "$srv")/events.log")" 0 \
		    "$what: no bounce (no MAIL FROM:<>)"
	fi
	if [ "$srv" != - ]; then
		assert_eq "$(grep -c '^accept ' "$(srv_out "$srv")/events.log")" 1 \
		    "$what: one connection to the smarthost"
	fi
	q_secrets "$what" "$srv" "$pw"
	[ "$srv" = - ] || stop_server "$srv"
done

# One recipient of two refused for good: the other gets the message, the
# sender a bounce for the refused one; nothing is left to retry, and the
# entry is kept in failed/ with what happened to each recipient.
QDIR=$T/qmode/partial
start_smarthost qpartial --mode starttls --reject-rcpt bad
write_conf_for qpartial "$T/partial.q.conf" from sender@example.org queue "$QDIR"
run_relay -C "$T/partial.q.conf" good@example.org bad@example.org <"$T/msg.txt"
what="queue mode, one of two recipients refused"
assert_exit 0 "$what: exit 0"
assert_error "$what" "bounced" "<bad@example.org>: 550" \
    "delivered to the other 1 recipient" "the sender gets a report"
wait_msgs qpartial 2 5
assert_eq "$(msg_count qpartial)" 2 "$what: two messages stored (the message, the bounce)"
assert_eq "$(msg_json qpartial 1 mail_from) > $(msg_json qpartial 1 rcpt_tos)" \
    "sender@example.org > good@example.org" "$what: stored once, for the good one"
assert_eq "$(msg_json qpartial 2 mail_from) > $(msg_json qpartial 2 rcpt_tos)" \
    " > sender@example.org" "$what: a bounce from <> to the sender"
B=$(srv_out qpartial)/2.eml
assert_file_contains "$B" "Final-Recipient: rfc822; bad@example.org" \
    "$what: the bounce names the refused recipient"
assert_file_contains "$B" "Status: 5.1.1" "$what: the bounce has its status"
assert_file_lacks "$B" "good@example.org" "$what: the bounce does not name the good one"
assert_eq "$(q_count queue) $(q_count failed)" "0 1" \
    "$what: nothing left in queue/, the entry in failed/"
id=$(q_ids failed | head -n 1)
assert_eq "$(q_rcpts "$id" | sort)" "failed <bad@example.org>
sent <good@example.org>" "$what: the entry says sent and failed"
q_secrets "$what" qpartial "$T_PASS"

# 451, 550 and 250: sent to one, a bounce for one, the third still queued.
QDIR=$T/qmode/mix
start_smarthost qmix --mode starttls --fault rcpt:451:1 --reject-rcpt bad
write_conf_for qmix "$T/mix.q.conf" from sender@example.org queue "$QDIR"
run_relay -C "$T/mix.q.conf" x@example.org bad@example.org good@example.org \
    <"$T/msg.txt"
what="queue mode, 451, 550 and 250 to RCPT"
assert_exit 0 "$what: exit 0"
id=$(q_ids | head -n 1)
assert_error "$what" "${id:-ID} queued, will retry:" "<x@example.org>: 451" \
    "<bad@example.org>: 550" "the sender gets a report"
wait_msgs qmix 2 5
assert_eq "$(msg_json qmix 1 rcpt_tos) $(msg_json qmix 2 mail_from)> $(msg_json qmix 2 rcpt_tos)" \
    "good@example.org > sender@example.org" \
    "$what: the message to the third, a bounce to the sender"
assert_file_contains "$(srv_out qmix)/2.eml" "Final-Recipient: rfc822; bad@example.org" \
    "$what: the bounce names the refused one"
assert_file_lacks "$(srv_out qmix)/2.eml" "x@example.org" \
    "$what: the bounce does not name the pending one"
assert_eq "$(q_rcpts "$id")" "pending <x@example.org>
failed <bad@example.org>
sent <good@example.org>" "$what: queued, with each recipient's state"
q_secrets "$what" qmix "$T_PASS"
unset QDIR

t_done
