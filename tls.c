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
#define DER_MAX		16384	/* largest CA or client certificate kept */
#define LEAF_MAX	16384	/* server certificate octets kept */
#define KEYFILE_MAX	65536	/* larger is not a private key file */

struct anchors {
	br_x509_trust_anchor	*ta;
	size_t			 n;
	int			 how;		/* ANCHORS_FAST, or a test's */
	size_t			 walked;	/* of n, read by ta_walk */
};

#define PIN_CERT	1	/* tls_fingerprint did not match */
#define PIN_KEY		2	/* tls_pubkey_fingerprint did not match */

/*
 * tls_fingerprint and tls_pubkey_fingerprint: the server's certificate,
 * or its public key, must have the pinned SHA-256.  The pins replace the
 * CA and host name checks (as msmtp's tls_fingerprint does), unless
 * "tls_verify both" wants those too: then every call is also passed on
 * to BearSSL's own validator.  It sees the chain as BearSSL receives it,
 * server certificate first.
 */
struct pin_x509 {
	const br_x509_class	*vtable;	/* first: BearSSL passes &vtable */
	const br_x509_class	**chain;	/* the validator, or NULL */
	const unsigned char	*pin;		/* NULL if not pinned */
	const unsigned char	*key_pin;	/* NULL if not pinned */
	br_sha256_context	 hash;
	br_x509_decoder_context	 leaf;
	unsigned char		 der[LEAF_MAX];	/* the leaf's first octets */
	size_t			 derlen;	/* octets of the leaf seen */
	uint32_t		 leaflen;	/* its length as announced */
	unsigned char		 got[br_sha256_SIZE];	  /* the leaf's hash */
	unsigned char		 got_key[br_sha256_SIZE]; /* its key's hash */
	int			 have_key;	/* got_key is set */
	int			 mismatch;	/* PIN_CERT | PIN_KEY */
	unsigned		 depth;
};

/*
 * tls_client_cert and tls_client_key: what relay shows when the smarthost
 * asks for a certificate.  It also notes that the server asked, so that a
 * refusal can be explained when relay had nothing to show.
 */
struct client_auth {
	const br_ssl_client_certificate_class *vtable;	/* first */
	br_x509_certificate	*chain;		/* DER, leaf first */
	size_t			 nchain;
	br_skey_decoder_context	 key;		/* the private key is in here */
	int			 key_type;	/* BR_KEYTYPE_RSA/EC; 0: none */
	int			 asked;		/* a CertificateRequest came */
	int			 sent;		/* and our chain went */
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
	struct client_auth	 auth;
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

/*
 * A server without TCP_NODELAY (stock Postfix) holds a small segment,
 * such as the greeting after its TLS Finished, until we ACK the one
 * before; with nothing to send, Linux would wait 40 ms to ACK.  Ask for
 * immediate ACKs before every read (the kernel clears the mode itself).
 */
static void
quick_ack(int fd)
{
#ifdef TCP_QUICKACK
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
	(void)fd;
#endif
}

static ssize_t
sock_read(struct conn *c, void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		quick_ack(c->fd);
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
		/*
		 * A server that ends a handshake may be gone before our
		 * next flight is out: that is a hang-up too.
		 */
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) {
			strlcpy(c->error, errno == EPIPE ? "connection closed "
			    "by the smarthost" : "connection reset by the "
			    "smarthost", sizeof c->error);
			c->hungup = 1;
			return -1;
		}
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

/* ---- certificates in DER ------------------------------------------------- */

/*
 * Find the next DER element inside [*pos, end), which must have the given
 * tag: on return *pos is where its contents start, *next where it ends.
 * Only the header need be in the first have octets of buf.  DER only:
 * definite lengths in their shortest form.  Returns 0, or -1.
 */
static int
der_next(const unsigned char *buf, size_t have, size_t end, int tag,
    size_t *pos, size_t *next)
{
	size_t p = *pos, n, k;

	if (p + 2 > end || p + 2 > have || buf[p] != tag)
		return -1;
	n = buf[p + 1];
	p += 2;
	if (n & 0x80) {
		k = n & 0x7f;
		/* No indefinite length; none over 16 MB; no leading zero. */
		if (k == 0 || k > 3 || p + k > have || p + k > end ||
		    buf[p] == 0)
			return -1;
		for (n = 0; k > 0; k--)
			n = n << 8 | buf[p++];
		if (n < 0x80)
			return -1;
	}
	if (n > end - p)
		return -1;
	*pos = p;
	*next = p + n;
	return 0;
}

/* Offsets into a certificate, as cert_locate finds them. */
struct cert_pos {
	size_t	tbs_end;		/* end of tbsCertificate */
	int	has_version;		/* [0] is there (not v1) */
	size_t	version, version_end;	/* its contents */
	size_t	validity, validity_end;	/* Validity's contents */
	size_t	subject;		/* the subject Name's tag */
	size_t	spki, spki_end;		/* SubjectPublicKeyInfo's TLV */
};

/*
 * Walk Certificate and tbsCertificate past version, serialNumber,
 * signature, issuer, validity and subject to subjectPublicKeyInfo (RFC
 * 5280 4.1), checking only each element's tag and length.  len is the
 * certificate's whole length; only its first have octets need be in buf,
 * as far as the headers looked at (the pins keep just the start of a
 * large leaf).  Returns 0, or -1.
 */
static int
cert_locate(const unsigned char *buf, size_t have, size_t len,
    struct cert_pos *cp)
{
	static const int skip[] = { 0x02, 0x30, 0x30 }; /* serial..issuer */
	size_t pos = 0, cert_end, next, i;

