/*
 * The stream smtp.c talks through: the TCP connection of net.c, plain or
 * with BearSSL on top, as lines in and bytes out.  Here are the TLS
 * session's set-up (its suites, with the anchors and pins of anchors.c
 * and the client certificate of keys.c), the handshake and its trace for
 * -v, and a sentence for each way a handshake fails.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <bearssl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "relay.h"

#define RBUF_SIZE	16384	/* received, not yet consumed */

struct conn {
	struct sock		 sock;		/* fd, deadline, peer, error */
	int			 tls;
	const struct conf	*conf;
	size_t			 tls_in;	/* TLS bytes received */

	unsigned char		 rbuf[RBUF_SIZE];
	size_t			 rpos, rlen;
	struct wbuf		 plain_out;	/* not yet flushed, no TLS */

	struct anchors		 anchors;
	br_ssl_client_context	 sc;
	br_x509_minimal_context	 xc;
	struct pin_x509		 pin;
	struct client_auth	 auth;
	br_sslio_context	 io;
	br_name_element		 names[2];	/* leaf's dNSName and CN */
	char			 san[256], cn[256];
	unsigned char		 iobuf[BR_SSL_BUFSIZE_BIDI];
};

/* ---- TLS ----------------------------------------------------------------- */

/*
 * TLS 1.2 with forward secrecy and AEAD only (RFC 7525 4.2): CBC with its
 * padding oracles, static RSA and static ECDH are not offered.
 */
static const uint16_t suites[] = {
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
};

static const struct {
	uint16_t	 id;
	const char	*name;
} suite_names[] = {
	{ BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	    "ECDHE-ECDSA-CHACHA20-POLY1305" },
	{ BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	    "ECDHE-RSA-CHACHA20-POLY1305" },
	{ BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	    "ECDHE-ECDSA-AES128-GCM-SHA256" },
	{ BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	    "ECDHE-RSA-AES128-GCM-SHA256" },
	{ BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	    "ECDHE-ECDSA-AES256-GCM-SHA384" },
	{ BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	    "ECDHE-RSA-AES256-GCM-SHA384" },
};

#define OFFERED	"relay offers only TLS 1.2 with ECDHE and AES-GCM or " \
		"ChaCha20-Poly1305"

/* Check the chain and host name against ca_file?  Always without a pin. */
static int
verify_chain(const struct conf *conf)
{
	return conf->verify_chain || (!conf->pinned && !conf->key_pinned);
}

/* For -v: what was negotiated, why the certificate is trusted, and ours. */
static void
tls_trace(struct conn *c)
{
	const struct conf *conf = c->conf;
	br_ssl_session_parameters sp;
	const char *suite = "?";
	char why[256] = "";
	size_t i;

	if (!verbose)
		return;
	br_ssl_engine_get_session_parameters(&c->sc.eng, &sp);
	for (i = 0; i < sizeof suite_names / sizeof suite_names[0]; i++)
		if (suite_names[i].id == sp.cipher_suite)
			suite = suite_names[i].name;
	explicit_bzero(&sp, sizeof sp);	/* it holds the master secret */
	if (conf->pinned)
		strlcat(why, ", certificate matches tls_fingerprint",
		    sizeof why);
	if (conf->key_pinned)
		strlcat(why, ", public key matches tls_pubkey_fingerprint",
		    sizeof why);
	if (verify_chain(conf))
		strlcat(why, ", certificate verified for the host name against "
		    "ca_file", sizeof why);
	if (c->auth.sent)
		strlcat(why, ", client certificate sent", sizeof why);
	else if (c->auth.asked)
		strlcat(why, ", client certificate asked for, none sent",
		    sizeof why);
	fprintf(stderr, "*** TLS 1.2, %s%s\n", suite, why);
}

