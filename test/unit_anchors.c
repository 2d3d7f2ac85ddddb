/*
 * Unit tests for the loading of ca_file in anchors.c: the DER walker that
 * builds each trust anchor must give exactly what br_x509_decoder gave
 * (relay's way before it), for every certificate of Debian's bundle and
 * of the test PKI, and for damaged certificates too (the same anchor, or
 * skipped alike), without a fault under ASan.  Also prints how long a
 * load takes each way, as a comment.  Run from the top of the tree, as
 * test/run does.
 */
#include <bearssl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay.h"
#include "unit.h"

#define BUNDLE	"/etc/ssl/certs/ca-certificates.crt"
#define PKI	"test/tmp/pki"
#define CERT_MAX	65536

struct der {
	unsigned char	*buf;
	size_t		 len;
};

struct ders {
	struct der	*d;
	size_t		 n;
};

/* ---- reading certificates with BearSSL's own PEM decoder ---------------- */

struct pem_sink {
	unsigned char	 buf[CERT_MAX];
	size_t		 len;
	int		 overflow;
};

static void
pem_sink_push(void *ctx, const void *buf, size_t len)
{
	struct pem_sink *s = ctx;

	if (s->len + len > sizeof s->buf) {
		s->overflow = 1;
		return;
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
}

static void
ders_add(struct ders *ds, const unsigned char *buf, size_t len)
{
	struct der *grown;

	if ((grown = realloc(ds->d, (ds->n + 1) * sizeof *ds->d)) == NULL ||
	    (grown[ds->n].buf = malloc(len)) == NULL) {
		perror("unit_anchors");
		exit(1);
	}
	ds->d = grown;
	memcpy(ds->d[ds->n].buf, buf, len);
	ds->d[ds->n].len = len;
	ds->n++;
}

/* Every CERTIFICATE object of path, in order, as DER; -1 if unreadable. */
static int
ders_load(struct ders *ds, const char *path)
{
	static struct pem_sink sink;
	br_pem_decoder_context pc;
	unsigned char chunk[4096];
	const unsigned char *p;
	size_t n, len;
	int incert = 0, rv = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	br_pem_decoder_init(&pc);
	while (rv == 0 && (len = fread(chunk, 1, sizeof chunk, fp)) > 0) {
		for (p = chunk; rv == 0 && len > 0; p += n, len -= n) {
			n = br_pem_decoder_push(&pc, p, len);
			switch (br_pem_decoder_event(&pc)) {
			case BR_PEM_BEGIN_OBJ:
				incert = strstr(br_pem_decoder_name(&pc),
				    "CERTIFICATE") != NULL;
				sink.len = 0;
				sink.overflow = 0;
				br_pem_decoder_setdest(&pc, incert ?
				    pem_sink_push : NULL, &sink);
				break;
			case BR_PEM_END_OBJ:
				if (incert && !sink.overflow)
					ders_add(ds, sink.buf, sink.len);
				incert = 0;
				break;
			case BR_PEM_ERROR:
				rv = -1;
				break;
			}
		}
	}
	fclose(fp);
	return rv;
}

static void
ders_free(struct ders *ds)
{
	size_t i;

	for (i = 0; i < ds->n; i++)
		free(ds->d[i].buf);
	free(ds->d);
	ds->d = NULL;
	ds->n = 0;
}

/* ---- comparing anchors --------------------------------------------------- */

static int
same_bytes(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* NULL if a and b are the same anchor, else what differs. */
static const char *
anchor_diff(const br_x509_trust_anchor *a, const br_x509_trust_anchor *b)
{
	if (!same_bytes(a->dn.data, a->dn.len, b->dn.data, b->dn.len))
		return "DN";
	if (a->flags != b->flags)
		return "flags";
	if (a->pkey.key_type != b->pkey.key_type)
		return "key type";
	if (a->pkey.key_type == BR_KEYTYPE_RSA) {
		if (!same_bytes(a->pkey.key.rsa.n, a->pkey.key.rsa.nlen,
		    b->pkey.key.rsa.n, b->pkey.key.rsa.nlen))
			return "RSA modulus";
		if (!same_bytes(a->pkey.key.rsa.e, a->pkey.key.rsa.elen,
		    b->pkey.key.rsa.e, b->pkey.key.rsa.elen))
			return "RSA exponent";
	} else {
		if (a->pkey.key.ec.curve != b->pkey.key.ec.curve)
			return "curve";
		if (!same_bytes(a->pkey.key.ec.q, a->pkey.key.ec.qlen,
		    b->pkey.key.ec.q, b->pkey.key.ec.qlen))
			return "EC point";
	}
	return NULL;
}

/* NULL if the two lists are the same, else what differs. */
static const char *
list_diff(const br_x509_trust_anchor *a, size_t na,
    const br_x509_trust_anchor *b, size_t nb, size_t *at)
{
	const char *why;
	size_t i;

	for (i = 0; i < na && i < nb; i++)
		if ((why = anchor_diff(&a[i], &b[i])) != NULL) {
			*at = i;
			return why;
		}
	*at = i;
	return na == nb ? NULL : "number of anchors";
}

struct outcome {
	void		*ta;
	size_t		 n;
	size_t		 walked;
};

static void
load_der(const unsigned char *der, size_t len, int how, struct outcome *o)
{
	char err[256];

	if (tls_anchors_test(NULL, der, len, how, &o->ta, &o->n, &o->walked,
	    err, sizeof err) == -1) {
		printf("# %s\n", err);
		exit(1);
	}
}

static void
outcome_free(struct outcome *o)
{
	tls_anchors_test_free(o->ta, o->n);
}

/*
 * Compare the three ways on one certificate.  The normal way (walker,
 * else decoder) must equal the decoder's; the walker alone must equal it
 * or skip.  Returns NULL, or what differs.
 */
static const char *
compare_one(const unsigned char *der, size_t len, int *walked, int *kept)
{
	struct outcome fast, dec, walk;
	const char *why;
	size_t at;

	load_der(der, len, ANCHORS_FAST, &fast);
	load_der(der, len, ANCHORS_DECODER, &dec);
	load_der(der, len, ANCHORS_WALKER, &walk);
	why = list_diff(fast.ta, fast.n, dec.ta, dec.n, &at);
	if (why == NULL && walk.n != 0)
		why = list_diff(walk.ta, walk.n, dec.ta, dec.n, &at);
	if (why == NULL && walk.n != fast.walked)
		why = "walker count";
	*walked = walk.n != 0;
	*kept = dec.n != 0;
	outcome_free(&fast);
	outcome_free(&dec);
	outcome_free(&walk);
	return why;
}

/* ---- the tests ----------------------------------------------------------- */

/*
 * Every certificate of path, one at a time, then the whole file as
 * ca_file: same anchors both ways.  want_walked: each certificate the
 * decoder takes must be read by the walker (the fast path really is).
 */
static void
test_file(const char *path, int want_walked)
{
	struct ders ds = { NULL, 0 };
	struct outcome fast, dec;
	const char *why;
	char err[256];
	size_t i, at, cas, kept = 0, walked = 0, bad = 0;
	int w, k;

	if (ders_load(&ds, path) == -1 || ds.n == 0) {
		CHECK(0, "%s: read its certificates", path);
		ders_free(&ds);
		return;
	}
	for (i = 0; i < ds.n; i++) {
		why = compare_one(ds.d[i].buf, ds.d[i].len, &w, &k);
		kept += k;
		walked += w;
		if (why != NULL) {
			bad++;
			printf("# %s: certificate %zu (%zu octets): %s "
			    "differs\n", path, i + 1, ds.d[i].len, why);
		} else if (k && !w)
			printf("# %s: certificate %zu left to the decoder\n",
			    path, i + 1);
		else if (!k)
			printf("# %s: certificate %zu skipped both ways\n",
			    path, i + 1);
	}
	CHECK(bad == 0, "%s: %zu certificates, %zu anchors, each the same as "
	    "br_x509_decoder's", path, ds.n, kept);
	if (want_walked)
		CHECK(walked == kept, "%s: the walker read %zu of the %zu",
		    path, walked, kept);
	if (tls_anchors_test(path, NULL, 0, ANCHORS_FAST, &fast.ta, &fast.n,
	    &fast.walked, err, sizeof err) == -1 ||
	    tls_anchors_test(path, NULL, 0, ANCHORS_DECODER, &dec.ta, &dec.n,
	    &dec.walked, err, sizeof err) == -1) {
		CHECK(0, "%s: loaded as ca_file: %s", path, err);
	} else {
		why = list_diff(fast.ta, fast.n, dec.ta, dec.n, &at);
		for (i = cas = 0; i < fast.n; i++)
			cas += (((br_x509_trust_anchor *)fast.ta)[i].flags &
			    BR_X509_TA_CA) != 0;
		CHECK(why == NULL && fast.n == kept && dec.walked == 0,
		    "%s: loaded as ca_file, %zu anchors both ways (%zu "
		    "with BR_X509_TA_CA)", path, fast.n, cas);
		if (why != NULL)
			printf("#   anchor %zu: %s differs\n", at + 1, why);
		outcome_free(&fast);
		outcome_free(&dec);
	}
	ders_free(&ds);
}

/* Cut short at every length, and one octet too long: always skipped. */
static void
test_truncated(const char *what, const unsigned char *der, size_t len)
{
	unsigned char *buf;
	struct outcome o;
	size_t cut, kept = 0;
	int how;

	if ((buf = malloc(len + 1)) == NULL)
		exit(1);
	for (cut = 0; cut < len; cut++) {
		/* A copy of just cut octets, so ASan sees any overread. */
		memcpy(buf, der, cut);
		for (how = ANCHORS_FAST; how <= ANCHORS_WALKER; how++) {
			load_der(buf, cut, how, &o);
			kept += o.n;
			outcome_free(&o);
		}
	}
	CHECK(kept == 0, "%s truncated at each of %zu lengths: skipped all "
	    "three ways", what, len);
	memcpy(buf, der, len);
	buf[len] = 0;
	load_der(buf, len + 1, ANCHORS_FAST, &o);
	CHECK(o.n == 0, "%s with an octet after it: skipped", what);
	outcome_free(&o);
	free(buf);
}

/*
 * Every octet changed in turn, five ways (the length octets among them:
 * one more, one less, high bit flipped): the same anchor as the
 * decoder's, or skipped alike.
 */
static void
test_mutated(const char *what, const unsigned char *der, size_t len)
{
	static const int deltas[] = { 1, -1, 0x80, 0x01, 0xff };
	unsigned char *buf;
	const char *why;
	size_t i, j, tried = 0, bad = 0, walked = 0, kept = 0;
	int w, k;

	if ((buf = malloc(len)) == NULL)
		exit(1);
	for (i = 0; i < len; i++) {
		for (j = 0; j < sizeof deltas / sizeof deltas[0]; j++) {
			memcpy(buf, der, len);
			if (j < 2)
				buf[i] = (unsigned char)(buf[i] + deltas[j]);
			else
				buf[i] ^= (unsigned char)deltas[j];
			why = compare_one(buf, len, &w, &k);
			tried++;
			walked += w;
			kept += k;
			if (why != NULL && bad++ < 10)
				printf("# %s, octet %zu changed to 0x%02x: %s "
				    "differs\n", what, i, buf[i], why);
		}
	}
	CHECK(bad == 0, "%s changed %zu ways, one octet each: same as "
	    "br_x509_decoder (%zu kept, %zu of them by the walker)", what,
	    tried, kept, walked);
	free(buf);
}

/* The outer SEQUENCE's length, one off each way: skipped. */
static void
test_wrong_length(const char *what, const unsigned char *der, size_t len)
{
	unsigned char *buf;
	struct outcome o;
	size_t lenpos;
	int d, skipped = 1;

	/* 30 82 hi lo: a certificate is over 255 octets */
	if (len < 4 || der[0] != 0x30 || der[1] != 0x82) {
		CHECK(0, "%s: starts with 30 82", what);
		return;
	}
	if ((buf = malloc(len)) == NULL)
		exit(1);
	lenpos = 3;
	for (d = -1; d <= 1; d += 2) {
		memcpy(buf, der, len);
		buf[lenpos] = (unsigned char)(buf[lenpos] + d);
		load_der(buf, len, ANCHORS_FAST, &o);
		skipped &= o.n == 0;
		outcome_free(&o);
	}
	CHECK(skipped, "%s with its length octet one off either way: skipped",
	    what);
	free(buf);
}

/*
 * The first date of der with the given tag, rewritten to each of a few
 * values at the edges of what the decoder allows: kept or skipped as it
 * says, and the same anchor both ways.
 */
static void
test_dates(const char *what, const unsigned char *der, size_t len, int tag)
{
	static const struct {
		const char	*date;
		int		 kept;
	} utc[] = {
		{ "240229000000Z", 1 }, { "230229000000Z", 0 },
		{ "000229000000Z", 1 }, { "991231235960Z", 1 },
		{ "991231235961Z", 0 }, { "991231240000Z", 0 },
		{ "991231236000Z", 0 }, { "991301000000Z", 0 },
		{ "991200000000Z", 0 }, { "990431000000Z", 0 },
		{ "990430000000Z", 1 }, { "9912312359590", 0 },
		{ "99123123595aZ", 0 }, { "491231235959Z", 1 },
	}, gen[] = {
		{ "21000229000000Z", 0 }, { "20000229000000Z", 1 },
		{ "24000229000000Z", 1 }, { "19000229000000Z", 0 },
		{ "20491231235960Z", 1 }, { "20491231235961Z", 0 },
		{ "00010101000000Z", 1 }, { "99991231235959Z", 1 },
		{ "2049123123595 Z", 0 },
	};
	unsigned char *buf;
	const char *why;
	size_t dlen = tag == 0x17 ? 13 : 15, n, i, p, bad = 0;
	int w, k;

	for (p = 0; p + 2 + dlen <= len; p++)
		if (der[p] == tag && der[p + 1] == dlen &&
		    der[p + 1 + dlen] == 'Z')
			break;
	if (p + 2 + dlen > len) {
		CHECK(0, "%s has a date with tag 0x%02x", what, tag);
		return;
	}
	if ((buf = malloc(len)) == NULL)
		exit(1);
	n = tag == 0x17 ? sizeof utc / sizeof utc[0] :
	    sizeof gen / sizeof gen[0];
	for (i = 0; i < n; i++) {
		const char *date = tag == 0x17 ? utc[i].date : gen[i].date;
		int want = tag == 0x17 ? utc[i].kept : gen[i].kept;

		memcpy(buf, der, len);
		memcpy(buf + p + 2, date, dlen);
		why = compare_one(buf, len, &w, &k);
		if (why != NULL || k != want || w != want) {
			bad++;
			printf("# %s dated %s: %s (kept %d, walker %d)\n", what,
			    date, why != NULL ? why : "", k, w);
		}
	}
	CHECK(bad == 0, "%s: %zu dates (%s) at the limits, kept or skipped "
	    "as by br_x509_decoder", what, n, tag == 0x17 ? "UTCTime" :
	    "GeneralizedTime");
	free(buf);
}

static double
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 +
	    (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Not a check (this build has ASan): how long loading takes each way. */
static void
time_loads(const char *path)
{
	static const char *name[] = { "walker", "br_x509_decoder" };
	struct timespec t0;
	struct outcome o;
	char err[256];
	double best;
	int how, i, rounds = 10;

	for (how = ANCHORS_FAST; how <= ANCHORS_DECODER; how++) {
		best = 1e9;
		for (i = 0; i < rounds; i++) {
			clock_gettime(CLOCK_MONOTONIC, &t0);
			if (tls_anchors_test(path, NULL, 0, how, &o.ta, &o.n,
			    &o.walked, err, sizeof err) == -1)
				return;
			if (ms_since(&t0) < best)
				best = ms_since(&t0);
			outcome_free(&o);
		}
		printf("# loaded %zu anchors in %.2f ms with the %s (best of "
		    "%d, as built)\n", o.n, best, name[how], rounds);
	}
}

/* The first certificate of path whose anchor has the key type. */
static int
pick(const struct ders *ds, int key_type, struct der *out)
{
	struct outcome o;
	size_t i;
	int found = 0;

	for (i = 0; i < ds->n && !found; i++) {
		load_der(ds->d[i].buf, ds->d[i].len, ANCHORS_DECODER, &o);
		if (o.n == 1 && ((br_x509_trust_anchor *)o.ta)->pkey.key_type ==
		    key_type) {
			*out = ds->d[i];
			found = 1;
		}
		outcome_free(&o);
	}
	return found;
}

/* Does d hold a date with this tag (in DER form)? */
static int
ders_has_date(const struct der *d, int tag)
{
	size_t dlen = tag == 0x17 ? 13 : 15, p;

	for (p = 0; p + 2 + dlen <= d->len; p++)
		if (d->buf[p] == tag && d->buf[p + 1] == dlen &&
		    d->buf[p + 1 + dlen] == 'Z')
			return 1;
	return 0;
}

static void
test_damaged(const char *path)
{
	struct ders ds = { NULL, 0 };
	struct der d;
	char what[300];
	int types[] = { BR_KEYTYPE_RSA, BR_KEYTYPE_EC };
	size_t i;

	if (ders_load(&ds, path) == -1)
		return;
	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (!pick(&ds, types[i], &d))
			continue;
		snprintf(what, sizeof what, "%s's first %s certificate", path,
		    types[i] == BR_KEYTYPE_RSA ? "RSA" : "EC");
		test_truncated(what, d.buf, d.len);
		test_wrong_length(what, d.buf, d.len);
		test_mutated(what, d.buf, d.len);
	}
	/* Dates: the first certificate of each kind there is. */
	for (i = 0; i < ds.n; i++)
		if (ders_has_date(&ds.d[i], 0x17)) {
			snprintf(what, sizeof what, "%s: certificate %zu", path,
			    i + 1);
			test_dates(what, ds.d[i].buf, ds.d[i].len, 0x17);
			break;
		}
	for (i = 0; i < ds.n; i++)
		if (ders_has_date(&ds.d[i], 0x18)) {
			snprintf(what, sizeof what, "%s: certificate %zu", path,
			    i + 1);
			test_dates(what, ds.d[i].buf, ds.d[i].len, 0x18);
			break;
		}
	ders_free(&ds);
}

int
main(void)
{
	glob_t g;
	size_t i;
	FILE *fp;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((fp = fopen(BUNDLE, "r")) == NULL)
		printf("ok # skip %s: no such file\n", BUNDLE);
	else {
		fclose(fp);
		test_file(BUNDLE, 1);
		test_damaged(BUNDLE);
		time_loads(BUNDLE);
	}
	if (glob(PKI "/*.crt", 0, NULL, &g) != 0)
		printf("ok # skip " PKI "/*.crt: none (test/pki.sh makes "
		    "them)\n");
	else {
		for (i = 0; i < g.gl_pathc; i++)
			test_file(g.gl_pathv[i], 1);
		globfree(&g);
		test_damaged(PKI "/selfsigned.crt");
	}
	UNIT_END();
}
