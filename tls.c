/*
 * The connection to the smarthost: TCP connect over every address of its
 * name, then optionally BearSSL on top, presented to smtp.c as one stream
 * of lines in and bytes out.  Every wait is bounded by a deadline that
 * smtp.c sets per command.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define RBUF_SIZE	16384	/* received, not yet consumed */
#define WBUF_SIZE	16384	/* plaintext output not yet flushed */
#define DN_MAX		1024	/* longest CA subject name we keep */
#define DER_MAX		16384	/* largest CA certificate we keep */

struct anchors {
	br_x509_trust_anchor	*ta;
	size_t			 n;
};

/*
 * tls_fingerprint: trust exactly the certificate whose SHA-256 is pinned,
 * instead of a CA and the host name (as msmtp's tls_fingerprint does).
 * It sees the chain as BearSSL receives it, server certificate first.
 */
struct pin_x509 {
	const br_x509_class	*vtable;	/* first: BearSSL passes &vtable */
	const unsigned char	*pin;
	br_sha256_context	 hash;
	br_x509_decoder_context	 leaf;
	unsigned char		 got[br_sha256_SIZE];
	unsigned		 depth;
};

struct conn {
	int			 fd;
	int			 tls;
	const struct conf	*conf;
	char			 peer[300];
	char			 error[256];	/* the last failure, one line */
	struct timespec		 deadline;
	int			 timeout;	/* seconds, for messages */
	int			 hungup;	/* peer closed or reset */
	size_t			 tls_in;	/* TLS bytes received */

	unsigned char		 rbuf[RBUF_SIZE];
	size_t			 rpos, rlen;
	char			 wbuf[WBUF_SIZE];
	size_t			 wlen;

	struct anchors		 anchors;
	br_ssl_client_context	 sc;
	br_x509_minimal_context	 xc;
	struct pin_x509		 pin;
	br_sslio_context	 io;
	br_name_element		 names[2];	/* leaf's dNSName and CN */
	char			 san[256], cn[256];
	unsigned char		 iobuf[BR_SSL_BUFSIZE_BIDI];
};

/* ---- deadlines and raw socket I/O --------------------------------------- */

void
conn_timeout(struct conn *c, int seconds)
{
	clock_gettime(CLOCK_MONOTONIC, &c->deadline);
	c->deadline.tv_sec += seconds;
	c->timeout = seconds;
}

/* Wait until fd is ready for events or the deadline passes. */
static int
wait_fd(struct conn *c, short events)
{
	struct pollfd pfd;
	struct timespec now;
	long long ms;
	int n;

	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (long long)(c->deadline.tv_sec - now.tv_sec) * 1000 +
		    (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
		if (ms <= 0) {
			snprintf(c->error, sizeof c->error,
			    "timed out after %d s", c->timeout);
			return -1;
		}
		pfd.fd = c->fd;
		pfd.events = events;
		n = poll(&pfd, 1, ms > 60000 ? 60000 : (int)ms);
		if (n > 0)
			return 0;
		if (n == -1 && errno != EINTR) {
			snprintf(c->error, sizeof c->error, "poll: %s",
			    strerror(errno));
			return -1;
		}
	}
}

static ssize_t
sock_read(struct conn *c, void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		if (wait_fd(c, POLLIN) == -1)
			return -1;
		n = read(c->fd, buf, len);
		if (n > 0)
			return n;
		if (n == 0) {
			strlcpy(c->error, "connection closed by the smarthost",
			    sizeof c->error);
			c->hungup = 1;
			return -1;
		}
		if (errno == ECONNRESET)
			c->hungup = 1;
		if (errno != EINTR && errno != EAGAIN) {
			snprintf(c->error, sizeof c->error, "read: %s",
			    strerror(errno));
			return -1;
		}
	}
}

