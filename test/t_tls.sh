#!/bin/bash
# TLS set-up: the CA bundle (ca_file), certificate chains and key types,
# names, TLS versions, and the tls/port mix-ups relay must explain.  The
# cases that fail run with "queue none", where the exit status tells how
# relay classified the failure (78 bundle, 75 try again); with a queue they
# all leave the message queued (t_faults.sh, "queue mode"), as the bad
# ca_file below shows once.
. "$(dirname "$0")/lib.sh"
t_setup

printf 'Subject: tls test\n\nhello from t_tls\n' >"$T/msg.txt"

# ---- ca_file ------------------------------------------------------------

start_smarthost s465 --mode smtps

send s465 queue none ca_file "$T/no-such-ca.pem"
assert_exit 78 "ca_file missing: exit 78"
assert_error "ca_file missing" "ca_file $T/no-such-ca.pem" "No such file"

: >"$T/empty.pem"
send s465 queue none ca_file "$T/empty.pem"
assert_exit 78 "ca_file empty: exit 78"
assert_error "ca_file empty" "$T/empty.pem" "holds no usable CA certificate"

cp "$PKI/server.key" "$T/keyonly.pem"
send s465 queue none ca_file "$T/keyonly.pem"
assert_exit 78 "ca_file with only a private key: exit 78"
assert_error "ca_file with only a private key" "$T/keyonly.pem" \
    "holds no usable CA certificate"

# With a queue a bad bundle is something to fix and try again: the message
# is kept, pending, with the reason, and relay exits 0.
QDIR=$T/qca
send s465 queue "$QDIR" ca_file "$T/no-such-ca.pem"
assert_exit 0 "ca_file missing, with a queue: exit 0"
id=$(q_ids | head -n 1)
assert_error "ca_file missing, with a queue" "${id:-ID} queued, will retry:" \
    "ca_file $T/no-such-ca.pem" "No such file"
assert_eq "$(q_count) $(q_rcpts "$id")" "1 pending <to@example.org>" \
    "ca_file missing, with a queue: the entry is queued, recipient pending"
assert_contains "$(q_env "$id" last-error)" "ca_file $T/no-such-ca.pem" \
    "ca_file missing, with a queue: last-error names the bundle"
unset QDIR
nothing_stored s465 "bad ca_file"
assert_file_lacks "$SMARTHOST_s465_OUT/events.log" "connect 1" \
    "bad ca_file: no TLS session was made"

# Over STARTTLS the bundle is read after the server said 220 to STARTTLS.
start_smarthost s587 --mode starttls
send s587 queue none ca_file "$T/empty.pem"
assert_exit 78 "ca_file empty, STARTTLS: exit 78"
assert_error "ca_file empty, STARTTLS" "holds no usable CA certificate"
assert_file_contains "$SMARTHOST_s587_OUT/plaintext.log" "STARTTLS" \
    "ca_file empty, STARTTLS: plaintext.log was written"
no_creds "$SMARTHOST_s587_OUT/plaintext.log" "ca_file empty, STARTTLS"

# BearSSL 0.6 misreads the PEM banner of a CRLF file; it must still load.
sed 's/$/\r/' "$PKI/ca.crt" >"$T/ca-crlf.pem"
check "the CRLF bundle has CRLF line ends" grep -q $'\r$' "$T/ca-crlf.pem"
start_smarthost crlf --mode smtps
send crlf ca_file "$T/ca-crlf.pem"
delivered crlf "CA bundle with CRLF line ends"

start_smarthost bundle --mode smtps
send bundle ca_file "$PKI/bundle.pem"
delivered bundle "bundle of two CAs, ours second"

sed 's/$/\r/' "$PKI/bundle.pem" >"$T/bundle-crlf.pem"
start_smarthost bundlecrlf --mode smtps
send bundlecrlf ca_file "$T/bundle-crlf.pem"
delivered bundlecrlf "bundle of two CAs with CRLF line ends"

# A CA BearSSL cannot use (Ed25519) is skipped, not fatal; so is the
# system's whole bundle in front of ours.
openssl req -x509 -newkey ed25519 -keyout "$T/ed.key" -nodes -days 30 \
    -subj /CN=ed25519-ca -addext basicConstraints=critical,CA:TRUE \
    -out "$T/ed.crt" >"$T/ed.log" 2>&1 || t_bail "openssl ed25519: $(cat "$T/ed.log")"
