/*
 * Delivery status notifications: when recipients are given up on, or
 * have waited delay_warning, their sender gets an RFC 3464 report inside
 * an RFC 6522 multipart/report, from the null sender so that it can never
 * cause a bounce itself.  It is queued like any other message and sent
 * over the same smarthost.
 *
 * The report is streamed to a file; only the original header block (capped)
 * and one output buffer are held in memory.
 */
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define WRAP		76		/* long text is folded here if it can be */
#define HARD		900		/* and a word longer than that cut here */
#define HDRS_MAX	65536		/* of the original header block */
#define REPLY_SHOWN	4096		/* of one reply; the rest is cut */
#define CUT_MARK	" [...]"
struct out {
	int		 fd;
	char		*err;
	size_t		 errlen;
	struct wbuf	 buf;	/* onto fd */
};

/* Everything the parts of one report are made from. */
struct report {
	const struct qentry	*e;
	enum report_kind	 kind;
	const size_t		*which;
	size_t			 nwhich;
	time_t			 now;
	int			 expired;	/* e is past max_age */
	time_t			 until;		/* e's last try: created + max_age */
	const char		*helo;
	const char		*host;
	char			*hdrs;		/* original header block */
	size_t			 hdrlen;
	int			 hdrs8;		/*   has octets >= 0x80 */
	int			 hdrscut;	/*   was over HDRS_MAX */
	char			 boundary[80];
	struct out		 out;
};

static int	 put_line(struct out *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));

/* ---- output ------------------------------------------------------------- */

static int
out_failed(struct out *o)
{
	(void)snprintf(o->err, o->errlen, "cannot write the bounce: %s",
	    strerror(errno));
	return -1;
}

static int
out_flush(struct out *o)
{
	return wbuf_flush(&o->buf) == -1 ? out_failed(o) : 0;
}

static int
put(struct out *o, const char *p, size_t n)
{
	return wbuf_put(&o->buf, p, n) == -1 ? out_failed(o) : 0;
}

static int
put_str(struct out *o, const char *s)
{
	return put(o, s, strlen(s));
}

/*
 * One line of bounded parts (names, dates, addresses); text that can be
 * long goes through put_wrapped instead.
 */
static int
put_line(struct out *o, const char *fmt, ...)
{
	char line[SMTP_LINE + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		(void)snprintf(o->err, o->errlen, "bounce: line too long");
		return -1;
	}
	if (put(o, line, (size_t)n) == -1 || put(o, "\r\n", 2) == -1)
		return -1;
	return 0;
}

/*
 * How much of s goes on a line that already holds col octets: up to the
 * last space before WRAP, else up to the first space after it, and a
 * word that runs on to HARD is cut there.  Never 0.
 */
static size_t
wrap_point(const char *s, size_t n, size_t col)
{
	size_t room = col + 1 < WRAP ? WRAP - col : 1;
	size_t hard = col + 1 < HARD ? HARD - col : 1;
	size_t i;

	if (n <= room)
		return n;
	for (i = room; i > 0; i--)
		if (s[i] == ' ')
			return i;
	for (i = room + 1; i < n && i < hard; i++)
		if (s[i] == ' ')
			return i;
	return n < hard ? n : hard;
}

/*
 * first, then text of any length folded (RFC 5322 2.2.3) into lines
 * that start with indent, which must not be empty in a header field.
 * Spaces at a fold are dropped.
 */
static int
put_wrapped(struct out *o, const char *first, const char *indent,
    const char *s, size_t n)
{
	size_t col, cut;

	if (put_str(o, first) == -1)
		return -1;
	col = strlen(first);
	while (n > 0) {
		cut = wrap_point(s, n, col);
		if (put(o, s, cut) == -1)
			return -1;
		s += cut;
		n -= cut;
		while (n > 0 && *s == ' ') {
			s++;
			n--;
		}
		if (n == 0)
			break;
		if (put(o, "\r\n", 2) == -1 || put_str(o, indent) == -1)
			return -1;
		col = strlen(indent);
	}
	return put(o, "\r\n", 2);
}

/* ---- what goes into the report ------------------------------------------ */

