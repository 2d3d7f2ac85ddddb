/*
 * What relay shows when the smarthost asks for a certificate: the chain
 * of tls_client_cert and the private key of tls_client_key, read and
 * checked against each other when TLS starts, and the BearSSL handler
 * that sends the chain and signs with the key.
 */
#include <sys/stat.h>

#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

#define KEYFILE_MAX	65536	/* larger is not a private key file */
#define RSA_MAX		512	/* a 4096-bit modulus, BearSSL's limit */

/* Keep each certificate of tls_client_cert, in order: leaf first. */
static int
client_cert_keep(void *arg, struct pem_loader *l, char *err, size_t errlen)
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
client_key_push(void *ctx, const void *buf, size_t len)
{
	br_skey_decoder_push(ctx, buf, len);
}

static void
client_key_ignore(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
}

const char *
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
client_key_decode(struct client_auth *a, const char *path, unsigned char *buf,
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
				br_pem_decoder_setdest(&pc, client_key_push,
				    &a->key);
			} else
				br_pem_decoder_setdest(&pc, client_key_ignore,
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

/*
 * Each time TLS starts: type, owner and mode are checked on the
 * descriptor read (secret_file_open), not on the name beforehand.
 */
static int
client_key_read(struct client_auth *a, const char *path, char *err,
    size_t errlen)
{
	unsigned char *buf;
	size_t len = 0;
	ssize_t n;
	int fd, rv = -1;

	if ((fd = secret_file_open("tls_client_key", path, err, errlen)) == -1)
		return -1;
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
	rv = client_key_decode(a, path, buf, len, err, errlen);
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
client_key_check(struct client_auth *a, const struct conf *conf, char *err,
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

	br_x509_decoder_init(&dc, client_key_ignore, NULL);
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

void
client_key_free(struct client_auth *a)
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
int
client_key_load(struct client_auth *a, const struct conf *conf, char *err,
    size_t errlen)
{
	if (pem_load_certs("tls_client_cert", conf->client_cert,
	    client_cert_keep, a, err, errlen) == -1)
		goto fail;
	if (a->nchain == 0) {
		snprintf(err, errlen, "tls_client_cert %s holds no "
		    "certificate", conf->client_cert);
		goto fail;
	}
	if (client_key_read(a, conf->client_key, err, errlen) == -1 ||
	    client_key_check(a, conf, err, errlen) == -1)
		goto fail;
	return 0;
fail:
	client_key_free(a);
	return -1;
}

/*
 * BearSSL's certificate handler interface.  BearSSL's own single-chain
 * handlers would do for signing; this one also records that the server
 * asked, and asks nothing of BearSSL's internals.
 */
static void
client_key_start_name_list(const br_ssl_client_certificate_class **pctx)
{
	struct client_auth *a = (struct client_auth *)(void *)pctx;

	a->asked = 1;
}

static void
client_key_start_name(const br_ssl_client_certificate_class **pctx, size_t len)
{
	(void)pctx;
	(void)len;
}

static void
client_key_append_name(const br_ssl_client_certificate_class **pctx,
    const unsigned char *data, size_t len)
{
	(void)pctx;
	(void)data;
	(void)len;
}

static void
client_key_end_name(const br_ssl_client_certificate_class **pctx)
{
	(void)pctx;
}

static void
client_key_end_name_list(const br_ssl_client_certificate_class **pctx)
{
	(void)pctx;
}

/*
 * The hash for our signature, from those the server takes (bit n: hash
 * id n): SHA-256 first, as BearSSL's own handlers do; never SHA-1.
 */
static int
client_key_hash(uint32_t bits)
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
client_key_choose(const br_ssl_client_certificate_class **pctx,
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
		hash = client_key_hash(auth_types & 0xff);
	} else if (a->key_type == BR_KEYTYPE_EC) {
		choices->auth_type = BR_AUTH_ECDSA;
		hash = client_key_hash((auth_types >> 8) & 0xff);
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
client_key_do_keyx(const br_ssl_client_certificate_class **pctx,
    unsigned char *data, size_t *len)
{
	(void)pctx;
	(void)data;
	(void)len;
	return 0;
}

static size_t
client_key_do_sign(const br_ssl_client_certificate_class **pctx, int hash_id,
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

const br_ssl_client_certificate_class client_key_vtable = {
	sizeof(struct client_auth),
	client_key_start_name_list,
	client_key_start_name,
	client_key_append_name,
	client_key_end_name,
	client_key_end_name_list,
	client_key_choose,
	client_key_do_keyx,
	client_key_do_sign
};
