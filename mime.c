/*
 * Making the message something SMTP can carry: a body with NUL octets or
 * lines over 998 octets re-encoded as quoted-printable (where MIME does
 * not allow that, its long lines folded), an 8-bit body made 7-bit for a
 * smarthost without 8BITMIME, header lines over 998 octets folded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "relay.h"

#define QP_LINE		76		/* RFC 2045 6.7 (5) */

/* Content-Transfer-Encodings a body can be re-encoded from. */
static const char *const plain_cte[] = { "7bit", "8bit", "binary" };
/* Content-Types whose body must not be re-encoded (RFC 2046 5, 6.4). */
static const char *const composite_types[] = { "multipart", "message" };

static const char *
plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* ---- making the body fit for SMTP --------------------------------------- */

/* Skip RFC 5322 CFWS: whitespace, folds and (nested) comments. */
static size_t
skip_cfws(const char *s, size_t len, size_t i)
{
	int depth = 0;

	for (; i < len; i++) {
		if (depth > 0 && s[i] == '\\')
			i++;
		else if (s[i] == '(')
			depth++;
		else if (depth > 0 && s[i] == ')')
			depth--;
		else if (depth == 0 && !is_wsp((unsigned char)s[i]) &&
		    s[i] != '\r' && s[i] != '\n')
			break;
	}
	return i;
}

/* Does the field's first token (up to '/', ';', CFWS) match a word? */
static int
first_token_in(const struct header *h, const char *const *words,
    size_t nwords)
{
	size_t i, start, n;

	start = skip_cfws(h->text, h->len, h->valoff);
	for (i = start; i < h->len; i++)
		if (strchr("/;( \t\r\n", h->text[i]) != NULL)
			break;
	n = i - start;
	for (i = 0; i < nwords; i++)
		if (strlen(words[i]) == n &&
		    strncasecmp(h->text + start, words[i], n) == 0)
			return 1;
	return 0;
}

/*
 * RFC 2045 6.7 quoted-printable, one octet at a time.  A SP or HTAB is
 * held back until we know whether it ends the line (then it must be
 * encoded, rule 3).  Lines stay within 76 characters with soft breaks.
 */
struct qp {
	size_t	 col;
	int	 held;		/* pending SP/HTAB, or -1 */
};

static int
qp_emit(struct work *w, struct bodyfile *out, struct qp *q, unsigned char c,
    int encode)
{
	char enc[4];
	size_t width = encode ? 3 : 1;
	int ex;

	if (q->col + width > QP_LINE - 1) {
		if ((ex = bodyfile_put(w, out, "=\r\n", 3)) != EX_OK)
			return ex;
		q->col = 0;
	}
	q->col += width;
	if (!encode)
		return bodyfile_putc(w, out, (char)c);
	enc[0] = '=';
	hex_encode(enc + 1, sizeof(enc) - 1, &c, 1, HEX_UPPER);
	return bodyfile_put(w, out, enc, 3);
}

static int
qp_chunk(struct work *w, struct bodyfile *out, const unsigned char *p, size_t n,
    void *arg)
{
	struct qp *q = arg;
	size_t i;
	int ex = EX_OK;

	for (i = 0; i < n && ex == EX_OK; i++) {
		unsigned char c = p[i];

		if (c == '\r')
			continue;	/* the body file: CR only before LF */
		if (c == '\n') {
			if (q->held != -1)
				ex = qp_emit(w, out, q,
				    (unsigned char)q->held, 1);
			q->held = -1;
			if (ex == EX_OK)
				ex = bodyfile_put(w, out, "\r\n", 2);
			q->col = 0;
			continue;
		}
		if (q->held != -1)
			ex = qp_emit(w, out, q, (unsigned char)q->held, 0);
		q->held = -1;
		if (ex != EX_OK)
			break;
		if (c == ' ' || c == '\t')
			q->held = c;
		else
			ex = qp_emit(w, out, q, c,
			    c == '=' || c < 0x20 || c > 0x7e);
	}
	return ex;
}

/*
 * Postfix's smtp_line_length_limit: a line over 998 octets goes on in a
 * continuation line starting with SP.  Nothing is lost, and a MIME part
 * that is base64 or quoted-printable ignores the added whitespace.
 */