/* RFC 5322 3.3 date-time, local time, as header.c writes Date. */
static int
fmt_date(char *buf, size_t len, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		return -1;
	return 0;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5321 4.2: the reply code a reply starts with, or 0 for other text. */
static int
reply_code(const char *r)
{
	if (r == NULL || r[0] < '2' || r[0] > '5' || !is_digit(r[1]) ||
	    !is_digit(r[2]) || (r[3] != '\0' && r[3] != ' ' && r[3] != '-'))
		return 0;
	return (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0');
}

/*
 * The RFC 3463 class.subject.detail right after a reply's code, copied to
 * st; 0 if there is none.
 */
static int
enhanced_code(const char *r, char *st, size_t stlen)
{
	const char *start = r + 4, *p = start;
	size_t n;
	int part;

	if (r[3] == '\0' || (*p != '2' && *p != '4' && *p != '5'))
		return 0;
	p++;
	for (part = 0; part < 2; part++) {
		if (*p++ != '.')
			return 0;
		for (n = 0; is_digit(*p); p++)
			n++;
		if (n < 1 || n > 3)
			return 0;
	}
	if (*p != '\0' && *p != ' ')
		return 0;
	if ((n = (size_t)(p - start)) >= stlen)
		return 0;
	memcpy(st, start, n);
	st[n] = '\0';
	return 1;
}

/*
 * RFC 3464 2.3.4 Status of a recipient given up on: a 5xx reply's own
 * code, else 5.0.0.  A recipient that ran out of time (RFC 3463 4.4.7)
 * keeps the 4.x.y of a last temporary reply, as Postfix does; any other
 * 4xx is no reason for a final failure, so it reads as 5.0.0.
 */
static const char *
rcpt_status(const char *reply, int expired, char *buf, size_t len)
{
	int code = reply_code(reply);

	if (code >= 500)
		return enhanced_code(reply, buf, len) && buf[0] == '5' ?
		    buf : "5.0.0";
	if (!expired)
		return "5.0.0";
	if (code >= 400 && enhanced_code(reply, buf, len) && buf[0] == '4')
		return buf;
	return "4.4.7";
}

/*
 * RFC 3464 2.3.4 Status of a recipient still being tried: a 4.x.y of
 * its last reply, else 4.0.0 (RFC 3463 2: a persistent transient failure).
 */
static const char *
delay_status(const char *reply, char *buf, size_t len)
{
	int code = reply_code(reply);

	if (code >= 400 && code < 500 && enhanced_code(reply, buf, len) &&
	    buf[0] == '4')
		return buf;
	return "4.0.0";
}

/*
 * A reply as the report shows it: printable ASCII (it was sanitised
 * already, but it comes from a file), at most REPLY_SHOWN octets.
 */
static void
reply_show(char *dst, size_t dstlen, const char *reply)
{
	size_t i, o = 0, max = dstlen - sizeof(CUT_MARK);

	if (reply == NULL)
		reply = "(no reply recorded)";
	for (i = 0; reply[i] != '\0' && o < max; i++) {
		unsigned char c = (unsigned char)reply[i];

		dst[o++] = c == '\t' ? ' ' : c < 0x20 || c > 0x7e ? '?' :
		    (char)c;
	}
	if (reply[i] != '\0') {
		memcpy(dst + o, CUT_MARK, sizeof(CUT_MARK) - 1);
		o += sizeof(CUT_MARK) - 1;
	}
	dst[o] = '\0';
}

/* ---- the original header block ------------------------------------------ */

/*
 * Where the header block in p[0..got) ends: at its empty line, or at the
 * end of a file without one.  One over HDRS_MAX octets is cut after the
 * last whole field that fits (else the last whole line), with *cut set.
 */
static size_t
headers_end(const char *p, size_t got, int *cut)
{
	size_t i, start = 0, line_end = 0, field_end = 0;

	*cut = 0;
	for (i = 0; i < got; i++) {
		if (p[i] != '\n')
			continue;
		if (i == start || (i == start + 1 && p[start] == '\r'))
			break;
		if (i + 1 <= HDRS_MAX) {
			line_end = i + 1;
			if (i + 1 < got && p[i + 1] != ' ' && p[i + 1] != '\t')
				field_end = i + 1;
		}
		start = i + 1;
	}
	if (start <= HDRS_MAX && (i < got || got <= HDRS_MAX))
		return i < got ? start : got;
	*cut = 1;
	return field_end > 0 ? field_end : line_end;
}

static int
headers_read(struct report *r, char *err, size_t errlen)
{
	ssize_t got;
	size_t i;

	if (r->e->msgfd == -1) {
		(void)snprintf(err, errlen, "%s: no message file to bounce",
		    r->e->id);
		return -1;
	}
	/* Two more octets: a block of exactly HDRS_MAX still shows its end. */
	if ((r->hdrs = malloc(HDRS_MAX + 2)) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((got = pread_all(r->e->msgfd, r->hdrs, HDRS_MAX + 2, 0)) == -1) {
		(void)snprintf(err, errlen, "%s: cannot read the message "
		    "file: %s", r->e->id, strerror(errno));
		return -1;
	}
	r->hdrlen = headers_end(r->hdrs, (size_t)got, &r->hdrscut);
	/* A NUL would make the report one msg_read refuses. */
	for (i = 0; i < r->hdrlen; i++) {
		if (r->hdrs[i] == '\0')
			r->hdrs[i] = '?';
		if ((unsigned char)r->hdrs[i] >= 0x80)
			r->hdrs8 = 1;
	}
	return 0;
}

/*
 * The header block as it was, CRLF lines; a line that is somehow over
 * SMTP_LINE goes on in a continuation line, as mime.c folds bodies.
 */
static int
put_headers(struct out *o, const char *p, size_t len)
{
	size_t n, k, max;

	while (len > 0) {
		for (n = 0; n < len && p[n] != '\n'; n++)
			;
		k = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
		for (max = SMTP_LINE; k > max; max = SMTP_LINE - 1) {
			if (put(o, p, max) == -1 || put(o, "\r\n ", 3) == -1)
				return -1;
			p += max;
			n -= max;
			k -= max;
			len -= max;
		}
		if (put(o, p, k) == -1 || put(o, "\r\n", 2) == -1)
			return -1;
		n = n < len ? n + 1 : n;
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- the report ---------------------------------------------------------- */

static int
write_top(struct report *r)
{
	struct out *o = &r->out;
	const struct qentry *e = r->e;
	char date[64], stamp[32], rnd[17];
	struct tm tm;

	if (fmt_date(date, sizeof(date), r->now) == -1 ||
	    gmtime_r(&r->now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0) {
		(void)snprintf(o->err, o->errlen, "cannot format the date");
		return -1;
	}
	hex_random(rnd, sizeof(rnd));
	if (put_line(o, "From: Mail Delivery System <MAILER-DAEMON@%s>",
	    r->helo) == -1 ||
	    put_line(o, "To: <%s>", e->sender) == -1 ||
	    put_line(o, "Subject: %s", r->kind == REPORT_DELAYED ?
	    "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender") == -1 ||
	    put_line(o, "Date: %s", date) == -1 ||
	    put_line(o, "Message-ID: <%s.%s.%s@%s>", stamp, e->id, rnd,
	    r->helo) == -1 ||
	    put_line(o, "Auto-Submitted: auto-replied") == -1 ||
	    put_line(o, "MIME-Version: 1.0") == -1 ||
	    put_line(o, "Content-Type: multipart/report; "
	    "report-type=delivery-status;") == -1 ||
	    put_line(o, "\tboundary=\"%s\"", r->boundary) == -1)
		return -1;
	/* RFC 2045 6.4: a multipart holding an 8bit part is 8bit itself. */
	if (r->hdrs8 && put_line(o, "Content-Transfer-Encoding: 8bit") == -1)
		return -1;
	return put_line(o, "%s", "") == -1 ||
	    put_line(o, "This is a MIME-encapsulated message.") == -1 ? -1 : 0;
}

/* The delimiter before a part (RFC 2046 5.1.1: its CRLF comes first). */
static int
write_boundary(struct report *r, const char *end)
{
	return put_line(&r->out, "\r\n--%s%s", r->boundary, end);
}

/* What the report says of a recipient: its reply, else the entry's error. */
static const char *
shown_reply(const struct report *r, const struct qrcpt *rc)
{
	if (rc->reply == NULL && r->kind == REPORT_DELAYED)
		return r->e->last_error;
	return rc->reply;
}

/* The opening paragraph of part 1 into para; snprintf's return. */
static int
first_paragraph(const struct report *r, const char *date, char *para,
    size_t size)
{
	const char *whom = r->nwhich == 1 ? "this recipient" :
	    "these recipients";
	char until[64];

	if (r->kind == REPORT_FAILED)
		return snprintf(para, size, "Your message (id %s, submitted "
		    "%s) could not be delivered to %s; it will not be tried "
		    "again.  Its headers are attached below.", r->e->id, date,
		    whom);
	if (fmt_date(until, sizeof(until), r->until) == -1)
		return -1;
	return snprintf(para, size, "Your message (id %s, submitted %s) has "
	    "not yet been delivered to %s.  This is only a warning: it is "
	    "still being tried, until %s, and you need not send it again.  "
	    "Its headers are attached below.", r->e->id, date, whom, until);
}

/* Part 1, for people. */
static int
write_text(struct report *r)
{
	struct out *o = &r->out;
	const struct qentry *e = r->e;
	const struct qrcpt *rc;
	char date[64], para[1024], *show;
	size_t i;
	int n, rv = 0;

	if (fmt_date(date, sizeof(date), e->created) == -1) {
		(void)snprintf(o->err, o->errlen, "cannot format the date");
		return -1;
	}
	if (put_line(o, "Content-Description: Notification") == -1 ||
	    put_line(o, "Content-Type: text/plain; charset=us-ascii") == -1 ||
	    put_line(o, "%s", "") == -1 ||
	    put_line(o, "This is the mail system at %s.", r->helo) == -1 ||
	    put_line(o, "%s", "") == -1)
		return -1;
	if ((n = first_paragraph(r, date, para, sizeof(para))) < 0 ||
	    (size_t)n >= sizeof(para)) {
		(void)snprintf(o->err, o->errlen, "bounce: line too long");
		return -1;
	}
	if (put_wrapped(o, "", "", para, (size_t)n) == -1)
		return -1;
	if ((show = malloc(REPLY_SHOWN + sizeof(CUT_MARK))) == NULL) {
		(void)snprintf(o->err, o->errlen, "out of memory");
		return -1;
	}
	for (i = 0; rv == 0 && i < r->nwhich; i++) {
		rc = &e->rcpts[r->which[i]];
		reply_show(show, REPLY_SHOWN + sizeof(CUT_MARK),
		    shown_reply(r, rc));
		n = snprintf(para, sizeof(para), "<%s>: %s%s", rc->addr,
		    reply_code(shown_reply(r, rc)) != 0 ? r->host : "",
		    reply_code(shown_reply(r, rc)) != 0 ? " said: " : "");
		if (n < 0 || (size_t)n >= sizeof(para)) {
			(void)snprintf(o->err, o->errlen, "bounce: line too "
			    "long");
			rv = -1;
		} else if (put_line(o, "%s", "") == -1 ||
		    put_wrapped(o, para, "    ", show, strlen(show)) == -1)
			rv = -1;
	}
	free(show);
	return rv;
}

/* One recipient's fields (RFC 3464 2.3). */
static int
write_rcpt(struct report *r, const struct qrcpt *rc, char *show,
    size_t showlen)
{
	struct out *o = &r->out;
	const char *reply = shown_reply(r, rc);
	char status[16], date[64];
	int coded = reply_code(reply) != 0;

	if (fmt_date(date, sizeof(date), r->e->last_attempt != 0 ?
	    r->e->last_attempt : r->now) == -1) {
		(void)snprintf(o->err, o->errlen, "cannot format the date");
		return -1;
	}
	if (put_line(o, "%s", "") == -1 ||
	    put_line(o, "Final-Recipient: rfc822; %s", rc->addr) == -1 ||
	    put_line(o, "Action: %s", r->kind == REPORT_DELAYED ? "delayed" :
	    "failed") == -1 ||
	    put_line(o, "Status: %s", r->kind == REPORT_DELAYED ?
	    delay_status(reply, status, sizeof(status)) :
	    rcpt_status(reply, r->expired, status, sizeof(status))) == -1)
		return -1;
	/*
	 * RFC 3464 2.3.5, 2.3.6: only a reply from the smarthost names it;
	 * an expiry or a local error has no remote MTA and no SMTP code.
	 */
	if (coded) {
		reply_show(show, showlen, reply);
		if (put_line(o, "Remote-MTA: dns; %s", r->host) == -1 ||
		    put_wrapped(o, "Diagnostic-Code: smtp; ", "    ", show,
		    strlen(show)) == -1)
			return -1;
	}
	if (put_line(o, "Last-Attempt-Date: %s", date) == -1)
		return -1;
	/* RFC 3464 2.3.9: when a delayed recipient will be given up on. */
	if (r->kind == REPORT_DELAYED && (fmt_date(date, sizeof(date),
	    r->until) == -1 || put_line(o, "Will-Retry-Until: %s", date) == -1))
		return -1;
	return 0;
}

/* Part 2, for programs: message/delivery-status. */
static int
write_status(struct report *r)
{
	struct out *o = &r->out;
	char date[64], *show;
	size_t i;
	int rv = 0;

	if (fmt_date(date, sizeof(date), r->e->created) == -1) {
		(void)snprintf(o->err, o->errlen, "cannot format the date");
		return -1;
	}
	if (put_line(o, "Content-Description: Delivery report") == -1 ||
	    put_line(o, "Content-Type: message/delivery-status") == -1 ||
	    put_line(o, "%s", "") == -1 ||
	    put_line(o, "Reporting-MTA: dns; %s", r->helo) == -1 ||
	    put_line(o, "X-Relay-Queue-ID: %s", r->e->id) == -1 ||
	    put_line(o, "Arrival-Date: %s", date) == -1)
		return -1;
	if ((show = malloc(REPLY_SHOWN + sizeof(CUT_MARK))) == NULL) {
		(void)snprintf(o->err, o->errlen, "out of memory");
		return -1;
	}
	for (i = 0; rv == 0 && i < r->nwhich; i++)
		rv = write_rcpt(r, &r->e->rcpts[r->which[i]], show,
		    REPLY_SHOWN + sizeof(CUT_MARK));
	free(show);
	return rv;
}

/* Part 3: the original header block (RFC 6522 3: text/rfc822-headers). */
static int
write_orig(struct report *r)
{
	struct out *o = &r->out;

	if (put_line(o, "Content-Description: %s Message Headers%s",
	    r->kind == REPORT_DELAYED ? "Delayed" : "Undelivered",
	    r->hdrscut ? " (cut)" : "") == -1 ||
	    put_line(o, "Content-Type: text/rfc822-headers") == -1 ||
	    (r->hdrs8 && put_line(o, "Content-Transfer-Encoding: 8bit") == -1) ||
	    put_line(o, "%s", "") == -1)
		return -1;
	return put_headers(o, r->hdrs, r->hdrlen);
}

/* A caller's mistake, caught before anything is written. */
static int
check_args(const struct qentry *e, const size_t *which, size_t nwhich,
    char *err, size_t errlen)
{
	size_t i;

	if (nwhich == 0) {
		(void)snprintf(err, errlen, "%s: bounce with no recipients",
		    e->id);
		return -1;
	}
	for (i = 0; i < nwhich; i++) {
		if (which[i] >= e->nrcpts || e->rcpts[which[i]].addr == NULL) {
			(void)snprintf(err, errlen, "%s: bounce for recipient "
			    "%zu of %zu", e->id, which[i], e->nrcpts);
			return -1;
		}
	}
	return 0;
}

int
bounce_write(int fd, const struct conf *conf, enum report_kind kind,
    const struct qentry *e, const size_t *which, size_t nwhich, time_t now,
    char *err, size_t errlen)
{
	struct report *r;
	char rnd[17];
	int n, rv = -1;

	if (check_args(e, which, nwhich, err, errlen) == -1)
		return -1;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->e = e;
	r->kind = kind;
	r->which = which;
	r->nwhich = nwhich;
	r->now = now;
	r->expired = conf->max_age > 0 && e->created + conf->max_age <= now;
	r->until = e->created + conf->max_age;
	r->helo = own_domain(conf);	/* never a bare host name */
	r->host = conf->host != NULL ? conf->host : "smarthost";
	r->out.fd = fd;
	wbuf_init(&r->out.buf, wbuf_put_fd, &r->out.fd);
	r->out.err = err;
	r->out.errlen = errlen;
	/* RFC 2046 5.1.1: random, so no header line can hold it. */
	hex_random(rnd, sizeof(rnd));
	n = snprintf(r->boundary, sizeof(r->boundary), "=_relay.%s.%llx.%s",
	    e->id, (unsigned long long)now, rnd);
	if (n < 0 || (size_t)n >= sizeof(r->boundary))
		(void)snprintf(err, errlen, "%s: queue id too long", e->id);
	else if (headers_read(r, err, errlen) == 0 &&
	    write_top(r) == 0 &&
	    write_boundary(r, "") == 0 && write_text(r) == 0 &&
	    write_boundary(r, "") == 0 && write_status(r) == 0 &&
	    write_boundary(r, "") == 0 && write_orig(r) == 0 &&
	    write_boundary(r, "--") == 0 && out_flush(&r->out) == 0)
		rv = 0;
	free(r->hdrs);
	free(r);
	return rv;
}

/* ---- queueing it --------------------------------------------------------- */

/*
 * An unlinked file in the queue's tmp/: on the queue's file system, and
 * gone however this process ends.
 */
static int
tmp_open(const struct queue *q, int *ex, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd, n, saved;

	n = snprintf(path, sizeof(path), "%s/tmp/bounce.XXXXXX", q->dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		(void)snprintf(err, errlen, "%s: queue directory name too "
		    "long", q->dir);
		*ex = EX_CANTCREAT;
		return -1;
	}
	if ((fd = mkstemp(path)) == -1 || unlink(path) == -1) {
		saved = errno;
		(void)snprintf(err, errlen, "cannot create %s: %s", path,
		    strerror(saved));
		*ex = saved == EACCES || saved == EPERM || saved == EROFS ?
		    EX_CANTCREAT : EX_TEMPFAIL;
		if (fd != -1)
			(void)close(fd);
		return -1;
	}
	return fd;
}

/* Read the report back as a message from <> to e's sender, and queue it. */
static int
queue_report(struct queue *q, const struct conf *conf, enum report_kind kind,
    const struct qentry *e, int fd, struct qentry *b, char *err,
    size_t errlen)
{
	struct msgopts opts;
	struct msg m;
	char *rcpts[1], origin[64];
	int ex;

	memset(&opts, 0, sizeof(opts));
	opts.from = "";
	opts.report = 1;
	rcpts[0] = e->sender;
	opts.argv_rcpts = rcpts;
	opts.nargv = 1;
	if ((ex = msg_read(&m, fd, &opts, conf, err, errlen)) != EX_OK)
		return ex;
	(void)snprintf(origin, sizeof(origin), "%s %s", kind == REPORT_DELAYED ?
	    "delay" : "bounce", e->id);
	ex = queue_add(q, &m, origin, b, err, errlen);
	msg_free(&m);
	return ex;
}

int
bounce_add(struct queue *q, const struct conf *conf, enum report_kind kind,
    const struct qentry *e, const size_t *which, size_t nwhich,
    struct qentry *b, char *err, size_t errlen)
{
	int fd, ex = EX_TEMPFAIL;

	/* RFC 5321 6.1, RFC 3464 3: a bounce is never bounced. */
	if (e->sender == NULL || e->sender[0] == '\0') {
		(void)snprintf(err, errlen, "%s: not bouncing a message from "
		    "the null sender", e->id);
		return EX_SOFTWARE;
	}
	if (check_args(e, which, nwhich, err, errlen) == -1)
		return EX_SOFTWARE;
	if ((fd = tmp_open(q, &ex, err, errlen)) == -1)
		return ex;
	if (bounce_write(fd, conf, kind, e, which, nwhich, time(NULL), err,
	    errlen) == -1)
		ex = EX_TEMPFAIL;
	else if (lseek(fd, 0, SEEK_SET) == -1) {
		(void)snprintf(err, errlen, "cannot read the bounce back: %s",
		    strerror(errno));
		ex = EX_TEMPFAIL;
	} else
		ex = queue_report(q, conf, kind, e, fd, b, err, errlen);
	(void)close(fd);
	return ex;
}
