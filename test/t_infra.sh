#!/bin/bash
# Self-test of the test infrastructure (PKI, smarthost.py, rawserver.py,
# lib.sh, eml.py).  Needs no relay binary: the client is Python's smtplib/ssl.
. "$(dirname "$0")/lib.sh"
t_setup

# ---- a small SMTP client for these checks -------------------------------
cat >"$T/client.py" <<'EOF'
import smtplib, socket, ssl, sys, time

def ctx(ca):
    c = ssl.create_default_context(cafile=ca)   # check_hostname on
    return c

def connect(mode, port, ca):
    if mode == "smtps":
        s = smtplib.SMTP_SSL("localhost", port, context=ctx(ca), timeout=10)
    else:
        s = smtplib.SMTP("localhost", port, timeout=10)
    s.ehlo("client.test")
    if mode == "starttls":
        s.starttls(context=ctx(ca))
        s.ehlo("client.test")
    return s

def send(mode, port, ca, user, password, sender, rcpts, msgfile):
    body = open(msgfile, "rb").read()
    try:
        s = connect(mode, port, ca)
        if user:
            s.login(user, password)
        refused = s.sendmail(sender, rcpts.split(","), body)
        for r, (code, text) in refused.items():
            print("REFUSED", r, code)
        s.quit()
        print("OK")
    except smtplib.SMTPRecipientsRefused as e:
        for r, (code, text) in e.recipients.items():
            print("ERR", code, r)
    except smtplib.SMTPResponseException as e:
        print("ERR", e.smtp_code, e.smtp_error.decode(errors="replace"))
    except (smtplib.SMTPServerDisconnected, ConnectionError) as e:
        print("DISCONNECTED", e)

def ehlo(mode, port, ca):
    s = connect(mode, port, ca)
    print(" ".join(sorted(k.upper() for k in s.esmtp_features)))
    print("SIZE=" + s.esmtp_features.get("size", ""))
    s.quit()

def raw(port, script):
    """Send lines, print what comes back; "<" reads once for 0.5 s."""
    so = socket.create_connection(("127.0.0.1", port), timeout=5)
    for step in script.split("|"):
        if step == "<":
            so.settimeout(0.5)
            data = b""
            try:
                while True:
                    d = so.recv(4096)
                    if not d:
                        data += b"<EOF>"
                        break
                    data += d
                    last = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
                    if data.endswith(b"\n") and last[3:4] == b" ":
                        so.settimeout(0.1)  # complete; pipelined replies?
            except socket.timeout:
                pass
            print(repr(data))
        else:
            so.sendall(step.encode() + b"\r\n")

def inject(port, ca):
    so = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = so.makefile("rb")
    f.readline()
    so.sendall(b"EHLO client.test\r\n")
    while f.readline()[3:4] == b"-":
        pass
    so.sendall(b"STARTTLS\r\n")
    data, end = b"", time.time() + 3
    so.settimeout(0.5)
    while data.count(b"\n") < 3 and time.time() < end:
        try:
            data += so.recv(4096)
        except socket.timeout:
            pass
    print("PLAIN", repr(data))
    so.settimeout(5)
    t = ctx(ca).wrap_socket(so, server_hostname="localhost")
    t.sendall(b"EHLO client.test\r\n")
    reply = b""
    while not reply.endswith(b"\r\n") or b"250 " not in reply:
        reply += t.recv(4096)
    print("TLS", repr(reply))
    t.sendall(b"QUIT\r\n")
    t.recv(4096)

def tls_silent(port, ca):
    so = socket.create_connection(("127.0.0.1", port), timeout=5)
    t = ctx(ca).wrap_socket(so, server_hostname="localhost")
    t.settimeout(0.5)
    try:
        print("DATA", repr(t.recv(4096)))
    except socket.timeout:
        print("SILENT")

def connect_timeout(port):
    t = time.time()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1)
        print("CONNECTED")
    except socket.timeout:
        print("TIMEOUT %.1f" % (time.time() - t))

cmd, args = sys.argv[1], sys.argv[2:]
globals()[cmd](*[int(a) if a.isdigit() else a for a in args])
EOF
client() { "$PY" "$T/client.py" "$@" 2>&1; }