static const struct {
	int		 code;
	const char	*text;
} tls_errors[] = {
	{ BR_ERR_BAD_PARAM, "bad parameter (host name too long?)" },
	{ BR_ERR_UNSUPPORTED_VERSION, "the server does not speak TLS 1.2 "
	    "here (is this port plaintext or STARTTLS? check \"tls\" and "
	    "\"port\")" },
	{ BR_ERR_BAD_VERSION, "the server answered with a TLS version "
	    "other than 1.2" },
	{ BR_ERR_NO_RANDOM, "no source of randomness" },
	{ BR_ERR_BAD_CIPHER_SUITE, "the server chose a cipher suite relay "
	    "did not offer" },
	{ BR_ERR_LIMIT_EXCEEDED, "the server's key or parameters exceed "
	    "BearSSL's limits" },
	{ BR_ERR_INVALID_ALGORITHM, "the server uses an unsupported curve "
	    "or signature algorithm" },
	{ BR_ERR_BAD_SIGNATURE, "bad signature in the server's key "
	    "exchange" },
	{ BR_ERR_WRONG_KEY_USAGE, "the server's certificate key may not be "
	    "used for this key exchange" },
	{ BR_ERR_X509_EXPIRED, "has expired or is not yet valid (check the "
	    "system clock)" },
	{ BR_ERR_X509_UNSUPPORTED, "uses an unsupported signature "
	    "algorithm (RSA-PSS or Ed25519)" },
	{ BR_ERR_X509_LIMIT_EXCEEDED, "has a key larger than BearSSL "
	    "supports" },
	{ BR_ERR_X509_CRITICAL_EXTENSION, "has an unsupported critical "
	    "extension" },
	{ BR_ERR_X509_NOT_CA, "chain has an intermediate that is not a CA" },
	{ BR_ERR_X509_FORBIDDEN_KEY_USAGE, "key usage forbids TLS server "
	    "use" },
	{ BR_ERR_X509_WEAK_PUBLIC_KEY, "has a public key that is too weak" },
};

static const struct {
	int		 alert;
	const char	*name;
} tls_alerts[] = {
	{ 10, "unexpected_message" }, { 20, "bad_record_mac" },
	{ 40, "handshake_failure" }, { 42, "bad_certificate" },
	{ 43, "unsupported_certificate" }, { 44, "certificate_revoked" },
	{ 45, "certificate_expired" }, { 46, "certificate_unknown" },
	{ 47, "illegal_parameter" }, { 48, "unknown_ca" },
	{ 49, "access_denied" }, { 50, "decode_error" },
	{ 51, "decrypt_error" },
	{ 70, "protocol_version (the server may require TLS 1.3, which "
	    "BearSSL 0.6 lacks)" },
	{ 71, "insufficient_security" }, { 80, "internal_error" },
	{ 112, "unrecognized_name" }, { 116, "certificate_required" },
};

static const char *
alert_name(int alert)
{
	size_t i;

	for (i = 0; i < sizeof tls_alerts / sizeof tls_alerts[0]; i++)
		if (tls_alerts[i].alert == alert)
			return tls_alerts[i].name;
	return "unknown alert";
}

/* "AB:CD:..." for messages; out must hold 3 * 32 octets. */
static void
pin_show(const unsigned char *h, char *out, size_t outlen)
{
	hex_encode(out, outlen, h, br_sha256_SIZE, HEX_UPPER | HEX_COLONS);
}

/* A pin that did not match: show what the server has, to compare. */
static void
pin_why(struct conn *c, char *err, size_t errlen)
{
	const struct pin_x509 *x = &c->pin;
	const char *host = c->conf->host;
	char cert[3 * br_sha256_SIZE], key[3 * br_sha256_SIZE];

	pin_show(x->got, cert, sizeof cert);
	pin_show(x->got_key, key, sizeof key);
	if ((x->mismatch & PIN_KEY) && !x->have_key)
		snprintf(err, errlen, "TLS: cannot find the public key in the "
		    "certificate of %s to compare with tls_pubkey_fingerprint "
		    "(malformed, or its names take over %d octets)", host,
		    LEAF_MAX);
	else if (x->mismatch == (PIN_CERT | PIN_KEY))
		snprintf(err, errlen, "TLS: certificate of %s matches neither "
		    "tls_fingerprint nor tls_pubkey_fingerprint (its SHA-256 "
		    "fingerprint is %s; its public key's is %s)", host, cert,
		    key);
	else if (x->mismatch == PIN_KEY)
		snprintf(err, errlen, "TLS: public key of %s does not match "
		    "tls_pubkey_fingerprint (the SHA-256 fingerprint of its "
		    "public key is %s)", host, key);
	else
		snprintf(err, errlen, "TLS: certificate of %s does not match "
		    "tls_fingerprint (its SHA-256 fingerprint is %s)", host,
		    cert);
}

