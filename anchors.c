/*
 * What the smarthost's certificate is checked against: the trust anchors
 * of ca_file, read with our own PEM reader (keys.c reads tls_client_cert
 * with it too) and DER walker, and the X.509 class that checks the pins,
 * tls_fingerprint and tls_pubkey_fingerprint.
 */
#include <bearssl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

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
 * anchor at all.  Private keys do go through br_pem_decoder (keys.c).
 */

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
int
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

int
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

void
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

/*
 * tls_fingerprint and tls_pubkey_fingerprint: the server's certificate,
 * or its public key, must have the pinned SHA-256.  The pins replace the
 * CA and host name checks (as msmtp's tls_fingerprint does), unless
 * "tls_verify both" wants those too: then every call is also passed on
 * to BearSSL's own validator.  It sees the chain as BearSSL receives it,
 * server certificate first.
 */

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

const br_x509_class pin_vtable = {
	sizeof(struct pin_x509),
	pin_start_chain,
	pin_start_cert,
	pin_append,
	pin_end_cert,
	pin_end_chain,
	pin_get_pkey
};