	if (der_next(buf, have, len, 0x30, &pos, &cert_end) == -1 ||
	    cert_end != len ||
	    der_next(buf, have, cert_end, 0x30, &pos, &cp->tbs_end) == -1)
		return -1;
	/* version [0] EXPLICIT, absent for v1 */
	cp->has_version = 0;
	if (pos < have && buf[pos] == 0xa0) {
		if (der_next(buf, have, cp->tbs_end, 0xa0, &pos, &next) == -1)
			return -1;
		cp->has_version = 1;
		cp->version = pos;
		cp->version_end = next;
		pos = next;
	}
	for (i = 0; i < sizeof skip / sizeof skip[0]; i++) {
		if (der_next(buf, have, cp->tbs_end, skip[i], &pos,
		    &next) == -1)
			return -1;
		pos = next;
	}
	if (der_next(buf, have, cp->tbs_end, 0x30, &pos, &next) == -1)
		return -1;
	cp->validity = pos;
	cp->validity_end = next;
	cp->subject = pos = next;
	if (der_next(buf, have, cp->tbs_end, 0x30, &pos, &next) == -1)
		return -1;
	cp->spki = pos = next;
	if (der_next(buf, have, cp->tbs_end, 0x30, &pos, &cp->spki_end) == -1)
		return -1;
	return 0;
}

/* ---- trust anchors ------------------------------------------------------- */

/*
 * The CA bundle (and a client certificate chain) is read line by line and
 * its Base64 decoded here rather than by br_pem_decoder: BearSSL 0.6's
 * decoder is constant-time, which costs ~40 ms for Debian's bundle on
 * every message and buys nothing for public certificates, and it
 * mis-reads object names in CRLF files, which would silently load no
 * anchor at all.  Private keys do go through br_pem_decoder.
 */
struct pem_loader {
	const char		*what;		/* "ca_file", for messages */
	const char		*path;
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
	struct pem_loader *l = ctx;

	if (l->dnlen + len > sizeof l->dn) {
		l->dn_overflow = 1;
		return;
	}
	memcpy(l->dn + l->dnlen, buf, len);
	l->dnlen += len;
}

/*
 * One CA as BearSSL wants it, pointing into the certificate's DER (from
 * ta_walk) or into the loader's and decoder's buffers (from ta_decode);
 * ta_keep copies the octets.
 */
struct ta_parts {
	const unsigned char	*dn;		/* subject Name, tag and all */
	size_t			 dnlen;
	unsigned		 flags;		/* BR_X509_TA_CA or 0 */
	br_x509_pkey		 pkey;		/* RSA or EC */
};

/* Keep one decoded CA: one allocation holds its name and key bytes. */
static int
ta_keep(struct anchors *a, const struct ta_parts *tp)
{
	const br_x509_pkey *pk = &tp->pkey;
	br_x509_trust_anchor *ta, *grown;
	unsigned char *blob;
	size_t keylen;

	if (pk->key_type == BR_KEYTYPE_RSA)
		keylen = pk->key.rsa.nlen + pk->key.rsa.elen;
	else
		keylen = pk->key.ec.qlen;
	grown = reallocarray(a->ta, a->n + 1, sizeof *a->ta);
	if (grown == NULL)
		return -1;
	a->ta = grown;
	if ((blob = malloc(tp->dnlen + keylen)) == NULL)
		return -1;
	ta = &a->ta[a->n];
	memset(ta, 0, sizeof *ta);
	memcpy(blob, tp->dn, tp->dnlen);
	ta->dn.data = blob;
	ta->dn.len = tp->dnlen;
	ta->flags = tp->flags;
	ta->pkey.key_type = pk->key_type;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta->pkey.key.rsa.n = blob + tp->dnlen;
		ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
		memcpy(ta->pkey.key.rsa.n, pk->key.rsa.n, pk->key.rsa.nlen);
		ta->pkey.key.rsa.e = ta->pkey.key.rsa.n + pk->key.rsa.nlen;
		ta->pkey.key.rsa.elen = pk->key.rsa.elen;
		memcpy(ta->pkey.key.rsa.e, pk->key.rsa.e, pk->key.rsa.elen);
	} else {
		ta->pkey.key.ec.curve = pk->key.ec.curve;
		ta->pkey.key.ec.q = blob + tp->dnlen;
		ta->pkey.key.ec.qlen = pk->key.ec.qlen;
		memcpy(ta->pkey.key.ec.q, pk->key.ec.q, pk->key.ec.qlen);
	}
	a->n++;
	return 0;
}