/* MSG_NOSIGNAL: our parent may not expect us to die of SIGPIPE. */
static ssize_t
sock_write(struct conn *c, const void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		if (wait_fd(c, POLLOUT) == -1)
			return -1;
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0)
			return n;
		if (n == -1 && errno != EINTR && errno != EAGAIN) {
			snprintf(c->error, sizeof c->error, "write: %s",
			    strerror(errno));
			return -1;
		}
	}
}

/* BearSSL's transport callbacks: -1 on any error, including EOF. */
static int
bio_read(void *ctx, unsigned char *buf, size_t len)
{
	struct conn *c = ctx;
	ssize_t n;

	if ((n = sock_read(c, buf, len)) > 0)
		c->tls_in += (size_t)n;
	return (int)n;
}

static int
bio_write(void *ctx, const unsigned char *buf, size_t len)
{
	return (int)sock_write(ctx, buf, len);
}

/* ---- connecting ---------------------------------------------------------- */

static int
connect_one(struct conn *c, const struct addrinfo *ai)
{
	int fd, soerr, one = 1;
	socklen_t solen = sizeof soerr;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		snprintf(c->error, sizeof c->error, "socket: %s",
		    strerror(errno));
		return -1;
	}
	c->fd = fd;
	/*
	 * Our writes are whole commands or full TLS records; Nagle would
	 * hold back the last records of the handshake flight until the
	 * server's delayed ACK, some 40 ms per connection.
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1) {
		snprintf(c->error, sizeof c->error, "setsockopt: %s",
		    strerror(errno));
		goto fail;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		snprintf(c->error, sizeof c->error, "%s", strerror(errno));
		goto fail;
	}
	conn_timeout(c, c->conf->timeout[TMO_CONNECT]);
	if (wait_fd(c, POLLOUT) == -1)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &solen) == -1)
		soerr = errno;
	if (soerr == 0)
		return 0;
	snprintf(c->error, sizeof c->error, "%s", strerror(soerr));
fail:
	close(fd);
	c->fd = -1;
	return -1;
}

/*
 * Try every address of the smarthost (AAAA and A, in getaddrinfo's order)
 * until one answers; the error kept is a summary of all attempts.
 */
static int
connect_any(struct conn *c)
{
	struct addrinfo hints, *res, *ai;
	char port[8], addr[INET6_ADDRSTRLEN], tried[ERRLEN] = "";
	int rv;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/*
	 * No AI_ADDRCONFIG: it hides ::1 on hosts with loopback only, and an
	 * address family without a route fails at once and we move on.
	 */
	snprintf(port, sizeof port, "%d", c->conf->port);
	rv = getaddrinfo(c->conf->host, port, &hints, &res);
	if (rv != 0) {
		snprintf(c->error, sizeof c->error, "cannot resolve %s: %s",
		    c->conf->host, gai_strerror(rv));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
		    sizeof addr, NULL, 0, NI_NUMERICHOST) != 0)
			strlcpy(addr, "?", sizeof addr);
		snprintf(c->peer, sizeof c->peer, "%s[%s]:%d",
		    c->conf->host, addr, c->conf->port);
		if (connect_one(c, ai) == 0) {
			freeaddrinfo(res);
			return 0;
		}
		if (tried[0] != '\0')
			strlcat(tried, ", ", sizeof tried);
		strlcat(tried, addr, sizeof tried);
		strlcat(tried, ": ", sizeof tried);
		strlcat(tried, c->error, sizeof tried);
	}
	freeaddrinfo(res);
	snprintf(c->error, sizeof c->error, "cannot connect to %s port %d (",
	    c->conf->host, c->conf->port);
	strlcat(c->error, tried, sizeof c->error);
	strlcat(c->error, ")", sizeof c->error);
	return -1;
}

/* ---- trust anchors ------------------------------------------------------- */

/*
 * The CA bundle is read line by line and its Base64 decoded here rather
 * than by br_pem_decoder: BearSSL 0.6's decoder is constant-time, which
 * costs ~40 ms for Debian's bundle on every message and buys nothing for
 * public certificates, and it mis-reads object names in CRLF files, which
 * would silently load no anchor at all.
 */
