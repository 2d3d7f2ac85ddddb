/*
 * The message as the caller hands it over on stdin: read it once, keep the
 * header block in memory (capped) and stream the body to an unlinked spool
 * file, with every line ending made CRLF.  Then work out the envelope
 * (sender, recipients, aliases), rewrite the header for the wire (Bcc out,
 * local names qualified, Date/Message-ID/From added) and make the body
 * something SMTP can carry (no NUL, no line over 998 octets).
 *
 * Memory does not grow with the size of the message: only the header
 * block is held, and the body is copied chunk by chunk.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define CHUNK		65536		/* read/write/put() unit */
#define HDR_MAX		(1024 * 1024)	/* cap on the header block read */
#define HDR_OUT_MAX	(2 * HDR_MAX)	/*   and on it rewritten, queued */
#define SMTP_LINE	998		/* RFC 5321 4.5.3.1.6, RFC 5322 2.1.1 */
#define QP_LINE		76		/* RFC 2045 6.7 (5) */
#define EW_CHUNK	45		/* RFC 2047 2: 75-octet encoded-words */

struct header {
	char	*text;		/* "Name: value", folds kept as CRLF WSP */
	size_t	 len;		/* no final CRLF */
	size_t	 cap;		/* octets allocated at text */
	size_t	 namelen;	/* field name, WSP before the ':' excluded */
	size_t	 valoff;	/* first octet after the ':' */
};

/* A growing byte string, always NUL-terminated for convenience. */
struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/* Buffered writes to an unlinked temporary file. */
struct spool {
	int	 fd;
	off_t	 len;		/* octets written, buffered ones included */
	size_t	 used;
	char	 buf[CHUNK];
};

/* What the body holds, gathered while it is spooled. */
struct bodystats {
	size_t		 overlong;	/* lines over SMTP_LINE octets */
	size_t		 nuls;
	size_t		 firstnul;	/* message line of the first NUL */
	size_t		 eightbit;	/* octets >= 0x80 */
	int		 notutf8;
	unsigned char	 utf8_need;	/* continuation octets to come */
	unsigned char	 utf8_lo;	/*   and the range of the next one */
	unsigned char	 utf8_hi;
};

/* Reading state while the caller's input is taken in. */
struct intake {
	int		 inbody;
	int		 done;		/* the lone "." was seen */
	int		 pending_cr;	/* last octet was CR: swallow an LF */
	int		 held_dot;	/* body line so far is ".", unwritten */
	size_t		 lineno;	/* message line being read, from 1 */
	size_t		 linelen;	/* octets in the current body line */
	size_t		 hdrbytes;	/* header block so far, CRLFs counted */
	struct buf	 line;		/* current line of the header block */
};

/* Everything msg_read() works with. */
struct work {
	struct msg		*msg;
	const struct msgopts	*opts;
	const struct conf	*conf;
	char			*err;
	size_t			 errlen;
	struct intake		 in;
	struct spool		*spool;
	struct bodystats	 st;
	int			 body8;		/* body still has 8-bit */
	size_t			 rcptcap;
	struct buf		 note;
	int			 pw_done;	/* getpwuid() tried */
	char			*login;
	char			*gecos;
};

/* Header fields with a job; names compare case-insensitively. */
#define F_EXTRACT	0x01	/* -t takes recipients from it */
#define F_REMOVE	0x02	/* never sent */
#define F_ALIAS		0x04	/* local names mapped through aliases */
#define F_SENDER	0x08	/* local names become the envelope sender */

/*
 * -t reads To, Cc and Bcc only, as Postfix does.  Resent-To/Cc/Bcc are
 * left out on purpose: a resent message's original recipients would get
 * it a second time, and no caller observed relies on Resent-* with -t.
 */
static const struct {
	const char	*name;
	int		 flags;
} fieldtab[] = {
	{ "To",		F_EXTRACT | F_ALIAS },
	{ "Cc",		F_EXTRACT | F_ALIAS },
	{ "Bcc",	F_EXTRACT | F_REMOVE },	/* RFC 5322 3.6.3 */
	{ "Resent-Bcc",	F_REMOVE },
	{ "Return-Path", F_REMOVE },		/* RFC 5321 4.4 */
	{ "Reply-To",	F_ALIAS },
	{ "From",	F_SENDER },
	{ "Sender",	F_SENDER },
};

/* Lead octets of UTF-8 sequences (RFC 3629 4) and their first follower. */
static const struct {
	unsigned char	 first, last, need, lo, hi;
} utf8_leads[] = {
	{ 0xc2, 0xdf, 1, 0x80, 0xbf },
	{ 0xe0, 0xe0, 2, 0xa0, 0xbf },		/* no overlongs */
	{ 0xe1, 0xec, 2, 0x80, 0xbf },
	{ 0xed, 0xed, 2, 0x80, 0x9f },		/* no surrogates */
	{ 0xee, 0xef, 2, 0x80, 0xbf },
	{ 0xf0, 0xf0, 3, 0x90, 0xbf },		/* no overlongs */
	{ 0xf1, 0xf3, 3, 0x80, 0xbf },
	{ 0xf4, 0xf4, 3, 0x80, 0x8f },		/* nothing past U+10FFFF */
};

/* Content-Transfer-Encodings a body can be re-encoded from. */
static const char *const plain_cte[] = { "7bit", "8bit", "binary" };
/* Content-Types whose body must not be re-encoded (RFC 2046 5, 6.4). */
static const char *const composite_types[] = { "multipart", "message" };

static int	 failf(struct work *, int, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));
static int	 buf_printf(struct buf *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));

static int
failf(struct work *w, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	/* A truncated error message is still a useful one. */
	(void)vsnprintf(w->err, w->errlen, fmt, ap);
	va_end(ap);
	return code;
}

static int
nomem(struct work *w)
{
	return failf(w, EX_OSERR, "out of memory");
}

/* ---- small helpers ------------------------------------------------------ */

static int
buf_add(struct buf *b, const void *p, size_t n)
{
	char *np;
	size_t cap;

	if (n >= SIZE_MAX / 2 - b->len)
		return -1;
	if (b->len + n + 1 > b->cap) {
		for (cap = b->cap ? b->cap : 64; cap < b->len + n + 1; )
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

static int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256], *big;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return buf_add(b, small, (size_t)n);
	if ((big = malloc((size_t)n + 1)) == NULL)
		return -1;
	va_start(ap, fmt);
	rc = vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = rc == n ? buf_add(b, big, (size_t)n) : -1;
	free(big);
	return rc;
}

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* For error messages: untrusted text made printable, cut to fit. */
static const char *
printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	sanitise(dst, dstlen, src, srclen);
	return dst;
}

/* Add to msg->note, the one-line account of what was changed. */
static int
add_note(struct work *w, const char *what)
{
	if (w->note.len > 0 && buf_str(&w->note, "; ") == -1)
		return nomem(w);
	return buf_str(&w->note, what) == -1 ? nomem(w) : EX_OK;
}

static const char *
plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* ---- the spool file ----------------------------------------------------- */