printf 'Subject: infra\r\nX-Test: 1\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\nlast\r\n' \
    >"$T/msg.eml"

# ---- PKI ----------------------------------------------------------------
for c in server server-ec wronghost; do
	check "pki: $c.crt verifies against ca.crt" \
	    openssl verify -CAfile "$PKI/ca.crt" "$PKI/$c.crt"
done
check "pki: server.crt is for localhost" openssl verify -CAfile \
    "$PKI/ca.crt" -verify_hostname localhost "$PKI/server.crt"
check "pki: server.crt is for 127.0.0.1" openssl verify -CAfile \
    "$PKI/ca.crt" -verify_ip 127.0.0.1 "$PKI/server.crt"
check_not "pki: wronghost.crt is not for localhost" openssl verify -CAfile \
    "$PKI/ca.crt" -verify_hostname localhost "$PKI/wronghost.crt"
check_not "pki: unknown.crt does not verify against ca.crt" \
    openssl verify -CAfile "$PKI/ca.crt" "$PKI/unknown.crt"
check "pki: unknown.crt verifies against other-ca.crt" \
    openssl verify -CAfile "$PKI/other-ca.crt" "$PKI/unknown.crt"
check "pki: server-inter.crt verifies through inter.crt" openssl verify \
    -CAfile "$PKI/ca.crt" -untrusted "$PKI/inter.crt" "$PKI/server-inter.crt"
check_not "pki: server-inter.crt does not verify without inter.crt" \
    openssl verify -CAfile "$PKI/ca.crt" "$PKI/server-inter.crt"
out=$(openssl verify -CAfile "$PKI/ca.crt" "$PKI/expired.crt" 2>&1)
assert_eq "$(grep -c 'certificate has expired' <<<"$out")" 1 \
    "pki: expired.crt has expired"
check_not "pki: selfsigned.crt does not verify against ca.crt" \
    openssl verify -CAfile "$PKI/ca.crt" "$PKI/selfsigned.crt"
openssl x509 -in "$PKI/ca.crt" -noout -text >"$T/ca.txt"
assert_file_matches "$T/ca.txt" 'Version: 3' "pki: ca.crt is X.509 v3"
assert_file_contains "$T/ca.txt" 'CA:TRUE' "pki: ca.crt has CA:TRUE"
assert_file_contains "$T/ca.txt" 'Certificate Sign' "pki: ca.crt keyUsage keyCertSign"
openssl x509 -in "$PKI/server.crt" -noout -text >"$T/server.txt"
assert_file_contains "$T/server.txt" 'Public-Key: (2048 bit)' "pki: server key is RSA 2048"
assert_file_contains "$T/server.txt" 'TLS Web Server Authentication' "pki: server EKU serverAuth"
assert_file_lacks "$T/server.txt" 'CA:TRUE' "pki: server.crt is no CA"
openssl x509 -in "$PKI/server-ec.crt" -noout -text >"$T/server-ec.txt"
assert_file_contains "$T/server-ec.txt" 'NIST CURVE: P-256' "pki: server-ec key is P-256"
assert_eq "$(openssl x509 -in "$PKI/server.chain.pem" -noout -fingerprint)" \
    "$(openssl x509 -in "$PKI/server.crt" -noout -fingerprint)" \
    "pki: server.chain.pem starts with the leaf"
assert_eq "$(grep -c 'BEGIN CERTIFICATE' "$PKI/server.chain.pem")" 2 \
    "pki: server.chain.pem holds leaf and CA"
check "pki: second run is a no-op" test "$(bash "$TESTDIR/pki.sh" "$PKI" &&
    find "$PKI" -newer "$PKI/.done" | wc -l)" -eq 0