struct ta_loader {
	br_x509_decoder_context	 dc;
	unsigned char		 dn[DN_MAX];
	size_t			 dnlen;
	int			 dn_overflow;
	unsigned char		 der[DER_MAX];
	size_t			 derlen;
	uint32_t		 acc;		/* Base64 bits not yet output */
	int			 bits;
	int			 padded;	/* '=' seen: object data ends */
};

static void
ta_append_dn(void *ctx, const void *buf, size_t len)
{
	struct ta_loader *l = ctx;

	if (l->dnlen + len > sizeof l->dn) {
		l->dn_overflow = 1;
		return;
	}
	memcpy(l->dn + l->dnlen, buf, len);
	l->dnlen += len;
}

/* Keep one decoded CA: one allocation holds its name and key bytes. */
static int
ta_keep(struct anchors *a, struct ta_loader *l)
{
	br_x509_pkey *pk;
	br_x509_trust_anchor *ta, *grown;
	unsigned char *blob;
	size_t keylen;

	if (br_x509_decoder_last_error(&l->dc) != 0 || l->dn_overflow)
		return 0;	/* skip what BearSSL cannot use */
	pk = br_x509_decoder_get_pkey(&l->dc);
	if (pk == NULL)
		return 0;
	if (pk->key_type == BR_KEYTYPE_RSA)
		keylen = pk->key.rsa.nlen + pk->key.rsa.elen;
	else if (pk->key_type == BR_KEYTYPE_EC)
		keylen = pk->key.ec.qlen;
	else
		return 0;
	grown = reallocarray(a->ta, a->n + 1, sizeof *a->ta);
	if (grown == NULL)
		return -1;
	a->ta = grown;
	if ((blob = malloc(l->dnlen + keylen)) == NULL)
		return -1;
	ta = &a->ta[a->n];
	memset(ta, 0, sizeof *ta);
	memcpy(blob, l->dn, l->dnlen);
	ta->dn.data = blob;
	ta->dn.len = l->dnlen;
	ta->flags = br_x509_decoder_isCA(&l->dc) ? BR_X509_TA_CA : 0;
	ta->pkey.key_type = pk->key_type;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta->pkey.key.rsa.n = blob + l->dnlen;
		ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
		memcpy(ta->pkey.key.rsa.n, pk->key.rsa.n, pk->key.rsa.nlen);
		ta->pkey.key.rsa.e = ta->pkey.key.rsa.n + pk->key.rsa.nlen;
		ta->pkey.key.rsa.elen = pk->key.rsa.elen;
		memcpy(ta->pkey.key.rsa.e, pk->key.rsa.e, pk->key.rsa.elen);
	} else {
		ta->pkey.key.ec.curve = pk->key.ec.curve;
		ta->pkey.key.ec.q = blob + l->dnlen;
		ta->pkey.key.ec.qlen = pk->key.ec.qlen;
		memcpy(ta->pkey.key.ec.q, pk->key.ec.q, pk->key.ec.qlen);
	}
	a->n++;
	return 0;
}

static int
b64_value(char ch)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p;

	if (ch == '\0' || (p = strchr(alphabet, ch)) == NULL)
		return -1;
	return (int)(p - alphabet);
}

/* Decode one line of an object's Base64; -1 on a character not in it. */
static int
ta_decode_line(struct ta_loader *l, const char *line)
{
	int v;

	for (; *line != '\0'; line++) {
		if (*line == ' ' || *line == '\t')
			continue;
		if (*line == '=') {
			l->padded = 1;
			continue;
		}
		if (l->padded || (v = b64_value(*line)) == -1)
			return -1;
		l->acc = (l->acc << 6) | (uint32_t)v;
		l->bits += 6;
		if (l->bits >= 8) {
			l->bits -= 8;
			/* An oversized object is dropped at END, not here. */
			if (l->derlen < sizeof l->der)
				l->der[l->derlen] = (l->acc >> l->bits) & 0xff;
			l->derlen++;
		}
	}
	return 0;
}