cat "$T/ed.crt" "$PKI/ca.crt" >"$T/ed-then-ca.pem"
start_smarthost edbundle --mode smtps
send edbundle ca_file "$T/ed-then-ca.pem"
delivered edbundle "bundle with an Ed25519 CA first"
send edbundle queue none ca_file "$T/ed.crt"
assert_exit 78 "bundle with only an Ed25519 CA: exit 78"
assert_error "bundle with only an Ed25519 CA" "holds no usable CA certificate"

if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
	cat /etc/ssl/certs/ca-certificates.crt "$PKI/ca.crt" >"$T/system-then-ca.pem"
	start_smarthost system --mode smtps
	send system ca_file "$T/system-then-ca.pem"
	delivered system "the system bundle with our CA appended"
fi

printf -- '-----BEGIN CERTIFICATE-----\nno*base64*here\n-----END CERTIFICATE-----\n' \
    >"$T/badpem.pem"
cat "$PKI/ca.crt" >>"$T/badpem.pem"
send s465 queue none ca_file "$T/badpem.pem"
assert_exit 78 "ca_file with broken PEM: exit 78"
assert_error "ca_file with broken PEM" "ca_file $T/badpem.pem" "malformed PEM"

# A bundle that trusts only the other CA.
start_smarthost otherca --mode smtps
send otherca queue none ca_file "$PKI/other-ca.crt"
assert_exit 75 "ca_file trusts another CA only: exit 75"
assert_error "ca_file trusts another CA only" "not signed by a CA"

# ---- certificates and chains -------------------------------------------

start_smarthost ec --mode smtps --certname server-ec
send ec
delivered ec "EC P-256 certificate"
assert_file_matches "$SMARTHOST_ec_OUT/events.log" '^tls 1 ok TLSv1\.2 ECDHE-ECDSA-' \
    "EC P-256 certificate: an ECDSA suite was used"

start_smarthost inter --mode starttls --certname server-inter
send inter
delivered inter "chain with an intermediate CA"

start_smarthost leafonly --mode smtps --cert "$PKI/server-inter.leafonly.pem" \
    --key "$PKI/server-inter.key"
send leafonly queue none
assert_exit 75 "leaf without its intermediate: exit 75"
assert_error "leaf without its intermediate" "TLS" "not signed by a CA"
nothing_stored leafonly "leaf without its intermediate"

start_smarthost selfsigned --mode smtps --certname selfsigned
send selfsigned queue none
assert_exit 75 "self-signed certificate: exit 75"
assert_error "self-signed certificate" "TLS" "not signed by a CA"

start_smarthost notyet --mode smtps --certname notyet
send notyet queue none
assert_exit 75 "certificate valid from 2099: exit 75"
assert_error "certificate valid from 2099" "TLS: certificate of localhost" "not yet valid"

# The test certificates carry IP:127.0.0.1, but BearSSL cannot check it.
start_smarthost ip --mode smtps
send ip queue none host 127.0.0.1
assert_exit 78 "host 127.0.0.1 with TLS: exit 78"
assert_error "host 127.0.0.1 with TLS" "127.0.0.1 is an IP address" "host name"
nothing_stored ip "host 127.0.0.1 with TLS"

# ---- tls and port mixed up ---------------------------------------------

start_smarthost wrong587 --mode starttls
send wrong587 queue none tls implicit
assert_exit 75 "tls implicit against a STARTTLS port: exit 75"
assert_error "tls implicit against a STARTTLS port" "TLS" '"tls"' '"port"'
no_creds "$SMARTHOST_wrong587_OUT/plaintext.log" \
    "tls implicit against a STARTTLS port"

start_smarthost wrong465 --mode smtps
timed_send wrong465 queue none tls starttls timeout_greeting 2
assert_exit 75 "tls starttls against an smtps port: exit 75"
assert_error "tls starttls against an smtps port" "no reply to the greeting" \
    "timed out" 'set "tls implicit"'
assert_elapsed 1.9 8 "tls starttls against an smtps port"

# A server that accepts but never answers the ClientHello: the handshake
# is bounded by timeout_greeting too.
start_raw silent --scenario stall-greeting
timed_send silent queue none tls implicit timeout_greeting 2
assert_exit 75 "implicit TLS, silent server: exit 75"
assert_error "implicit TLS, silent server" "TLS" "timed out after 2 s"
assert_elapsed 1.9 8 "implicit TLS, silent server"

# ---- TLS versions ------------------------------------------------------