/* Ranges, not strchr: this runs for each of the bundle's 200,000 octets. */
static int
b64_value(char c)
{
	unsigned char ch = (unsigned char)c;

	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Decode one line of an object's Base64; -1 on a character not in it. */
static int
ta_decode_line(struct pem_loader *l, const char *line)
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

/*
 * Called at the end of each certificate with its DER in l->der (l->derlen
 * octets, more than fit if it is oversized).  Returns 0, or -1 with err
 * set.
 */
typedef int (*pem_cert_fn)(void *arg, struct pem_loader *l, char *err,
    size_t errlen);

/*
 * The slow way, and what the fast one must agree with: br_x509_decoder,
 * some 490,000 instructions a certificate.  Returns 0, or -1 to skip
 * what BearSSL cannot use.
 */
static int
ta_decode(struct pem_loader *l, struct ta_parts *tp)
{
	const br_x509_pkey *pk;

	l->dnlen = 0;
	l->dn_overflow = 0;
	br_x509_decoder_init(&l->dc, ta_append_dn, l);
	br_x509_decoder_push(&l->dc, l->der, l->derlen);
	if (br_x509_decoder_last_error(&l->dc) != 0 || l->dn_overflow)
		return -1;
	pk = br_x509_decoder_get_pkey(&l->dc);
	if (pk == NULL || (pk->key_type != BR_KEYTYPE_RSA &&
	    pk->key_type != BR_KEYTYPE_EC))
		return -1;
	tp->dn = l->dn;
	tp->dnlen = l->dnlen;
	tp->flags = br_x509_decoder_isCA(&l->dc) ? BR_X509_TA_CA : 0;
	tp->pkey = *pk;
	return 0;
}

/*
 * ta_walk below reads a certificate much faster than br_x509_decoder,
 * but only what it can vouch for: it accepts a strict subset of what the
 * decoder accepts (DER's shortest lengths, the common forms of dates,
 * booleans and extensions) and yields the same anchor from it, checking
 * all the decoder checks on the way, so that a certificate the decoder
 * would skip is never loaded.  Anything else goes to ta_decode, which
 * decides as before; test/unit_anchors.c holds the two to each other.
 */

/* Is the OID at buf[pos, end) the one given (contents only)? */
static int
oid_is(const unsigned char *buf, size_t pos, size_t end,
    const unsigned char *oid, size_t len)
{
	return end - pos == len && memcmp(buf + pos, oid, len) == 0;
}

/*
 * A public key INTEGER as the decoder keeps it: non-negative, leading
 * zero octets stripped (so zero itself is empty).
 */
static int
der_uint(unsigned char *buf, size_t end, size_t *pos, unsigned char **v,
    size_t *vlen)
{
	size_t p = *pos, next;

	if (der_next(buf, end, end, 0x02, &p, &next) == -1 || p == next ||
	    buf[p] >= 0x80)
		return -1;
	while (p < next && buf[p] == 0)
		p++;
	*v = buf + p;
	*vlen = next - p;
	*pos = next;
	return 0;
}

/*
 * A UTCTime or GeneralizedTime in its DER form ("YYMMDDHHMMSSZ" or
 * "YYYYMMDDHHMMSSZ"), in the ranges the decoder allows: it refuses a
 * certificate with a bad date, so we must too.  Leap seconds pass, as
 * there; UTCTime's years are 1950 to 2049.
 */
static int
der_time(const unsigned char *buf, size_t end, size_t *pos)
{
	static const unsigned char mdays[12] =
	    { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned v[7], year, maxday;
	size_t p = *pos, next, i, n;
	int tag;

	if (p >= end || (buf[p] != 0x17 && buf[p] != 0x18))
		return -1;
	tag = buf[p];
	n = tag == 0x17 ? 6 : 7;		/* two-digit fields */
	if (der_next(buf, end, end, tag, &p, &next) == -1 ||
	    next - p != 2 * n + 1 || buf[next - 1] != 'Z')
		return -1;
	for (i = 0; i < n; i++) {
		if (buf[p + 2 * i] < '0' || buf[p + 2 * i] > '9' ||
		    buf[p + 2 * i + 1] < '0' || buf[p + 2 * i + 1] > '9')
			return -1;
		v[i] = (buf[p + 2 * i] - '0') * 10u +
		    (buf[p + 2 * i + 1] - '0');
	}
	if (tag == 0x17)
		year = v[0] < 50 ? 2000 + v[0] : 1900 + v[0];
	else
		year = v[0] * 100 + v[1];
	i = n - 5;				/* the month */
	if (v[i] < 1 || v[i] > 12)
		return -1;
	maxday = mdays[v[i] - 1];
	if (v[i] == 2 && year % 4 == 0 && (year % 100 != 0 ||
	    year % 400 == 0))
		maxday++;
	if (v[i + 1] < 1 || v[i + 1] > maxday || v[i + 2] > 23 ||
	    v[i + 3] > 59 || v[i + 4] > 60)
		return -1;
	*pos = next;
	return 0;
}

/*
 * The public key (RFC 5280 4.1.2.7, RFC 3279 2.3.1, RFC 5480 2): an RSA
 * modulus and exponent, or a point on P-256, P-384 or P-521, in the
 * sizes the decoder's buffer takes.
 */
static int
ta_walk_key(unsigned char *der, const struct cert_pos *cp,
    br_x509_pkey *pk)
{
	static const unsigned char oid_rsa[] =
	    { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
	static const unsigned char oid_ec[] =
	    { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
	static const struct {
		unsigned char	 oid[8];
		size_t		 len;
		int		 curve;
	} curves[] = {
		{ { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 }, 8,
		    BR_EC_secp256r1 },
		{ { 0x2b, 0x81, 0x04, 0x00, 0x22 }, 5, BR_EC_secp384r1 },
		{ { 0x2b, 0x81, 0x04, 0x00, 0x23 }, 5, BR_EC_secp521r1 },
	};
	size_t end = cp->spki_end, pos = cp->spki, alg_end, bits, seq_end;
	size_t oid, next, i;

	if (der_next(der, end, end, 0x30, &pos, &next) == -1 ||
	    der_next(der, end, end, 0x30, &pos, &alg_end) == -1 ||
	    der_next(der, end, alg_end, 0x06, &pos, &next) == -1)
		return -1;
	oid = pos;
	if (oid_is(der, oid, next, oid_rsa, sizeof oid_rsa)) {
		/* The parameters (NULL) are skipped, as by the decoder. */
		pos = alg_end;
		if (der_next(der, end, end, 0x03, &pos, &bits) == -1 ||
		    bits != end || pos == bits || der[pos++] != 0 ||
		    der_next(der, end, end, 0x30, &pos, &seq_end) == -1 ||
		    seq_end != end ||
		    der_uint(der, end, &pos, &pk->key.rsa.n,
		    &pk->key.rsa.nlen) == -1 ||
		    der_uint(der, end, &pos, &pk->key.rsa.e,
		    &pk->key.rsa.elen) == -1 || pos != end)
			return -1;
		if (pk->key.rsa.nlen > BR_X509_BUFSIZE_KEY ||
		    pk->key.rsa.elen > BR_X509_BUFSIZE_KEY - pk->key.rsa.nlen)
			return -1;
		pk->key_type = BR_KEYTYPE_RSA;
		return 0;
	}
	if (!oid_is(der, oid, next, oid_ec, sizeof oid_ec))
		return -1;
	pos = next;
	if (der_next(der, end, alg_end, 0x06, &pos, &next) == -1 ||
	    next != alg_end)
		return -1;
	for (i = 0; i < sizeof curves / sizeof curves[0]; i++)
		if (oid_is(der, pos, next, curves[i].oid, curves[i].len))
			break;
	if (i == sizeof curves / sizeof curves[0])
		return -1;
	pos = alg_end;
	if (der_next(der, end, end, 0x03, &pos, &bits) == -1 ||
	    bits != end || pos == bits || der[pos++] != 0 ||
	    bits - pos > BR_X509_BUFSIZE_KEY)
		return -1;
	pk->key_type = BR_KEYTYPE_EC;
	pk->key.ec.curve = curves[i].curve;
	pk->key.ec.q = der + pos;
	pk->key.ec.qlen = bits - pos;
	return 0;
}

/*
 * The extensions, for basicConstraints' cA (RFC 5280 4.2.1.9) alone, as
 * the decoder reads it: the last one with a cA BOOLEAN decides, any
 * non-zero octet is TRUE, and what follows the BOOLEAN is not looked at.
 * The extensions of others are skipped, critical or not, as there.
 */
static int
ta_walk_flags(const unsigned char *der, const struct cert_pos *cp,
    unsigned *flags)
{
	static const unsigned char oid_bc[] = { 0x55, 0x1d, 0x13 };
	size_t end = cp->tbs_end, pos = cp->spki_end, exts, ext, oid, oid_end;
	size_t next, val, bc;

	*flags = 0;
	if (pos == end)
		return 0;			/* none: v1 or v2 */
	/* No issuerUniqueID or subjectUniqueID: decoder's business. */
	if (der_next(der, end, end, 0xa3, &pos, &next) == -1 ||
	    next != end ||
	    der_next(der, end, end, 0x30, &pos, &exts) == -1 || exts != end)
		return -1;
	while (pos < exts) {
		if (der_next(der, end, exts, 0x30, &pos, &ext) == -1 ||
		    der_next(der, end, ext, 0x06, &pos, &next) == -1)
			return -1;
		oid = pos;
		pos = oid_end = next;
		/* critical: a one-octet BOOLEAN, whatever its value */
		if (pos < ext && der[pos] == 0x01) {
			if (der_next(der, end, ext, 0x01, &pos, &next) == -1 ||
			    next - pos != 1)
				return -1;
			pos = next;
		}
		if (der_next(der, end, ext, 0x04, &pos, &next) == -1 ||
		    next != ext)
			return -1;
		val = pos;
		pos = ext;
		if (!oid_is(der, oid, oid_end, oid_bc, sizeof oid_bc))
			continue;
		if (der_next(der, end, ext, 0x30, &val, &bc) == -1 ||
		    bc != ext)
			return -1;
		if (val == bc || der[val] == 0x02)
			continue;		/* no cA, or pathLen alone */
		if (der[val] != 0x01 || bc - val < 3 || der[val + 1] != 1)
			return -1;
		*flags = der[val + 2] != 0 ? BR_X509_TA_CA : 0;
	}
	return 0;
}

/*
 * Read a CA certificate, der[0, len), into tp without br_x509_decoder.
 * Returns 0, or -1 if ta_decode must decide.
 */
static int
ta_walk(unsigned char *der, size_t len, struct ta_parts *tp)
{
	struct cert_pos cp;
	size_t pos, next, oid_end;

	if (cert_locate(der, len, len, &cp) == -1)
		return -1;
	/* v1 to v3 only, as a one-octet INTEGER */
	if (cp.has_version && (cp.version_end - cp.version != 3 ||
	    der[cp.version] != 0x02 || der[cp.version + 1] != 1 ||
	    der[cp.version + 2] > 2))
		return -1;
	pos = cp.validity;
	if (der_time(der, cp.validity_end, &pos) == -1 ||
	    der_time(der, cp.validity_end, &pos) == -1 ||
	    pos != cp.validity_end)
		return -1;
	/* The decoder hands over the Name's tag and length too. */
	tp->dn = der + cp.subject;
	tp->dnlen = cp.spki - cp.subject;
	if (tp->dnlen > DN_MAX ||
	    ta_walk_key(der, &cp, &tp->pkey) == -1 ||
	    ta_walk_flags(der, &cp, &tp->flags) == -1)
		return -1;
	/* signatureAlgorithm has an OID; signatureValue, whole octets */
	pos = cp.tbs_end;
	if (der_next(der, len, len, 0x30, &pos, &next) == -1 ||
	    der_next(der, len, next, 0x06, &pos, &oid_end) == -1)
		return -1;
	pos = next;
	if (der_next(der, len, len, 0x03, &pos, &next) == -1 ||
	    next != len || pos == next || der[pos] != 0)
		return -1;
	return 0;
}

static int
ta_end_object(void *arg, struct pem_loader *l, char *err, size_t errlen)
{
	struct anchors *a = arg;
	struct ta_parts tp;

	if (l->derlen > sizeof l->der)
		return 0;	/* no CA certificate is this big: skip it */
	if (a->how != ANCHORS_DECODER && ta_walk(l->der, l->derlen, &tp) == 0)
		a->walked++;
	else if (a->how == ANCHORS_WALKER || ta_decode(l, &tp) == -1)
		return 0;	/* skip what BearSSL cannot use */
	if (ta_keep(a, &tp) == -1) {
		snprintf(err, errlen, "%s %s: %s", l->what, l->path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Hand each certificate in fp to keep(); other PEM objects are skipped. */
static int
pem_read_certs(struct pem_loader *l, FILE *fp, pem_cert_fn keep, void *arg,
    char *err, size_t errlen)
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
			if (in_cert && keep(arg, l, err, errlen) == -1)
				rv = -1;
			in_cert = 0;
		} else if (in_cert && ta_decode_line(l, line) == -1) {
			snprintf(err, errlen, "%s %s:%zu: malformed PEM "
			    "(not Base64)", l->what, l->path, lineno);
			rv = -1;
		}
	}
	if (rv == 0 && ferror(fp)) {
		snprintf(err, errlen, "%s %s: %s", l->what, l->path,
		    strerror(errno));
		rv = -1;
	}
	free(line);
	return rv;
}

/* Open path and read its certificates; see pem_read_certs. */
static int
pem_load_certs(const char *what, const char *path, pem_cert_fn keep,
    void *arg, char *err, size_t errlen)
{
	struct pem_loader *l;
	FILE *fp;
	int rv;

	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if ((l = calloc(1, sizeof *l)) == NULL) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		fclose(fp);
		return -1;
	}
	l->what = what;
	l->path = path;
	rv = pem_read_certs(l, fp, keep, arg, err, errlen);
	fclose(fp);
	free(l);
	return rv;
}

static int
anchors_load(struct anchors *a, const char *path, char *err, size_t errlen)
{
	if (pem_load_certs("ca_file", path, ta_end_object, a, err,
	    errlen) == -1)
		return -1;
	if (a->n == 0) {
		/* Never a silent downgrade to "nothing verified". */
		snprintf(err, errlen, "ca_file %s holds no usable CA "
		    "certificate", path);
		return -1;
	}
	return 0;
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

/*
 * For test/unit_anchors.c: the anchors of the PEM file path, or of the
 * one DER certificate der (len octets) if path is NULL, read the way how
 * says.  No anchor at all is no error here.
 */
int
tls_anchors_test(const char *path, const unsigned char *der, size_t len,
    int how, void **ta, size_t *n, size_t *walked, char *err, size_t errlen)
{
	struct anchors a = { NULL, 0, how, 0 };
	struct pem_loader *l;
	int rv = 0;

	if (path != NULL)
		rv = pem_load_certs("ca_file", path, ta_end_object, &a, err,
		    errlen);
	else if ((l = calloc(1, sizeof *l)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		rv = -1;
	} else {
		l->what = "certificate";
		l->path = "(test)";
		l->derlen = len;
		memcpy(l->der, der, len < sizeof l->der ? len : sizeof l->der);
		rv = ta_end_object(&a, l, err, errlen);
		free(l);
	}
	if (rv == -1) {
		anchors_free(&a);
		return -1;
	}
	*ta = a.ta;
	*n = a.n;
	*walked = a.walked;
	return 0;
}

void
tls_anchors_test_free(void *ta, size_t n)
{
	struct anchors a = { ta, n, 0, 0 };

	anchors_free(&a);
}

/* ---- pinning ------------------------------------------------------------- */

static void
pin_no_dn(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
}

/* Constant time: how much of a pin matched must not show in the timing. */
static int
pin_equal(const unsigned char *a, const unsigned char *b)
{
	unsigned char diff = 0;
	size_t i;

	for (i = 0; i < br_sha256_SIZE; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/*
 * The SHA-256 of the leaf's SubjectPublicKeyInfo, the whole DER element
 * (what "openssl pkey -pubin -outform der | sha256sum" hashes), where
 * cert_locate finds it.  Returns 0, or -1 if it is not there or not
 * within the octets kept.
 */
static int
pin_spki_hash(struct pin_x509 *x)
{
	br_sha256_context h;
	size_t have = x->derlen < sizeof x->der ? x->derlen : sizeof x->der;
	struct cert_pos cp;

	if (cert_locate(x->der, have, x->leaflen, &cp) == -1 ||
	    cp.spki_end > have)
		return -1;
	br_sha256_init(&h);
	br_sha256_update(&h, x->der + cp.spki, cp.spki_end - cp.spki);
	br_sha256_out(&h, x->got_key);
	return 0;
}

static void
pin_start_chain(const br_x509_class **ctx, const char *server_name)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	x->depth = 0;
	x->mismatch = 0;
	x->have_key = 0;
	if (x->chain != NULL)
		(*x->chain)->start_chain(x->chain, server_name);
}

static void
pin_start_cert(const br_x509_class **ctx, uint32_t length)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	if (x->depth == 0) {
		br_sha256_init(&x->hash);
		br_x509_decoder_init(&x->leaf, pin_no_dn, NULL);
		x->derlen = 0;
		x->leaflen = length;
	}
	if (x->chain != NULL)
		(*x->chain)->start_cert(x->chain, length);
}

static void
pin_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;
	size_t n;

	if (x->depth == 0) {
		br_sha256_update(&x->hash, buf, len);
		br_x509_decoder_push(&x->leaf, buf, len);
		if (x->derlen < sizeof x->der) {
			n = sizeof x->der - x->derlen;
			memcpy(x->der + x->derlen, buf, len < n ? len : n);
		}
		x->derlen += len;
	}
	if (x->chain != NULL)
		(*x->chain)->append(x->chain, buf, len);
}

static void
pin_end_cert(const br_x509_class **ctx)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	if (x->depth++ == 0) {
		br_sha256_out(&x->hash, x->got);
		x->have_key = pin_spki_hash(x) == 0;
	}
	if (x->chain != NULL)
		(*x->chain)->end_cert(x->chain);
}

/*
 * A pin that does not match is the error, whatever the validator says:
 * it is the more specific news.  Both checks always run, so the message
 * can show each fingerprint that differs.
 */
static unsigned
pin_end_chain(const br_x509_class **ctx)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;
	unsigned err = 0;

	if (x->chain != NULL)
		err = (*x->chain)->end_chain(x->chain);
	if (x->depth == 0)
		return BR_ERR_X509_EMPTY_CHAIN;
	if (x->pin != NULL && !pin_equal(x->got, x->pin))
		x->mismatch |= PIN_CERT;
	if (x->key_pin != NULL && (!x->have_key ||
	    !pin_equal(x->got_key, x->key_pin)))
		x->mismatch |= PIN_KEY;
	if (x->mismatch != 0)
		return BR_ERR_X509_NOT_TRUSTED;
	if (x->chain != NULL)
		return err;
	if (br_x509_decoder_last_error(&x->leaf) != 0)
		return (unsigned)br_x509_decoder_last_error(&x->leaf);
	return 0;
}

static const br_x509_pkey *
pin_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	struct pin_x509 *x = (struct pin_x509 *)(void *)ctx;

	if (x->chain != NULL)
		return (*x->chain)->get_pkey(x->chain, usages);
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

/* ---- client certificate -------------------------------------------------- */

#define RSA_MAX		512	/* a 4096-bit modulus, BearSSL's limit */

/* Keep each certificate of tls_client_cert, in order: leaf first. */
static int
auth_keep_cert(void *arg, struct pem_loader *l, char *err, size_t errlen)
{
	struct client_auth *a = arg;
	br_x509_certificate *grown;
	unsigned char *der;

	if (l->derlen > sizeof l->der) {
		snprintf(err, errlen, "%s %s: a certificate larger than %zu "
		    "octets", l->what, l->path, sizeof l->der);
		return -1;
	}
	grown = reallocarray(a->chain, a->nchain + 1, sizeof *a->chain);
	if (grown == NULL || (der = malloc(l->derlen)) == NULL) {
		if (grown != NULL)
			a->chain = grown;
		snprintf(err, errlen, "%s %s: %s", l->what, l->path,
		    strerror(errno));
		return -1;
	}
	a->chain = grown;
	memcpy(der, l->der, l->derlen);
	a->chain[a->nchain].data = der;
	a->chain[a->nchain].data_len = l->derlen;
	a->nchain++;
	return 0;
}

static void
auth_key_push(void *ctx, const void *buf, size_t len)
{
	br_skey_decoder_push(ctx, buf, len);
}

static void
auth_key_ignore(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
}

static const char *
key_type_name(int type)
{
	return type == BR_KEYTYPE_RSA ? "RSA" : type == BR_KEYTYPE_EC ? "EC" :
	    "unknown";
}

/*
 * Decode the PEM text of tls_client_key (buf, len octets, a '\n' added
 * after them) with BearSSL's constant-time decoder, straight into the
 * key decoder: the key exists in clear only in the file's buffer, which
 * the caller wipes, and in a->key.
 */
static int
auth_key_decode(struct client_auth *a, const char *path, unsigned char *buf,
    size_t len, char *err, size_t errlen)
{
	br_pem_decoder_context pc;
	char name[128];
	size_t n, nlen, nkeys = 0;
	int inkey = 0, rv = 0, e;

	br_pem_decoder_init(&pc);
	while (rv == 0 && len > 0) {
		n = br_pem_decoder_push(&pc, buf, len);
		buf += n;
		len -= n;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			/* 0.6 leaves the dashes on in CRLF files. */
			strlcpy(name, br_pem_decoder_name(&pc), sizeof name);
			nlen = strlen(name);
			while (nlen > 0 && name[nlen - 1] == '-')
				name[--nlen] = '\0';
			inkey = nlen >= 11 &&
			    strcmp(name + nlen - 11, "PRIVATE KEY") == 0;
			if (inkey && strncmp(name, "ENCRYPTED", 9) == 0) {
				snprintf(err, errlen, "tls_client_key %s is "
				    "encrypted: encrypted keys are not "
				    "supported; decrypt it with openssl pkey",
				    path);
				rv = -1;
			} else if (inkey && nkeys++ > 0) {
				snprintf(err, errlen, "tls_client_key %s holds "
				    "more than one private key", path);
				rv = -1;
			} else if (inkey) {
				br_skey_decoder_init(&a->key);
				br_pem_decoder_setdest(&pc, auth_key_push,
				    &a->key);
			} else
				br_pem_decoder_setdest(&pc, auth_key_ignore,
				    NULL);
			break;
		case BR_PEM_END_OBJ:
			if (inkey && (e = br_skey_decoder_last_error(&a->key))
			    != 0) {
				snprintf(err, errlen, "tls_client_key %s: not "
				    "a key relay can use (an RSA or EC key is "
				    "needed; BearSSL error %d)", path, e);
				rv = -1;
			}
			inkey = 0;
			break;
		case BR_PEM_ERROR:
			snprintf(err, errlen, "tls_client_key %s: malformed "
			    "PEM", path);
			rv = -1;
			break;
		}
	}
	explicit_bzero(&pc, sizeof pc);
	if (rv == 0 && inkey) {
		snprintf(err, errlen, "tls_client_key %s: the private key is "
		    "cut short (no END line)", path);
		rv = -1;
	}
	if (rv == 0 && nkeys == 0) {
		snprintf(err, errlen, "tls_client_key %s holds no private key "
		    "(\"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or "
		    "\"BEGIN EC PRIVATE KEY\")", path);
		rv = -1;
	}
	if (rv == 0)
		a->key_type = br_skey_decoder_key_type(&a->key);
	return rv;
}

/* Does buf hold text?  (memmem is a GNU extension.) */
static int
has_text(const unsigned char *buf, size_t len, const char *text)
{
	size_t n = strlen(text), i;

	for (i = 0; n <= len && i <= len - n; i++)
		if (memcmp(buf + i, text, n) == 0)
			return 1;
	return 0;
}

static int
auth_key_load(struct client_auth *a, const char *path, char *err,
    size_t errlen)
{
	struct stat st;
	unsigned char *buf;
	size_t len = 0;
	ssize_t n;
	int fd, rv = -1;


	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "tls_client_key %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "tls_client_key %s: not a regular file",
		    path);
		close(fd);
		return -1;
	}
	/* Room for one octet too many, and the '\n' pushed at the end. */
	if ((buf = malloc(KEYFILE_MAX + 2)) == NULL) {
		snprintf(err, errlen, "tls_client_key %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	while (len <= KEYFILE_MAX) {
		n = read(fd, buf + len, KEYFILE_MAX + 1 - len);
		if (n == 0)
			break;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "tls_client_key %s: %s", path,
			    strerror(errno));
			goto done;
		}
		len += (size_t)n;
	}
	if (len > KEYFILE_MAX) {
		snprintf(err, errlen, "tls_client_key %s is larger than %d "
		    "octets: not a private key", path, KEYFILE_MAX);
		goto done;
	}
	/* A traditional PEM key encrypted by OpenSSL says so in a header. */
	if (has_text(buf, len, "Proc-Type: 4,ENCRYPTED")) {
		snprintf(err, errlen, "tls_client_key %s is encrypted: "
		    "encrypted keys are not supported; decrypt it with openssl "
		    "pkey", path);
		goto done;
	}
	/* BearSSL's PEM decoder ends an object only at a line end. */
	buf[len++] = '\n';
	rv = auth_key_decode(a, path, buf, len, err, errlen);