# ---- smarthost, implicit TLS --------------------------------------------
start_smarthost s465 --mode smtps
out=$(client send smtps "$SMARTHOST_s465_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "$out" OK "smtps: smtplib sends with AUTH and verified TLS"
wait_msgs s465 1 || fail "smtps: 1.json appears"
# smtplib dot-stuffs; the server must undo it and keep CRLF.
check "smtps: 1.eml holds exactly the bytes sent" \
    cmp "$T/msg.eml" "$SMARTHOST_s465_OUT/1.eml"
assert_eq "$(msg_json s465 1 mail_from)" from@example.org "smtps: mail_from"
assert_eq "$(msg_json s465 1 rcpt_tos)" to@example.net "smtps: rcpt_tos"
assert_eq "$(msg_json s465 1 auth_user)" "$T_USER" "smtps: auth_user"
assert_eq "$(msg_json s465 1 tls)" true "smtps: tls recorded"
assert_eq "$(stat -c %s "$SMARTHOST_s465_OUT/plaintext.log")" 0 \
    "smtps: nothing received in plaintext"
assert_file_matches "$SMARTHOST_s465_OUT/events.log" '^tls 1 ok TLSv1\.[23] ' \
    "smtps: events.log records TLS"
out=$(client send smtps "$SMARTHOST_s465_PORT" "$PKI/ca.crt" "$T_USER" wrong \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "${out%% *} $(cut -d' ' -f2 <<<"$out")" "ERR 535" \
    "smtps: wrong password gets 535"
assert_file_contains "$SMARTHOST_s465_OUT/events.log" "auth 2 fail PLAIN $T_USER" \
    "smtps: failed AUTH in events.log"
assert_eq "$(msg_count s465)" 1 "smtps: nothing stored after failed AUTH"
out=$(client send smtps "$SMARTHOST_s465_PORT" "$PKI/ca.crt" "" "" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "$out" "ERR 530 5.7.0 Authentication required" \
    "smtps: MAIL without AUTH gets 530"
out=$(client send smtps "$SMARTHOST_s465_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    "" to@example.net "$T/msg.eml")
assert_eq "$out" OK "smtps: null sender <> accepted"
wait_msgs s465 2 && assert_eq "$(msg_json s465 2 mail_from)" "" \
    "smtps: null sender stored as empty"

# ---- smarthost, STARTTLS ------------------------------------------------
start_smarthost s587 --mode starttls --auth-mech LOGIN
out=$(client ehlo starttls "$SMARTHOST_s587_PORT" "$PKI/ca.crt")
assert_eq "$(head -n1 <<<"$out")" "8BITMIME AUTH PIPELINING SIZE" \
    "starttls: EHLO after TLS offers AUTH, no STARTTLS"
out=$(client raw "$SMARTHOST_s587_PORT" '<|EHLO x|<|AUTH PLAIN AHUAcA==|<|MAIL FROM:<a@b.c>|<|QUIT|<')
assert_contains "$out" "250-STARTTLS" \
    "starttls: EHLO in clear offers STARTTLS"
assert_lacks "$out" "AUTH LOGIN" \
    "starttls: EHLO in clear offers no AUTH"
assert_eq "$(grep -c "530 Must issue a STARTTLS command first" <<<"$out")" 2 \
    "starttls: AUTH and MAIL in clear get 530"
out=$(client send starttls "$SMARTHOST_s587_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org a@example.net,b@example.net "$T/msg.eml")
assert_eq "$out" OK "starttls: smtplib sends after STARTTLS + AUTH LOGIN"
wait_msgs s587 1 || fail "starttls: 1.json appears"
assert_eq "$(msg_json s587 1 auth_mechanism)" LOGIN "starttls: --auth-mech LOGIN used"
assert_eq "$(msg_json s587 1 rcpt_tos)" "a@example.net b@example.net" \
    "starttls: both recipients"
assert_eq "$(msg_json s587 1 tls)" true "starttls: tls recorded"
assert_file_contains "$SMARTHOST_s587_OUT/plaintext.log" "STARTTLS" \
    "starttls: plaintext.log has the STARTTLS command"
pw64=$(printf %s "$T_PASS" | base64)
assert_file_lacks "$SMARTHOST_s587_OUT/plaintext.log" "$T_PASS" \
    "starttls: password not in plaintext.log"
assert_file_lacks "$SMARTHOST_s587_OUT/plaintext.log" "$pw64" \
    "starttls: base64 password not in plaintext.log"
assert_file_lacks "$SMARTHOST_s587_OUT/plaintext.log" "MAIL FROM:<from" \
    "starttls: MAIL of the good session not in plaintext.log"

out=$(client send starttls "$SMARTHOST_s587_PORT" "$PKI/other-ca.crt" "$T_USER" \
    "$T_PASS" from@example.org a@example.net "$T/msg.eml")
assert_contains "$out" "CERTIFICATE_VERIFY_FAILED" \
    "starttls: a client trusting another CA fails"
wait_event s587 "tls 4 fail" 5 || fail "starttls: failed handshake in events.log"

# ---- smarthost, options and faults --------------------------------------
start_smarthost strip --mode starttls --strip STARTTLS --strip pipelining \
    --size-limit 2000
out=$(client raw "$SMARTHOST_strip_PORT" '<|EHLO x|<|QUIT|<')
assert_lacks "$out" "STARTTLS" "--strip STARTTLS hides it"
assert_lacks "$out" "PIPELINING" "--strip PIPELINING hides it"
assert_contains "$out" "SIZE 2000" "--size-limit is advertised"

start_smarthost f1 --mode smtps --fault rcpt:451 --reject-rcpt bad
out=$(client send smtps "$SMARTHOST_f1_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "$out" "ERR 451 to@example.net" "--fault rcpt:451 answers RCPT with 451"
assert_file_contains "$SMARTHOST_f1_OUT/events.log" "fault 1 rcpt 451" \
    "fault recorded in events.log"
assert_eq "$(msg_count f1)" 0 "nothing stored after RCPT fault"

start_smarthost f2 --mode smtps --reject-rcpt bad --fault mail:452:1
out=$(client send smtps "$SMARTHOST_f2_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org good@example.net "$T/msg.eml")
assert_eq "$out" "ERR 452 4.3.0 injected mail fault" "--fault mail:452:1 fires once"
out=$(client send smtps "$SMARTHOST_f2_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org good@example.net,bad@example.net "$T/msg.eml")
assert_eq "$out" "REFUSED bad@example.net 550
OK" "--reject-rcpt rejects by prefix, then not again after COUNT"
wait_msgs f2 1 && assert_eq "$(msg_json f2 1 rcpt_tos)" good@example.net \
    "only the accepted recipient stored"

start_smarthost f3 --mode smtps --fault connect:421
out=$(client send smtps "$SMARTHOST_f3_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "$(cut -d' ' -f1,2 <<<"$out")" "ERR 421" "--fault connect:421 greets with 421"

start_smarthost f4 --mode smtps --fault dot:drop-after-dot
out=$(client send smtps "$SMARTHOST_f4_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "${out%% *}" DISCONNECTED "drop-after-dot: client sees the drop"
check "drop-after-dot: message stored" wait_msgs f4 1 3

start_smarthost f5 --mode smtps --fault data:drop-mid
out=$(client send smtps "$SMARTHOST_f5_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "${out%% *}" DISCONNECTED "data:drop-mid: client sees the drop"
assert_eq "$(msg_count f5)" 0 "data:drop-mid: nothing stored"

start_smarthost f6 --mode smtps --fault ehlo:stall --stall-seconds 0.3
out=$(client send smtps "$SMARTHOST_f6_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "$out" OK "ehlo:stall delays, then goes on"

start_smarthost f7 --mode plain --no-auth --fault connect:554:1 \
    --fault starttls:454 --fault dot:drop
out=$(client raw "$SMARTHOST_f7_PORT" '<|EHLO x|<|QUIT|<')
assert_eq "$out" "b'554 5.3.0 injected connect fault\\r\\n'
b'503 5.5.1 No service\\r\\n'
b'221 2.0.0 Bye\\r\\n<EOF>'" "connect:554 then 503 until QUIT"
out=$(client raw "$SMARTHOST_f7_PORT" '<|EHLO x|<|STARTTLS|<|AUTH PLAIN AHUAcA==|<|QUIT|<')
assert_lacks "$(sed -n 2p <<<"$out")" "AUTH" "--no-auth: no AUTH in EHLO"
assert_contains "$out" "454 4.3.0 injected starttls fault" "starttls:454"
assert_contains "$out" "502 5.5.1 AUTH not supported" "--no-auth: AUTH gets 502"
out=$(client send plain "$SMARTHOST_f7_PORT" "$PKI/ca.crt" "" "" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "${out%% *}" DISCONNECTED "dot:drop: client sees the drop"
assert_eq "$(msg_count f7)" 0 "dot:drop: nothing stored"
assert_lacks "$(cat "$SMARTHOST_f7_OUT/events.log")" "quit 3" \
    "dot:drop: the client's QUIT after the drop is ignored"

start_smarthost f8 --mode plain --no-auth --fault mail:stall --stall-seconds 60
client raw "$SMARTHOST_f8_PORT" '<|EHLO x|<|MAIL FROM:<a@b>|<' >/dev/null &
bg=$!
wait_event f8 "fault 1 mail stall" 5 || fail "mail:stall: fault in events.log"
start=$EPOCHREALTIME
stop_server f8
assert_eq "$(awk "BEGIN { print ($EPOCHREALTIME - $start < 2) }")" 1 \
    "SIGTERM stops a server with a stalled client at once"
wait "$bg"
assert_eq "$(cat "$SMARTHOST_f8_OUT/stderr.log")" "" "SIGTERM: nothing on stderr"

# aiosmtpd's default line limit: our "server that refuses long lines".
awk 'BEGIN { printf "Subject: long\r\n\r\n"; for (i = 0; i < 1200; i++) printf "x"; printf "\r\n" }' \
    >"$T/long.eml"
out=$(client send smtps "$SMARTHOST_s465_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/long.eml")
assert_eq "$(cut -d' ' -f1,2 <<<"$out")" "ERR 500" "a 1200-octet line gets 500"

start_smarthost plain --mode plain
out=$(client send plain "$SMARTHOST_plain_PORT" "$PKI/ca.crt" "$T_USER" "$T_PASS" \
    from@example.org to@example.net "$T/msg.eml")
assert_eq "$out" OK "plain: AUTH without TLS works"
assert_file_contains "$SMARTHOST_plain_OUT/plaintext.log" "AUTH PLAIN" \
    "plain: plaintext.log catches the AUTH"
wait_msgs plain 1 && assert_eq "$(msg_json plain 1 tls)" false "plain: tls false"

# ---- rawserver ------------------------------------------------------------
start_raw inj --scenario inject
out=$(client inject "$RAW_inj_PORT" "$PKI/ca.crt")
assert_eq "$(head -n1 <<<"$out")" \
    "PLAIN b'220 go ahead\\r\\n250-injected\\r\\n250 AUTH PLAIN\\r\\n'" \
    "raw inject: 220 and injected lines arrive together"
assert_contains "$out" "TLS b'250-localhost" \
    "raw inject: TLS handshake and EHLO after it work"
assert_file_contains "$RAW_inj_OUT/events.log" "tls 1 ok" "raw inject: events.log tls ok"
assert_eq "$(cat "$RAW_inj_OUT/plaintext.log")" "$(printf 'EHLO client.test\r\nSTARTTLS\r')" \
    "raw inject: plaintext.log holds the clear phase only"

start_raw nos --scenario nostarttls
out=$(client raw "$RAW_nos_PORT" '<|EHLO x|<|QUIT|<')
assert_contains "$out" "250-AUTH PLAIN LOGIN" "raw nostarttls: offers AUTH"
assert_lacks "$out" "STARTTLS" "raw nostarttls: no STARTTLS"
assert_file_contains "$RAW_nos_OUT/received.log" "EHLO x" "raw nostarttls: records input"

start_raw gar --scenario garbage
out=$(client raw "$RAW_gar_PORT" '<')
assert_eq "${out:0:26}" "b'HTTP/1.1 400 Bad Request" "raw garbage: HTTP greeting"

start_raw bad --scenario badreply
out=$(client raw "$RAW_bad_PORT" '<|EHLO x|<')
assert_eq "$(tail -n1 <<<"$out")" "b'25O ok\\r\\n'" "raw badreply: EHLO gets 25O"

start_raw sg --scenario stall-greeting
out=$(client raw "$RAW_sg_PORT" '<')
assert_eq "$out" "b''" "raw stall-greeting: silence"

start_raw cl --scenario close
out=$(client raw "$RAW_cl_PORT" '<')
assert_eq "$out" "b'<EOF>'" "raw close: closed at once"

start_raw tts --scenario tls-then-stall
out=$(client tls_silent "$RAW_tts_PORT" "$PKI/ca.crt")
assert_eq "$out" SILENT "raw tls-then-stall: handshake, then silence"

start_raw na --scenario noaccept
out=$(client connect_timeout "$RAW_na_PORT")
assert_eq "${out%% *}" TIMEOUT "raw noaccept: connect() times out"

# ---- lib.sh itself --------------------------------------------------------
out=$( (assert_eq a b "x"; assert_file_lacks "$T/nonexistent" y "y") )
assert_eq "$(grep -c '^not ok - ' <<<"$out")" 2 "lib: failed assertions print not ok"
printf '#!/bin/sh\ncat >/dev/null; echo "args $*"; echo "x.c:1: runtime error: y" >&2; exit 75\n' \
    >"$T/fake-relay"
chmod +x "$T/fake-relay"
out=$(RELAY=$T/fake-relay; printf 'msg\n' | run_relay -C a b
    echo "status=$RELAY_STATUS"; cat "$RELAY_OUT")
assert_contains "$out" "status=75" "lib: run_relay keeps the status through a pipe"
assert_contains "$out" "args -C a b" "lib: run_relay passes the arguments"
assert_contains "$out" "not ok - run 1 (-C a b): sanitizer report" \
    "lib: run_relay flags a sanitizer report"
write_conf_for s465 "$T/relay.conf" port 1 from me@example.org user -
assert_eq "$(stat -c %a "$T/relay.conf")" 600 "lib: relay.conf is mode 0600"
assert_eq "$(cat "$T/relay.conf")" "host localhost
port 1
tls implicit
password $T_PASS
ca_file $PKI/ca.crt
log stderr
queue $T/queue
from me@example.org" "lib: write_conf_for defaults (queue \$T/queue) and overrides"
write_conf_for s465 "$T/none.conf" queue none
assert_eq "$(grep '^queue' "$T/none.conf")" "queue none" \
    "lib: write_conf_for queue none replaces the default queue"
write_conf_for s465 "$T/dflt.conf" queue -
assert_eq "$(grep -c '^queue' "$T/dflt.conf")" 0 \
    "lib: write_conf_for queue - leaves relay's default queue"

# Every assertion helper passes what it should and fails what it should.
# verdicts: the "ok" / "not ok" of each check read from stdin, comma-joined
# (the checks run in a pipeline's subshell, so they count nowhere else).
verdicts() { sed -n 's/^\(ok\|not ok\) - .*/\1/p' | paste -sd, -; }
printf 'abc\r\n' >"$T/a.txt"
printf 'abd\r\n' >"$T/b.txt"
printf 'a\nb\r\n' >"$T/lf.txt"
no=$T/nonexistent
assert_eq "$({ assert_file_contains "$T/a.txt" bc; assert_file_contains "$T/a.txt" x
    assert_file_contains "$no" a; } | verdicts)" "ok,not ok,not ok" \
    "lib: assert_file_contains: found, not found, no file"
assert_eq "$({ assert_file_lacks "$T/a.txt" x; assert_file_lacks "$T/a.txt" bc
    assert_file_lacks "$no" x; } | verdicts)" "ok,not ok,not ok" \
    "lib: assert_file_lacks: absent, present, no file"
assert_eq "$({ assert_file_matches "$T/a.txt" '^a.c'; assert_file_matches "$T/a.txt" '^b'
    assert_file_matches "$no" a; assert_file_matches "$T/a.txt" '('; } |
    verdicts)" "ok,not ok,not ok,not ok" \
    "lib: assert_file_matches: match, no match, no file, bad ERE"
assert_eq "$({ assert_same "$T/a.txt" "$T/a.txt"; assert_same "$T/a.txt" "$T/b.txt"
    assert_same "$no" "$T/a.txt"; } | verdicts)" "ok,not ok,not ok" \
    "lib: assert_same: same, different, no file"
assert_eq "$({ assert_match abc '^a.c$'; assert_match abc '^b'; } | verdicts)" \
    "ok,not ok" "lib: assert_match: match, no match"
assert_eq "$({ assert_crlf "$T/a.txt" x; assert_crlf "$T/lf.txt" y
    assert_crlf "$no" z; } | verdicts)" "ok,not ok,not ok" \
    "lib: assert_crlf: CRLF, a bare LF, no file"

# The password Base64-encoded behind 0, 1 and 2 other octets, as PLAIN
# token, plain, and the AUTH of no_creds.
printf 'EHLO x\r\nSTARTTLS\r\n' >"$T/clean.log"
for k in 0 1 2; do
	printf '%.*s%s' "$k" ab "$T_PASS" | base64 -w0 >"$T/b64.$k.log"
done
printf '\0%s\0%s' "$T_USER" "$T_PASS" | base64 -w0 >"$T/plain.log"
printf 'x %s y\n' "$T_PASS" >"$T/pw.log"
printf 'other\n' | base64 -w0 >"$T/other.log"
assert_eq "$({ assert_no_secret "$T/clean.log" a
    for f in b64.0 b64.1 b64.2 plain pw; do assert_no_secret "$T/$f.log" "$f"; done
    assert_no_secret "$no" c; assert_no_secret "$T/other.log" d
    assert_no_secret "$T/other.log" e "other"; } | verdicts)" \
    "ok,not ok,not ok,not ok,not ok,not ok,not ok,ok,not ok" \
    "lib: assert_no_secret: clean, Base64 at 3 offsets, PLAIN, plain, no file, another password"
assert_eq "$({ no_creds "$T/clean.log" a; printf 'AUTH PLAIN\r\n' >>"$T/clean.log"
    no_creds "$T/clean.log" b; } | verdicts)" "ok,not ok" \
    "lib: no_creds: clean, then an AUTH command"