start_smarthost tls13 --mode smtps --tls-min 1.3
send tls13 queue none
assert_exit 75 "TLS 1.3-only server: exit 75"
assert_error "TLS 1.3-only server" "TLS" "TLS 1.3"

start_smarthost tls12 --mode smtps --tls-max 1.2
send tls12
delivered tls12 "TLS 1.2-only server"
assert_file_contains "$SMARTHOST_tls12_OUT/events.log" "tls 1 ok TLSv1.2" \
    "TLS 1.2-only server: TLS 1.2 recorded"

# ---- tls none ----------------------------------------------------------

start_smarthost plain --mode plain --no-auth
send plain user - password -
delivered plain "tls none, no user"
assert_eq "$(msg_json plain 1 tls)" false "tls none: sent in clear as asked"

# IPv6, by address (allowed without TLS).
start_smarthost plain6 --mode plain --no-auth --listen ::1
send plain6 host ::1 user - password -
delivered plain6 "tls none over IPv6 (host ::1)"
assert_file_matches "$RELAY_ERR" "relay=[^ ]*\\[::1\\]:$SMARTHOST_plain6_PORT " \
    "tls none over IPv6: the log names [::1]"

start_smarthost plainuser --mode plain --no-auth
send plainuser
assert_exit 78 "tls none with user and password: exit 78"
assert_error "tls none with user and password" "$T/plainuser.conf:"
assert_file_lacks "$SMARTHOST_plainuser_OUT/events.log" "accept" \
    "tls none with user: relay did not even connect"


# ---- tls_fingerprint: the pinned certificate instead of CA and name ----

fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$PKI/$1.crt"; }

# A self-signed certificate, no usable ca_file: the pin alone decides.
start_smarthost pinself --mode smtps --certname selfsigned
send pinself ca_file "$T/no-such-ca.pem" tls_fingerprint "$(fingerprint selfsigned)"
delivered pinself "tls_fingerprint of a self-signed certificate, no ca_file"
# Pinning replaces the name check too, and lets an IP address be the host.
start_smarthost pinwrong --mode smtps --certname wronghost
send pinwrong host 127.0.0.1 tls_fingerprint \
    "$(fingerprint wronghost | sed 's/.*=//; s/://g' | tr A-F a-f)"
delivered pinwrong "tls_fingerprint (bare lower-case hex), host 127.0.0.1, cert for another name"
# Over STARTTLS as well.
start_smarthost pin587 --mode starttls --certname selfsigned
send pin587 tls_fingerprint "$(fingerprint selfsigned)"
delivered pin587 "tls_fingerprint over STARTTLS"

# A certificate that a CA would accept, but not the pinned one: refused,
# and the error shows the fingerprint the server does have.
start_smarthost pinbad --mode starttls
send pinbad queue none tls_fingerprint "$(fingerprint selfsigned)"
assert_exit 75 "wrong tls_fingerprint: exit 75"
want=$(fingerprint server | sed 's/.*=//')
assert_error "wrong tls_fingerprint" "does not match tls_fingerprint" "$want"
nothing_stored pinbad "wrong tls_fingerprint"
no_creds "$SMARTHOST_pinbad_OUT/plaintext.log" "wrong tls_fingerprint"

send pinbad tls_fingerprint "12:34"
assert_exit 78 "short tls_fingerprint: exit 78"
assert_error "short tls_fingerprint" "$T/pinbad.conf:" "64 hex digits"
send pinbad tls none tls_fingerprint "$(fingerprint server)" user - password -
assert_exit 78 "tls_fingerprint with tls none: exit 78"
assert_error "tls_fingerprint with tls none" "tls_fingerprint needs TLS"


# ---- tls_pubkey_fingerprint: the server's public key -------------------

# The SHA-256 of a certificate's SubjectPublicKeyInfo, bare lower-case hex
# (what the man page tells the administrator to run).
pubkey_fp() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
	    sha256sum | awk '{ print $1 }'
}
# "ab12..." -> "AB:12:...", the form relay's messages use.
colons() { sed 's/../&:/g; s/:$//' | tr a-f A-F; }

fp_server=$(pubkey_fp "$PKI/server.crt")
fp_self=$(pubkey_fp "$PKI/selfsigned.crt")
fp_wrong=$(pubkey_fp "$PKI/wronghost.crt")
assert_match "$fp_server" '^[0-9a-f]{64}$' "pubkey_fp gives 64 hex digits"
check_not "the server's and the self-signed key differ" \
    test "$fp_server" = "$fp_self"