static int
fold_chunk(struct work *w, struct bodyfile *out, const unsigned char *p,
    size_t n, void *arg)
{
	size_t *col = arg, i;
	int ex = EX_OK;

	for (i = 0; i < n && ex == EX_OK; i++) {
		if (p[i] == '\r')
			continue;
		if (p[i] == '\n') {
			ex = bodyfile_put(w, out, "\r\n", 2);
			*col = 0;
			continue;
		}
		if (*col == SMTP_LINE) {
			if ((ex = bodyfile_put(w, out, "\r\n ", 3)) != EX_OK)
				break;
			*col = 1;
		}
		ex = bodyfile_putc(w, out, (char)p[i]);
		(*col)++;
	}
	return ex;
}

/* A re-encoding pass: each chunk of the body through fn into out. */
struct recode {
	struct work	*w;
	int		(*fn)(struct work *, struct bodyfile *,
			    const unsigned char *, size_t, void *);
	struct bodyfile	*out;
	void		*arg;
};

static int
recode_chunk(void *ctx, const char *p, size_t n)
{
	struct recode *rc = ctx;

	return rc->fn(rc->w, rc->out, (const unsigned char *)p, n, rc->arg);
}

/* Copy the body through fn into a new body file that becomes the body. */
static int
recode_body(struct work *w, int (*fn)(struct work *, struct bodyfile *,
    const unsigned char *, size_t, void *), void *arg)
{
	struct recode rc = { w, fn, NULL, arg };
	int ex;

	if ((ex = bodyfile_open(w, &rc.out)) != EX_OK)
		return ex;
	/* fn returns sysexits codes, never -1: that is a failed read. */
	if ((ex = body_chunks(w->msg, recode_chunk, &rc)) == -1)
		ex = errno == ENOMEM ? nomem(w) : failf(w, EX_IOERR,
		    "cannot read the spool file: %s", strerror(errno));
	if (ex == EX_OK)
		ex = bodyfile_adopt(w, rc.out);
	bodyfile_free(rc.out);
	return ex;
}

/* Content-Transfer-Encoding: quoted-printable, plus what MIME needs. */
static int
mark_quoted_printable(struct work *w)
{
	struct msg *m = w->msg;
	struct buf b = { NULL, 0, 0 };
	unsigned char *drop = NULL;
	size_t i;
	int seen = 0, ex = EX_OK;

	/* (No fields: nothing to drop, and calloc(0) may give NULL.) */
	if (m->nhdrs > 0 && (drop = calloc(m->nhdrs, 1)) == NULL)
		return nomem(w);
	for (i = 0; i < m->nhdrs && ex == EX_OK; i++) {
		if (!field_is(&m->hdrs[i], "Content-Transfer-Encoding"))
			continue;
		if (seen)
			drop[i] = 1;
		else if (buf_str(&b, "Content-Transfer-Encoding: "
		    "quoted-printable") == -1)
			ex = nomem(w);
		else {
			header_replace(&m->hdrs[i], &b);
			seen = 1;
		}
	}
	header_compact(m, drop);
	free(drop);
	if (ex != EX_OK)
		return ex;
	if (find_field(m, "MIME-Version") == NULL &&
	    (ex = header_add(w, "MIME-Version: 1.0")) != EX_OK)
		return ex;
	if (find_field(m, "Content-Type") == NULL &&
	    (ex = header_add(w, w->st.eightbit == 0 ?
	    "Content-Type: text/plain; charset=us-ascii" : !w->st.notutf8 ?
	    "Content-Type: text/plain; charset=utf-8" :
	    "Content-Type: text/plain; charset=unknown-8bit")) != EX_OK)
		return ex;
	if (!seen && (ex = header_add(w, "Content-Transfer-Encoding: "
	    "quoted-printable")) != EX_OK)
		return ex;
	return EX_OK;
}

/*
 * A body with NUL octets or lines over 998 octets cannot go over SMTP as
 * it is (RFC 5321 4.5.3.1.6, RFC 5322 2.3).  A single-part body in
 * 7bit/8bit/binary is re-encoded as quoted-printable, which keeps every
 * octet; a multipart or already encoded one can only have its long lines
 * folded, and a NUL in it is refused.
 */