# assert_error reads RELAY_ERR as run_relay left it.
# err NAME ARG LINE...: as if run_relay ARG had run as NAME and printed
# the LINEs on stderr.
err() {
	RELAY_NAME=$1
	RELAY_ARGS=("$2")
	shift 2
	RELAY_ERR=$T/err.txt
	printf '%s\n' "$@" >"$RELAY_ERR"
}
rec='relay: from=<a@b> to=<c@d> size=1 relay=x status=tempfail'
assert_eq "$({ err relay -C "relay: refused 451 here" "$rec"; assert_error a 451 here
    assert_error b 451 gone
    err relay -C "relay: one" "relay: two"; assert_error c one
    err relay -C "sendmail: refused 451"; assert_error d 451
    err sendmail -C "sendmail: refused 451" "${rec/relay:/sendmail:}"; assert_error e 451
    err relay -C ">>> EHLO x" "relay: refused 451"; assert_error f 451
    err relay -v ">>> EHLO x" "<<< 250 ok" "*** TLS" "relay: refused 451"
    assert_error g 451; } | verdicts)" "ok,not ok,not ok,not ok,ok,not ok,ok" \
    "lib: assert_error: one line, a word missing, two lines, other name, its name, a trace without -v, with -v"

# eml.py on a folded, CRLF message.
printf 'Subject: a\r\n b\r\nx-one: 1\r\nX-One : 2\r\n\r\nbody\r\n' >"$T/f.eml"
assert_eq "$(eml field "$T/f.eml" X-ONE | tr '\n' '|')" "x-one: 1|X-One : 2|" \
    "eml.py: field: every one of that name, any case"
assert_eq "$(eml field "$T/f.eml" Subject)" "Subject: a b" "eml.py: field: unfolded"
assert_eq "$(eml names "$T/f.eml")" "Subject x-one X-One " "eml.py: names, as written"
assert_eq "$(eml body "$T/f.eml" | od -An -c)" "$(printf 'body\r\n' | od -An -c)" \
    "eml.py: body: after the empty line"
check_not "eml.py: an unknown command fails" eml nosuch "$T/f.eml"

# ---- stopping -------------------------------------------------------------
pids=("${_T_PIDS[@]}")
stop_server s465
check_not "stop_server: smarthost PID $SMARTHOST_s465_PID gone" kill -0 "$SMARTHOST_s465_PID"
stop_servers
alive=
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
assert_eq "$alive" "" "stop_servers: every server PID gone"
tracebacks=$(grep -l Traceback "$T"/*/stderr.log 2>/dev/null)
assert_eq "$tracebacks" "" "servers exit without a traceback"

t_done