# The same key under a renewed certificate: what a key pin is for.
openssl req -new -x509 -key "$PKI/server.key" -days 30 -sha256 \
    -subj "/O=relay test/CN=localhost" -addext subjectAltName=DNS:localhost \
    -out "$T/renewed.crt" >"$T/renewed.log" 2>&1 ||
    t_bail "openssl renewed cert: $(cat "$T/renewed.log")"
assert_eq "$(pubkey_fp "$T/renewed.crt")" "$fp_server" \
    "the renewed certificate has the server's key"
check_not "the renewed certificate is another certificate" \
    cmp -s "$T/renewed.crt" "$PKI/server.crt"

start_smarthost kpself --mode smtps --certname selfsigned
send kpself ca_file "$T/no-such-ca.pem" tls_pubkey_fingerprint "$fp_self"
delivered kpself "tls_pubkey_fingerprint of a self-signed certificate, no ca_file"

start_smarthost kprenew --mode smtps --cert "$T/renewed.crt" \
    --key "$PKI/server.key"
send kprenew queue none tls_fingerprint "$(fingerprint server)"
assert_exit 75 "renewed certificate, old tls_fingerprint: exit 75"
assert_error "renewed certificate, old tls_fingerprint" \
    "does not match tls_fingerprint"
send kprenew tls_pubkey_fingerprint "$(colons <<<"$fp_server")"
delivered kprenew "renewed certificate, same key: tls_pubkey_fingerprint (with colons) still matches"

# An IP address as the host: the pin is what is checked, not the name.
start_smarthost kpip --mode smtps
send kpip host 127.0.0.1 tls_pubkey_fingerprint "$fp_server"
delivered kpip "host 127.0.0.1 with tls_pubkey_fingerprint"

start_smarthost kp587 --mode starttls --certname wronghost
send kp587 tls_pubkey_fingerprint "$fp_wrong"
delivered kp587 "tls_pubkey_fingerprint over STARTTLS, certificate for another name"

# A key a CA would accept, but not the pinned one: refused, and the error
# shows the fingerprint of the key the server has.
start_smarthost kpbad --mode starttls
send kpbad queue none tls_pubkey_fingerprint "$fp_self"
assert_exit 75 "wrong tls_pubkey_fingerprint: exit 75"
assert_error "wrong tls_pubkey_fingerprint" "localhost[127.0.0.1]:" \
    "TLS: public key of localhost does not match tls_pubkey_fingerprint" \
    "$(colons <<<"$fp_server")"
nothing_stored kpbad "wrong tls_pubkey_fingerprint"
no_creds "$SMARTHOST_kpbad_OUT/plaintext.log" "wrong tls_pubkey_fingerprint"
# The certificate's own fingerprint is no public-key fingerprint.
send kpbad queue none tls_pubkey_fingerprint "$(fingerprint server)"
assert_exit 75 "tls_pubkey_fingerprint given the certificate's fingerprint: exit 75"
assert_error "tls_pubkey_fingerprint given the certificate's fingerprint" \
    "does not match tls_pubkey_fingerprint" "$(colons <<<"$fp_server")"

# Both pins: both must match; the error shows each fingerprint that differs.
start_smarthost bothpins --mode smtps
send bothpins tls_fingerprint "$(fingerprint server)" \
    tls_pubkey_fingerprint "$fp_server"
delivered bothpins "tls_fingerprint and tls_pubkey_fingerprint, both match"
send bothpins queue none tls_fingerprint "$(fingerprint server)" \
    tls_pubkey_fingerprint "$fp_self"
assert_exit 75 "both pins, the public key's wrong: exit 75"
assert_error "both pins, the public key's wrong" \
    "does not match tls_pubkey_fingerprint" "$(colons <<<"$fp_server")"
send bothpins queue none tls_fingerprint "$(fingerprint selfsigned)" \
    tls_pubkey_fingerprint "$fp_self"
assert_exit 75 "both pins wrong: exit 75"
assert_error "both pins wrong" \
    "matches neither tls_fingerprint nor tls_pubkey_fingerprint" \
    "$(fingerprint server | sed 's/.*=//')" "$(colons <<<"$fp_server")"

# ---- tls_verify both: the pin and the CA and the name ------------------

start_smarthost both --mode smtps
send both tls_verify both tls_fingerprint "$(fingerprint server)"
delivered both "tls_verify both, tls_fingerprint, valid chain and name"

