#!/bin/bash
# pki.sh DIR: make the test PKI in DIR with the openssl CLI.
#
#   ca.crt ca.key                 test CA (RSA 2048), the one the client trusts
#   server.{crt,key,chain.pem}    localhost, RSA 2048; chain = leaf then CA
#   server-ec.{crt,key,chain.pem} localhost, EC P-256, same CA
#   wronghost.{...}               SAN DNS:wrong.example only, same CA
#   expired.{...}                 localhost, same CA, expired in 2020
#   notyet.{...}                  localhost, same CA, valid from 2099 on
#   inter.{crt,key,chain.pem}     intermediate CA signed by ca
#   server-inter.{crt,key,chain.pem}  localhost signed by inter; chain =
#                                 leaf, inter (what a server must send)
#   server-inter.leafonly.pem     the same leaf without the intermediate
#   other-ca.{crt,key}            a second CA the client does not trust
#   unknown.{...}                 localhost signed by other-ca
#   selfsigned.{crt,key,chain.pem} localhost, self-signed, not a CA
#   bundle.pem                    other-ca.crt then ca.crt (a multi-CA file)
#   client-ec.{crt,key,chain.pem} client certificate, CN client-ec, EC P-256,
#                                 signed by ca; .key is PKCS#8
#   client-rsa.{crt,key,chain.pem} the same with RSA 2048, CN client-rsa
#   client-ec.trad.key, client-rsa.trad.key   the same keys in traditional
#                                 form ("EC PRIVATE KEY", "RSA PRIVATE KEY")
#   client-ec.enc.key             client-ec's key, PKCS#8 encrypted
#                                 ("ENCRYPTED PRIVATE KEY"), pass relay-test
#   client-rsa.enc-trad.key       client-rsa's key, traditional encrypted
#                                 ("Proc-Type: 4,ENCRYPTED"), pass relay-test
#   client-unknown.{...}          client certificate (EC) signed by other-ca
#
# Leaves carry SAN DNS:localhost, IP:127.0.0.1, IP:::1 (except wronghost),
# keyUsage and a non-critical extendedKeyUsage serverAuth (BearSSL rejects an
# unknown *critical* extension, and does not know EKU); client certificates
# have no SAN and extendedKeyUsage clientAuth instead.  CAs carry
# basicConstraints critical CA:TRUE and keyUsage keyCertSign, cRLSign.
#
# Idempotent: does nothing if DIR/.done is newer than this script and the
# leaves are still valid for a day.  Safe to run concurrently (flock).
set -eu

dir=${1:?usage: pki.sh DIR}
self=$(readlink -f "$0")
mkdir -p "$(dirname "$dir")"
# Absolute: the work below happens after a cd.
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")

uptodate() {
	[ -f "$dir/.done" ] && [ "$dir/.done" -nt "$self" ] &&
	    openssl x509 -in "$dir/server.crt" -noout -checkend 86400 \
	    >/dev/null 2>&1
}
uptodate && exit 0

exec 9>"$dir.lock"
flock -w 120 9 || { echo "pki.sh: cannot lock $dir.lock" >&2; exit 1; }
uptodate && exit 0

new=$(mktemp -d "$dir.new.XXXXXX")
trap 'rm -rf "$new"' EXIT
cd "$new"

q() {	# run openssl quietly, show its output only on failure
	local out
	if ! out=$(openssl "$@" 2>&1); then
		printf 'pki.sh: openssl %s failed:\n%s\n' "$*" "$out" >&2
		exit 1
	fi
}