done:
	explicit_bzero(buf, KEYFILE_MAX + 2);
	free(buf);
	close(fd);
	return rv;
}

/* Big-endian unsigned integers, leading zeros aside. */
static int
same_uint(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen)
{
	while (alen > 0 && *a == 0) {
		a++;
		alen--;
	}
	while (blen > 0 && *b == 0) {
		b++;
		blen--;
	}
	return alen == blen && memcmp(a, b, alen) == 0;
}

/*
 * Does the key belong to the first certificate?  Better said here, by
 * name, than learnt from an alert the smarthost sends mid-handshake.
 */
static int
auth_key_check(struct client_auth *a, const struct conf *conf, char *err,
    size_t errlen)
{
	br_x509_decoder_context dc;
	const br_x509_pkey *pk;
	const br_rsa_private_key *rsa;
	const br_ec_private_key *ec;
	br_ec_public_key pub;
	unsigned char buf[RSA_MAX > BR_EC_KBUF_PUB_MAX_SIZE ? RSA_MAX :
	    BR_EC_KBUF_PUB_MAX_SIZE];
	size_t n;
	int same = 0;

	br_x509_decoder_init(&dc, pin_no_dn, NULL);
	br_x509_decoder_push(&dc, a->chain[0].data, a->chain[0].data_len);
	if ((pk = br_x509_decoder_get_pkey(&dc)) == NULL) {
		snprintf(err, errlen, "tls_client_cert %s: its first "
		    "certificate cannot be decoded (BearSSL error %d)",
		    conf->client_cert, br_x509_decoder_last_error(&dc));
		return -1;
	}
	if (pk->key_type != a->key_type) {
		snprintf(err, errlen, "tls_client_key %s holds an %s key, but "
		    "the certificate in tls_client_cert %s has an %s key",
		    conf->client_key, key_type_name(a->key_type),
		    conf->client_cert, key_type_name(pk->key_type));
		return -1;
	}
	if (a->key_type == BR_KEYTYPE_RSA) {
		rsa = br_skey_decoder_get_rsa(&a->key);
		n = br_rsa_compute_modulus_get_default()(NULL, rsa);
		if (n > 0 && n <= sizeof buf &&
		    br_rsa_compute_modulus_get_default()(buf, rsa) == n)
			same = same_uint(buf, n, pk->key.rsa.n,
			    pk->key.rsa.nlen);
	} else {
		ec = br_skey_decoder_get_ec(&a->key);
		n = br_ec_compute_pub(br_ec_get_default(), &pub, buf, ec);
		same = n > 0 && pub.curve == pk->key.ec.curve &&
		    pub.qlen == pk->key.ec.qlen &&
		    memcmp(pub.q, pk->key.ec.q, pub.qlen) == 0;
	}
	explicit_bzero(buf, sizeof buf);
	if (!same) {
		snprintf(err, errlen, "tls_client_key %s is not the key of the "
		    "certificate in tls_client_cert %s (their public keys "
		    "differ)", conf->client_key, conf->client_cert);
		return -1;
	}
	return 0;
}