start_smarthost bothkey --mode starttls
send bothkey tls_verify both tls_pubkey_fingerprint "$fp_server"
delivered bothkey "tls_verify both, tls_pubkey_fingerprint, valid chain and name"

# The pin matches, but the name does not: both means both.
start_smarthost bothname --mode smtps --certname wronghost
send bothname queue none tls_verify both tls_pubkey_fingerprint "$fp_wrong"
assert_exit 75 "tls_verify both, pin matches, wrong host name: exit 75"
assert_error "tls_verify both, pin matches, wrong host name" \
    "certificate for wrong.example does not match localhost"
nothing_stored bothname "tls_verify both, wrong host name"
send bothname queue none tls_verify pin tls_pubkey_fingerprint "$fp_wrong"
assert_exit 0 "tls_verify pin, the same pin and server: exit 0"

start_smarthost bothself --mode smtps --certname selfsigned
send bothself queue none tls_verify both tls_fingerprint "$(fingerprint selfsigned)"
assert_exit 75 "tls_verify both, pinned self-signed certificate: exit 75"
assert_error "tls_verify both, pinned self-signed certificate" "not signed by a CA"

# A valid chain does not excuse a pin that does not match.
send both queue none tls_verify both tls_pubkey_fingerprint "$fp_self"
assert_exit 75 "tls_verify both, valid chain, wrong pin: exit 75"
assert_error "tls_verify both, valid chain, wrong pin" \
    "does not match tls_pubkey_fingerprint" "$(colons <<<"$fp_server")"

send both queue none host 127.0.0.1 tls_verify both tls_pubkey_fingerprint \
    "$fp_server"
assert_exit 78 "tls_verify both with host 127.0.0.1: exit 78"
assert_error "tls_verify both with host 127.0.0.1" "127.0.0.1 is an IP address"

# ---- only ECDHE with AEAD ----------------------------------------------

start_smarthost aead --mode smtps
send aead
delivered aead "RSA certificate, default suites"
assert_file_matches "$SMARTHOST_aead_OUT/events.log" \
    '^tls 1 ok TLSv1\.2 ECDHE-RSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305) *$' \
    "RSA certificate: an ECDHE AEAD suite, no client certificate"

start_smarthost cbc --mode smtps --tls-max 1.2 \
    --ciphers ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:AES128-SHA
send cbc queue none
assert_exit 75 "server with CBC suites only: exit 75"
# (Python's asyncio hangs up without the handshake_failure alert.)
assert_error "server with CBC suites only" "without answering the handshake" \
    "other cipher suites?" \
    "relay offers only TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305"

# ---- client certificates -----------------------------------------------

start_smarthost cc_ec --mode smtps --require-client-cert
send cc_ec tls_client_cert "$PKI/client-ec.crt" tls_client_key "$PKI/client-ec.key"
delivered cc_ec "client certificate required, EC key (PKCS#8)"
assert_file_contains "$SMARTHOST_cc_ec_OUT/events.log" \
    "client=/O=relay test/CN=client-ec" "EC client certificate: the server saw it"

start_smarthost cc_rsa --mode smtps --require-client-cert
send cc_rsa -v tls_client_cert "$PKI/client-rsa.chain.pem" \
    tls_client_key "$PKI/client-rsa.trad.key" tls_pubkey_fingerprint \
    "$fp_server" tls_verify both
delivered cc_rsa "client certificate required, RSA key (traditional), chain file"
assert_file_contains "$SMARTHOST_cc_rsa_OUT/events.log" \
    "client=/O=relay test/CN=client-rsa" "RSA client certificate: the server saw it"
assert_file_contains "$RELAY_ERR" "public key matches tls_pubkey_fingerprint, certificate verified for the host name against ca_file, client certificate sent" \
    "-v tells what was checked and that the client certificate went"

start_smarthost cc_ectrad --mode starttls --require-client-cert
send cc_ectrad tls_client_cert "$PKI/client-ec.chain.pem" \
    tls_client_key "$PKI/client-ec.trad.key"
delivered cc_ectrad "client certificate over STARTTLS, EC key (traditional)"
assert_file_contains "$SMARTHOST_cc_ectrad_OUT/events.log" \
    "client=/O=relay test/CN=client-ec" "STARTTLS client certificate: the server saw it"