/*
 * The smarthost ended the handshake (an alert, or a hang-up) after it
 * asked for a client certificate: that is most likely why.
 */
static int
auth_why(struct conn *c, int e, char *err, size_t errlen)
{
	const struct conf *conf = c->conf;
	char how[300];

	if (!c->auth.asked)
		return 0;
	if (e >= BR_ERR_RECV_FATAL_ALERT && e < BR_ERR_SEND_FATAL_ALERT)
		snprintf(how, sizeof how, "alert %s",
		    alert_name(e - BR_ERR_RECV_FATAL_ALERT));
	else if (e == BR_ERR_IO && c->sock.hungup)
		strlcpy(how, c->sock.error, sizeof how);
	else
		return 0;
	if (conf->client_cert == NULL)
		snprintf(err, errlen, "TLS: the smarthost asked for a client "
		    "certificate and ended the handshake when relay had none "
		    "(%s): it may require one (set tls_client_cert and "
		    "tls_client_key)", how);
	else if (!c->auth.sent)
		snprintf(err, errlen, "TLS: the smarthost asked for a client "
		    "certificate but takes no signature relay can make with "
		    "the %s key in %s (%s)", key_type_name(c->auth.key_type),
		    conf->client_key, how);
	else
		snprintf(err, errlen, "TLS: the smarthost ended the handshake "
		    "after relay sent the client certificate in %s (%s): does "
		    "it accept that certificate and its CA?", conf->client_cert,
		    how);
	return 1;
}

/* Turn BearSSL's last error into a sentence about this smarthost. */
static void
tls_why(struct conn *c, char *err, size_t errlen)
{
	int e = br_ssl_engine_last_error(&c->sc.eng), alert;
	const char *text = NULL, *certname;
	size_t i;

	for (i = 0; i < sizeof tls_errors / sizeof tls_errors[0]; i++)
		if (tls_errors[i].code == e)
			text = tls_errors[i].text;
	certname = c->names[0].status == 1 ? c->san :
	    c->names[1].status == 1 ? c->cn : "an unnamed host";
	if (e == BR_ERR_X509_NOT_TRUSTED && c->pin.mismatch != 0)
		pin_why(c, err, errlen);
	else if (e == BR_ERR_X509_NOT_TRUSTED)
		snprintf(err, errlen, "TLS: certificate of %s is not signed by "
		    "a CA in %s (an unknown or private CA, or the server does "
		    "not send its intermediate certificate)", certname,
		    c->conf->ca_file);
	else if (e == BR_ERR_X509_BAD_SERVER_NAME)
		snprintf(err, errlen, "TLS: certificate for %s does not match "
		    "%s", certname, c->conf->host);
	else if (e >= BR_ERR_X509_OK && e < BR_ERR_X509_OK + 32)
		/*
		 * BearSSL stops before the names when the dates are wrong:
		 * say whose certificate it is, not "an unnamed host".
		 */
		snprintf(err, errlen, "TLS: certificate of %s %s",
		    c->names[0].status == 1 || c->names[1].status == 1 ?
		    certname : c->conf->host, text ? text :
		    "failed verification");
	else if (auth_why(c, e, err, errlen))
		;
	else if (e >= BR_ERR_SEND_FATAL_ALERT)
		snprintf(err, errlen, "TLS: relay aborted the handshake: %s",
		    alert_name(e - BR_ERR_SEND_FATAL_ALERT));
	else if (e >= BR_ERR_RECV_FATAL_ALERT) {
		alert = e - BR_ERR_RECV_FATAL_ALERT;
		/*
		 * Before any CertificateRequest, handshake_failure usually
		 * means nothing in common with what relay offers.
		 */
		snprintf(err, errlen, "TLS: the smarthost refused the "
		    "handshake: %s%s", alert_name(alert), alert == 40 ||
		    alert == 71 ? " (no cipher suite in common? " OFFERED ")" :
		    "");
	} else if (e == BR_ERR_IO && c->sock.hungup && c->tls_in == 0)
		/*
		 * A server that wants TLS 1.3, or has no suite in common
		 * with us, may hang up on our ClientHello without even an
		 * alert (Python's asyncio does).
		 */
		snprintf(err, errlen, "TLS: %s without answering the handshake "
		    "(does it require TLS 1.3, which BearSSL 0.6 lacks, or "
		    "other cipher suites? " OFFERED ")", c->sock.error);
	else if (e == BR_ERR_IO)
		snprintf(err, errlen, "TLS: %s", c->sock.error[0] ?
		    c->sock.error : "connection lost");
	else if (text != NULL)
		snprintf(err, errlen, "TLS: %s", text);
	else
		snprintf(err, errlen, "TLS: handshake failed (BearSSL error "
		    "%d)", e);
}

