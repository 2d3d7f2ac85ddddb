/*
 * Unit tests for bounce.c: the RFC 3464 report (structure, Status per
 * recipient, diagnostics, the original header block, line lengths), that
 * msg_read takes it back unchanged, and the refusals of bounce_add.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "unit.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define DAY	86400
#define NOW	((time_t)1795358101)	/* 2026-11-22 14:35:01 UTC */

static char err[ERRLEN];
static char tmpdir[] = "/tmp/unit_bounce.XXXXXX";

/* ---- fixtures ----------------------------------------------------------- */

static const char orig_hdrs[] =
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.org, dave@example.org\r\n"
    "Subject: the weekly report\r\n"
    "X-Folded: first part\r\n"
    "\tsecond part\r\n";
static const char orig_body[] = "\r\nHello.\r\n.\r\nBody line\r\n";

static void
conf_make(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->path = "/etc/relay-test.conf";
	c->host = "smtp.example.com";
	c->helo = "client.example.net";
	c->max_age = 5 * DAY;
}

static int
file_with(const char *data, size_t len)
{
	char path[] = "/tmp/unit_bounce.XXXXXX";
	ssize_t w;
	int fd;

	if ((fd = mkstemp(path)) == -1 || unlink(path) == -1) {
		perror("mkstemp");
		exit(2);
	}
	while (len > 0) {
		if ((w = write(fd, data, len)) == -1) {
			perror("write");
			exit(2);
		}
		data += w;
		len -= (size_t)w;
	}
	return fd;
}

/* The message file of a queue entry: header block, empty line, body. */
static int
message_file(const char *hdrs, const char *body)
{
	char *all;
	size_t hl = strlen(hdrs), bl = strlen(body);
	int fd;

	if ((all = malloc(hl + bl + 1)) == NULL)
		exit(2);
	memcpy(all, hdrs, hl);
	memcpy(all + hl, body, bl + 1);
	fd = file_with(all, hl + bl);
	free(all);
	return fd;
}

static void
entry_make(struct qentry *e, struct qrcpt *r, size_t nr, int msgfd)
{
	memset(e, 0, sizeof(*e));
	(void)strlcpy(e->id, "6921b3c5a1f03e", sizeof(e->id));
	e->created = NOW - 3600;
	e->last_attempt = NOW - 60;
	e->sender = "alice@example.com";
	e->rcpts = r;
	e->nrcpts = nr;
	e->origin = "stdin";
	e->msgfd = msgfd;
}

struct text {
	char	*p;
	size_t	 len;
};

/* Run bounce_write (of kind) into a fresh file and read all of it back. */
static int
report_kind(struct text *t, const struct conf *c, enum report_kind kind,
    const struct qentry *e, const size_t *which, size_t nwhich)
{
	struct stat st;
	ssize_t n;
	int fd, rv;

	free(t->p);
	memset(t, 0, sizeof(*t));
	fd = file_with("", 0);
	err[0] = '\0';
	if ((rv = bounce_write(fd, c, kind, e, which, nwhich, NOW, err,
	    sizeof(err))) == 0) {
		if (fstat(fd, &st) == -1 ||
		    (t->p = calloc(1, (size_t)st.st_size + 1)) == NULL)
			exit(2);
		if ((n = pread(fd, t->p, (size_t)st.st_size, 0)) !=
		    st.st_size)
			exit(2);
		t->len = (size_t)n;
	}
	(void)close(fd);
	return rv;
}

static int
report(struct text *t, const struct conf *c, const struct qentry *e,
    const size_t *which, size_t nwhich)
{
	return report_kind(t, c, REPORT_FAILED, e, which, nwhich);
}

/* ---- looking at a report ------------------------------------------------ */