/* A single part with no transfer encoding (or 7bit, 8bit, binary). */
static int
body_recodable(const struct msg *m, int *composite)
{
	const struct header *ct, *cte;
	int multi, encoded;

	ct = find_field(m, "Content-Type");
	cte = find_field(m, "Content-Transfer-Encoding");
	multi = ct != NULL && first_token_in(ct, composite_types,
	    sizeof(composite_types) / sizeof(composite_types[0]));
	encoded = cte != NULL && !first_token_in(cte, plain_cte,
	    sizeof(plain_cte) / sizeof(plain_cte[0]));
	if (composite != NULL)
		*composite = multi;
	return !multi && !encoded;
}

static int
body_to_qp(struct work *w)
{
	struct qp q = { 0, -1 };
	int ex;

	if ((ex = recode_body(w, qp_chunk, &q)) != EX_OK ||
	    (ex = mark_quoted_printable(w)) != EX_OK)
		return ex;
	w->body8 = 0;
	return EX_OK;
}

/* A body with NULs or lines over 998 octets made fit, as above. */
static int
body_fit(struct work *w)
{
	const struct bodystats *st = &w->st;
	char note[160];
	size_t col = 0;
	int composite, ex;

	if (st->nuls == 0 && st->overlong == 0)
		return EX_OK;
	if (body_recodable(w->msg, &composite)) {
		if ((ex = body_to_qp(w)) != EX_OK)
			return ex;
		(void)snprintf(note, sizeof(note), "body converted to "
		    "quoted-printable: %zu line%s over %d octets, %zu NUL%s",
		    st->overlong, plural(st->overlong), SMTP_LINE, st->nuls,
		    plural(st->nuls));
		return add_note(w, note);
	}
	if (st->nuls > 0)
		return failf(w, EX_DATAERR, "line %zu contains a NUL byte and "
		    "the message is %s: relay cannot carry it unchanged",
		    st->firstnul, composite ? "MIME multipart" :
		    "already transfer-encoded");
	if ((ex = recode_body(w, fold_chunk, &col)) != EX_OK)
		return ex;
	(void)snprintf(note, sizeof(note), "%zu body line%s over %d octets "
	    "folded", st->overlong, plural(st->overlong), SMTP_LINE);
	return add_note(w, note);
}

/*
 * RFC 2045 5.2, 6.1: without MIME headers a reader takes the body for
 * US-ASCII and 7bit.  An 8-bit body says what it holds: utf-8 when it
 * is valid UTF-8, else unknown-8bit (RFC 1428).  A body re-encoded as
 * quoted-printable has its labels already; msg_to_7bit relabels this.
 */
static int
label_8bit(struct work *w)
{
	struct msg *m = w->msg;
	int utf8 = !w->st.notutf8, ex;

	if (!w->body8 || find_field(m, "MIME-Version") != NULL ||
	    find_field(m, "Content-Type") != NULL)
		return EX_OK;
	if ((ex = header_add(w, "MIME-Version: 1.0")) != EX_OK ||
	    (ex = header_add(w, utf8 ?
	    "Content-Type: text/plain; charset=utf-8" :
	    "Content-Type: text/plain; charset=unknown-8bit")) != EX_OK)
		return ex;
	if (find_field(m, "Content-Transfer-Encoding") == NULL &&
	    (ex = header_add(w, "Content-Transfer-Encoding: 8bit")) != EX_OK)
		return ex;
	return add_note(w, utf8 ? "MIME headers added for the 8-bit body "
	    "(charset utf-8)" : "MIME headers added for the 8-bit body "
	    "(charset unknown-8bit)");
}

/* The body made fit for SMTP, then labelled if it is 8-bit. */
int
step_body(struct work *w)
{
	int ex;

	if ((ex = body_fit(w)) != EX_OK)
		return ex;
	return label_8bit(w);
}

/* ---- long header lines -------------------------------------------------- */

/*
 * Where to break a physical line s[0..n) so the part before is at most
 * limit octets: before a WSP, preferably one after a comma, never leaving
 * a line of whitespace only.  0 if there is no such place.
 */