/* "-----BEGIN CERTIFICATE-----" or "-----BEGIN X509 CERTIFICATE-----" */
static int
is_cert_banner(const char *line)
{
	return strcmp(line, "-----BEGIN CERTIFICATE-----") == 0 ||
	    strcmp(line, "-----BEGIN X509 CERTIFICATE-----") == 0;
}

static int
ta_end_object(struct anchors *a, struct ta_loader *l)
{
	if (l->derlen > sizeof l->der)
		return 0;	/* no CA certificate is this big: skip it */
	l->dnlen = 0;
	l->dn_overflow = 0;
	br_x509_decoder_init(&l->dc, ta_append_dn, l);
	br_x509_decoder_push(&l->dc, l->der, l->derlen);
	return ta_keep(a, l);
}

static int
anchors_read(struct anchors *a, struct ta_loader *l, FILE *fp,
    const char *path, char *err, size_t errlen)
{
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int in_cert = 0, rv = 0;

	while (rv == 0 && (len = getline(&line, &cap, fp)) != -1) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = '\0';
		if (strncmp(line, "-----BEGIN ", 11) == 0) {
			in_cert = is_cert_banner(line);
			l->derlen = 0;
			l->bits = 0;
			l->padded = 0;
		} else if (strncmp(line, "-----END ", 9) == 0) {
			if (in_cert && ta_end_object(a, l) == -1) {
				snprintf(err, errlen, "ca_file %s: %s", path,
				    strerror(errno));
				rv = -1;
			}
			in_cert = 0;
		} else if (in_cert && ta_decode_line(l, line) == -1) {
			snprintf(err, errlen, "ca_file %s:%zu: malformed PEM "
			    "(not Base64)", path, lineno);
			rv = -1;
		}
	}
	if (rv == 0 && ferror(fp)) {
		snprintf(err, errlen, "ca_file %s: %s", path, strerror(errno));
		rv = -1;
	}
	free(line);
	return rv;
}

static int
anchors_load(struct anchors *a, const char *path, char *err, size_t errlen)
{
	struct ta_loader *l;
	FILE *fp;
	int rv;

	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "ca_file %s: %s", path, strerror(errno));
		return -1;
	}
	if ((l = calloc(1, sizeof *l)) == NULL) {
		snprintf(err, errlen, "ca_file %s: %s", path, strerror(errno));
		fclose(fp);
		return -1;
	}
	rv = anchors_read(a, l, fp, path, err, errlen);
	fclose(fp);
	free(l);
	if (rv == 0 && a->n == 0) {
		/* Never a silent downgrade to "nothing verified". */
		snprintf(err, errlen, "ca_file %s holds no usable CA "
		    "certificate", path);
		rv = -1;
	}
	return rv;
}

static void
anchors_free(struct anchors *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->ta[i].dn.data);
	free(a->ta);
	a->ta = NULL;
	a->n = 0;
}

/* ---- pinning ------------------------------------------------------------- */

static void
pin_no_dn(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
}

static void
pin_start_chain(const br_x509_class **ctx, const char *server_name)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	(void)server_name;
	x->depth = 0;
}

static void
pin_start_cert(const br_x509_class **ctx, uint32_t length)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	(void)length;
	if (x->depth == 0) {
		br_sha256_init(&x->hash);
		br_x509_decoder_init(&x->leaf, pin_no_dn, NULL);
	}
}

static void
pin_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	if (x->depth == 0) {
		br_sha256_update(&x->hash, buf, len);
		br_x509_decoder_push(&x->leaf, buf, len);
	}
}

static void
pin_end_cert(const br_x509_class **ctx)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	if (x->depth++ == 0)
		br_sha256_out(&x->hash, x->got);
}

static unsigned
pin_end_chain(const br_x509_class **ctx)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;
	unsigned char diff = 0;
	size_t i;

	if (x->depth == 0)
		return BR_ERR_X509_EMPTY_CHAIN;
	for (i = 0; i < sizeof x->got; i++)	/* constant time */
		diff |= x->got[i] ^ x->pin[i];
	if (diff != 0)
		return BR_ERR_X509_NOT_TRUSTED;
	if (br_x509_decoder_last_error(&x->leaf) != 0)
		return (unsigned)br_x509_decoder_last_error(&x->leaf);
	return 0;
}