static const char *
mem_find(const char *hay, size_t hlen, const char *needle)
{
	size_t i, nlen = strlen(needle);

	for (i = 0; hay != NULL && i + nlen <= hlen; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	return NULL;
}

static size_t
count(const struct text *t, const char *needle)
{
	const char *p = t->p, *end = t->p + t->len;
	size_t n = 0;

	while ((p = mem_find(p, (size_t)(end - p), needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/* Longest line, and whether every LF has its CR. */
static size_t
longest_line(const struct text *t, int *bare_lf)
{
	size_t i, start = 0, len, max = 0;

	*bare_lf = 0;
	for (i = 0; i < t->len; i++) {
		if (t->p[i] != '\n')
			continue;
		if (i == 0 || t->p[i - 1] != '\r')
			*bare_lf = 1;
		len = i - start - (i > start && t->p[i - 1] == '\r');
		if (len > max)
			max = len;
		start = i + 1;
	}
	return max;
}

static int
all_7bit(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] >= 0x80 || p[i] == '\0')
			return 0;
	return 1;
}

/* Text with its folds (CRLF and the indent after it) made one space. */
static void
unfold(const struct text *t, struct text *u)
{
	size_t i, o = 0;

	if ((u->p = malloc(t->len + 1)) == NULL)
		exit(2);
	for (i = 0; i < t->len; i++) {
		if (i + 2 < t->len && memcmp(t->p + i, "\r\n ", 3) == 0) {
			for (i += 2; i + 1 < t->len && t->p[i + 1] == ' '; i++)
				;
		}
		u->p[o++] = t->p[i];
	}
	u->p[o] = '\0';
	u->len = o;
}

/* The boundary parameter of the top-level Content-Type, into b. */
static int
boundary(const struct text *t, char *b, size_t blen)
{
	const char *p, *q;

	if ((p = mem_find(t->p, t->len, "boundary=\"")) == NULL)
		return -1;
	p += strlen("boundary=\"");
	if ((q = strchr(p, '"')) == NULL || (size_t)(q - p) >= blen)
		return -1;
	memcpy(b, p, (size_t)(q - p));
	b[q - p] = '\0';
	return 0;
}

/* Part i (from 1) of the multipart, its headers and body, into part. */
static int
part(const struct text *t, int i, struct text *out)
{
	char b[128], delim[140];
	const char *p, *end = t->p + t->len, *next;

	if (boundary(t, b, sizeof(b)) == -1)
		return -1;
	(void)snprintf(delim, sizeof(delim), "\r\n--%s", b);
	p = t->p;
	for (; i > 0; i--) {
		if ((p = mem_find(p, (size_t)(end - p), delim)) == NULL)
			return -1;
		p += strlen(delim);
	}
	if (p + 2 > end || memcmp(p, "\r\n", 2) != 0)
		return -1;		/* the closing delimiter */
	p += 2;
	if ((next = mem_find(p, (size_t)(end - p), delim)) == NULL)
		return -1;
	out->p = (char *)p;
	out->len = (size_t)(next - p);
	return 0;
}

/* The fields of one recipient in the delivery-status part, as a string. */
static char *
rcpt_block(const struct text *t, const char *addr, char *buf, size_t blen)
{
	struct text ds;
	char key[300];
	const char *p, *q;

	buf[0] = '\0';
	if (part(t, 2, &ds) == -1)
		return buf;
	(void)snprintf(key, sizeof(key), "\r\nFinal-Recipient: rfc822; %s\r\n",
	    addr);
	if ((p = mem_find(ds.p, ds.len, key)) == NULL)
		return buf;
	p += 2;
	if ((q = mem_find(p, (size_t)(ds.p + ds.len - p), "\r\n\r\n")) == NULL)
		q = ds.p + ds.len - 2;
	if ((size_t)(q - p) + 3 > blen)
		return buf;
	memcpy(buf, p, (size_t)(q - p) + 2);
	buf[q - p + 2] = '\0';
	return buf;
}

/* ---- the tests ---------------------------------------------------------- */

static void
test_structure(void)
{
	struct qrcpt r[] = {
		{ "bob@example.org", RS_SENT, "250 2.0.0 Ok" },
		{ "dave@example.org", RS_FAILED,
		    "550 5.1.1 <dave@example.org>: no such user" },
	};
	size_t which[] = { 1 };
	struct text t = { NULL, 0 }, u = { NULL, 0 }, p1, p2, p3;
	struct conf c;
	struct qentry e;
	static const char from[] = "From: Mail Delivery System "
	    "<MAILER-DAEMON@client.example.net>\r\n";
	char b[128], top[2048];
	const char *hdr_end;
	int lf;

	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	CHECK(report(&t, &c, &e, which, N(which)) == 0,
	    "bounce_write: one recipient (%s)", err);
	hdr_end = mem_find(t.p, t.len, "\r\n\r\n");
	top[0] = '\0';
	if (hdr_end != NULL && (size_t)(hdr_end - t.p) + 3 < sizeof(top)) {
		memcpy(top, t.p, (size_t)(hdr_end - t.p) + 2);
		top[hdr_end - t.p + 2] = '\0';
	}
	CHECK(strncmp(top, from, strlen(from)) == 0,
	    "From: Mail Delivery System <MAILER-DAEMON@HELO> first");
	CHECK(strstr(top, "\r\nTo: <alice@example.com>\r\n") != NULL,
	    "To: the original sender");
	CHECK(strstr(top, "\r\nSubject: Undelivered Mail Returned to "
	    "Sender\r\n") != NULL, "Subject");
	CHECK(strstr(top, "\r\nDate: Sun, 22 Nov 2026 14:35:01 +0000\r\n") !=
	    NULL, "Date: now, RFC 5322 form");
	CHECK(strstr(top, "\r\nMessage-ID: <") != NULL &&
	    strstr(top, "@client.example.net>\r\n") != NULL,
	    "Message-ID in the HELO domain");
	CHECK(strstr(top, "\r\nAuto-Submitted: auto-replied\r\n") != NULL,
	    "Auto-Submitted: auto-replied (RFC 3834)");
	CHECK(strstr(top, "\r\nMIME-Version: 1.0\r\n") != NULL, "MIME-Version");
	CHECK(strstr(top, "\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"") != NULL,
	    "multipart/report; report-type=delivery-status");
	CHECK(strstr(top, "Content-Transfer-Encoding") == NULL,
	    "no transfer encoding for a 7-bit report");
	CHECK(boundary(&t, b, sizeof(b)) == 0 && strlen(b) <= 70 &&
	    strstr(b, e.id) != NULL, "boundary \"%s\"", b);
	CHECK(count(&t, "\r\n--") == 4 && count(&t, "--\r\n") == 1 &&
	    t.len > strlen(b) + 6 &&
	    memcmp(t.p + t.len - strlen(b) - 6, "--", 2) == 0 &&
	    strncmp(t.p + t.len - strlen(b) - 4, b, strlen(b)) == 0,
	    "three delimiters and the closing one at the end");
	CHECK(part(&t, 1, &p1) == 0 && mem_find(p1.p, p1.len,
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n") != NULL,
	    "part 1: text/plain; charset=us-ascii");
	CHECK(mem_find(p1.p, p1.len, "This is the mail system at "
	    "client.example.net.") != NULL && mem_find(p1.p, p1.len,
	    "(id 6921b3c5a1f03e, submitted ") != NULL,
	    "part 1 names the mail system and the queue id");
	unfold(&p1, &u);
	CHECK(mem_find(u.p, u.len, "\r\n\r\n<dave@example.org>: "
	    "smtp.example.com said: 550 5.1.1 <dave@example.org>: no such "
	    "user\r\n") != NULL,
	    "part 1 gives the recipient and the smarthost's reply");
	CHECK(longest_line(&p1, &lf) <= 78, "part 1: no line over 78 octets");
	CHECK(mem_find(p1.p, p1.len, "bob@example.org") == NULL,
	    "a delivered recipient is not mentioned");
	CHECK(part(&t, 2, &p2) == 0 && mem_find(p2.p, p2.len,
	    "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; client.example.net\r\n"
	    "X-Relay-Queue-ID: 6921b3c5a1f03e\r\n"
	    "Arrival-Date: ") != NULL,
	    "part 2: message/delivery-status with the per-message fields");
	CHECK(mem_find(p2.p, p2.len, "Final-Recipient: rfc822; "
	    "dave@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; smtp.example.com\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <dave@example.org>: no such "
	    "user\r\nLast-Attempt-Date: ") != NULL,
	    "part 2: the recipient's fields in order");
	CHECK(part(&t, 3, &p3) == 0 && mem_find(p3.p, p3.len,
	    "Content-Type: text/rfc822-headers\r\n\r\n") != NULL,
	    "part 3: text/rfc822-headers");
	CHECK(p3.len >= strlen(orig_hdrs) && memcmp(p3.p + p3.len -
	    strlen(orig_hdrs), orig_hdrs, strlen(orig_hdrs)) == 0,
	    "part 3 is the original header block, folds kept, no body");
	CHECK(mem_find(t.p, t.len, "Body line") == NULL, "no body returned");
	CHECK(longest_line(&t, &lf) <= 998 && !lf,
	    "CRLF lines, none over 998 octets");
	CHECK(all_7bit(t.p, t.len), "all 7-bit");
	free(t.p);
	free(u.p);
	(void)close(e.msgfd);
}

static void
test_status(void)
{
	struct qrcpt r[] = {
		{ "dave@example.org", RS_FAILED,
		    "550 5.1.1 <dave@example.org>: no such user" },
		{ "erin@example.org", RS_FAILED, "554 no enhanced code" },
		{ "fred@example.org", RS_FAILED, "552-5.2.2 mailbox full / "
		    "552 5.2.2 try later" },
		{ "gina@example.org", RS_FAILED, "550 4.1.1 wrong class" },
		{ "hugo@example.org", RS_FAILED, "550 5.1.1x not a code" },
		{ "ines@example.org", RS_FAILED, "451 4.7.1 not final" },
		{ "jack@example.org", RS_FAILED, "message refused locally" },
		{ "kurt@example.org", RS_FAILED, NULL },
		{ "lena@example.org", RS_FAILED, "550" },
		{ "mona@example.org", RS_FAILED, "553 5.1.10 long detail" },
	};
	static const struct {
		const char	*addr;
		const char	*status;
		const char	*diag;	/* NULL: no Diagnostic-Code */
	} want[] = {
		{ "dave@example.org", "5.1.1",
		    "550 5.1.1 <dave@example.org>: no such user" },
		{ "erin@example.org", "5.0.0", "554 no enhanced code" },
		{ "fred@example.org", "5.2.2",
		    "552-5.2.2 mailbox full / 552 5.2.2 try later" },
		{ "gina@example.org", "5.0.0", "550 4.1.1 wrong class" },
		{ "hugo@example.org", "5.0.0", "550 5.1.1x not a code" },
		{ "ines@example.org", "5.0.0", "451 4.7.1 not final" },
		{ "jack@example.org", "5.0.0", NULL },
		{ "kurt@example.org", "5.0.0", NULL },
		{ "lena@example.org", "5.0.0", "550" },
		{ "mona@example.org", "5.1.10", "553 5.1.10 long detail" },
	};
	size_t which[N(r)], i;
	struct text t = { NULL, 0 }, p1;
	struct conf c;
	struct qentry e;
	char blk[2048], line[600];

	for (i = 0; i < N(r); i++)
		which[i] = i;
	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	CHECK(report(&t, &c, &e, which, N(which)) == 0,
	    "bounce_write: %zu recipients (%s)", N(r), err);
	for (i = 0; i < N(want); i++) {
		rcpt_block(&t, want[i].addr, blk, sizeof(blk));
		(void)snprintf(line, sizeof(line), "Status: %s\r\n",
		    want[i].status);
		CHECK(strstr(blk, line) != NULL && strstr(blk,
		    "Action: failed\r\n") != NULL, "%s: Status %s",
		    want[i].addr, want[i].status);
		if (want[i].diag != NULL) {
			(void)snprintf(line, sizeof(line), "Remote-MTA: dns; "
			    "smtp.example.com\r\nDiagnostic-Code: smtp; "
			    "%s\r\n", want[i].diag);
			CHECK(strstr(blk, line) != NULL,
			    "%s: Remote-MTA and Diagnostic-Code", want[i].addr);
		} else
			CHECK(strstr(blk, "Diagnostic-Code") == NULL &&
			    strstr(blk, "Remote-MTA") == NULL,
			    "%s: no Diagnostic-Code or Remote-MTA without an "
			    "SMTP reply", want[i].addr);
		CHECK(strstr(blk, "\r\nLast-Attempt-Date: Sun, 22 Nov 2026 "
		    "14:34:01 +0000\r\n") != NULL,
		    "%s: Last-Attempt-Date is the entry's last attempt",
		    want[i].addr);
	}
	CHECK(count(&t, "Final-Recipient: ") == N(r),
	    "one block per recipient");
	CHECK(part(&t, 1, &p1) == 0 && mem_find(p1.p, p1.len,
	    "<jack@example.org>: message refused locally\r\n") != NULL &&
	    mem_find(p1.p, p1.len, "<kurt@example.org>: (no reply "
	    "recorded)\r\n") != NULL,
	    "part 1: a local error is shown without \"said\"");
	CHECK(mem_find(p1.p, p1.len, "these recipients") != NULL,
	    "part 1 speaks of several recipients");
	free(t.p);
	(void)close(e.msgfd);
}

static void
test_expiry(void)
{
	struct qrcpt r[] = {
		{ "dave@example.org", RS_FAILED, "expired after 5 days in the "
		    "queue; last error: smtp.example.com[192.0.2.1]:465: "
		    "451 4.7.1 greylisted" },
		{ "erin@example.org", RS_FAILED, "451 4.2.2 mailbox full" },
		{ "fred@example.org", RS_FAILED, "550 5.1.1 no such user" },
		{ "gina@example.org", RS_FAILED, "421 no enhanced code" },
	};
	size_t which[] = { 0, 1, 2, 3 };
	struct text t = { NULL, 0 };
	struct conf c;
	struct qentry e;
	char blk[2048];

	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	e.created = NOW - 5 * DAY;
	e.last_attempt = 0;
	CHECK(report(&t, &c, &e, which, N(which)) == 0,
	    "bounce_write: expired entry (%s)", err);
	rcpt_block(&t, "dave@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Action: failed\r\nStatus: 4.4.7\r\n") != NULL,
	    "expiry: Action failed, Status 4.4.7");
	CHECK(strstr(blk, "Diagnostic-Code") == NULL &&
	    strstr(blk, "Remote-MTA") == NULL,
	    "expiry: no Diagnostic-Code or Remote-MTA for relay's own text");
	CHECK(strstr(blk, "\r\nLast-Attempt-Date: Sun, 22 Nov 2026 "
	    "14:35:01 +0000\r\n") != NULL,
	    "never tried: Last-Attempt-Date is now");
	rcpt_block(&t, "erin@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Status: 4.2.2\r\n") != NULL &&
	    strstr(blk, "Diagnostic-Code: smtp; 451 4.2.2 mailbox full\r\n")
	    != NULL, "expiry with a last 4xx reply keeps its 4.x.y");
	rcpt_block(&t, "fred@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Status: 5.1.1\r\n") != NULL,
	    "a 5xx in an expired entry is still 5.x.y");
	rcpt_block(&t, "gina@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Status: 4.4.7\r\n") != NULL,
	    "expiry with a 4xx without enhanced code: 4.4.7");
	CHECK(mem_find(t.p, t.len, "this recipient") == NULL &&
	    mem_find(t.p, t.len, "these recipients") != NULL,
	    "part 1 speaks of several recipients");
	e.created = NOW - 5 * DAY + 1;
	CHECK(report(&t, &c, &e, which, 1) == 0 &&
	    strstr(rcpt_block(&t, "dave@example.org", blk, sizeof(blk)),
	    "Status: 5.0.0\r\n") != NULL,
	    "one second short of max_age: no expiry, 5.0.0");
	CHECK(mem_find(t.p, t.len, "this recipient;") != NULL,
	    "part 1 speaks of one recipient");
	free(t.p);
	(void)close(e.msgfd);
}

/* delay_warning: RFC 3464 Action delayed, 4.x.y, Will-Retry-Until. */
static void
test_delayed(void)
{
	struct qrcpt r[] = {
		{ "hank@example.org", RS_PENDING, "451 4.7.1 greylisted" },
		{ "ivan@example.org", RS_PENDING, NULL },
	};
	size_t which[] = { 0, 1 };
	struct text t = { NULL, 0 };
	struct conf c;
	struct qentry e;
	char blk[2048];

	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	e.created = NOW - 5 * 3600;
	e.last_error = "smtp.example.com[192.0.2.1]:465: connection lost";
	CHECK(report_kind(&t, &c, REPORT_DELAYED, &e, which, N(which)) == 0,
	    "bounce_write: delayed (%s)", err);
	CHECK(mem_find(t.p, t.len, "\r\nSubject: Delayed Mail (still being "
	    "retried)\r\n") != NULL, "delayed: its subject");
	CHECK(mem_find(t.p, t.len, "Action: failed") == NULL &&
	    mem_find(t.p, t.len, "will not be tried again") == NULL,
	    "delayed: nothing says failed");
	rcpt_block(&t, "hank@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Action: delayed\r\nStatus: 4.7.1\r\n") != NULL,
	    "delayed: Action delayed, the reply's 4.x.y");
	CHECK(strstr(blk, "\r\nWill-Retry-Until: Fri, 27 Nov 2026 09:35:01 "
	    "+0000\r\n") != NULL, "delayed: Will-Retry-Until is created + "
	    "max_age");
	rcpt_block(&t, "ivan@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Status: 4.0.0\r\n") != NULL &&
	    strstr(blk, "Diagnostic-Code") == NULL,
	    "delayed without a reply: 4.0.0, no Diagnostic-Code");
	CHECK(mem_find(t.p, t.len, "<ivan@example.org>: "
	    "smtp.example.com[192.0.2.1]:465: connection lost") != NULL,
	    "delayed without a reply: part 1 gives the entry's last error");
	CHECK(mem_find(t.p, t.len, "Delayed Message Headers") != NULL,
	    "delayed: part 3 named so");
	free(t.p);
	(void)close(e.msgfd);
}