static void
auth_free(struct client_auth *a)
{
	size_t i;

	for (i = 0; i < a->nchain; i++)
		free(a->chain[i].data);
	free(a->chain);
	a->chain = NULL;
	a->nchain = 0;
	explicit_bzero(&a->key, sizeof a->key);
	a->key_type = 0;
}

/* Read tls_client_cert and tls_client_key.  Returns 0, or -1 with err. */
static int
auth_load(struct client_auth *a, const struct conf *conf, char *err,
    size_t errlen)
{
	if (pem_load_certs("tls_client_cert", conf->client_cert,
	    auth_keep_cert, a, err, errlen) == -1)
		goto fail;
	if (a->nchain == 0) {
		snprintf(err, errlen, "tls_client_cert %s holds no "
		    "certificate", conf->client_cert);
		goto fail;
	}
	if (auth_key_load(a, conf->client_key, err, errlen) == -1 ||
	    auth_key_check(a, conf, err, errlen) == -1)
		goto fail;
	return 0;
fail:
	auth_free(a);
	return -1;
}

/*
 * BearSSL's certificate handler interface.  BearSSL's own single-chain
 * handlers would do for signing; this one also records that the server
 * asked, and asks nothing of BearSSL's internals.
 */
static void
auth_start_name_list(const br_ssl_client_certificate_class **pctx)
{
	struct client_auth *a = (struct client_auth *)(void *)pctx;

	a->asked = 1;
}