static const br_x509_pkey *
pin_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	if (usages != NULL)
		*usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
	return br_x509_decoder_get_pkey(&x->leaf);
}

static const br_x509_class pin_vtable = {
	sizeof(struct pin_x509),
	pin_start_chain,
	pin_start_cert,
	pin_append,
	pin_end_cert,
	pin_end_chain,
	pin_get_pkey
};

/* "AB:CD:..." for messages; out must hold 3 * 32 octets. */
static void
pin_show(const unsigned char *h, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;

	for (i = 0; i < br_sha256_SIZE && o + 3 <= outlen; i++) {
		if (i > 0)
			out[o++] = ':';
		out[o++] = hex[h[i] >> 4];
		out[o++] = hex[h[i] & 15];
	}
	out[o < outlen ? o : outlen - 1] = '\0';
}

/* ---- TLS ----------------------------------------------------------------- */

/* Forward secrecy and AEAD first; CBC only as a fallback. */
static const uint16_t suites[] = {
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
	BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
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
	{ BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	    "ECDHE-ECDSA-AES128-SHA256" },
	{ BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	    "ECDHE-RSA-AES128-SHA256" },
	{ BR_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
	    "ECDHE-ECDSA-AES256-SHA384" },
	{ BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
	    "ECDHE-RSA-AES256-SHA384" },
};