static void
test_long_reply(void)
{
	char words[5001], solid[5001], blk[8192];
	struct qrcpt r[] = {
		{ "dave@example.org", RS_FAILED, words },
		{ "erin@example.org", RS_FAILED, solid },
	};
	size_t which[] = { 0, 1 }, i;
	struct text t = { NULL, 0 };
	struct conf c;
	struct qentry e;
	int lf;

	memcpy(words, "550 5.7.1 ", 10);
	for (i = 10; i < 5000; i++)
		words[i] = i % 7 == 0 ? ' ' : 'a' + (char)(i % 26);
	words[5000] = '\0';
	memcpy(solid, "550 ", 4);
	memset(solid + 4, 'x', 4996);
	solid[5000] = '\0';
	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	CHECK(report(&t, &c, &e, which, N(which)) == 0,
	    "bounce_write: 5000-octet replies (%s)", err);
	CHECK(longest_line(&t, &lf) <= 998 && !lf,
	    "no line over 998 octets (longest %zu)", longest_line(&t, &lf));
	rcpt_block(&t, "dave@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Status: 5.7.1\r\n") != NULL &&
	    strstr(blk, "Diagnostic-Code: smtp; 550 5.7.1 ") != NULL &&
	    strstr(blk, "\r\n    ") != NULL,
	    "a long Diagnostic-Code is folded");
	CHECK(count(&t, "[...]") == 4, "and cut, with a mark");
	rcpt_block(&t, "erin@example.org", blk, sizeof(blk));
	CHECK(strstr(blk, "Status: 5.0.0\r\n") != NULL &&
	    strstr(blk, "\r\n    xxxx") != NULL,
	    "a reply without spaces is broken too");
	CHECK(all_7bit(t.p, t.len), "all 7-bit");
	free(t.p);
	(void)close(e.msgfd);
}