/*
 * An unlinked file in $TMPDIR: nothing to clean up whatever happens, and
 * nobody else can open it.
 */
static int
spool_open(struct work *w, struct spool **spp)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];
	struct spool *sp;
	int fd, n, saved;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	n = snprintf(path, sizeof(path), "%s/relay.XXXXXXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return failf(w, EX_TEMPFAIL, "TMPDIR is too long");
	if ((sp = malloc(sizeof(*sp))) == NULL)
		return nomem(w);
	if ((fd = mkstemp(path)) == -1) {
		saved = errno;
		free(sp);
		return failf(w, EX_TEMPFAIL, "cannot create a spool file in "
		    "%s: %s", dir, strerror(saved));
	}
	if (unlink(path) == -1 || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		saved = errno;
		(void)unlink(path);
		(void)close(fd);
		free(sp);
		return failf(w, EX_TEMPFAIL, "spool file %s: %s", path,
		    strerror(saved));
	}
	sp->fd = fd;
	sp->len = 0;
	sp->used = 0;
	*spp = sp;
	return EX_OK;
}

static int
spool_flush(struct work *w, struct spool *sp)
{
	if (write_all(sp->fd, sp->buf, sp->used) == -1)
		return failf(w, EX_TEMPFAIL, "cannot write the spool file: %s",
		    strerror(errno));
	sp->used = 0;
	return EX_OK;
}

static int
spool_put(struct work *w, struct spool *sp, const char *p, size_t n)
{
	size_t room;
	int ex;

	while (n > 0) {
		if (sp->used == sizeof(sp->buf) &&
		    (ex = spool_flush(w, sp)) != EX_OK)
			return ex;
		room = sizeof(sp->buf) - sp->used;
		if (room > n)
			room = n;
		memcpy(sp->buf + sp->used, p, room);
		sp->used += room;
		sp->len += (off_t)room;
		p += room;
		n -= room;
	}
	return EX_OK;
}

static int
spool_putc(struct work *w, struct spool *sp, char c)
{
	int ex;

	if (sp->used == sizeof(sp->buf) && (ex = spool_flush(w, sp)) != EX_OK)
		return ex;
	sp->buf[sp->used++] = c;
	sp->len++;
	return EX_OK;
}

/* Hand the finished spool over to the message as its body. */
static int
spool_adopt(struct work *w, struct spool *sp)
{
	int ex;

	if ((ex = spool_flush(w, sp)) != EX_OK)
		return ex;
	if (w->msg->spoolfd != -1)
		(void)close(w->msg->spoolfd);
	w->msg->spoolfd = sp->fd;
	w->msg->bodyoff = 0;
	w->msg->bodylen = sp->len;
	sp->fd = -1;
	return EX_OK;
}

static void
spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->fd != -1)
		(void)close(sp->fd);
	free(sp);
}

/*
 * Hand the body to fn chunk by chunk, as it stands in the spool from
 * m->bodyoff on.  Returns 0, fn's non-zero result, or -1 with errno set
 * when the spool cannot be read.
 */
static int
body_chunks(const struct msg *m, int (*fn)(void *, const char *, size_t),
    void *arg)
{
	char *chunk;
	off_t off = 0;
	size_t want;
	ssize_t n;
	int rc = 0, saved;

	if ((chunk = malloc(CHUNK)) == NULL)
		return -1;
	while (rc == 0 && off < m->bodylen) {
		want = m->bodylen - off < CHUNK ? (size_t)(m->bodylen - off) :
		    CHUNK;
		if ((n = pread_all(m->spoolfd, chunk, want, m->bodyoff + off))
		    != (ssize_t)want) {
			if (n != -1)
				errno = EIO;	/* the file shrank */
			rc = -1;
			break;
		}
		rc = fn(arg, chunk, want);
		off += n;
	}
	saved = errno;
	free(chunk);
	errno = saved;
	return rc;
}

/* ---- headers ------------------------------------------------------------ */

/*
 * RFC 5322 3.6.8: field-name = 1*ftext (printable ASCII but ':'); obs
 * syntax (4.5) allows WSP before the colon.  Returns the name's length, 0
 * if this is not a header field line.
 */
static size_t
field_name(const char *s, size_t len, size_t *valoff)
{
	size_t i, n;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == ':')
			break;
	}
	if ((n = i) == 0)
		return 0;
	while (i < len && is_wsp((unsigned char)s[i]))
		i++;
	if (i == len || s[i] != ':')
		return 0;
	*valoff = i + 1;
	return n;
}

static int
field_is(const struct header *h, const char *name)
{
	return h->namelen == strlen(name) &&
	    strncasecmp(h->text, name, h->namelen) == 0;
}

static int
field_flags(const struct header *h)
{
	size_t i;

	for (i = 0; i < sizeof(fieldtab) / sizeof(fieldtab[0]); i++)
		if (field_is(h, fieldtab[i].name))
			return fieldtab[i].flags;
	return 0;
}

static struct header *
find_field(const struct msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nhdrs; i++)
		if (field_is(&m->hdrs[i], name))
			return &m->hdrs[i];
	return NULL;
}

/*
 * Append a field; text is taken over on success.  The array doubles when
 * nhdrs reaches a power of two (8 first): header blocks of 20000 fields
 * must not cost 20000 reallocs.  header_compact only lowers nhdrs, so
 * the capacity is always more than nhdrs.
 */
static int
header_push(struct work *w, char *text, size_t len)
{
	struct msg *m = w->msg;
	struct header *h;
	size_t valoff = 0, namelen, n = m->nhdrs;

	namelen = field_name(text, len, &valoff);
	if (n == 0 || (n >= 8 && (n & (n - 1)) == 0)) {
		if ((h = reallocarray(m->hdrs, n < 8 ? 8 : 2 * n,
		    sizeof(*h))) == NULL)
			return nomem(w);
		m->hdrs = h;
	}
	h = &m->hdrs[m->nhdrs++];
	h->text = text;
	h->len = len;
	h->cap = len + 1;
	h->namelen = namelen;
	h->valoff = valoff;
	return EX_OK;
}

static int
header_add(struct work *w, const char *text)
{
	char *copy;
	int ex;

	if ((copy = strdup(text)) == NULL)
		return nomem(w);
	if ((ex = header_push(w, copy, strlen(copy))) != EX_OK)
		free(copy);
	return ex;
}

/* Replace a field's whole text (name included); b is taken over. */
static void
header_replace(struct header *h, struct buf *b)
{
	free(h->text);
	h->text = b->p;
	h->len = b->len;
	h->cap = b->cap;
	h->namelen = field_name(h->text, h->len, &h->valoff);
	memset(b, 0, sizeof(*b));
}

/*
 * Drop the fields whose drop[] is set, in one pass: deleting them one by
 * one would move the rest each time, and 170000 "Bcc:" lines fit in the
 * 1 MiB header block (minutes of memmove).
 */
static void
header_compact(struct msg *m, const unsigned char *drop)
{
	size_t i, kept = 0;

	for (i = 0; i < m->nhdrs; i++) {
		if (drop[i])
			free(m->hdrs[i].text);
		else
			m->hdrs[kept++] = m->hdrs[i];
	}
	m->nhdrs = kept;
}