/* For -v: what was negotiated, and why the certificate is trusted. */
static void
tls_trace(struct conn *c)
{
	br_ssl_session_parameters sp;
	const char *suite = "?";
	size_t i;

	if (!verbose)
		return;
	br_ssl_engine_get_session_parameters(&c->sc.eng, &sp);
	for (i = 0; i < sizeof suite_names / sizeof suite_names[0]; i++)
		if (suite_names[i].id == sp.cipher_suite)
			suite = suite_names[i].name;
	fprintf(stderr, "*** TLS 1.2, %s, certificate %s\n", suite,
	    c->conf->pinned ? "matches tls_fingerprint" :
	    "verified for the host name against ca_file");
	explicit_bzero(&sp, sizeof sp);	/* it holds the master secret */
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
	{ 47, "illegal_parameter" }, { 48, "unknown_ca" },
	{ 50, "decode_error" }, { 51, "decrypt_error" },
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

/* Turn BearSSL's last error into a sentence about this smarthost. */
static void
tls_why(struct conn *c, char *err, size_t errlen)
{
	int e = br_ssl_engine_last_error(&c->sc.eng);
	const char *text = NULL, *certname;
	char shown[3 * br_sha256_SIZE];
	size_t i;

	for (i = 0; i < sizeof tls_errors / sizeof tls_errors[0]; i++)
		if (tls_errors[i].code == e)
			text = tls_errors[i].text;
	certname = c->names[0].status == 1 ? c->san :
	    c->names[1].status == 1 ? c->cn : "an unnamed host";
	if (e == BR_ERR_X509_NOT_TRUSTED && c->conf->pinned) {
		pin_show(c->pin.got, shown, sizeof shown);
		snprintf(err, errlen, "TLS: certificate of %s does not match "
		    "tls_fingerprint (its SHA-256 fingerprint is %s)",
		    c->conf->host, shown);
	} else if (e == BR_ERR_X509_NOT_TRUSTED)
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
	else if (e >= BR_ERR_SEND_FATAL_ALERT)
		snprintf(err, errlen, "TLS: relay aborted the handshake: %s",
		    alert_name(e - BR_ERR_SEND_FATAL_ALERT));
	else if (e >= BR_ERR_RECV_FATAL_ALERT)
		snprintf(err, errlen, "TLS: the smarthost refused the "
		    "handshake: %s", alert_name(e - BR_ERR_RECV_FATAL_ALERT));
	else if (e == BR_ERR_IO && c->hungup && c->tls_in == 0)
		/*
		 * A server that wants TLS 1.3 may hang up on our TLS 1.2
		 * ClientHello without even an alert (Python's asyncio does).
		 */
		snprintf(err, errlen, "TLS: %s without answering the handshake "
		    "(does it require TLS 1.3? BearSSL 0.6 speaks TLS 1.2 "
		    "only)", c->error);
	else if (e == BR_ERR_IO)
		snprintf(err, errlen, "TLS: %s", c->error[0] ? c->error :
		    "connection lost");
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
	snprintf(err, errlen, "%s: ", c->peer);
	strlcat(err, why, errlen);
}

static int
tls_start(struct conn *c, int *exitcode, char *err, size_t errlen)
{
	static const unsigned char oid_dns[] = { 0, 2 };
	static const unsigned char oid_cn[] = { 3, 0x55, 0x04, 0x03 };
	unsigned char seed[32], ip[sizeof(struct in6_addr)];
	int is_ip;

	is_ip = inet_pton(AF_INET, c->conf->host, ip) == 1 ||
	    inet_pton(AF_INET6, c->conf->host, ip) == 1;
	/* BearSSL matches names only (no iPAddress SANs). */
	if (is_ip && !c->conf->pinned) {
		snprintf(err, errlen, "host %s is an IP address: relay can "
		    "verify a certificate only against a host name (or set "
		    "tls_fingerprint)", c->conf->host);
		*exitcode = EX_CONFIG;
		return -1;
	}
	if (!c->conf->pinned && c->anchors.n == 0 &&
	    anchors_load(&c->anchors, c->conf->ca_file, err, errlen) == -1) {
		*exitcode = EX_CONFIG;
		return -1;
	}
	br_ssl_client_init_full(&c->sc, &c->xc, c->anchors.ta, c->anchors.n);
	if (c->conf->pinned) {
		c->pin.vtable = &pin_vtable;
		c->pin.pin = c->conf->pin;
		br_ssl_engine_set_x509(&c->sc.eng, &c->pin.vtable);
	}
	br_ssl_engine_set_versions(&c->sc.eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(&c->sc.eng, suites,
	    sizeof suites / sizeof suites[0]);
	br_ssl_engine_add_flags(&c->sc.eng, BR_OPT_NO_RENEGOTIATION);
	c->names[0] = (br_name_element){ oid_dns, c->san, sizeof c->san, 0 };
	c->names[1] = (br_name_element){ oid_cn, c->cn, sizeof c->cn, 0 };
	br_x509_minimal_set_name_elements(&c->xc, c->names, 2);
	br_ssl_engine_set_buffer(&c->sc.eng, c->iobuf, sizeof c->iobuf, 1);
	/* 0.6 seeds from RDRAND alone on x86; mix in the kernel's entropy. */
	arc4random_buf(seed, sizeof seed);
	br_ssl_engine_inject_entropy(&c->sc.eng, seed, sizeof seed);
	explicit_bzero(seed, sizeof seed);
	/* RFC 6066 3: no IP address in SNI. */
	if (!br_ssl_client_reset(&c->sc, is_ip ? NULL : c->conf->host, 0)) {
		tls_explain(c, err, errlen);
		*exitcode = EX_SOFTWARE;
		return -1;
	}
	br_sslio_init(&c->io, &c->sc.eng, bio_read, c, bio_write, c);
	conn_timeout(c, c->conf->timeout[TMO_GREETING]);
	c->error[0] = '\0';
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

struct conn *
conn_open(const struct conf *conf, int *exitcode, char *err, size_t errlen)
{
	struct conn *c;

	if ((c = calloc(1, sizeof *c)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		*exitcode = EX_OSERR;
		return NULL;
	}
	c->fd = -1;
	c->conf = conf;
	if (connect_any(c) == -1) {
		strlcpy(err, c->error, errlen);
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

int
conn_starttls(struct conn *c, int *exitcode, char *err, size_t errlen)
{
	/*
	 * Bytes that came after the 220 were sent before the handshake, so
	 * anyone on the path could have written them (RFC 3207 section 6,
	 * CVE-2021-22947 class).  Refuse to go on.
	 */
	if (conn_pending(c) != 0 || c->wlen != 0) {
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

size_t
conn_pending(const struct conn *c)
{
	return c->rlen - c->rpos;
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
		if (n == -1 && c->error[0] == '\0')
			strlcpy(c->error, "TLS connection closed by the "
			    "smarthost", sizeof c->error);
	} else
		n = sock_read(c, c->rbuf + c->rlen, space);
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

	c->error[0] = '\0';
	if (c->wlen > 0 && conn_flush(c) == -1)
		return -1;
	for (;;) {
		nl = memchr(c->rbuf + c->rpos, '\n', c->rlen - c->rpos);
		if (nl != NULL)
			break;
		if (c->rlen - c->rpos >= size ||
		    (c->rpos == 0 && c->rlen == sizeof c->rbuf)) {
			snprintf(c->error, sizeof c->error, "reply line longer "
			    "than %zu octets", size - 1);
			return -1;
		}
		if (conn_fill(c) == -1)
			return -1;
	}
	len = (size_t)(nl - (c->rbuf + c->rpos));
	if (len > 0 && nl[-1] == '\r')
		len--;
	if (len >= size) {
		snprintf(c->error, sizeof c->error, "reply line longer than "
		    "%zu octets", size - 1);
		return -1;
	}
	memcpy(buf, c->rbuf + c->rpos, len);
	buf[len] = '\0';
	c->rpos = (size_t)(nl - c->rbuf) + 1;
	return (ssize_t)len;
}

static int
plain_drain(struct conn *c)
{
	size_t off = 0;
	ssize_t n;

	while (off < c->wlen) {
		if ((n = sock_write(c, c->wbuf + off, c->wlen - off)) == -1)
			return -1;
		off += (size_t)n;
	}
	c->wlen = 0;
	return 0;
}

int
conn_write(struct conn *c, const char *buf, size_t len)
{
	size_t chunk;

	c->error[0] = '\0';
	if (c->tls) {
		if (br_sslio_write_all(&c->io, buf, len) == -1) {
			if (c->error[0] == '\0')
				strlcpy(c->error, "TLS write failed",
				    sizeof c->error);
			return -1;
		}
		return 0;
	}
	while (len > 0) {
		if (c->wlen == sizeof c->wbuf && plain_drain(c) == -1)
			return -1;
		chunk = sizeof c->wbuf - c->wlen;
		if (chunk > len)
			chunk = len;
		memcpy(c->wbuf + c->wlen, buf, chunk);
		c->wlen += chunk;
		buf += chunk;
		len -= chunk;
	}
	return 0;
}

int
conn_flush(struct conn *c)
{
	if (c->tls) {
		if (br_sslio_flush(&c->io) == -1) {
			if (c->error[0] == '\0')
				strlcpy(c->error, "TLS write failed",
				    sizeof c->error);
			return -1;
		}
		return 0;
	}
	return plain_drain(c);
}

const char *
conn_error(const struct conn *c)
{
	return c->error[0] ? c->error : "connection failed";
}

const char *
conn_peer(const struct conn *c)
{
	return c->peer;
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
	if (c->tls && c->fd != -1) {
		conn_timeout(c, 2);
		br_ssl_engine_close(&c->sc.eng);
		while (br_ssl_engine_current_state(&c->sc.eng) &
		    BR_SSL_SENDREC) {
			rec = br_ssl_engine_sendrec_buf(&c->sc.eng, &len);
			if ((n = sock_write(c, rec, len)) <= 0)
				break;
			br_ssl_engine_sendrec_ack(&c->sc.eng, (size_t)n);
		}
	}
	if (c->fd != -1)
		close(c->fd);
	anchors_free(&c->anchors);
	explicit_bzero(c, sizeof *c);
	free(c);
}