static void
auth_start_name(const br_ssl_client_certificate_class **pctx, size_t len)
{
	(void)pctx;
	(void)len;
}

static void
auth_append_name(const br_ssl_client_certificate_class **pctx,
    const unsigned char *data, size_t len)
{
	(void)pctx;
	(void)data;
	(void)len;
}

static void
auth_end_name(const br_ssl_client_certificate_class **pctx)
{
	(void)pctx;
}

static void
auth_end_name_list(const br_ssl_client_certificate_class **pctx)
{
	(void)pctx;
}

/*
 * The hash for our signature, from those the server takes (bit n: hash
 * id n): SHA-256 first, as BearSSL's own handlers do; never SHA-1.
 */
static int
auth_hash(uint32_t bits)
{
	static const int pref[] = { br_sha256_ID, br_sha384_ID, br_sha512_ID,
	    br_sha224_ID };
	size_t i;

	for (i = 0; i < sizeof pref / sizeof pref[0]; i++)
		if ((bits >> pref[i]) & 1)
			return pref[i];
	return 0;
}

static void
auth_choose(const br_ssl_client_certificate_class **pctx,
    const br_ssl_client_context *cc, uint32_t auth_types,
    br_ssl_client_certificate *choices)
{
	struct client_auth *a = (struct client_auth *)(void *)pctx;
	int hash;

	(void)cc;
	a->asked = 1;
	memset(choices, 0, sizeof *choices);	/* nothing to show */
	if (a->key_type == BR_KEYTYPE_RSA) {
		choices->auth_type = BR_AUTH_RSA;
		hash = auth_hash(auth_types & 0xff);
	} else if (a->key_type == BR_KEYTYPE_EC) {
		choices->auth_type = BR_AUTH_ECDSA;
		hash = auth_hash((auth_types >> 8) & 0xff);
	} else
		return;
	if (hash == 0) {
		memset(choices, 0, sizeof *choices);
		return;
	}
	choices->hash_id = hash;
	choices->chain = a->chain;
	choices->chain_len = a->nchain;
	a->sent = 1;
}