static void
test_unsafe_reply(void)
{
	struct qrcpt r[] = {
		{ "dave@example.org", RS_FAILED,
		    "550 5.1.1 bad\r\nInjected: yes\x1b[31m\xc3\xa9\tend" },
	};
	size_t which[] = { 0 };
	struct text t = { NULL, 0 };
	struct conf c;
	struct qentry e;

	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	CHECK(report(&t, &c, &e, which, N(which)) == 0,
	    "bounce_write: reply with controls (%s)", err);
	CHECK(mem_find(t.p, t.len, "\r\nInjected") == NULL &&
	    mem_find(t.p, t.len, "bad??Injected: yes?[31m?? end") != NULL,
	    "controls and 8-bit octets in a reply become '?'");
	CHECK(all_7bit(t.p, t.len), "all 7-bit");
	free(t.p);
	(void)close(e.msgfd);
}

static void
test_headers(void)
{
	struct qrcpt r[] = {
		{ "dave@example.org", RS_FAILED, "550 5.1.1 no such user" },
	};
	size_t which[] = { 0 }, i, len;
	struct text t = { NULL, 0 }, p3;
	struct conf c;
	struct qentry e;
	static const char noempty[] = "\r\n\r\nSubject: x\r\nX-End: y\r\n";
	static const char lfhdrs[] = "\r\n\r\nSubject: x\r\nFrom: y\r\n";
	static const char emptyp3[] = "Content-Description: Undelivered "
	    "Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n";
	char *big, top[4096];
	const char *end;
	int lf;

	conf_make(&c);

	/* 8-bit header text stays, and is labelled. */
	entry_make(&e, r, N(r), message_file("Subject: caf\xc3\xa9\r\n"
	    "From: alice@example.com\r\n", "\r\nbody \xff\r\n"));
	CHECK(report(&t, &c, &e, which, N(which)) == 0,
	    "bounce_write: 8-bit header (%s)", err);
	end = mem_find(t.p, t.len, "\r\n\r\n");
	len = end != NULL ? (size_t)(end - t.p) : 0;
	memcpy(top, t.p, len < sizeof(top) - 1 ? len : sizeof(top) - 1);
	top[len < sizeof(top) - 1 ? len : sizeof(top) - 1] = '\0';
	CHECK(strstr(top, "\r\nContent-Transfer-Encoding: 8bit") != NULL,
	    "8-bit original headers: the report is 8bit (RFC 2045 6.4)");
	CHECK(part(&t, 3, &p3) == 0 && mem_find(p3.p, p3.len,
	    "Content-Transfer-Encoding: 8bit\r\n\r\nSubject: caf\xc3\xa9\r\n")
	    != NULL, "and so is part 3, which keeps the octets");
	CHECK(mem_find(t.p, t.len, "\xff") == NULL, "the body is not read");
	(void)close(e.msgfd);

	/* No empty line: the whole file is the header block. */
	entry_make(&e, r, N(r), message_file("Subject: x\r\nX-End: y", ""));
	CHECK(report(&t, &c, &e, which, N(which)) == 0 &&
	    part(&t, 3, &p3) == 0 && p3.len > strlen(noempty) &&
	    memcmp(p3.p + p3.len - strlen(noempty), noempty,
	    strlen(noempty)) == 0,
	    "a file without an empty line, last line without CRLF");
	(void)close(e.msgfd);

	/* LF lines are given back as CRLF. */
	entry_make(&e, r, N(r), message_file("Subject: x\nFrom: y\n",
	    "\nbody\n"));
	CHECK(report(&t, &c, &e, which, N(which)) == 0 &&
	    part(&t, 3, &p3) == 0 && p3.len > strlen(lfhdrs) &&
	    memcmp(p3.p + p3.len - strlen(lfhdrs), lfhdrs,
	    strlen(lfhdrs)) == 0, "a header block with LF lines");
	(void)close(e.msgfd);

	/* No header at all. */
	entry_make(&e, r, N(r), message_file("", "\r\nbody\r\n"));
	CHECK(report(&t, &c, &e, which, N(which)) == 0 &&
	    part(&t, 3, &p3) == 0 && p3.len == strlen(emptyp3) &&
	    memcmp(p3.p, emptyp3, p3.len) == 0,
	    "an empty header block gives an empty part 3");
	(void)close(e.msgfd);

	/* Over 64 KiB: cut after a whole field. */
	if ((big = malloc(200 * 1000 + 1)) == NULL)
		exit(2);
	for (i = 0; i < 1000; i++)
		(void)snprintf(big + i * 200, 201, "X-Filler-%04zu: %0*d\r\n"
		    "\tcontinued %0*d\r\n", i, 85, 0, 85, 0);
	entry_make(&e, r, N(r), message_file(big, "\r\nbody\r\n"));
	CHECK(strlen(big) == 200 * 1000, "fixture: 1000 fields of 200 octets");
	CHECK(report(&t, &c, &e, which, N(which)) == 0 &&
	    part(&t, 3, &p3) == 0, "bounce_write: 200 KB of header");
	end = mem_find(p3.p, p3.len, "\r\n\r\n");
	len = end != NULL ? p3.len - (size_t)(end + 4 - p3.p) : 0;
	CHECK(len > 60000 && len <= 65536 && len % 200 == 0 &&
	    memcmp(end + 4, big, len) == 0,
	    "part 3 cut at 64 KiB after a whole field (%zu octets)", len);
	CHECK(mem_find(p3.p, p3.len, "Undelivered Message Headers (cut)") !=
	    NULL, "and says so");
	(void)close(e.msgfd);

	/* A line over 998 octets (not from msg_read) is broken. */
	memcpy(big, "X-Long: ", 8);
	memset(big + 8, 'y', 3000);
	memcpy(big + 3008, "\r\nSubject: after\r\n", 19);
	entry_make(&e, r, N(r), message_file(big, "\r\nbody\r\n"));
	CHECK(report(&t, &c, &e, which, N(which)) == 0 &&
	    longest_line(&t, &lf) <= 998 && !lf &&
	    mem_find(t.p, t.len, "\r\nSubject: after\r\n") != NULL &&
	    count(&t, "\r\n yyy") == 3,
	    "an over-long header line goes on in continuation lines");
	(void)close(e.msgfd);
	free(big);
	free(t.p);
}