rsakey() { [ -f "$1" ] || q genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"; }
eckey()  { [ -f "$1" ] || q genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# RSA key generation dominates the run time: make the keys two at a time.
rsa_names=(ca other-ca inter server wronghost unknown server-inter selfsigned
    expired notyet client-rsa)
printf '%s.key\n' "${rsa_names[@]}" | xargs -P 2 -I{} \
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out {} \
    2>/dev/null || { echo "pki.sh: RSA key generation failed" >&2; exit 1; }

cat >ext.cnf <<'EOF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[rsa_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ec_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[wrong_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[client_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[self_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
EOF

# A self-signed CA: NAME SUBJECT
mkca() {
	rsakey "$1.key"
	q req -new -x509 -key "$1.key" -out "$1.crt" -days 3650 -sha256 \
	    -subj "$2" -config ext.cnf -extensions ca
}

# A certificate signed by a CA: NAME KEYTYPE CN ISSUER SECTION [DAYS=825];
# NAME.chain.pem is it followed by the issuer's.
mkcert() {
	"$2key" "$1.key"
	q req -new -key "$1.key" -out "$1.csr" -subj "/O=relay test/CN=$3"
	q x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" \
	    -CAcreateserial -days "${6:-825}" -sha256 \
	    -extfile ext.cnf -extensions "$5" -out "$1.crt"
	rm -f "$1.csr"
	cat "$1.crt" "$4.crt" >"$1.chain.pem"
}

# A certificate with explicit dates, via "openssl ca" (OpenSSL 3.0's x509
# cannot backdate): NAME START END (YYYYMMDDHHMMSSZ)
mkdated() {
	rsakey "$1.key"
	q req -new -key "$1.key" -out "$1.csr" -subj "/O=relay test/CN=localhost"
	mkdir -p cadb
	: >cadb/index.txt
	[ -f cadb/serial ] || echo 1000 >cadb/serial
	cat >cadb/ca.cnf <<EOF
[ca]
default_ca = test
[test]
dir = cadb
database = cadb/index.txt
serial = cadb/serial
new_certs_dir = cadb
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
organizationName = optional
commonName = supplied
EOF
	q ca -batch -notext -config cadb/ca.cnf -cert ca.crt -keyfile ca.key \
	    -startdate "$2" -enddate "$3" -extfile ext.cnf -extensions rsa_leaf \
	    -in "$1.csr" -out "$1.crt"
	rm -f "$1.csr"
	cat "$1.crt" ca.crt >"$1.chain.pem"
}

mkca ca "/O=relay test/CN=relay test CA"
mkca other-ca "/O=relay test/CN=relay untrusted CA"

mkcert server rsa localhost ca rsa_leaf
mkcert server-ec ec localhost ca ec_leaf
mkcert wronghost rsa wrong.example ca wrong_leaf
mkcert unknown rsa localhost other-ca rsa_leaf

# Intermediate CA and a leaf under it.
mkcert inter rsa "relay test intermediate" ca ca 3650
mkcert server-inter rsa localhost inter rsa_leaf
cp server-inter.crt server-inter.leafonly.pem	# chain.pem = leaf + inter

# Self-signed leaf (not a CA).
rsakey selfsigned.key
q req -new -x509 -key selfsigned.key -out selfsigned.crt -days 825 -sha256 \
    -subj "/O=relay test/CN=localhost" -config ext.cnf -extensions self_leaf
cp selfsigned.crt selfsigned.chain.pem

mkdated expired 20190101000000Z 20200201000000Z
mkdated notyet 20990101000000Z 20991231000000Z

cat other-ca.crt ca.crt >bundle.pem

# Client certificates, and their keys in each form relay must read or
# refuse (genpkey writes PKCS#8).
mkcert client-ec ec client-ec ca client_leaf
mkcert client-rsa rsa client-rsa ca client_leaf
mkcert client-unknown ec client-unknown other-ca client_leaf
q pkey -in client-ec.key -traditional -out client-ec.trad.key
q pkey -in client-rsa.key -traditional -out client-rsa.trad.key
q pkey -in client-ec.key -aes256 -passout pass:relay-test -out client-ec.enc.key
q pkey -in client-rsa.key -traditional -aes256 -passout pass:relay-test \
    -out client-rsa.enc-trad.key

# Check what we made, so a broken PKI fails here and not in a relay test.
for c in server server-ec wronghost expired notyet; do
	case $c in
	expired) want="certificate has expired" ;;
	notyet)  want="certificate is not yet valid" ;;
	*)       want=OK ;;
	esac
	out=$(openssl verify -CAfile ca.crt "$c.crt" 2>&1 || true)
	case $out in
	*"$want"*) ;;
	*) echo "pki.sh: $c.crt: unexpected verify result: $out" >&2; exit 1 ;;
	esac
done
q verify -CAfile ca.crt -untrusted inter.crt server-inter.crt
q verify -CAfile other-ca.crt unknown.crt
if openssl verify -CAfile ca.crt unknown.crt >/dev/null 2>&1; then
	echo "pki.sh: unknown.crt verifies against ca.crt" >&2; exit 1
fi

q verify -CAfile ca.crt -purpose sslclient client-ec.crt
q verify -CAfile ca.crt -purpose sslclient client-rsa.crt
# Each key file in the form its name promises.
for want in "client-ec.key:BEGIN PRIVATE KEY" \
    "client-rsa.key:BEGIN PRIVATE KEY" \
    "client-ec.trad.key:BEGIN EC PRIVATE KEY" \
    "client-rsa.trad.key:BEGIN RSA PRIVATE KEY" \
    "client-ec.enc.key:BEGIN ENCRYPTED PRIVATE KEY" \
    "client-rsa.enc-trad.key:Proc-Type: 4,ENCRYPTED"; do
	grep -q -- "${want#*:}" "${want%%:*}" ||
	    { echo "pki.sh: ${want%%:*} lacks \"${want#*:}\"" >&2; exit 1; }
done

rm -rf cadb ./*.srl ext.cnf
chmod 644 ./*
chmod 600 ./*.key
touch .done
cd /

rm -rf "$dir.old"
[ -e "$dir" ] && mv "$dir" "$dir.old"
mv "$new" "$dir"
trap - EXIT
rm -rf "$dir.old"