static size_t
fold_point(const char *s, size_t n, size_t limit)
{
	size_t i, first = 0, pass;

	while (first < n && is_wsp((unsigned char)s[first]))
		first++;
	if (limit >= n)
		limit = n - 1;
	for (pass = 0; pass < 2; pass++) {
		for (i = limit; i > first; i--) {
			if (is_wsp((unsigned char)s[i]) &&
			    (pass == 1 || s[i - 1] == ','))
				return i;
		}
	}
	return 0;
}

/* RFC 5322 2.2.3 folding of one physical line, into out. */
static int
fold_line(struct buf *out, const char *s, size_t n)
{
	size_t cut, lead = 0;

	while (n + lead > SMTP_LINE) {
		if ((cut = fold_point(s, n, SMTP_LINE - lead)) > 0) {
			if (buf_add(out, s, cut) == -1 ||
			    buf_add(out, "\r\n", 2) == -1)
				return -1;
			lead = 0;
		} else {
			/* No whitespace: break anyway, as Postfix does. */
			cut = SMTP_LINE - lead;
			if (buf_add(out, s, cut) == -1 ||
			    buf_add(out, "\r\n ", 3) == -1)
				return -1;
			lead = 1;
		}
		s += cut;
		n -= cut;
	}
	return buf_add(out, s, n);
}

/* End of the physical line starting at line: its CRLF, or end. */
static const char *
line_end_at(const char *line, const char *end)
{
	const char *p;

	for (p = line; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return end;
}

static size_t
longest_line(const struct header *h)
{
	const char *line = h->text, *end = h->text + h->len, *eol;
	size_t longest = 0;

	for (;; line = eol + 2) {
		eol = line_end_at(line, end);
		if ((size_t)(eol - line) > longest)
			longest = (size_t)(eol - line);
		if (eol == end)
			return longest;
	}
}

/* Fold a field if one of its physical lines is over 998 octets. */
static int
fold_field(struct header *h, int *folded)
{
	struct buf out = { NULL, 0, 0 };
	const char *line = h->text, *end = h->text + h->len, *eol;

	if (!(*folded = longest_line(h) > SMTP_LINE))
		return 0;
	for (;; line = eol + 2) {
		eol = line_end_at(line, end);
		if (fold_line(&out, line, (size_t)(eol - line)) == -1 ||
		    (eol != end && buf_add(&out, "\r\n", 2) == -1)) {
			free(out.p);
			return -1;
		}
		if (eol == end)
			break;
	}
	header_replace(h, &out);
	return 0;
}

int
step_fold_headers(struct work *w)
{
	struct msg *m = w->msg;
	char note[80];
	size_t i, nfolded = 0;
	int folded;

	for (i = 0; i < m->nhdrs; i++) {
		if (fold_field(&m->hdrs[i], &folded) == -1)
			return nomem(w);
		nfolded += folded;
	}
	if (nfolded == 0)
		return EX_OK;
	(void)snprintf(note, sizeof(note), "%zu header field%s with lines "
	    "over %d octets folded", nfolded, plural(nfolded), SMTP_LINE);
	return add_note(w, note);
}

/* ---- a smarthost without 8BITMIME --------------------------------------- */

int
msg_to_7bit(struct msg *m, char *err, size_t errlen)
{
	struct work w;
	int ex;

	/* Headers and other bodies go as they are, as Postfix sends them. */
	if (!m->body8 || !body_recodable(m, NULL))
		return EX_OK;
	work_init(&w, m, err, errlen);
	w.st.eightbit = 1;		/* for the charset mark_qp may add */
	w.st.notutf8 = m->body_notutf8;
	if (m->note != NULL && buf_str(&w.note, m->note) == -1)
		return nomem(&w);
	if ((ex = body_to_qp(&w)) == EX_OK)
		ex = add_note(&w, "body converted to quoted-printable: the "
		    "smarthost does not offer 8BITMIME");
	if (ex != EX_OK) {
		free(w.note.p);
		return ex;
	}
	free(m->note);
	m->note = w.note.p;
	m->body8 = 0;
	measure(m);
	return EX_OK;
}