/* What bounce_add does with the report: msg_read must take it as it is. */
static void
read_back(const char *what, const char *hdrs, const char *reply, int want8)
{
	struct qrcpt r[] = {
		{ "dave@example.org", RS_FAILED, (char *)reply },
		{ "erin@example.org", RS_FAILED, "554 no enhanced code" },
	};
	size_t which[] = { 0, 1 };
	char *rcpts[] = { "alice@example.com" };
	struct msgopts o;
	struct conf c;
	struct qentry e;
	struct msg m;
	int fd, ex;

	conf_make(&c);
	entry_make(&e, r, N(r), message_file(hdrs, orig_body));
	fd = file_with("", 0);
	CHECK(bounce_write(fd, &c, REPORT_FAILED, &e, which, N(which), NOW,
	    err, sizeof(err)) == 0 && lseek(fd, 0, SEEK_SET) == 0,
	    "%s: bounce_write (%s)", what, err);
	memset(&o, 0, sizeof(o));
	o.from = "";
	o.argv_rcpts = rcpts;
	o.nargv = 1;
	ex = msg_read(&m, fd, &o, &c, err, sizeof(err));
	CHECK(ex == EX_OK, "%s: msg_read takes the report (%s)", what, err);
	if (ex == EX_OK) {
		CHECK_STR(m.sender, "", "%s: from the null sender", what);
		CHECK(m.nrcpts == 1 && strcmp(m.rcpts[0].addr,
		    "alice@example.com") == 0, "%s: to the original sender",
		    what);
		CHECK(m.note == NULL, "%s: nothing needed changing (%s)",
		    what, m.note != NULL ? m.note : "");
		CHECK(m.eightbit == want8, "%s: %s", what,
		    want8 ? "8-bit" : "7-bit");
		msg_free(&m);
	}
	(void)close(fd);
	(void)close(e.msgfd);
}