start_smarthost cc_rsa8 --mode smtps --require-client-cert
(umask 077; cat "$PKI/client-rsa.key" "$PKI/client-rsa.crt" >"$T/client-rsa.pem")
send cc_rsa8 tls_client_cert "$T/client-rsa.pem" tls_client_key "$T/client-rsa.pem"
delivered cc_rsa8 "client certificate and RSA key (PKCS#8) in one file"

# Asked for nothing: the certificate is not shown.
start_smarthost cc_notasked --mode smtps
send cc_notasked tls_client_cert "$PKI/client-ec.crt" tls_client_key "$PKI/client-ec.key"
delivered cc_notasked "client certificate configured, server does not ask"
assert_file_lacks "$SMARTHOST_cc_notasked_OUT/events.log" "client=" \
    "a server that does not ask sees no client certificate"

start_smarthost cc_none --mode smtps --require-client-cert
send cc_none queue none
assert_exit 75 "client certificate required, none configured: exit 75"
assert_error "client certificate required, none configured" \
    "asked for a client certificate" "may require one" "tls_client_cert"
nothing_stored cc_none "client certificate required, none configured"

start_smarthost cc_none587 --mode starttls --require-client-cert
send cc_none587 queue none
assert_exit 75 "client certificate required over STARTTLS, none configured: exit 75"
assert_error "client certificate required over STARTTLS, none configured" \
    "asked for a client certificate" "may require one"
no_creds "$SMARTHOST_cc_none587_OUT/plaintext.log" \
    "client certificate required over STARTTLS, none configured"

send cc_none queue none tls_client_cert "$PKI/client-unknown.crt" \
    tls_client_key "$PKI/client-unknown.key"
assert_exit 75 "client certificate from a CA the server does not trust: exit 75"
assert_error "client certificate from a CA the server does not trust" \
    "after relay sent the client certificate in $PKI/client-unknown.crt" \
    "does it accept that certificate and its CA?"

# What relay refuses before it shows anything (exit 78, the file named).
send cc_none queue none tls_client_cert "$PKI/client-ec.crt" \
    tls_client_key "$PKI/client-rsa.key"
assert_exit 78 "EC certificate with an RSA key: exit 78"
assert_error "EC certificate with an RSA key" \
    "tls_client_key $PKI/client-rsa.key holds an RSA key, but the certificate in tls_client_cert $PKI/client-ec.crt has an EC key"
send cc_none queue none tls_client_cert "$PKI/client-rsa.crt" \
    tls_client_key "$PKI/server.key"
assert_exit 78 "RSA certificate with another RSA key: exit 78"
assert_error "RSA certificate with another RSA key" \
    "tls_client_key $PKI/server.key is not the key of the certificate"
send cc_none queue none tls_client_cert "$PKI/client-ec.crt" \
    tls_client_key "$PKI/server-ec.key"
assert_exit 78 "EC certificate with another EC key: exit 78"
assert_error "EC certificate with another EC key" "is not the key of the certificate"
for k in client-ec.enc.key client-rsa.enc-trad.key; do
	c=${k%%.*}
	send cc_none queue none tls_client_cert "$PKI/$c.crt" tls_client_key "$PKI/$k"
	assert_exit 78 "encrypted key $k: exit 78"
	assert_error "encrypted key $k" "tls_client_key $PKI/$k" \
	    "encrypted keys are not supported; decrypt it with openssl pkey"
done
send cc_none queue none tls_client_cert "$PKI/client-ec.key" \
    tls_client_key "$PKI/client-ec.key"
assert_exit 78 "tls_client_cert with no certificate: exit 78"
assert_error "tls_client_cert with no certificate" \
    "tls_client_cert $PKI/client-ec.key holds no certificate"
(umask 077; cp "$PKI/client-ec.crt" "$T/cert-as-key.pem")
send cc_none queue none tls_client_cert "$PKI/client-ec.crt" \
    tls_client_key "$T/cert-as-key.pem"
assert_exit 78 "tls_client_key with no key: exit 78"
assert_error "tls_client_key with no key" \
    "tls_client_key $T/cert-as-key.pem holds no private key"
send cc_none queue none tls_client_cert "$T/no-such-cert.pem" \
    tls_client_key "$PKI/client-ec.key"
assert_exit 78 "tls_client_cert missing: exit 78"
assert_error "tls_client_cert missing" "tls_client_cert $T/no-such-cert.pem" \
    "No such file"
nothing_stored cc_none "refused client certificates"
assert_file_lacks "$SMARTHOST_cc_none_OUT/events.log" "client=" \
    "no client certificate reached the server in the refused cases"

t_done