/* ---- reading the caller's input ----------------------------------------- */

static void
utf8_step(struct bodystats *st, unsigned char c)
{
	size_t i;

	if (st->utf8_need > 0) {
		if (c < st->utf8_lo || c > st->utf8_hi)
			st->notutf8 = 1;
		st->utf8_need--;
		st->utf8_lo = 0x80;
		st->utf8_hi = 0xbf;
		return;
	}
	if (c < 0x80)
		return;
	for (i = 0; i < sizeof(utf8_leads) / sizeof(utf8_leads[0]); i++) {
		if (c >= utf8_leads[i].first && c <= utf8_leads[i].last) {
			st->utf8_need = utf8_leads[i].need;
			st->utf8_lo = utf8_leads[i].lo;
			st->utf8_hi = utf8_leads[i].hi;
			return;
		}
	}
	st->notutf8 = 1;
}

/* Octets of a body line (never CR or LF), written as they come. */
static int
body_text(struct work *w, const char *p, size_t n)
{
	struct intake *in = &w->in;
	struct bodystats *st = &w->st;
	size_t i;
	int ex;

	if (n == 0)
		return EX_OK;
	/*
	 * Without -i a line holding only "." ends the input; a "." at the
	 * start of a line is held back until we know what follows it.
	 */
	if (in->held_dot) {
		in->held_dot = 0;
		if ((ex = spool_putc(w, w->spool, '.')) != EX_OK)
			return ex;
	} else if (w->opts->dotend && in->linelen == 0 && n == 1 &&
	    p[0] == '.') {
		in->held_dot = 1;
		in->linelen = 1;
		return EX_OK;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\0' && st->nuls++ == 0)
			st->firstnul = in->lineno;
		if (c >= 0x80)
			st->eightbit++;
		if (!st->notutf8)
			utf8_step(st, c);
	}
	in->linelen += n;
	return spool_put(w, w->spool, p, n);
}

static int
body_line_end(struct work *w)
{
	struct intake *in = &w->in;

	if (in->held_dot) {
		in->done = 1;
		return EX_OK;
	}
	if (in->linelen > SMTP_LINE)
		w->st.overlong++;
	if (w->st.utf8_need > 0)
		w->st.notutf8 = 1;	/* a sequence cut by a line break */
	in->linelen = 0;
	return spool_put(w, w->spool, "\r\n", 2);
}

/*
 * A folded line: appended to the field before, CRLF kept between.  The
 * field doubles as it grows: a field folded 260000 times (1 MiB) must not
 * be copied whole for each line.
 */
static int
header_continue(struct work *w, const struct buf *l)
{
	struct header *h = &w->msg->hdrs[w->msg->nhdrs - 1];
	size_t need = h->len + 2 + l->len + 1, cap = h->cap;
	char *text = h->text;

	if (need > cap) {
		cap = need > 2 * cap ? need : 2 * cap;
		if ((text = realloc(h->text, cap)) == NULL)
			return nomem(w);
		h->cap = cap;
	}
	memcpy(text + h->len, "\r\n", 2);
	memcpy(text + h->len + 2, l->p, l->len);
	h->text = text;
	h->len += 2 + l->len;
	h->text[h->len] = '\0';
	return EX_OK;
}

static int
header_new(struct work *w, const struct buf *l)
{
	char *text;
	int ex;

	if ((text = malloc(l->len + 1)) == NULL)
		return nomem(w);
	memcpy(text, l->p, l->len);
	text[l->len] = '\0';
	if ((ex = header_push(w, text, l->len)) != EX_OK)
		free(text);
	return ex;
}

/*
 * Decide what a complete line of the header block is: the empty line
 * ending it, a new field, a continuation, or the first line of a body that
 * came without the empty line (a lone "." too: body_text() then sees it
 * end the input).
 */
static int
header_line_end(struct work *w)
{
	struct intake *in = &w->in;
	struct buf *l = &in->line;
	size_t valoff;
	int ex, folded;

	if (l->len == 0) {
		in->inbody = 1;
		return EX_OK;
	}
	folded = is_wsp((unsigned char)l->p[0]) && w->msg->nhdrs > 0;
	if (!folded && field_name(l->p, l->len, &valoff) == 0) {
		in->inbody = 1;
		if ((ex = body_text(w, l->p, l->len)) == EX_OK)
			ex = body_line_end(w);
	} else if (memchr(l->p, '\0', l->len) != NULL) {
		ex = failf(w, EX_DATAERR, "header line %zu contains a NUL "
		    "byte", in->lineno);
	} else {
		in->hdrbytes += l->len + 2;
		ex = folded ? header_continue(w, l) : header_new(w, l);
	}
	l->len = 0;
	return ex;
}

/*
 * Octets of a line in the header block.  The block is capped; a line that
 * passes the cap is an error if it is a header field, else it is the
 * start of a body without headers and goes to the spool.  (The line may
 * pass the cap by one chunk before we look: memory stays bounded.)
 */
static int
header_text(struct work *w, const char *p, size_t n)
{
	struct intake *in = &w->in;
	struct buf *l = &in->line;
	size_t valoff;
	int ex;

	if (buf_add(l, p, n) == -1)
		return nomem(w);
	if (in->hdrbytes + l->len <= HDR_MAX)
		return EX_OK;
	if ((is_wsp((unsigned char)l->p[0]) && w->msg->nhdrs > 0) ||
	    field_name(l->p, l->len, &valoff) > 0)
		return failf(w, EX_DATAERR, "the header block is larger than "
		    "1 MiB (at line %zu)", in->lineno);
	in->inbody = 1;
	ex = body_text(w, l->p, l->len);
	l->len = 0;
	return ex;
}

static int
line_end(struct work *w)
{
	int ex;

	ex = w->in.inbody ? body_line_end(w) : header_line_end(w);
	w->in.lineno++;
	return ex;
}

/*
 * Split input into lines: LF, CRLF and a lone CR each end one (the CR
 * state survives chunk boundaries).  RFC 5321 2.3.8: only CRLF may reach
 * the wire, and canonical input is the defence against SMTP smuggling.
 */