static void
test_read_back(void)
{
	char longreply[5001];

	memcpy(longreply, "550 5.7.1 ", 10);
	memset(longreply + 10, 'z', 4990);
	longreply[5000] = '\0';
	read_back("plain", orig_hdrs, "550 5.1.1 no such user", 0);
	read_back("long reply", orig_hdrs, longreply, 0);
	read_back("8-bit headers", "Subject: caf\xc3\xa9\r\n", "550 x", 1);
}

static void
test_errors(void)
{
	struct qrcpt r[] = {
		{ "dave@example.org", RS_FAILED, "550 5.1.1 no such user" },
	};
	size_t which[] = { 0 }, bad[] = { 1 };
	struct text t = { NULL, 0 };
	struct queue q;
	struct qentry e, b;
	struct conf c;
	int fd;

	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	CHECK(report(&t, &c, &e, bad, N(bad)) == -1 &&
	    strstr(err, "recipient 1 of 1") != NULL,
	    "an index past the recipients is refused: %s", err);
	CHECK(report(&t, &c, &e, which, 0) == -1 &&
	    strstr(err, "no recipients") != NULL,
	    "no recipients is refused: %s", err);
	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		exit(2);
	CHECK(bounce_write(fd, &c, REPORT_FAILED, &e, which, N(which), NOW,
	    err, sizeof(err)) == -1 && strstr(err, "cannot write the bounce")
	    != NULL, "a write error is reported: %s", err);
	(void)close(fd);
	(void)close(e.msgfd);
	e.msgfd = -1;
	CHECK(report(&t, &c, &e, which, N(which)) == -1 &&
	    strstr(err, "no message file") != NULL,
	    "no message file is refused: %s", err);

	/* Refused before the queue is touched: q is all zeroes. */
	memset(&q, 0, sizeof(q));
	memset(&b, 0, sizeof(b));
	e.sender = "";
	CHECK(bounce_add(&q, &c, REPORT_FAILED, &e, which, N(which), &b, err,
	    sizeof(err)) == EX_SOFTWARE && strstr(err, "null sender") != NULL,
	    "bounce_add refuses a null-sender entry: %s", err);
	e.sender = "alice@example.com";
	CHECK(bounce_add(&q, &c, REPORT_FAILED, &e, which, 0, &b, err,
	    sizeof(err)) == EX_SOFTWARE, "bounce_add refuses no recipients: %s", err);
	free(t.p);
}