/* The same, naming the address it happened with. */
static void
tls_explain(struct conn *c, char *err, size_t errlen)
{
	char why[ERRLEN];

	tls_why(c, why, sizeof why);
	snprintf(err, errlen, "%s: ", c->sock.peer);
	strlcat(err, why, errlen);
}

/* BearSSL's transport callbacks: -1 on any error, including EOF. */
static int
bio_read(void *ctx, unsigned char *buf, size_t len)
{
	struct conn *c = ctx;
	ssize_t n;

	if ((n = sock_read(&c->sock, buf, len)) > 0)
		c->tls_in += (size_t)n;
	return (int)n;
}

static int
bio_write(void *ctx, const unsigned char *buf, size_t len)
{
	struct conn *c = ctx;

	return (int)sock_write(&c->sock, buf, len);
}

static int
tls_start(struct conn *c, int *exitcode, char *err, size_t errlen)
{
	static const unsigned char oid_dns[] = { 0, 2 };
	static const unsigned char oid_cn[] = { 3, 0x55, 0x04, 0x03 };
	const struct conf *conf = c->conf;
	unsigned char seed[32], ip[sizeof(struct in6_addr)];
	int is_ip, chain;

	chain = verify_chain(conf);
	is_ip = inet_pton(AF_INET, conf->host, ip) == 1 ||
	    inet_pton(AF_INET6, conf->host, ip) == 1;
	/*
	 * BearSSL matches names only (no iPAddress SANs), and with no name
	 * to send it would skip the check without a word.
	 */
	if (is_ip && chain) {
		snprintf(err, errlen, "host %s is an IP address: relay can "
		    "verify a certificate only against a host name (set "
		    "tls_fingerprint or tls_pubkey_fingerprint%s)", conf->host,
		    conf->pinned || conf->key_pinned ? ", without \"tls_verify "
		    "both\"" : "");
		*exitcode = EX_CONFIG;
		return -1;
	}
	if (chain && c->anchors.n == 0 &&
	    anchors_load(&c->anchors, conf->ca_file, err, errlen) == -1) {
		*exitcode = EX_CONFIG;
		return -1;
	}
	if ((conf->client_cert == NULL) != (conf->client_key == NULL)) {
		snprintf(err, errlen, "%s is set but %s is not",
		    conf->client_cert != NULL ? "tls_client_cert" :
		    "tls_client_key", conf->client_cert != NULL ?
		    "tls_client_key" : "tls_client_cert");
		*exitcode = EX_CONFIG;
		return -1;
	}
	if (conf->client_cert != NULL && c->auth.nchain == 0 &&
	    client_key_load(&c->auth, conf, err, errlen) == -1) {
		*exitcode = EX_CONFIG;
		return -1;
	}
	br_ssl_client_init_full(&c->sc, &c->xc, c->anchors.ta, c->anchors.n);
	/* From here to reset: init_full zeroes the context. */
	if (conf->pinned || conf->key_pinned) {
		c->pin.vtable = &pin_vtable;
		c->pin.chain = chain ? &c->xc.vtable : NULL;
		c->pin.pin = conf->pinned ? conf->pin : NULL;
		c->pin.key_pin = conf->key_pinned ? conf->key_pin : NULL;
		br_ssl_engine_set_x509(&c->sc.eng, &c->pin.vtable);
	}
	br_ssl_engine_set_versions(&c->sc.eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(&c->sc.eng, suites,
	    sizeof suites / sizeof suites[0]);
	br_ssl_engine_add_flags(&c->sc.eng, BR_OPT_NO_RENEGOTIATION);
	c->names[0] = (br_name_element){ oid_dns, c->san, sizeof c->san, 0 };
	c->names[1] = (br_name_element){ oid_cn, c->cn, sizeof c->cn, 0 };
	br_x509_minimal_set_name_elements(&c->xc, c->names, 2);
	/*
	 * Always our handler, with or without a certificate to show: it
	 * notes a request, so that a refusal can be explained.  The key it
	 * signs with lives in c->auth until conn_close.
	 */
	c->auth.vtable = &client_key_vtable;
	br_ssl_client_set_client_certificate(&c->sc, &c->auth.vtable);
	br_ssl_engine_set_buffer(&c->sc.eng, c->iobuf, sizeof c->iobuf, 1);
	/* 0.6 seeds from RDRAND alone on x86; mix in the kernel's entropy. */
	arc4random_buf(seed, sizeof seed);
	br_ssl_engine_inject_entropy(&c->sc.eng, seed, sizeof seed);
	explicit_bzero(seed, sizeof seed);
	/* RFC 6066 3: no IP address in SNI. */
	if (!br_ssl_client_reset(&c->sc, is_ip ? NULL : conf->host, 0)) {
		tls_explain(c, err, errlen);
		*exitcode = EX_SOFTWARE;
		return -1;
	}
	br_sslio_init(&c->io, &c->sc.eng, bio_read, c, bio_write, c);
	conn_timeout(c, conf->timeout[TMO_GREETING]);
	c->sock.error[0] = '\0';
	/* Run the whole handshake now, so no SMTP byte goes unverified. */
	if (br_sslio_flush(&c->io) == -1) {
		tls_explain(c, err, errlen);
		*exitcode = EX_TEMPFAIL;
		return -1;
	}
	c->tls = 1;
	tls_trace(c);
	return 0;
}

/* ---- the stream smtp.c uses ---------------------------------------------- */

/* Where plaintext output goes when the buffer is full or flushed. */
static int
plain_send(void *ctx, const char *buf, size_t len)
{
	struct sock *sk = ctx;
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		if ((n = sock_write(sk, buf + off, len - off)) == -1)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

struct conn *
conn_open(const struct conf *conf, int *exitcode, char *err, size_t errlen)
{
	struct conn *c;

	if ((c = calloc(1, sizeof *c)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		*exitcode = EX_OSERR;
		return NULL;
	}
	c->sock.fd = -1;
	c->sock.cap = conf->submit_end;
	c->sock.cap_seconds = conf->submit_timeout;
	c->conf = conf;
	wbuf_init(&c->plain_out, plain_send, &c->sock);
	if (connect_any(&c->sock, conf) == -1) {
		strlcpy(err, c->sock.error, errlen);
		*exitcode = EX_TEMPFAIL;
		conn_close(c);
		return NULL;
	}
	if (conf->tls == TLS_IMPLICIT && tls_start(c, exitcode, err,
	    errlen) == -1) {
		conn_close(c);
		return NULL;
	}
	return c;
}

/* Octets received but not yet read by conn_getline. */
static size_t
conn_pending(const struct conn *c)
{
	return c->rlen - c->rpos;
}

int
conn_starttls(struct conn *c, int *exitcode, char *err, size_t errlen)
{
	/*
	 * Bytes that came after the 220 were sent before the handshake, so
	 * anyone on the path could have written them (RFC 3207 section 6,
	 * CVE-2021-22947 class).  Refuse to go on.
	 */
	if (conn_pending(c) != 0 || c->plain_out.used != 0) {
		snprintf(err, errlen, "the smarthost sent %zu unexpected bytes "
		    "after its reply to STARTTLS (possible injection attack); "
		    "aborted before TLS", conn_pending(c));
		*exitcode = EX_PROTOCOL;
		return -1;
	}
	return tls_start(c, exitcode, err, errlen);
}

int
conn_is_tls(const struct conn *c)
{
	return c->tls;
}


void
conn_timeout(struct conn *c, int seconds)
{
	sock_timeout(&c->sock, seconds);
}

static int
conn_fill(struct conn *c)
{
	ssize_t n;
	size_t space;

	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	space = sizeof c->rbuf - c->rlen;
	if (space == 0)
		return 0;
	if (c->tls) {
		/* Replies must not wait behind our own unsent commands. */
		if (br_sslio_flush(&c->io) == -1)
			return -1;
		n = br_sslio_read(&c->io, c->rbuf + c->rlen, space);
		if (n == -1 && c->sock.error[0] == '\0')
			strlcpy(c->sock.error, "TLS connection closed by the "
			    "smarthost", sizeof c->sock.error);
	} else
		n = sock_read(&c->sock, c->rbuf + c->rlen, space);
	if (n <= 0)
		return -1;
	c->rlen += (size_t)n;
	return 0;
}

ssize_t
conn_getline(struct conn *c, char *buf, size_t size)
{
	unsigned char *nl;
	size_t len;

	c->sock.error[0] = '\0';
	if (c->plain_out.used > 0 && conn_flush(c) == -1)
		return -1;
	for (;;) {
		nl = memchr(c->rbuf + c->rpos, '\n', c->rlen - c->rpos);
		if (nl != NULL)
			break;
		if (c->rlen - c->rpos >= size ||
		    (c->rpos == 0 && c->rlen == sizeof c->rbuf)) {
			snprintf(c->sock.error, sizeof c->sock.error, "reply "
			    "line longer than %zu octets", size - 1);
			return -1;
		}
		if (conn_fill(c) == -1)
			return -1;
	}
	len = (size_t)(nl - (c->rbuf + c->rpos));
	if (len > 0 && nl[-1] == '\r')
		len--;
	if (len >= size) {
		snprintf(c->sock.error, sizeof c->sock.error, "reply line "
		    "longer than %zu octets", size - 1);
		return -1;
	}
	memcpy(buf, c->rbuf + c->rpos, len);
	buf[len] = '\0';
	c->rpos = (size_t)(nl - c->rbuf) + 1;
	return (ssize_t)len;
}

int
conn_write(struct conn *c, const char *buf, size_t len)
{
	c->sock.error[0] = '\0';
	if (c->tls) {
		if (br_sslio_write_all(&c->io, buf, len) == -1) {
			if (c->sock.error[0] == '\0')
				strlcpy(c->sock.error, "TLS write failed",
				    sizeof c->sock.error);
			return -1;
		}
		return 0;
	}
	return wbuf_put(&c->plain_out, buf, len);
}

int
conn_flush(struct conn *c)
{
	if (c->tls) {
		if (br_sslio_flush(&c->io) == -1) {
			if (c->sock.error[0] == '\0')
				strlcpy(c->sock.error, "TLS write failed",
				    sizeof c->sock.error);
			return -1;
		}
		return 0;
	}
	return wbuf_flush(&c->plain_out);
}

const char *
conn_error(const struct conn *c)
{
	return c->sock.error[0] ? c->sock.error : "connection failed";
}

const char *
conn_peer(const struct conn *c)
{
	return c->sock.peer;
}

/* RFC 5321 4.1.3; an IPv4-mapped address is written as IPv4. */
int
conn_local_literal(const struct conn *c, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN];
	int n;

	if (getsockname(c->sock.fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	if (ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		n = inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip,
		    sizeof ip) == NULL ? -1 : snprintf(buf, size, "[%s]", ip);
	else if (ss.ss_family == AF_INET6)
		n = inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip) ==
		    NULL ? -1 : snprintf(buf, size, "[IPv6:%s]", ip);
	else if (ss.ss_family == AF_INET)
		n = inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip) ==
		    NULL ? -1 : snprintf(buf, size, "[%s]", ip);
	else
		n = -1;
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/*
 * Send close_notify without waiting for the server's (RFC 8314 section
 * 3.4); by now the message has been accepted or refused, so errors here
 * change nothing.
 */
void
conn_close(struct conn *c)
{
	unsigned char *rec;
	size_t len;
	ssize_t n;

	if (c == NULL)
		return;
	if (c->tls && c->sock.fd != -1) {
		conn_timeout(c, 2);
		br_ssl_engine_close(&c->sc.eng);
		while (br_ssl_engine_current_state(&c->sc.eng) &
		    BR_SSL_SENDREC) {
			rec = br_ssl_engine_sendrec_buf(&c->sc.eng, &len);
			if ((n = sock_write(&c->sock, rec, len)) <= 0)
				break;
			br_ssl_engine_sendrec_ack(&c->sc.eng, (size_t)n);
		}
	}
	if (c->sock.fd != -1)
		close(c->sock.fd);
	anchors_free(&c->anchors);
	client_key_free(&c->auth);		/* and its private key */
	explicit_bzero(c, sizeof *c);
	free(c);
}