static int
feed(struct work *w, const char *p, size_t n)
{
	struct intake *in = &w->in;
	size_t i = 0, j;
	int ex;

	while (i < n && !in->done) {
		if (in->pending_cr) {
			in->pending_cr = 0;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		if (p[i] == '\r' || p[i] == '\n') {
			in->pending_cr = p[i] == '\r';
			i++;
			if ((ex = line_end(w)) != EX_OK)
				return ex;
			continue;
		}
		for (j = i; j < n && p[j] != '\r' && p[j] != '\n'; j++)
			;
		ex = in->inbody ? body_text(w, p + i, j - i) :
		    header_text(w, p + i, j - i);
		if (ex != EX_OK)
			return ex;
		i = j;
	}
	return EX_OK;
}

/* Input that does not end in a line break gets one (RFC 5321 4.1.1.4). */
static int
feed_eof(struct work *w)
{
	struct intake *in = &w->in;

	if (in->done)
		return EX_OK;
	if (in->inbody ? in->linelen > 0 : in->line.len > 0)
		return line_end(w);
	return EX_OK;
}

/*
 * max_size, while reading: the message so far in its CRLF form (header
 * block, the line being read, the body spooled), so that a message too
 * big is refused without reading, or spooling, the rest of it.
 */
static int
check_size(struct work *w)
{
	off_t max = w->conf->max_size, sofar;

	sofar = (off_t)w->in.hdrbytes + (off_t)w->in.line.len + w->spool->len;
	if (max > 0 && sofar > max)
		return failf(w, EX_DATAERR, "message larger than max_size "
		    "(%lld octets)", (long long)max);
	return EX_OK;
}

static int
read_input(struct work *w, int fd)
{
	char *chunk;
	ssize_t n;
	int ex = EX_OK;

	if ((chunk = malloc(CHUNK)) == NULL)
		return nomem(w);
	w->in.lineno = 1;
	while (ex == EX_OK && !w->in.done) {
		if ((n = read(fd, chunk, CHUNK)) == -1) {
			if (errno == EINTR)
				continue;
			ex = failf(w, EX_IOERR, "cannot read the message: %s",
			    strerror(errno));
		} else if (n == 0) {
			ex = feed_eof(w);
			break;
		} else if ((ex = feed(w, chunk, (size_t)n)) == EX_OK)
			ex = check_size(w);
	}
	if (ex == EX_OK)
		ex = check_size(w);
	free(chunk);
	free(w->in.line.p);
	memset(&w->in.line, 0, sizeof(w->in.line));
	if (ex == EX_OK)
		ex = spool_adopt(w, w->spool);
	w->body8 = w->st.eightbit > 0;
	return ex;
}

static int
step_read(struct work *w, int fd)
{
	int ex;

	if ((ex = spool_open(w, &w->spool)) != EX_OK)
		return ex;
	return read_input(w, fd);
}

/* ---- envelope ----------------------------------------------------------- */

static int
dup_into(struct work *w, const char *s, char **out)
{
	if ((*out = strdup(s)) == NULL)
		return nomem(w);
	return EX_OK;
}

/* The caller's login name and GECOS full name, looked up once. */
static int
passwd_entry(struct work *w)
{
	struct passwd *pw;
	size_t n;

	if (w->pw_done)
		return w->login != NULL ? 0 : -1;
	w->pw_done = 1;
	if ((pw = getpwuid(getuid())) == NULL)
		return -1;
	if ((w->login = strdup(pw->pw_name)) == NULL)
		return -1;
	/* GECOS: "Full Name,office,phone,...". */
	n = pw->pw_gecos != NULL ? strcspn(pw->pw_gecos, ",") : 0;
	if (n > 0 && (w->gecos = strndup(pw->pw_gecos, n)) == NULL)
		return -1;
	return 0;
}

/*
 * The sender when -f gives none we can use: the configured one, else
 * login@domain, else the AUTH user if it is an address.
 */
static int
default_sender(struct work *w, char **out)
{
	const struct conf *c = w->conf;
	struct buf b = { NULL, 0, 0 };

	if (c->from != NULL)
		return dup_into(w, c->from, out);
	if (c->domain != NULL) {
		if (passwd_entry(w) == -1)
			return failf(w, EX_OSERR, "cannot find the login name "
			    "of uid %lu", (unsigned long)getuid());
		if (buf_printf(&b, "%s@%s", w->login, c->domain) == -1)
			return nomem(w);
		*out = b.p;
		return EX_OK;
	}
	if (c->user != NULL && strchr(c->user, '@') != NULL)
		return dup_into(w, c->user, out);
	return failf(w, EX_CONFIG, "no envelope sender: set \"from\" in %s",
	    c->path != NULL ? c->path : RELAY_CONF_DEFAULT);
}

/*
 * -f/-r: one mailbox; "" or "<>" is the null path (RFC 5321 4.5.5).  A
 * local name such as cron's "-f root" leaves *out NULL: the default
 * sender applies, since a bare name is no use to the smarthost.
 */
static int
sender_from_opt(struct work *w, const char *from, char **out)
{
	struct mailbox *mbs;
	size_t nmbs;
	char why[ERRLEN], shown[128];
	int ex = EX_OK;

	*out = NULL;
	if (addrlist_parse(from, strlen(from), &mbs, &nmbs, why,
	    sizeof(why)) == -1)
		return failf(w, EX_DATAERR, "bad sender address \"%s\": %s",
		    printable(shown, sizeof(shown), from, strlen(from)), why);
	if (nmbs > 1)
		ex = failf(w, EX_USAGE, "sender \"%s\" holds more than one "
		    "address", printable(shown, sizeof(shown), from,
		    strlen(from)));
	else if (nmbs == 0 || mbs[0].addr[0] == '\0')
		ex = dup_into(w, "", out);
	else if (strchr(mbs[0].addr, '@') != NULL)
		ex = dup_into(w, mbs[0].addr, out);
	addrlist_free(mbs, nmbs);
	return ex;
}

static int
step_sender(struct work *w)
{
	struct msg *m = w->msg;
	const char *why, *from = w->opts->from;
	char shown[300];
	int ex;

	if (from != NULL &&
	    (ex = sender_from_opt(w, from, &m->sender)) != EX_OK)
		return ex;
	if (m->sender == NULL && (ex = default_sender(w, &m->sender)) != EX_OK)
		return ex;
	if ((why = addr_check(m->sender)) != NULL)
		return failf(w, from != NULL && strchr(from, '@') != NULL ?
		    EX_DATAERR : EX_CONFIG, "bad sender address \"%s\": %s",
		    printable(shown, sizeof(shown), m->sender,
		    strlen(m->sender)), why);
	return EX_OK;
}

static int
rcpt_add(struct work *w, const char *addr)
{
	struct msg *m = w->msg;
	struct rcpt *r;
	const char *why;
	char shown[300];
	size_t i;

	if ((why = addr_check(addr)) != NULL || addr[0] == '\0')
		return failf(w, EX_DATAERR, "bad recipient address \"%s\": %s",
		    printable(shown, sizeof(shown), addr, strlen(addr)),
		    why != NULL ? why : "empty address");
	for (i = 0; i < m->nrcpts; i++)
		if (strcmp(m->rcpts[i].addr, addr) == 0)
			return EX_OK;
	/*
	 * Refused at the first one too many: the search above makes n
	 * recipients cost n * n, and a 1 MiB To: field holds 100000.  (0:
	 * no limit, for a struct conf not made by conf_load.)
	 */
	if (w->conf->max_rcpts > 0 && m->nrcpts >= w->conf->max_rcpts)
		return failf(w, EX_DATAERR, "at least %zu recipients; "
		    "max_recipients is %zu", m->nrcpts + 1,
		    w->conf->max_rcpts);
	if (m->nrcpts == w->rcptcap) {
		size_t cap = w->rcptcap ? w->rcptcap * 2 : 8;

		if ((r = reallocarray(m->rcpts, cap, sizeof(*r))) == NULL)
			return nomem(w);
		m->rcpts = r;
		w->rcptcap = cap;
	}
	r = &m->rcpts[m->nrcpts];
	if ((r->addr = strdup(addr)) == NULL)
		return nomem(w);
	r->code = 0;
	r->reply = NULL;
	m->nrcpts++;
	return EX_OK;
}

/*
 * A local name (no '@') goes through the aliases, else gets the domain
 * (RFC 6409 4.2: the MSA wants qualified addresses, and smarthosts either
 * refuse bare names or qualify them with their own domain).
 */
static int
rcpt_resolve(struct work *w, const char *addr)
{
	const struct alias *al;
	struct buf b = { NULL, 0, 0 };
	char shown[128];
	size_t i;
	int ex;

	if (addr[0] == '\0' || strchr(addr, '@') != NULL)
		return rcpt_add(w, addr);
	if ((al = conf_alias(w->conf, addr)) != NULL) {
		for (i = 0; i < al->ntargets; i++)
			if ((ex = rcpt_add(w, al->targets[i])) != EX_OK)
				return ex;
		return EX_OK;
	}
	if (w->conf->domain == NULL)
		return failf(w, EX_NOUSER, "local recipient \"%s\" has no "
		    "alias and no domain is set in %s",
		    printable(shown, sizeof(shown), addr, strlen(addr)),
		    w->conf->path != NULL ? w->conf->path :
		    RELAY_CONF_DEFAULT);
	if (buf_printf(&b, "%s@%s", addr, w->conf->domain) == -1)
		return nomem(w);
	ex = rcpt_add(w, b.p);
	free(b.p);
	return ex;
}

/* field: the header field the list comes from, NULL for argv. */
static int
rcpt_list(struct work *w, const char *text, size_t len, const char *field)
{
	struct mailbox *mbs;
	size_t i, nmbs;
	char why[ERRLEN], shown[128];
	int ex = EX_OK;

	if (addrlist_parse(text, len, &mbs, &nmbs, why, sizeof(why)) == -1) {
		if (field != NULL)
			return failf(w, EX_DATAERR, "cannot parse the %s: "
			    "header field: %s", field, why);
		return failf(w, EX_DATAERR, "bad recipient \"%s\": %s",
		    printable(shown, sizeof(shown), text, len), why);
	}
	for (i = 0; i < nmbs && ex == EX_OK; i++)
		ex = rcpt_resolve(w, mbs[i].addr);
	addrlist_free(mbs, nmbs);
	return ex;
}

/*
 * argv recipients, each an address list (Debian cron passes MAILTO
 * "a@x,b@y" as one argument); with -t the header ones too, added to argv
 * as Postfix and msmtp do.
 */
static int
step_rcpts(struct work *w)
{
	const struct msgopts *o = w->opts;
	const struct msg *m = w->msg;
	const struct header *h;
	char name[64];
	size_t i;
	int ex;

	for (i = 0; i < o->nargv; i++) {
		if ((ex = rcpt_list(w, o->argv_rcpts[i],
		    strlen(o->argv_rcpts[i]), NULL)) != EX_OK)
			return ex;
	}
	for (i = 0; o->extract && i < m->nhdrs; i++) {
		h = &m->hdrs[i];
		if (!(field_flags(h) & F_EXTRACT))
			continue;
		(void)printable(name, sizeof(name), h->text, h->namelen);
		if ((ex = rcpt_list(w, h->text + h->valoff,
		    h->len - h->valoff, name)) != EX_OK)
			return ex;
	}
	if (m->nrcpts > 0)
		return EX_OK;
	if (o->extract)
		return failf(w, EX_DATAERR, "no recipient addresses found in "
		    "the message header");
	return failf(w, EX_USAGE, "no recipients given");
}

/* ---- header rewriting --------------------------------------------------- */

/*
 * What a local name in a header becomes: in To/Cc/Reply-To its alias
 * targets (one replaces the addr-spec, several the whole mailbox) or its
 * qualified form; in From/Sender the envelope sender.  Returns 0 when the
 * mailbox stays as it is.
 */
static int
local_replacement(struct work *w, int flags, const char *addr,
    struct buf *out, int *whole)
{
	const struct alias *al;
	size_t i;

	*whole = 0;
	if (addr[0] == '\0' || strchr(addr, '@') != NULL)
		return 0;
	if (flags & F_SENDER) {
		if (w->msg->sender[0] == '\0')
			return 0;
		return buf_str(out, w->msg->sender) == -1 ? -1 : 1;
	}
	if ((al = conf_alias(w->conf, addr)) != NULL) {
		if (al->ntargets == 0)
			return 0;
		*whole = al->ntargets > 1;
		for (i = 0; i < al->ntargets; i++)
			if (buf_printf(out, "%s%s", i > 0 ? ", " : "",
			    al->targets[i]) == -1)
				return -1;
		return 1;
	}
	if (w->conf->domain == NULL)
		return 0;
	return buf_printf(out, "%s@%s", addr, w->conf->domain) == -1 ? -1 : 1;
}

/*
 * Rewrite the local names in one address field in place, through the
 * spans the parser gave; everything else (display names, comments,
 * folding) stays as written.  A field that does not parse is left alone.
 */
static int
rewrite_field(struct work *w, struct header *h, int flags)
{
	const char *val = h->text + h->valoff;
	struct mailbox *mbs;
	struct buf out = { NULL, 0, 0 }, rep = { NULL, 0, 0 };
	size_t i, nmbs, copied = 0, start, end;
	char why[ERRLEN];
	int r = 0, whole, changed = 0;

	if (addrlist_parse(val, h->len - h->valoff, &mbs, &nmbs, why,
	    sizeof(why)) == -1)
		return EX_OK;
	if (buf_add(&out, h->text, h->valoff) == -1)
		r = -1;
	for (i = 0; i < nmbs && r != -1; i++) {
		rep.len = 0;
		if ((r = local_replacement(w, flags, mbs[i].addr, &rep,
		    &whole)) != 1)
			continue;
		changed = 1;
		start = whole ? mbs[i].mb_start : mbs[i].as_start;
		end = whole ? mbs[i].mb_end : mbs[i].as_end;
		if (buf_add(&out, val + copied, start - copied) == -1 ||
		    buf_add(&out, rep.p, rep.len) == -1)
			r = -1;
		copied = end;
	}
	if (r != -1 && buf_add(&out, val + copied,
	    h->len - h->valoff - copied) == -1)
		r = -1;
	addrlist_free(mbs, nmbs);
	free(rep.p);
	if (r != -1 && changed)
		header_replace(h, &out);
	free(out.p);
	return r == -1 ? nomem(w) : EX_OK;
}

static int
step_rewrite(struct work *w)
{
	struct msg *m = w->msg;
	unsigned char *drop;
	size_t i;
	int flags, ex = EX_OK;

	if (m->nhdrs == 0)
		return EX_OK;
	if ((drop = calloc(m->nhdrs, 1)) == NULL)
		return nomem(w);
	for (i = 0; i < m->nhdrs && ex == EX_OK; i++) {
		flags = field_flags(&m->hdrs[i]);
		if (flags & F_REMOVE)
			drop[i] = 1;
		else if (flags & (F_ALIAS | F_SENDER))
			ex = rewrite_field(w, &m->hdrs[i], flags);
	}
	header_compact(m, drop);
	free(drop);
	return ex;
}

/* ---- fields we add ------------------------------------------------------ */

static int
is_atext_or_space(unsigned char c)
{
	static const char punct[] = "!#$%&'*+-/=?^_`{|}~ ";

	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr(punct, c) != NULL);
}