/* Static ECDH is never chosen above (and our suites are ECDHE only). */
static uint32_t
auth_do_keyx(const br_ssl_client_certificate_class **pctx,
    unsigned char *data, size_t *len)
{
	(void)pctx;
	(void)data;
	(void)len;
	return 0;
}

static size_t
auth_do_sign(const br_ssl_client_certificate_class **pctx, int hash_id,
    size_t hv_len, unsigned char *data, size_t len)
{
	struct client_auth *a = (struct client_auth *)(void *)pctx;
	const br_rsa_private_key *rsa;
	const br_ec_private_key *ec;
	const unsigned char *oid;
	const br_hash_class *hc;
	unsigned char hv[64];
	size_t siglen;

	switch (hash_id) {
	case br_sha224_ID:
		oid = BR_HASH_OID_SHA224;
		hc = &br_sha224_vtable;
		break;
	case br_sha256_ID:
		oid = BR_HASH_OID_SHA256;
		hc = &br_sha256_vtable;
		break;
	case br_sha384_ID:
		oid = BR_HASH_OID_SHA384;
		hc = &br_sha384_vtable;
		break;
	case br_sha512_ID:
		oid = BR_HASH_OID_SHA512;
		hc = &br_sha512_vtable;
		break;
	default:
		return 0;
	}
	if (hv_len > sizeof hv || hv_len != ((hc->desc >> BR_HASHDESC_OUT_OFF) &
	    BR_HASHDESC_OUT_MASK))
		return 0;
	/* The signature is written over the hash: keep a copy. */
	memcpy(hv, data, hv_len);
	if (a->key_type == BR_KEYTYPE_RSA) {
		rsa = br_skey_decoder_get_rsa(&a->key);
		siglen = (rsa->n_bitlen + 7) >> 3;
		if (len < siglen || !br_rsa_pkcs1_sign_get_default()(oid, hv,
		    hv_len, rsa, data))
			siglen = 0;
	} else if (a->key_type == BR_KEYTYPE_EC) {
		ec = br_skey_decoder_get_ec(&a->key);
		/* 139: the longest ASN.1 ECDSA signature (P-521). */
		siglen = len < 139 ? 0 : br_ecdsa_sign_asn1_get_default()(
		    br_ec_get_default(), hc, hv, ec, data);
	} else
		siglen = 0;
	explicit_bzero(hv, sizeof hv);
	return siglen;
}

static const br_ssl_client_certificate_class auth_vtable = {
	sizeof(struct client_auth),
	auth_start_name_list,
	auth_start_name,
	auth_append_name,
	auth_end_name,
	auth_end_name_list,
	auth_choose,
	auth_do_keyx,
	auth_do_sign
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
	else if (e == BR_ERR_IO && c->hungup)
		strlcpy(how, c->error, sizeof how);
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
	} else if (e == BR_ERR_IO && c->hungup && c->tls_in == 0)
		/*
		 * A server that wants TLS 1.3, or has no suite in common
		 * with us, may hang up on our ClientHello without even an
		 * alert (Python's asyncio does).
		 */
		snprintf(err, errlen, "TLS: %s without answering the handshake "
		    "(does it require TLS 1.3, which BearSSL 0.6 lacks, or "
		    "other cipher suites? " OFFERED ")", c->error);
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
	    auth_load(&c->auth, conf, err, errlen) == -1) {
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
	c->auth.vtable = &auth_vtable;
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
	auth_free(&c->auth);		/* and its private key */
	explicit_bzero(c, sizeof *c);
	free(c);
}
