/*
 * The message as the caller hands it over on stdin: read it once, keep the
 * header block in memory (capped) and stream the body to an unlinked body
 * file, with every line ending made CRLF.  msg_read then takes it through
 * the steps of header.c (the envelope, the header rewritten for the wire)
 * and mime.c (a body SMTP can carry).  And the message on its way out:
 * the queue's copy (msg_write, msg_load) and DATA, dot-stuffed (msg_send).
 *
 * Memory does not grow with the size of the message: only the header
 * block is held, and the body is copied chunk by chunk.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "relay.h"

/* Linux's flag, which glibc names only for _GNU_SOURCE. */
#if !defined(O_TMPFILE) && defined(__O_TMPFILE)
#define O_TMPFILE	__O_TMPFILE
#endif

#define CHUNK		65536		/* read/write/put() unit */
#define HDR_MAX		(1024 * 1024)	/* cap on the header block read */
#define HDR_OUT_MAX	(2 * HDR_MAX)	/*   and on it rewritten, queued */

/* Buffered writes to an unlinked temporary file. */
struct bodyfile {
	int		 fd;
	off_t		 len;	/* octets written, buffered ones included */
	struct wbuf	 out;	/* onto fd */
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

int
nomem(struct work *w)
{
	return failf(w, EX_OSERR, "out of memory");
}

/* ---- small helpers ------------------------------------------------------ */

int
add_note(struct work *w, const char *what)
{
	if (w->note.len > 0 && buf_str(&w->note, "; ") == -1)
		return nomem(w);
	return buf_str(&w->note, what) == -1 ? nomem(w) : EX_OK;
}

int
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

int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
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

/* ---- the body file ------------------------------------------------------ */

/*
 * An unnamed file in dir (O_TMPFILE, Linux 3.11): it never has a name, so
 * even a kill -9 leaves nothing behind.  -1 with errno set when the
 * kernel or the file system cannot make one.
 */
static int
unnamed_open(const char *dir)
{
#ifdef O_TMPFILE
	return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#else
	(void)dir;
	errno = EOPNOTSUPP;
	return -1;
#endif
}

/*
 * Elsewhere a named file, unlinked at once: mkstemp(3) wants the
 * template to end in six X's.
 */
static int
named_open(const char *dir)
{
	char path[PATH_MAX];
	int fd, saved;

	if (snprintf(path, sizeof(path), "%s/relay.XXXXXX", dir) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = mkstemp(path)) == -1)
		return -1;
	if (unlink(path) == -1 || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		saved = errno;
		(void)unlink(path);
		(void)close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* An unnamed file in dir: O_TMPFILE, else mkstemp and unlink. */
static int
body_in(const char *dir)
{
	int fd;

	if ((fd = unnamed_open(dir)) != -1)
		return fd;
	/* EISDIR: a kernel that knows no O_TMPFILE sees O_DIRECTORY. */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -1;
	return named_open(dir);
}

/*
 * The body file, in $TMPDIR or /tmp: nothing to clean up whatever
 * happens, and nobody else can open it.  An empty container may have no
 * writable /tmp: the queue directory serves then (unnamed there too).
 */
int
bodyfile_open(struct work *w, struct bodyfile **bfp)
{
	const char *dir = getenv("TMPDIR");
	struct bodyfile *bf;
	int fd, saved;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if ((fd = body_in(dir)) == -1 && (errno == ENOENT || errno == EROFS ||
	    errno == EACCES) && w->conf->queue != NULL) {
		saved = errno;
		if ((fd = body_in(w->conf->queue)) == -1)
			errno = saved;
	}
	if (fd == -1)
		return failf(w, EX_TEMPFAIL, "cannot create a spool file in "
		    "%s: %s", dir, strerror(errno));
	if ((bf = malloc(sizeof(*bf))) == NULL) {
		(void)close(fd);
		return nomem(w);
	}
	bf->fd = fd;
	bf->len = 0;
	wbuf_init(&bf->out, wbuf_put_fd, &bf->fd);
	*bfp = bf;
	return EX_OK;
}

static int
bodyfile_failed(struct work *w)
{
	return failf(w, EX_TEMPFAIL, "cannot write the spool file: %s",
	    strerror(errno));
}

int
bodyfile_put(struct work *w, struct bodyfile *bf, const char *p, size_t n)
{
	if (wbuf_put(&bf->out, p, n) == -1)
		return bodyfile_failed(w);
	bf->len += (off_t)n;
	return EX_OK;
}

int
bodyfile_putc(struct work *w, struct bodyfile *bf, char c)
{
	if (wbuf_putc(&bf->out, c) == -1)
		return bodyfile_failed(w);
	bf->len++;
	return EX_OK;
}

/* Hand the finished body file over to the message as its body. */
int
bodyfile_adopt(struct work *w, struct bodyfile *bf)
{
	if (wbuf_flush(&bf->out) == -1)
		return bodyfile_failed(w);
	if (w->msg->bodyfd != -1)
		(void)close(w->msg->bodyfd);
	w->msg->bodyfd = bf->fd;
	w->msg->bodyoff = 0;
	w->msg->bodylen = bf->len;
	bf->fd = -1;
	return EX_OK;
}

void
bodyfile_free(struct bodyfile *bf)
{
	if (bf == NULL)
		return;
	if (bf->fd != -1)
		(void)close(bf->fd);
	free(bf);
}

/*
 * Hand the body to fn chunk by chunk, as it stands in the body file from
 * m->bodyoff on.  Returns 0, fn's non-zero result, or -1 with errno set
 * when the body file cannot be read.
 */
int
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
		if ((n = pread_all(m->bodyfd, chunk, want, m->bodyoff + off))
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
		if ((ex = bodyfile_putc(w, w->body, '.')) != EX_OK)
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
	return bodyfile_put(w, w->body, p, n);
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
	return bodyfile_put(w, w->body, "\r\n", 2);
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
 * The "From sender date" line an mbox file starts each message with (RFC
 * 4155), which `mail -f` and some scripts pass on: not a header field (no
 * colon), and no body text either.  Sendmail and Postfix drop it too.
 */
static int
mbox_from_line(const struct buf *l)
{
	size_t valoff;

	return l->len >= 5 && memcmp(l->p, "From ", 5) == 0 &&
	    field_name(l->p, l->len, &valoff) == 0;
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
	if (in->lineno == 1 && mbox_from_line(l))
		ex = add_note(w, "leading mbox 'From ' line dropped");
	else if (!folded && field_name(l->p, l->len, &valoff) == 0) {
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
 * start of a body without headers and goes to the body file.  (The line
 * may pass the cap by one chunk before we look: memory stays bounded.)
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
	/* The LF of the lone ".\r\n" is still part of that line. */
	if (in->done && i < n && in->pending_cr && p[i] == '\n') {
		in->pending_cr = 0;
		i++;
	}
	if (in->done && i < n)
		in->rest = 1;
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
 * block, the line being read, the body written), so that a message too
 * big is refused without reading, or writing, the rest of it.
 */
static int
check_size(struct work *w)
{
	off_t max = w->conf->max_size, sofar;

	sofar = (off_t)w->in.hdrbytes + (off_t)w->in.line.len + w->body->len;
	if (max > 0 && sofar > max)
		return failf(w, EX_DATAERR, "message larger than max_size "
		    "(%lld octets)", (long long)max);
	return EX_OK;
}

/*
 * The lone "." ended the input (without -i, as Sendmail): does more
 * follow?  Scripts written for msmtp, which reads on, lose the rest, so
 * it is said.  Only what can be read at once: never wait for the caller.
 */
static void
input_after_dot(struct work *w, int fd)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char probe[512];
	ssize_t n;

	if (!w->in.rest && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN)) {
		/* A CR's LF may be the first octet of the next read. */
		n = read(fd, probe, sizeof(probe));
		if (n > 1 || (n == 1 && !(w->in.pending_cr &&
		    probe[0] == '\n')))
			w->in.rest = 1;
	}
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
	if (ex == EX_OK && w->in.done)
		input_after_dot(w, fd);
	if (ex == EX_OK && w->in.rest) {
		w->msg->dot_rest = 1;
		ex = add_note(w, "input after a lone '.' line was ignored "
		    "(use -i)");
	}
	free(chunk);
	free(w->in.line.p);
	memset(&w->in.line, 0, sizeof(w->in.line));
	if (ex == EX_OK)
		ex = bodyfile_adopt(w, w->body);
	w->body8 = w->st.eightbit > 0;
	return ex;
}

static int
step_read(struct work *w, int fd)
{
	int ex;

	if ((ex = bodyfile_open(w, &w->body)) != EX_OK)
		return ex;
	return read_input(w, fd);
}

/* SIZE (RFC 1870) and whether any 8-bit octet is left to send. */
void
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

/* RFC 1870 size, 8-bit flag and the note, once the message is final. */
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
	if ((m->bodyfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
		return failf(w, EX_OSERR, "cannot duplicate the message file "
		    "descriptor: %s", strerror(errno));
	m->bodyoff = off;
	m->bodylen = st.st_size - off;
	return EX_OK;
}

/* ---- the interface ------------------------------------------------------ */

/* An empty message: no body file yet. */
static void
msg_clear(struct msg *m)
{
	memset(m, 0, sizeof(*m));
	m->bodyfd = -1;
}

/* A work area on message m, errors to err. */
void
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
	bodyfile_free(w.body);
	free(w.in.line.p);
	free(w.note.p);
	free(w.login);
	free(w.gecos);
	if (ex != EX_OK)
		msg_free(m);
	return ex;
}

/*

 * dot-stuffing (a '.' starting a line gets another; bol survives chunk
 * boundaries), for the queue's copy as it is.
 */
struct stuffer {
	int		 dots;		/* dot-stuff */
	int		 bol;		/* next octet starts a line */
	struct wbuf	 out;
};

static struct stuffer *
stuffer_new(msg_put_fn put, void *ctx, int dots)
{
	struct stuffer *s;

	if ((s = malloc(sizeof(*s))) == NULL)
		return NULL;
	s->dots = dots;
	s->bol = 1;
	wbuf_init(&s->out, put, ctx);
	return s;
}

static int
stuff(struct stuffer *s, const char *p, size_t n)
{
	struct wbuf *o = &s->out;
	size_t i;

	if (!s->dots)		/* plain copies, no need to look at each octet */
		return wbuf_put(o, p, n);
	for (i = 0; i < n; i++) {
		if (o->used + 2 > sizeof(o->buf) && wbuf_flush(o) == -1)
			return -1;
		if (s->bol && p[i] == '.')
			o->buf[o->used++] = '.';
		o->buf[o->used++] = p[i];
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
	return wbuf_flush(&s->out);
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

int
msg_write(const struct msg *m, int fd)
{
	struct stuffer *s;
	int rc, saved;

	if ((s = stuffer_new(wbuf_put_fd, &fd, 0)) == NULL)
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

void
msg_free(struct msg *m)
{
	size_t i;

	if (m->bodyfd != -1)
		(void)close(m->bodyfd);
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