/*
 * RFC 2047 encoded-words for a name with non-ASCII octets, each at most 75
 * characters, split between UTF-8 sequences.
 */
static int
encode_words(struct buf *out, const char *s, size_t len)
{
	char b64[64];
	size_t cut;

	while (len > 0) {
		cut = len < EW_CHUNK ? len : EW_CHUNK;
		while (cut < len && cut > 1 &&
		    ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
		if (b64_encode(b64, sizeof(b64), s, cut) == -1 ||
		    buf_printf(out, "=?UTF-8?B?%s?=%s", b64,
		    cut < len ? " " : "") == -1)
			return -1;
		s += cut;
		len -= cut;
	}
	return 0;
}

/*
 * A display name (RFC 5322 3.2.5 phrase): atoms if it is only atext and
 * spaces, else a quoted-string, else (non-ASCII) encoded-words.  Control
 * characters become spaces so -F cannot inject a header line.
 */
static int
display_name(struct buf *out, const char *name)
{
	struct buf clean = { NULL, 0, 0 };
	const unsigned char *s;
	int atoms = 1, ascii = 1, rc = 0;
	size_t i;

	while (*name == ' ')
		name++;
	for (s = (const unsigned char *)name; *s != '\0'; s++) {
		char c = (*s < 0x20 || *s == 0x7f) ? ' ' : (char)*s;

		atoms &= is_atext_or_space((unsigned char)c);
		ascii &= *s < 0x80;
		if (buf_add(&clean, &c, 1) == -1)
			return -1;
	}
	while (clean.len > 0 && clean.p[clean.len - 1] == ' ')
		clean.p[--clean.len] = '\0';
	if (clean.len == 0)
		rc = 0;
	else if (!ascii)
		rc = encode_words(out, clean.p, clean.len);
	else if (atoms)
		rc = buf_add(out, clean.p, clean.len);
	else {
		rc = buf_add(out, "\"", 1);
		for (i = 0; rc == 0 && i < clean.len; i++) {
			if (clean.p[i] == '"' || clean.p[i] == '\\')
				rc = buf_add(out, "\\", 1);
			if (rc == 0)
				rc = buf_add(out, &clean.p[i], 1);
		}
		if (rc == 0)
			rc = buf_add(out, "\"", 1);
	}
	free(clean.p);
	return rc;
}

/* From: Full Name <sender>, the name from -F, else GECOS. */
static int
add_from(struct work *w)
{
	struct buf b = { NULL, 0, 0 }, name = { NULL, 0, 0 };
	const char *fullname = w->opts->fullname;
	char *addr = NULL;
	int ex;

	if (w->msg->sender[0] != '\0')
		addr = strdup(w->msg->sender);
	else if (default_sender(w, &addr) != EX_OK)
		return EX_OK;	/* a bounce: no From we could make up */
	if (addr == NULL)
		return nomem(w);
	if (fullname == NULL && passwd_entry(w) == 0)
		fullname = w->gecos;
	ex = EX_OK;
	if ((fullname != NULL && display_name(&name, fullname) == -1) ||
	    buf_printf(&b, "From: %s%s<%s>", name.len > 0 ? name.p : "",
	    name.len > 0 ? " " : "", addr) == -1)
		ex = nomem(w);
	if (ex == EX_OK)
		ex = header_add(w, b.p);
	free(b.p);
	free(name.p);
	free(addr);
	return ex;
}

/* RFC 5322 3.3 date-time, local time, C locale. */
static int
add_date(struct work *w)
{
	char line[80];
	time_t now = time(NULL);
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL ||
	    strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S %z",
	    &tm) == 0)
		return failf(w, EX_OSERR, "cannot format the date");
	return header_add(w, line);
}