/* Entries in the queue's tmp/, or -1 if it cannot be read. */
static int
tmp_left(const char *qdir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = 0;

	(void)snprintf(path, sizeof(path), "%s/tmp", qdir);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	(void)closedir(d);
	return n;
}

/* The whole way: into a real queue, read back from it. */
static void
test_add(void)
{
	struct qrcpt r[] = {
		{ "bob@example.org", RS_SENT, "250 2.0.0 Ok" },
		{ "dave@example.org", RS_FAILED, "550 5.1.1 no such user" },
	};
	size_t which[] = { 1 };
	char qdir[sizeof(tmpdir) + 8], blk[1024];
	struct text t = { NULL, 0 };
	struct stat st;
	struct queue q;
	struct qentry e, b;
	struct conf c;
	ssize_t n;
	int ex;

	(void)snprintf(qdir, sizeof(qdir), "%s/q", tmpdir);
	conf_make(&c);
	entry_make(&e, r, N(r), message_file(orig_hdrs, orig_body));
	memset(&b, 0, sizeof(b));
	b.msgfd = -1;
	if (queue_open(&q, qdir, err, sizeof(err)) != 0) {
		CHECK(0, "queue_open %s: %s", qdir, err);
		return;
	}
	err[0] = '\0';
	ex = bounce_add(&q, &c, REPORT_FAILED, &e, which, N(which), &b, err,
	    sizeof(err));
	CHECK(ex == EX_OK, "bounce_add queues the report (%s)", err);
	CHECK(tmp_left(qdir) == 0, "nothing left in tmp/");
	if (ex == EX_OK) {
		CHECK_STR(b.sender, "", "the bounce is from <>");
		CHECK(b.nrcpts == 1 && strcmp(b.rcpts[0].addr,
		    "alice@example.com") == 0 && b.rcpts[0].state == RS_PENDING,
		    "to the original sender, pending");
		CHECK_STR(b.origin, "bounce 6921b3c5a1f03e",
		    "origin names the bounced entry");
		CHECK(strcmp(b.id, e.id) != 0, "an entry of its own");
		if (b.msgfd != -1 && fstat(b.msgfd, &st) == 0 &&
		    (t.p = calloc(1, (size_t)st.st_size + 1)) != NULL) {
			n = pread(b.msgfd, t.p, (size_t)st.st_size, 0);
			t.len = n > 0 ? (size_t)n : 0;
		}
		CHECK(strstr(rcpt_block(&t, "dave@example.org", blk,
		    sizeof(blk)), "Status: 5.1.1\r\n") != NULL &&
		    mem_find(t.p, t.len, "bob@example.org>:") == NULL,
		    "the queued message is the report");
		qentry_free(&b);
	}
	queue_close(&q);
	free(t.p);
	(void)close(e.msgfd);
}

int
main(void)
{
	char cmd[sizeof(tmpdir) + 16];

	unsetenv("TMPDIR");
	if (setenv("TZ", "UTC", 1) == -1 || mkdtemp(tmpdir) == NULL) {
		perror(tmpdir);
		return 1;
	}
	tzset();
	test_structure();
	test_status();
	test_expiry();
	test_delayed();
	test_long_reply();
	test_unsafe_reply();
	test_headers();
	test_read_back();
	test_errors();
	test_add();
	(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", tmpdir);
	UNIT_END();
}