/* RFC 5322 3.6.4: <time.random@domain>, unique by its 64 random bits. */
static int
add_message_id(struct work *w)
{
	const char *at = strrchr(w->msg->sender, '@');
	const char *domain = at != NULL && at[1] != '\0' ? at + 1 :
	    w->conf->helo != NULL ? w->conf->helo : "localhost";
	unsigned char rnd[8];
	char stamp[32], hex[sizeof(rnd) * 2 + 1];
	time_t now = time(NULL);
	struct buf b = { NULL, 0, 0 };
	struct tm tm;
	size_t i;
	int ex;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
		return failf(w, EX_OSERR, "cannot format the date");
	arc4random_buf(rnd, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++) {
		hex[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
	}
	hex[sizeof(hex) - 1] = '\0';
	if (buf_printf(&b, "Message-ID: <%s.%s@%s>", stamp, hex, domain) == -1)
		return nomem(w);
	ex = header_add(w, b.p);
	free(b.p);
	return ex;
}

static int
step_add_fields(struct work *w)
{
	static const struct {
		const char	*name;
		int		(*add)(struct work *);
	} added[] = {
		{ "From", add_from },
		{ "Date", add_date },
		{ "Message-ID", add_message_id },
	};
	size_t i;
	int ex;

	for (i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
		if (find_field(w->msg, added[i].name) == NULL &&
		    (ex = added[i].add(w)) != EX_OK)
			return ex;
	}
	return EX_OK;
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
qp_emit(struct work *w, struct spool *out, struct qp *q, unsigned char c,
    int encode)
{
	char enc[3];
	size_t width = encode ? 3 : 1;
	int ex;

	if (q->col + width > QP_LINE - 1) {
		if ((ex = spool_put(w, out, "=\r\n", 3)) != EX_OK)
			return ex;
		q->col = 0;
	}
	q->col += width;
	if (!encode)
		return spool_putc(w, out, (char)c);
	enc[0] = '=';
	enc[1] = "0123456789ABCDEF"[c >> 4];
	enc[2] = "0123456789ABCDEF"[c & 15];
	return spool_put(w, out, enc, 3);
}

static int
qp_chunk(struct work *w, struct spool *out, const unsigned char *p, size_t n,
    void *arg)
{
	struct qp *q = arg;
	size_t i;
	int ex = EX_OK;

	for (i = 0; i < n && ex == EX_OK; i++) {
		unsigned char c = p[i];

		if (c == '\r')
			continue;	/* the spool holds CR only before LF */
		if (c == '\n') {
			if (q->held != -1)
				ex = qp_emit(w, out, q,
				    (unsigned char)q->held, 1);
			q->held = -1;
			if (ex == EX_OK)
				ex = spool_put(w, out, "\r\n", 2);
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
fold_chunk(struct work *w, struct spool *out, const unsigned char *p,
    size_t n, void *arg)
{
	size_t *col = arg, i;
	int ex = EX_OK;

	for (i = 0; i < n && ex == EX_OK; i++) {
		if (p[i] == '\r')
			continue;
		if (p[i] == '\n') {
			ex = spool_put(w, out, "\r\n", 2);
			*col = 0;
			continue;
		}
		if (*col == SMTP_LINE) {
			if ((ex = spool_put(w, out, "\r\n ", 3)) != EX_OK)
				break;
			*col = 1;
		}
		ex = spool_putc(w, out, (char)p[i]);
		(*col)++;
	}
	return ex;
}

/* A re-encoding pass: each chunk of the body through fn into out. */
struct recode {
	struct work	*w;
	int		(*fn)(struct work *, struct spool *,
			    const unsigned char *, size_t, void *);
	struct spool	*out;
	void		*arg;
};

static int
recode_chunk(void *ctx, const char *p, size_t n)
{
	struct recode *rc = ctx;

	return rc->fn(rc->w, rc->out, (const unsigned char *)p, n, rc->arg);
}

/* Copy the body through fn into a new spool that becomes the body. */
static int
recode_body(struct work *w, int (*fn)(struct work *, struct spool *,
    const unsigned char *, size_t, void *), void *arg)
{
	struct recode rc = { w, fn, NULL, arg };
	int ex;

	if ((ex = spool_open(w, &rc.out)) != EX_OK)
		return ex;
	/* fn returns sysexits codes, never -1: that is a failed read. */
	if ((ex = body_chunks(w->msg, recode_chunk, &rc)) == -1)
		ex = errno == ENOMEM ? nomem(w) : failf(w, EX_IOERR,
		    "cannot read the spool file: %s", strerror(errno));
	if (ex == EX_OK)
		ex = spool_adopt(w, rc.out);
	spool_free(rc.out);
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

static int
step_body(struct work *w)
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

static int
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

/* RFC 1870 size, 8-bit flag and the note, once the message is final. */
/* SIZE (RFC 1870) and whether any 8-bit octet is left to send. */
static void
measure(struct msg *m)
{
	size_t i, k;

	m->size = 2 + m->bodylen;
	m->eightbit = m->body8;
	for (i = 0; i < m->nhdrs; i++) {
		m->size += (off_t)m->hdrs[i].len + 2;
		for (k = 0; !m->eightbit && k < m->hdrs[i].len; k++)
			m->eightbit = (unsigned char)m->hdrs[i].text[k] >= 0x80;
	}
}

static int
step_finish(struct work *w)
{
	struct msg *m = w->msg;

	m->body8 = w->body8;
	m->body_notutf8 = w->st.notutf8;
	measure(m);
	/*
	 * Added fields, folds and alias targets make the block grow; msg_load
	 * must be able to take back whatever is queued.
	 */
	if (m->size - m->bodylen - 2 > HDR_OUT_MAX)
		return failf(w, EX_DATAERR, "the header block is larger than "
		    "2 MiB once rewritten");
	/* Fields added, quoted-printable: what would be sent counts too. */
	if (w->conf->max_size > 0 && m->size > w->conf->max_size)
		return failf(w, EX_DATAERR, "message larger than max_size "
		    "(%lld octets) once made ready to send (%lld octets)",
		    (long long)w->conf->max_size, (long long)m->size);
	if (w->note.len > 0) {
		m->note = w->note.p;
		memset(&w->note, 0, sizeof(w->note));
	}
	return EX_OK;
}

/* ---- the queue's copy --------------------------------------------------- */

/*
 * Where the header block ends, its empty line included, or 0 if not in
 * p[0..len).  from: where the search may resume.  Fields never hold
 * CRLF CRLF (a fold is CRLF WSP), so the first one ends the block.
 */
static size_t
block_end(const char *p, size_t len, size_t from)
{
	size_t i;

	if (len >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;		/* no fields at all */
	for (i = from; i + 4 <= len; i++)
		if (memcmp(p + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return 0;
}

/* Read the header block of a queued message into b; *end as above. */
static int
load_block(struct work *w, int fd, struct buf *b, size_t *end)
{
	char *chunk;
	size_t from = 0;
	ssize_t n;
	int ex = EX_OK;

	if ((chunk = malloc(CHUNK)) == NULL)
		return nomem(w);
	while (ex == EX_OK && (*end = block_end(b->p, b->len, from)) == 0) {
		if (b->len > HDR_OUT_MAX + 2)
			break;
		from = b->len > 3 ? b->len - 3 : 0;
		if ((n = pread_all(fd, chunk, CHUNK, (off_t)b->len)) == -1)
			ex = failf(w, EX_IOERR, "cannot read the message "
			    "file: %s", strerror(errno));
		else if (n == 0)
			ex = failf(w, EX_DATAERR, "truncated message file: "
			    "no empty line ends the header block");
		else if (buf_add(b, chunk, (size_t)n) == -1)
			ex = nomem(w);
	}
	free(chunk);
	if (ex == EX_OK && (*end == 0 || *end > HDR_OUT_MAX + 2))
		ex = failf(w, EX_DATAERR, "the header block of the message "
		    "file is larger than 2 MiB");
	return ex;
}

/* The CR of the CRLF ending the line at p[i], or SIZE_MAX if malformed. */
static size_t
crlf_at(const char *p, size_t len, size_t i)
{
	for (; i < len; i++) {
		if (p[i] == '\0' || p[i] == '\n')
			return SIZE_MAX;
		if (p[i] == '\r')
			return i + 1 < len && p[i + 1] == '\n' ? i : SIZE_MAX;
	}
	return SIZE_MAX;
}

/*
 * Split the fields (each line ending in CRLF; one starting with WSP goes
 * on the field before) into m->hdrs.  What msg_read cannot have written
 * is refused: the file may be damaged.
 */
static int
load_fields(struct work *w, const char *p, size_t len)
{
	size_t pos = 0, start, eol, valoff, line = 1;
	char *text;
	int ex;

	while (pos < len) {
		start = pos;
		if (field_name(p + pos, len - pos, &valoff) == 0)
			return failf(w, EX_DATAERR, "line %zu of the message "
			    "file is not a header field", line);
		do {
			if ((eol = crlf_at(p, len, pos)) == SIZE_MAX)
				return failf(w, EX_DATAERR, "line %zu of the "
				    "message file holds a NUL, CR or LF", line);
			pos = eol + 2;
			line++;
		} while (pos < len && is_wsp((unsigned char)p[pos]));
		if ((text = malloc(eol - start + 1)) == NULL)
			return nomem(w);
		memcpy(text, p + start, eol - start);
		text[eol - start] = '\0';
		if ((ex = header_push(w, text, eol - start)) != EX_OK) {
			free(text);
			return ex;
		}
	}
	return EX_OK;
}

/* The body stays in the file: a descriptor of our own, from off on. */
static int
load_body(struct work *w, int fd, off_t off)
{
	struct msg *m = w->msg;
	struct stat st;
	char tail[2];
	ssize_t n;

	if (fstat(fd, &st) == -1)
		return failf(w, EX_IOERR, "cannot stat the message file: %s",
		    strerror(errno));
	if (st.st_size < off)
		return failf(w, EX_IOERR, "the message file shrank");
	/* msg_read ends each body line so: DATA's final dot must start one. */
	if (st.st_size > off) {
		n = st.st_size - off < 2 ? 0 :
		    pread_all(fd, tail, 2, st.st_size - 2);
		if (n == -1)
			return failf(w, EX_IOERR, "cannot read the message "
			    "file: %s", strerror(errno));
		if (n != 2 || memcmp(tail, "\r\n", 2) != 0)
			return failf(w, EX_DATAERR, "truncated message file: "
			    "the body does not end with CRLF");
	}
	if ((m->spoolfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
		return failf(w, EX_OSERR, "cannot duplicate the message file "
		    "descriptor: %s", strerror(errno));
	m->bodyoff = off;
	m->bodylen = st.st_size - off;
	return EX_OK;
}

/* ---- the interface ------------------------------------------------------ */

/* An empty message: no spool file yet. */
static void
msg_clear(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	m->spoolfd = -1;
}

/* A work area on message m, errors to err. */
static void
work_init(struct work *w, struct msg *m, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->msg = m;
	w->err = err;
	w->errlen = errlen;
}

/* After reading, in this order: each step may use what the earlier did. */
static int (*const steps[])(struct work *) = {
	step_sender,		/* rcpts and headers need it */
	step_rcpts,		/* -t reads Bcc before it goes */
	step_rewrite,
	step_add_fields,
	step_body,
	step_fold_headers,	/* last: all fields are final */
	step_finish,
};

int
msg_read(struct msg *m, int fd, const struct msgopts *opts,
    const struct conf *conf, char *err, size_t errlen)
{
	struct work w;
	size_t i;
	int ex;

	msg_clear(m);
	work_init(&w, m, err, errlen);
	w.opts = opts;
	w.conf = conf;
	ex = step_read(&w, fd);
	for (i = 0; ex == EX_OK && i < sizeof(steps) / sizeof(steps[0]); i++)
		ex = steps[i](&w);
	spool_free(w.spool);
	free(w.in.line.p);
	free(w.note.p);
	free(w.login);
	free(w.gecos);
	if (ex != EX_OK)
		msg_free(m);
	return ex;
}

/*
 * The message on its way out, buffered: for DATA with RFC 5321 4.5.2
 * dot-stuffing (a '.' starting a line gets another; bol survives chunk
 * boundaries), for the queue's copy as it is.
 */
struct stuffer {
	msg_put_fn	 put;
	void		*ctx;
	int		 dots;		/* dot-stuff */
	int		 bol;		/* next octet starts a line */
	size_t		 used;
	char		 buf[CHUNK];
};

static struct stuffer *
stuffer_new(msg_put_fn put, void *ctx, int dots)
{
	struct stuffer *s;

	if ((s = malloc(sizeof(*s))) == NULL)
		return NULL;
	s->put = put;
	s->ctx = ctx;
	s->dots = dots;
	s->bol = 1;
	s->used = 0;
	return s;
}

static int
stuff_flush(struct stuffer *s)
{
	if (s->used > 0 && s->put(s->ctx, s->buf, s->used) == -1)
		return -1;
	s->used = 0;
	return 0;
}

/* Without dot-stuffing: plain copies, no need to look at each octet. */
static int
stuff_copy(struct stuffer *s, const char *p, size_t n)
{
	size_t room;

	while (n > 0) {
		if (s->used == sizeof(s->buf) && stuff_flush(s) == -1)
			return -1;
		room = sizeof(s->buf) - s->used;
		if (room > n)
			room = n;
		memcpy(s->buf + s->used, p, room);
		s->used += room;
		p += room;
		n -= room;
	}
	return 0;
}

static int
stuff(struct stuffer *s, const char *p, size_t n)
{
	size_t i;

	if (!s->dots)
		return stuff_copy(s, p, n);
	for (i = 0; i < n; i++) {
		if (s->used + 2 > sizeof(s->buf) && stuff_flush(s) == -1)
			return -1;
		if (s->bol && p[i] == '.')
			s->buf[s->used++] = '.';
		s->buf[s->used++] = p[i];
		s->bol = p[i] == '\n';
	}
	return 0;
}

static int
stuff_chunk(void *ctx, const char *p, size_t n)
{
	return stuff(ctx, p, n);
}

/* Header block, empty line, body; -1 (errno set) if put() or a read fails. */
static int
emit(const struct msg *m, struct stuffer *s)
{
	size_t i;

	for (i = 0; i < m->nhdrs; i++) {
		if (stuff(s, m->hdrs[i].text, m->hdrs[i].len) == -1 ||
		    stuff(s, "\r\n", 2) == -1)
			return -1;
	}
	if (stuff(s, "\r\n", 2) == -1 || body_chunks(m, stuff_chunk, s) != 0)
		return -1;
	return stuff_flush(s);
}

int
msg_send(const struct msg *m, msg_put_fn put, void *ctx)
{
	struct stuffer *s;
	int rc;

	if ((s = stuffer_new(put, ctx, 1)) == NULL)
		return -1;
	rc = emit(m, s);
	free(s);
	if (rc == 0 && put(ctx, ".\r\n", 3) == -1)
		rc = -1;
	return rc;
}

static int
put_fd(void *ctx, const char *buf, size_t len)
{
	return write_all(*(int *)ctx, buf, len);
}

int
msg_write(const struct msg *m, int fd)
{
	struct stuffer *s;
	int rc, saved;

	if ((s = stuffer_new(put_fd, &fd, 0)) == NULL)
		return -1;
	rc = emit(m, s);
	saved = errno;		/* ENOSPC must reach the caller */
	free(s);
	errno = saved;
	return rc;
}

int
msg_load(struct msg *m, int fd, int body8, int notutf8, char *err,
    size_t errlen)
{
	struct work w;
	struct buf b = { NULL, 0, 0 };
	size_t end = 0;
	int ex;

	msg_clear(m);
	work_init(&w, m, err, errlen);
	if ((ex = load_block(&w, fd, &b, &end)) == EX_OK)
		ex = load_fields(&w, b.p, end - 2);
	free(b.p);
	if (ex == EX_OK)
		ex = load_body(&w, fd, (off_t)end);
	if (ex != EX_OK) {
		msg_free(m);
		return ex;
	}
	m->body8 = body8 != 0;
	m->body_notutf8 = notutf8 != 0;
	measure(m);
	return EX_OK;
}

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

void
msg_free(struct msg *m)
{
	size_t i;

	if (m->spoolfd != -1)
		(void)close(m->spoolfd);
	free(m->sender);
	for (i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].reply);
	}
	free(m->rcpts);
	free(m->note);
	for (i = 0; i < m->nhdrs; i++)
		free(m->hdrs[i].text);
	free(m->hdrs);
	msg_clear(m);
}
