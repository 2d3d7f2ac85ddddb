/*
 * Unit tests for msg.c, header.c and mime.c: reading, canonicalising,
 * envelope, header rewriting, body conversion and the wire form with
 * dot-stuffing.
 * Every accepted message is also sent, unstuffed and checked against
 * msg->size and the SMTP line rules.  The queue's copy (msg_write,
 * msg_load) must send the very same bytes.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "unit.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define S(lit)	lit, sizeof(lit) - 1	/* a literal with its NULs */

/* ---- fixtures ----------------------------------------------------------- */

static char *t_root[] = { "admin@example.com" };
static char *t_ops[] = { "ops1@example.com", "ops2@example.com" };
static char *t_all[] = { "all@example.com" };
static struct alias al_basic[] = {
	{ "root", t_root, 1 },
	{ "ops", t_ops, 2 },
};
static struct alias al_catch[] = {
	{ "root", t_root, 1 },
	{ "*", t_all, 1 },
};

static void
conf_make(struct conf *c, char *from, char *domain, struct alias *al,
    size_t nal)
{
	memset(c, 0, sizeof(*c));
	c->path = "/etc/relay-test.conf";
	c->host = "smtp.example.com";
	c->helo = "client.example.net";
	c->from = from;
	c->domain = domain;
	c->aliases = al;
	c->naliases = nal;
}

static void
opts_make(struct msgopts *o, int extract, int dotend, char **rcpts,
    size_t nrcpts)
{
	memset(o, 0, sizeof(*o));
	o->extract = extract;
	o->dotend = dotend;
	o->argv_rcpts = rcpts;
	o->nargv = nrcpts;
}

static const char *
mem_find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	size_t i;

	for (i = 0; hay != NULL && i + nlen <= hlen; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	return NULL;
}

struct bytes {
	char	*p;
	size_t	 len;
	size_t	 cap;
	size_t	 calls;		/* put() calls */
};

static void
bytes_add(struct bytes *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		if ((b->p = realloc(b->p, b->cap)) == NULL) {
			perror("realloc");
			exit(2);
		}
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static int
put_collect(void *ctx, const char *buf, size_t len)
{
	struct bytes *b = ctx;

	bytes_add(b, buf, len);
	b->calls++;
	return 0;
}

static int
put_fail(void *ctx, const char *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return -1;
}

/* The message in an unlinked file: offsets and read sizes are exact. */
static int
input_file(const char *data, size_t len)
{
	char path[] = "/tmp/unit_msg.XXXXXX";
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
	if (lseek(fd, 0, SEEK_SET) == -1) {
		perror("lseek");
		exit(2);
	}
	return fd;
}

struct result {
	int		 ex;
	char		 err[ERRLEN];
	struct msg	 msg;
	struct bytes	 wire;		/* what msg_send() produced */
	struct bytes	 text;		/* unstuffed, without the final "." */
	char		*hdrs;		/* "\r\n" + header block, CRLF lines */
	const char	*body;
	size_t		 bodylen;
};

/* Undo dot-stuffing; 0 if the wire form follows RFC 5321 4.5.2. */
static int
unstuff(const struct bytes *wire, struct bytes *text)
{
	size_t i, end;
	int bol = 1;

	if (wire->len < 3 || memcmp(wire->p + wire->len - 3, ".\r\n", 3) != 0 ||
	    (wire->len > 3 && wire->p[wire->len - 4] != '\n'))
		return -1;
	end = wire->len - 3;
	for (i = 0; i < end; i++) {
		if (bol && wire->p[i] == '.') {
			if (i + 1 >= end || wire->p[i + 1] != '.')
				return -1;
			i++;
		}
		bytes_add(text, &wire->p[i], 1);
		bol = wire->p[i] == '\n';
	}
	if (text->p == NULL)
		bytes_add(text, "", 0);
	return 0;
}

/* RFC 5321 2.3.8, 4.5.3.1.6: CRLF only, no line over 998, no NUL. */
static int
wire_is_clean(const struct bytes *t)
{
	size_t i, col = 0;

	for (i = 0; i < t->len; i++) {
		if (t->p[i] == '\0')
			return 0;
		if (t->p[i] == '\r') {
			if (i + 1 >= t->len || t->p[i + 1] != '\n')
				return 0;
			i++;
			col = 0;
			continue;
		}
		if (t->p[i] == '\n' || ++col > 998)
			return 0;
	}
	return 1;
}

static void
run(struct result *r, const char *what, const char *data, size_t len,
    const struct msgopts *o, const struct conf *c)
{
	char *sep;
	int fd, rc;

	memset(r, 0, sizeof(*r));
	fd = input_file(data, len);
	r->ex = msg_read(&r->msg, fd, o, c, r->err, sizeof(r->err));
	(void)close(fd);
	if (r->ex != EX_OK)
		return;
	rc = msg_send(&r->msg, put_collect, &r->wire);
	CHECK(rc == 0, "%s: msg_send succeeds", what);
	CHECK(unstuff(&r->wire, &r->text) == 0, "%s: dot-stuffed, one "
	    "terminator", what);
	CHECK((off_t)r->text.len == r->msg.size, "%s: size %lld is what was "
	    "sent (%zu)", what, (long long)r->msg.size, r->text.len);
	CHECK(wire_is_clean(&r->wire), "%s: CRLF only, lines <= 998, no NUL",
	    what);
	if (r->text.p == NULL || (sep = strstr(r->text.p, "\r\n\r\n")) == NULL)
		sep = r->text.p + r->text.len;
	/* Header texts hold no NUL, so string functions work on them. */
	r->hdrs = malloc((size_t)(sep - r->text.p) + 5);
	if (r->hdrs == NULL)
		exit(2);
	memcpy(r->hdrs, "\r\n", 2);
	memcpy(r->hdrs + 2, r->text.p, (size_t)(sep - r->text.p) + 2);
	r->hdrs[(size_t)(sep - r->text.p) + 4] = '\0';
	r->body = sep + 4 <= r->text.p + r->text.len ? sep + 4 : sep;
	r->bodylen = r->text.len - (size_t)(r->body - r->text.p);
}

static void
result_free(struct result *r)
{
	msg_free(&r->msg);
	msg_free(&r->msg);		/* must be harmless */
	free(r->wire.p);
	free(r->text.p);
	free(r->hdrs);
}

/* Is this exact line (without CRLF) in the header block? */
static int
hdr_has(const struct result *r, const char *line)
{
	char pat[4096];

	if (r->hdrs == NULL)
		return 0;
	(void)snprintf(pat, sizeof(pat), "\r\n%s\r\n", line);
	return strstr(r->hdrs, pat) != NULL;
}

/* How many fields start with this name (case-insensitive, with ':')? */
static int
hdr_count(const struct result *r, const char *name)
{
	const char *p;
	size_t n = strlen(name);
	int count = 0;

	if (r->hdrs == NULL)
		return 0;
	for (p = r->hdrs; (p = strstr(p, "\r\n")) != NULL; p += 2)
		if (strncasecmp(p + 2, name, n) == 0)
			count++;
	return count;
}

/* The field's first line, without the name. */
static const char *
hdr_value(const struct result *r, const char *name)
{
	static char val[4096];
	const char *p, *e;
	size_t n = strlen(name);

	if (r->hdrs == NULL)
		return NULL;
	for (p = r->hdrs; (p = strstr(p, "\r\n")) != NULL; p += 2) {
		if (strncasecmp(p + 2, name, n) != 0)
			continue;
		p += 2 + n;
		while (*p == ' ')
			p++;
		e = strstr(p, "\r\n");
		if ((size_t)(e - p) >= sizeof(val))
			return NULL;
		memcpy(val, p, (size_t)(e - p));
		val[e - p] = '\0';
		return val;
	}
	return NULL;
}

static int
body_is(const struct result *r, const char *want, size_t len)
{
	return r->ex == EX_OK && r->bodylen == len &&
	    memcmp(r->body, want, len) == 0;
}

static int
has_rcpts(const struct result *r, const char *const *want, size_t nwant)
{
	size_t i;

	if (r->msg.nrcpts != nwant)
		return 0;
	for (i = 0; i < nwant; i++)
		if (strcmp(r->msg.rcpts[i].addr, want[i]) != 0)
			return 0;
	return 1;
}

static void
show_rcpts(const struct result *r)
{
	size_t i;

	for (i = 0; i < r->msg.nrcpts; i++)
		printf("#   rcpt %zu: %s\n", i, r->msg.rcpts[i].addr);
}

/* 'A' letter, '9' digit, '#' lower hex, '~' sign, else itself. */
static int
matches(const char *s, const char *pat)
{
	for (; *pat != '\0'; s++, pat++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\0')
			return 0;
		if ((*pat == 'A' && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) ||
		    (*pat == '9' && !(c >= '0' && c <= '9')) ||
		    (*pat == '#' && strchr("0123456789abcdef", c) == NULL) ||
		    (*pat == '~' && c != '+' && c != '-') ||
		    (strchr("A9#~", *pat) == NULL && c != (unsigned char)*pat))
			return 0;
	}
	return *s == '\0';
}

/* RFC 2045 6.7 decoding, to prove the conversion lost nothing. */
static int
qp_decode(const char *in, size_t len, struct bytes *out)
{
	size_t i, col = 0;
	unsigned int v;
	char c, hex[3];

	for (i = 0; i < len; i++) {
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n') {
			bytes_add(out, "\r\n", 2);
			i++;
			col = 0;
			continue;
		}
		if (++col > 76)
			return -1;
		if (in[i] != '=') {
			if ((unsigned char)in[i] > 0x7e ||
			    ((unsigned char)in[i] < 0x20 && in[i] != '\t'))
				return -1;
			bytes_add(out, &in[i], 1);
			continue;
		}
		if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
			i += 2;
			col = 0;
			continue;
		}
		if (i + 2 >= len)
			return -1;
		hex[0] = in[i + 1];
		hex[1] = in[i + 2];
		hex[2] = '\0';
		if (strspn(hex, "0123456789ABCDEF") != 2 ||
		    sscanf(hex, "%2x", &v) != 1)
			return -1;
		c = (char)v;
		bytes_add(out, &c, 1);
		i += 2;
	}
	if (out->p == NULL)
		bytes_add(out, "", 0);
	return 0;
}

/* Reference canonicalisation: LF, CRLF, CR each end a line. */
static void
canon(const char *in, size_t len, struct bytes *out)
{
	size_t i;
	int open = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
				i++;
			bytes_add(out, "\r\n", 2);
			open = 0;
		} else {
			bytes_add(out, &in[i], 1);
			open = 1;
		}
	}
	if (open)
		bytes_add(out, "\r\n", 2);
	if (out->p == NULL)
		bytes_add(out, "", 0);
}

/* ---- line endings and the lone dot -------------------------------------- */

static void
test_line_endings(void)
{
	static char *to[] = { "a@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);

	run(&r, "mixed endings", S("Subject: a\r\nX-Two: b\n\nline1\nline2\r\n"
	    "line3\rline4\r\r\nend"), &o, &c);
	CHECK(r.ex == EX_OK, "mixed endings: accepted (%s)", r.err);
	CHECK(body_is(&r, S("line1\r\nline2\r\nline3\r\nline4\r\n\r\nend\r\n")),
	    "mixed endings: body is exact CRLF");
	CHECK(hdr_has(&r, "Subject: a") && hdr_has(&r, "X-Two: b"),
	    "mixed endings: both header fields kept");
	CHECK(r.msg.note == NULL, "mixed endings: no note");
	result_free(&r);

	run(&r, "PHP", S("To: a@example.com\r\nSubject: php\r\n\r\nbody1\n"
	    "body2\r\n"), &o, &c);
	CHECK(body_is(&r, S("body1\r\nbody2\r\n")),
	    "PHP CRLF headers + LF body: CRLF body");
	result_free(&r);

	run(&r, "no final newline", S("Subject: x\n\nabc"), &o, &c);
	CHECK(body_is(&r, S("abc\r\n")), "no final newline: CRLF added");
	result_free(&r);

	run(&r, "headers only, no newline", S("Subject: only"), &o, &c);
	CHECK(r.ex == EX_OK && hdr_has(&r, "Subject: only") &&
	    r.bodylen == 0, "headers only, no newline: empty body");
	result_free(&r);

	run(&r, "lone CR at EOF", S("Subject: x\n\nbody\r"), &o, &c);
	CHECK(body_is(&r, S("body\r\n")), "lone CR at EOF: one line end");
	result_free(&r);

	run(&r, "empty input", S(""), &o, &c);
	CHECK(r.ex == EX_OK && r.bodylen == 0 && hdr_count(&r, "From:") == 1,
	    "empty input: accepted, fields added, empty body");
	result_free(&r);

	run(&r, "body without header", S("\nfirst: not a header\n"), &o, &c);
	CHECK(body_is(&r, S("first: not a header\r\n")),
	    "leading empty line: everything is body");
	result_free(&r);

	run(&r, "no empty line", S("Subject: x\nthis is body\nmore\n"), &o, &c);
	CHECK(body_is(&r, S("this is body\r\nmore\r\n")) &&
	    hdr_has(&r, "Subject: x"), "non-header line starts the body");
	result_free(&r);

	run(&r, "mbox From", S("From alice Mon Jan  1 00:00:00 2024\n"
	    "Subject: x\n\nbody\n"), &o, &c);
	CHECK(body_is(&r, S("body\r\n")) && hdr_has(&r, "Subject: x") &&
	    strstr(r.hdrs, "alice") == NULL,
	    "leading mbox From line: dropped, the header follows");
	result_free(&r);

	run(&r, "folded header", S("Subject: one\n two\n\tthree\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK &&
	    strstr(r.hdrs, "\r\nSubject: one\r\n two\r\n\tthree\r\n") != NULL,
	    "folded header: folds kept, CRLF between");
	result_free(&r);

	run(&r, "obs WSP before colon", S("Subject : spaced\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK && hdr_has(&r, "Subject : spaced") &&
	    body_is(&r, S("b\r\n")), "obs-field with WSP before ':'");
	result_free(&r);
}

static void
fill_lines(struct bytes *b, size_t n, const char *eol)
{
	char line[128];

	while (n > 0) {
		size_t len = n > 100 ? 100 : n;

		memset(line, 'a', len);
		memcpy(line + len - strlen(eol), eol, strlen(eol));
		bytes_add(b, line, len);
		n -= len;
	}
}

/* Line ends that straddle the 64 KiB read chunks. */
static void
test_chunk_boundaries(void)
{
	static char *to[] = { "a@example.com" };
	static const char hdr[] = "Subject: x\r\n\r\n";
	struct bytes in = { 0 }, want = { 0 };
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);

	/* CR as the last octet of the first chunk, LF the first of the next */
	bytes_add(&in, hdr, strlen(hdr));
	fill_lines(&in, 65535 - in.len - 1, "\n");
	bytes_add(&in, "b\r\nnext\n", 8);
	CHECK(in.p[65535] == '\r' && in.p[65536] == '\n', "CRLF straddles the "
	    "chunk boundary");
	canon(in.p + strlen(hdr), in.len - strlen(hdr), &want);
	run(&r, "CRLF across chunks", in.p, in.len, &o, &c);
	CHECK(body_is(&r, want.p, want.len), "CRLF across chunks: one line end");
	result_free(&r);

	/* A lone CR at the boundary, text after it. */
	in.p[65536] = 'x';
	want.len = 0;
	canon(in.p + strlen(hdr), in.len - strlen(hdr), &want);
	run(&r, "lone CR at boundary", in.p, in.len, &o, &c);
	CHECK(body_is(&r, want.p, want.len) &&
	    mem_find(r.body, r.bodylen, S("b\r\nxnext\r\n")) != NULL,
	    "lone CR at a chunk boundary ends the line");
	result_free(&r);

	/* A lone "." as the last octet of a chunk ends the input. */
	in.len = 0;
	bytes_add(&in, hdr, strlen(hdr));
	fill_lines(&in, 65535 - in.len, "\n");
	bytes_add(&in, ".\nafter\n", 8);
	CHECK(in.p[65535] == '.', "dot is the last octet of the chunk");
	want.len = 0;
	canon(in.p + strlen(hdr), 65535 - strlen(hdr), &want);
	o.dotend = 1;
	run(&r, "dot at boundary", in.p, in.len, &o, &c);
	CHECK(body_is(&r, want.p, want.len), "lone dot split from its LF "
	    "across chunks ends the input");
	result_free(&r);

	/* ...but ".x" split the same way is text. */
	in.p[65536] = 'x';
	want.len = 0;
	canon(in.p + strlen(hdr), in.len - strlen(hdr), &want);
	run(&r, "dot-x at boundary", in.p, in.len, &o, &c);
	CHECK(body_is(&r, want.p, want.len), "\".x\" split across chunks is "
	    "kept");
	result_free(&r);
	free(in.p);
	free(want.p);
}

static void
test_lone_dot(void)
{
	static char *to[] = { "a@example.com" };
	static const char msg[] = "Subject: x\n\nline1\n..\n. \n.\nline2\n";
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 1, to, 1);

	run(&r, "dotend", S(msg), &o, &c);
	CHECK(body_is(&r, S("line1\r\n..\r\n. \r\n")),
	    "without -i: \"..\" and \". \" kept, lone dot ends input");
	CHECK(r.ex == EX_OK && mem_find(r.wire.p, r.wire.len,
	    S("\r\nline1\r\n...\r\n.. \r\n.\r\n")) != NULL &&
	    (size_t)r.wire.len == r.text.len + 3 + 2,
	    "without -i: wire form stuffed, one terminator");
	result_free(&r);

	o.dotend = 0;
	run(&r, "with -i", S(msg), &o, &c);
	CHECK(body_is(&r, S("line1\r\n..\r\n. \r\n.\r\nline2\r\n")),
	    "with -i: lone dot is data");
	CHECK(r.ex == EX_OK && mem_find(r.wire.p, r.wire.len,
	    S("\r\n...\r\n.. \r\n..\r\nline2\r\n.\r\n")) != NULL,
	    "with -i: every leading dot doubled");
	result_free(&r);

	o.dotend = 1;
	run(&r, "dot in header", S("Subject: x\n.\nTo: b@example.com\n\nbody\n"),
	    &o, &c);
	CHECK(r.ex == EX_OK && r.bodylen == 0 && hdr_count(&r, "To:") == 0,
	    "lone dot in the header block ends the input");
	result_free(&r);

	run(&r, "dot at EOF", S("Subject: x\n\na\n."), &o, &c);
	CHECK(body_is(&r, S("a\r\n")), "unterminated lone dot at EOF dropped");
	result_free(&r);

	run(&r, "dot then CR", S("Subject: x\n\na\n.\rrest\n"), &o, &c);
	CHECK(body_is(&r, S("a\r\n")), "dot ended by a lone CR ends input");
	result_free(&r);

	run(&r, "dot-header", S(".Dot: field\nSubject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK && hdr_has(&r, ".Dot: field") &&
	    mem_find(r.wire.p, r.wire.len, S("\r\n..Dot: field\r\n")) == NULL &&
	    strncmp(r.wire.p, "..Dot: field\r\n", 14) == 0,
	    "a header line starting with '.' is stuffed too");
	result_free(&r);
}

/* Dot-stuffing where a "." line starts exactly at a body file chunk. */
static void
test_stuffing(void)
{
	static char *to[] = { "a@example.com" };
	struct bytes in = { 0 }, wire2 = { 0 };
	struct conf c;
	struct msgopts o;
	struct result r;
	const char *body;
	size_t i;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	bytes_add(&in, "Subject: x\r\n\r\n", 14);
	for (i = 0; i < 128; i++)	/* 128 * 512 = 65536 body octets */
		fill_lines(&in, 512, "\r\n");
	bytes_add(&in, ".\r\n.dot\r\nend\r\n", 14);
	run(&r, "stuffing", in.p, in.len, &o, &c);
	body = r.body;
	CHECK(r.ex == EX_OK && r.bodylen == 65536 + 14 && body[65536] == '.',
	    "\".\" line starts at body offset 65536");
	CHECK(r.ex == EX_OK && mem_find(r.wire.p, r.wire.len,
	    S("a\r\n..\r\n..dot\r\nend\r\n.\r\n")) != NULL,
	    "lines at the chunk boundary stuffed");
	CHECK(r.wire.calls <= 6, "put() called with large chunks (%zu calls "
	    "for %zu octets)", r.wire.calls, r.wire.len);
	CHECK(msg_send(&r.msg, put_collect, &wire2) == 0 &&
	    wire2.len == r.wire.len && memcmp(wire2.p, r.wire.p,
	    wire2.len) == 0, "msg_send twice gives the same bytes");
	CHECK(msg_send(&r.msg, put_fail, NULL) == -1,
	    "msg_send reports a failing put()");
	result_free(&r);
	free(in.p);
	free(wire2.p);
}

/* ---- body conversion ---------------------------------------------------- */

static void
test_qp(void)
{
	static char *to[] = { "a@example.com" };
	struct bytes in = { 0 }, orig = { 0 }, dec = { 0 };
	struct conf c;
	struct msgopts o;
	struct result r;
	char big[1205];
	const char *tail = "caf\xc3\xa9 = ok \n\ttab at end\t\n.dot\n";

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	memset(big, 'x', sizeof(big));
	big[600] = ' ';
	bytes_add(&orig, S("nul\0byte\n"));
	bytes_add(&orig, big, sizeof(big));
	bytes_add(&orig, "\n", 1);
	bytes_add(&orig, tail, strlen(tail));
	bytes_add(&in, S("Subject: cron output\n\n"));
	bytes_add(&in, orig.p, orig.len);
	run(&r, "NUL + long line", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_OK, "NUL + long line: accepted (%s)", r.err);
	CHECK(hdr_has(&r, "Content-Transfer-Encoding: quoted-printable") &&
	    hdr_has(&r, "MIME-Version: 1.0") &&
	    hdr_has(&r, "Content-Type: text/plain; charset=utf-8"),
	    "NUL + long line: MIME fields added, charset utf-8");
	CHECK_STR(r.msg.note, "body converted to quoted-printable: 1 line "
	    "over 998 octets, 1 NUL", "NUL + long line: note");
	CHECK(r.msg.eightbit == 0, "NUL + long line: nothing 8-bit left");
	CHECK(r.ex == EX_OK && qp_decode(r.body, r.bodylen, &dec) == 0,
	    "NUL + long line: valid quoted-printable, lines <= 76");
	in.len = 0;
	canon(orig.p, orig.len, &in);
	CHECK(dec.len == in.len && memcmp(dec.p, in.p, in.len) == 0,
	    "NUL + long line: decodes back to the original body");
	CHECK(r.ex == EX_OK && mem_find(r.body, r.bodylen, S("ok=20\r\n")) !=
	    NULL && mem_find(r.body, r.bodylen, S("end=09\r\n")) != NULL,
	    "NUL + long line: trailing SP and HTAB encoded");
	result_free(&r);

	/* Debian cron: Content-Type kept, CTE 8bit replaced. */
	in.len = 0;
	bytes_add(&in, S("From: root (Cron Daemon)\nTo: a@example.com\n"
	    "MIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-8859-1\n"
	    "Content-Transfer-Encoding: 8bit\n\nnul\0here \xe9t\xe9\n"));
	run(&r, "cron 8bit", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_OK && hdr_count(&r, "Content-Type:") == 1 &&
	    hdr_has(&r, "Content-Type: text/plain; charset=ISO-8859-1") &&
	    hdr_count(&r, "Content-Transfer-Encoding:") == 1 &&
	    hdr_has(&r, "Content-Transfer-Encoding: quoted-printable") &&
	    hdr_count(&r, "MIME-Version:") == 1,
	    "cron 8bit: CTE replaced, Content-Type and MIME-Version kept");
	CHECK(body_is(&r, S("nul=00here =E9t=E9\r\n")),
	    "cron 8bit: body encoded");
	result_free(&r);

	run(&r, "ascii NUL", S("Subject: x\n\na\0b\n"), &o, &c);
	CHECK(hdr_has(&r, "Content-Type: text/plain; charset=us-ascii") &&
	    body_is(&r, S("a=00b\r\n")), "7-bit body: charset us-ascii");
	result_free(&r);

	run(&r, "latin1 NUL", S("Subject: x\n\n\xe9t\xe9\0\n"), &o, &c);
	CHECK(hdr_has(&r, "Content-Type: text/plain; charset=unknown-8bit"),
	    "non-UTF-8 body: charset unknown-8bit");
	result_free(&r);

	run(&r, "overlong UTF-8", S("Subject: x\n\n\xc0\xafx\0\n"), &o, &c);
	CHECK(hdr_has(&r, "Content-Type: text/plain; charset=unknown-8bit"),
	    "overlong UTF-8 is not UTF-8");
	result_free(&r);

	run(&r, "cut UTF-8", S("Subject: x\n\ncaf\xc3\n\xa9\0\n"), &o, &c);
	CHECK(hdr_has(&r, "Content-Type: text/plain; charset=unknown-8bit"),
	    "UTF-8 sequence cut by a line break is not UTF-8");
	result_free(&r);

	run(&r, "clean 8-bit", S("Subject: x\n\ncaf\xc3\xa9\n"), &o, &c);
	CHECK(r.ex == EX_OK && r.msg.eightbit == 1 &&
	    body_is(&r, S("caf\xc3\xa9\r\n")) &&
	    hdr_has(&r, "Content-Transfer-Encoding: 8bit") &&
	    hdr_has(&r, "Content-Type: text/plain; charset=utf-8"),
	    "8-bit body without NUL or long line: kept, labelled, eightbit set");
	result_free(&r);

	run(&r, "8-bit header", S("Subject: \xc3\xa9t\xc3\xa9\n\nascii\n"), &o,
	    &c);
	CHECK(r.ex == EX_OK && r.msg.eightbit == 1,
	    "raw UTF-8 Subject: eightbit set");
	result_free(&r);

	run(&r, "ascii", S("Subject: x\n\nascii\n"), &o, &c);
	CHECK(r.ex == EX_OK && r.msg.eightbit == 0, "ASCII: eightbit clear");
	result_free(&r);
	free(in.p);
	free(orig.p);
	free(dec.p);
}

/* Undo "CRLF SP" folds. */
static void
unfold(const char *p, size_t len, struct bytes *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (i + 2 < len && memcmp(p + i, "\r\n ", 3) == 0) {
			i += 2;
			continue;
		}
		bytes_add(out, &p[i], 1);
	}
}

static void
test_multipart(void)
{
	static char *to[] = { "a@example.com" };
	static const char head[] = "MIME-Version: 1.0\n"
	    "Content-Type: Multipart/Mixed; boundary=\"b1\"\n\n"
	    "--b1\nContent-Type: text/html\n\n";
	struct bytes in = { 0 }, want = { 0 }, unf = { 0 };
	struct conf c;
	struct msgopts o;
	struct result r;
	char big[2500];
	size_t i;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	memset(big, 'h', sizeof(big));
	bytes_add(&in, head, strlen(head));
	bytes_add(&in, big, sizeof(big));
	bytes_add(&in, "\n--b1--\n", 8);
	run(&r, "multipart long line", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_OK, "multipart long line: accepted (%s)", r.err);
	CHECK_STR(r.msg.note, "1 body line over 998 octets folded",
	    "multipart long line: note");
	i = (size_t)(strstr(head, "\n\n") - head) + 2;
	canon(in.p + i, in.len - i, &want);
	unfold(r.body, r.bodylen, &unf);
	CHECK(r.ex == EX_OK && unf.len == want.len &&
	    memcmp(unf.p, want.p, want.len) == 0,
	    "multipart long line: folds with CRLF SP, nothing lost");
	CHECK(hdr_count(&r, "Content-Transfer-Encoding:") == 0,
	    "multipart long line: no CTE added");
	result_free(&r);

	in.len = 0;
	bytes_add(&in, head, strlen(head));
	bytes_add(&in, S("a\0b\n--b1--\n"));
	run(&r, "multipart NUL", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_DATAERR, "multipart NUL: EX_DATAERR");
	CHECK_STR(r.err, "line 7 contains a NUL byte and the message is MIME "
	    "multipart: relay cannot carry it unchanged",
	    "multipart NUL: error names the line");
	CHECK(r.msg.bodyfd == -1 && r.msg.hdrs == NULL,
	    "multipart NUL: nothing left allocated");
	result_free(&r);

	in.len = 0;
	bytes_add(&in, S("Content-Transfer-Encoding: base64\n\n"));
	bytes_add(&in, big, sizeof(big));
	bytes_add(&in, "\n", 1);
	run(&r, "base64 long line", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_OK && hdr_has(&r, "Content-Transfer-Encoding: base64")
	    && r.msg.note != NULL && strstr(r.msg.note, "folded") != NULL,
	    "already encoded body: folded, not re-encoded");
	result_free(&r);
	free(in.p);
	free(want.p);
	free(unf.p);
}

/* ---- envelope ----------------------------------------------------------- */

static void
test_bcc(void)
{
	static char *argv_b[] = { "b@example.com" };
	static const char msg[] = "To: a@example.com\nBcc: secret@example.com,"
	    "\n hidden@example.com\nResent-Bcc: r@example.com\n"
	    "Return-Path: <x@example.com>\nSubject: s\n\nbody\n";
	static const char msg_plain[] = "To: a@example.com\nBcc: "
	    "secret@example.com,\n hidden@example.com\nSubject: s\n\nbody\n";
	static const char *const want_t[] = { "b@example.com", "a@example.com",
	    "secret@example.com", "hidden@example.com" };
	static const char *const want_resent[] = { "b@example.com",
	    "r@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, argv_b, 1);
	run(&r, "Bcc without -t", S(msg), &o, &c);
	CHECK(r.ex == EX_OK && r.msg.nrcpts == 1 &&
	    strcmp(r.msg.rcpts[0].addr, "b@example.com") == 0,
	    "without -t: only argv recipients");
	CHECK(hdr_count(&r, "Bcc:") == 0 && hdr_count(&r, "Resent-Bcc:") == 0 &&
	    strstr(r.hdrs, "hidden") == NULL,
	    "without -t: Bcc and Resent-Bcc removed");
	CHECK(hdr_count(&r, "Return-Path:") == 0, "Return-Path stripped");
	result_free(&r);

	o.extract = 1;
	/* Without the Resent-Bcc line, which makes it a resent message. */
	run(&r, "Bcc with -t", S(msg_plain), &o, &c);
	CHECK(r.ex == EX_OK && has_rcpts(&r, want_t, N(want_t)),
	    "with -t: argv + To + Bcc recipients");
	if (!has_rcpts(&r, want_t, N(want_t)))
		show_rcpts(&r);
	CHECK(hdr_count(&r, "Bcc:") == 0 && strstr(r.hdrs, "secret") == NULL,
	    "with -t: Bcc removed");
	result_free(&r);

	/* RFC 5322 3.6.6, as Sendmail and Postfix: Resent-* instead. */
	run(&r, "Resent-Bcc with -t", S(msg), &o, &c);
	CHECK(r.ex == EX_OK && has_rcpts(&r, want_resent, N(want_resent)),
	    "with -t and Resent-Bcc: argv + Resent-Bcc recipients only");
	CHECK(hdr_count(&r, "Resent-Bcc:") == 0 && hdr_count(&r, "Bcc:") == 0,
	    "with -t: Resent-Bcc and Bcc removed");
	result_free(&r);
}

static void
test_extract(void)
{
	static const char msg[] =
	    "From: Pete(A nice \\) chap) <pete(his account)@silly.test(his "
	    "host)>\n"
	    "To: A Group:Chris Jones <c@public.example>,joe@example.org,\n"
	    " John <jdoe@one.test> (my dear friend);\n"
	    "Cc: Undisclosed recipients:;\n"
	    "Cc: \"Joe Q. Public; the \\\"great\\\"\" <john.q.public@example.com>"
	    ",\r\n\t\"Mary Smith: Personal\" <mary@x.test>, , jdoe@one.test\n"
	    "To: <@node.test,@node2.test:user@host.test>\n"
	    "Subject: appendix A\n\nbody\n";
	static const char *const want[] = { "c@public.example",
	    "joe@example.org", "jdoe@one.test", "john.q.public@example.com",
	    "mary@x.test", "user@host.test" };
	static char *cron[] = { "a@x.test,b@y.test" };
	static const char *const want_cron[] = { "a@x.test", "b@y.test" };
	static char *named[] = { "Name <n@x.test>", "a@x.test" };
	static const char *const want_named[] = { "n@x.test", "a@x.test" };
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 1, 0, NULL, 0);
	run(&r, "-t appendix A", S(msg), &o, &c);
	CHECK(r.ex == EX_OK, "-t appendix A: accepted (%s)", r.err);
	CHECK(has_rcpts(&r, want, N(want)),
	    "-t: folded To/Cc, groups, comments, route, duplicates removed");
	if (!has_rcpts(&r, want, N(want)))
		show_rcpts(&r);
	CHECK(hdr_has(&r, "Cc: Undisclosed recipients:;"),
	    "-t: header fields left as written");
	result_free(&r);

	opts_make(&o, 0, 0, cron, N(cron));
	run(&r, "cron argv", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(has_rcpts(&r, want_cron, N(want_cron)),
	    "Debian cron \"a@x,b@y\" argument: two recipients");
	result_free(&r);

	opts_make(&o, 0, 0, named, N(named));
	run(&r, "named argv", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(has_rcpts(&r, want_named, N(want_named)),
	    "argv \"Name <a@x>\" works, duplicate dropped");
	result_free(&r);
}

static void
test_aliases(void)
{
	static char *argv_root[] = { "root" };
	static char *argv_bob[] = { "bob" };
	static const char *const want_admin[] = { "admin@example.com" };
	static const char *const want_all[] = { "admin@example.com",
	    "ops1@example.com", "ops2@example.com", "bob@example.org" };
	static const char *const want_catch[] = { "all@example.com",
	    "admin@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "alerts@example.com", NULL, al_basic, N(al_basic));
	opts_make(&o, 0, 0, argv_root, 1);
	run(&r, "alias argv", S("From: root (Cron Daemon)\nTo: root\n"
	    "Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK && has_rcpts(&r, want_admin, 1),
	    "alias: argv root -> admin@example.com");
	CHECK(hdr_has(&r, "To: admin@example.com"),
	    "alias: \"To: root\" -> \"To: admin@example.com\"");
	CHECK(hdr_has(&r, "From: alerts@example.com (Cron Daemon)"),
	    "From local name -> sender, comment kept");
	CHECK_STR(r.msg.sender, "alerts@example.com", "sender from conf");
	result_free(&r);

	/* Headers: one target keeps the name, several replace the mailbox. */
	c.domain = "example.org";
	opts_make(&o, 1, 0, NULL, 0);
	run(&r, "alias -t", S("From: Root User <root>\n"
	    "To: Admin <root>, Ops Team <ops>,\n bob (Bob), x@example.net\n"
	    "Cc: root (the boss)\nReply-To: ops\nSubject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK, "alias -t: accepted (%s)", r.err);
	CHECK(r.ex == EX_OK && strstr(r.hdrs, "\r\nTo: Admin <admin@example.com>"
	    ", ops1@example.com, ops2@example.com,\r\n bob@example.org (Bob), "
	    "x@example.net\r\n") != NULL,
	    "alias -t: To rewritten in place, fold kept");
	CHECK(hdr_has(&r, "Cc: admin@example.com (the boss)"),
	    "alias -t: Cc rewritten, comment kept");
	CHECK(hdr_has(&r, "Reply-To: ops1@example.com, ops2@example.com"),
	    "alias -t: Reply-To rewritten");
	CHECK(hdr_has(&r, "From: Root User <alerts@example.com>"),
	    "alias -t: From display name kept");
	CHECK(has_rcpts(&r, (const char *const[]){ "admin@example.com",
	    "ops1@example.com", "ops2@example.com", "bob@example.org",
	    "x@example.net" }, 5), "alias -t: envelope recipients");
	result_free(&r);

	opts_make(&o, 0, 0, (char *[]){ "root,ops", "bob" }, 2);
	run(&r, "alias + domain", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(has_rcpts(&r, want_all, N(want_all)),
	    "aliases then domain qualification");
	result_free(&r);

	conf_make(&c, "alerts@example.com", NULL, al_catch, N(al_catch));
	opts_make(&o, 0, 0, (char *[]){ "bob", "root" }, 2);
	run(&r, "catch-all", S("To: bob\n\nb\n"), &o, &c);
	CHECK(has_rcpts(&r, want_catch, N(want_catch)),
	    "catch-all for unknown names, exact alias first");
	CHECK(hdr_has(&r, "To: all@example.com"), "catch-all in To");
	result_free(&r);

	conf_make(&c, "alerts@example.com", NULL, al_basic, N(al_basic));
	opts_make(&o, 0, 0, argv_bob, 1);
	run(&r, "no alias", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_NOUSER, "no alias, no domain: EX_NOUSER");
	CHECK_STR(r.err, "local recipient \"bob\" has no alias and no domain "
	    "is set in /etc/relay-test.conf", "no alias: error text");
	result_free(&r);

	/* Without -t a To: bob that cannot be mapped stays as it is. */
	opts_make(&o, 0, 0, argv_root, 1);
	run(&r, "unmappable To", S("To: bob\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK && hdr_has(&r, "To: bob"),
	    "unmappable To header left alone without -t");
	result_free(&r);
}

static void
test_sender(void)
{
	static char *to[] = { "a@example.com" };
	struct passwd *pw = getpwuid(getuid());
	char want[300];
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "conf@example.com", "example.org", NULL, 0);
	opts_make(&o, 0, 0, to, 1);

	o.from = "Name <f@example.com>";
	run(&r, "-f name-addr", S("Subject: x\n\nb\n"), &o, &c);
	CHECK_STR(r.msg.sender, "f@example.com", "-f \"Name <a@b>\"");
	result_free(&r);

	o.from = "root";
	run(&r, "-f root", S("Subject: x\n\nb\n"), &o, &c);
	CHECK_STR(r.msg.sender, "conf@example.com", "-f local name -> conf from");
	result_free(&r);

	o.from = "";
	run(&r, "-f empty", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK && strcmp(r.msg.sender, "") == 0 &&
	    hdr_value(&r, "From:") != NULL &&
	    strcmp(hdr_value(&r, "From:") + strlen(hdr_value(&r, "From:")) -
	    18, "<conf@example.com>") == 0, "-f \"\": null sender, From from "
	    "the configured address");
	CHECK(r.ex == EX_OK && matches(hdr_value(&r, "Message-ID:"),
	    "<99999999999999.################@client.example.net>"),
	    "null sender: Message-ID uses the helo name");
	result_free(&r);

	o.from = "<>";
	run(&r, "-f <>", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_OK && strcmp(r.msg.sender, "") == 0, "-f \"<>\"");
	result_free(&r);

	o.from = "a@x.test, b@y.test";
	run(&r, "-f two", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_USAGE, "-f with two addresses: EX_USAGE");
	result_free(&r);

	o.from = "a@x.test\r\nRCPT TO:<evil@x.test>";
	run(&r, "-f injection", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_DATAERR && strstr(r.err, "\\r") == NULL &&
	    strchr(r.err, '\r') == NULL, "-f with CRLF refused (%s)", r.err);
	result_free(&r);

	o.from = NULL;
	c.from = NULL;
	run(&r, "login@domain", S("Subject: x\n\nb\n"), &o, &c);
	(void)snprintf(want, sizeof(want), "%s@example.org",
	    pw ? pw->pw_name : "?");
	CHECK_STR(r.msg.sender, want, "no -f, no from: login@domain");
	result_free(&r);

	c.domain = NULL;
	c.user = "auth@example.com";
	run(&r, "auth user", S("Subject: x\n\nb\n"), &o, &c);
	CHECK_STR(r.msg.sender, "auth@example.com", "AUTH user as sender");
	result_free(&r);

	c.user = "authname";
	run(&r, "no sender", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_CONFIG, "no sender at all: EX_CONFIG");
	CHECK_STR(r.err, "no envelope sender: set \"from\" in "
	    "/etc/relay-test.conf", "no sender: error text");
	result_free(&r);
}

static void
test_no_rcpts(void)
{
	struct conf c;
	struct msgopts o;
	struct result r;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, NULL, 0);
	run(&r, "no rcpts", S("To: a@example.com\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_USAGE, "no argv, no -t: EX_USAGE");
	CHECK_STR(r.err, "no recipients given", "no rcpts: error text");
	result_free(&r);

	o.extract = 1;
	run(&r, "-t no rcpts", S("Subject: x\nCc: Undisclosed:;\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_DATAERR, "-t without recipients: EX_DATAERR");
	CHECK_STR(r.err, "no recipient addresses found in the message header",
	    "-t no rcpts: error text");
	result_free(&r);
}

static void
test_bad_input(void)
{
	static char *inject[] = { "a@example.com\r\nRCPT TO:<evil@x.test>" };
	static char *inject2[] = { "\"a\r\nb\"@example.com" };
	static char *angle[] = { "<a@example.com>>" };
	static char *utf8[] = { "j\xc3\xb6rg@example.com" };
	static char *ok[] = { "a@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;
	struct bytes in = { 0 };
	size_t i;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, inject, 1);
	run(&r, "argv CRLF", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_DATAERR && strchr(r.err, '\r') == NULL &&
	    strchr(r.err, '\n') == NULL, "argv recipient with CRLF refused, "
	    "error sanitised (%s)", r.err);
	result_free(&r);

	opts_make(&o, 0, 0, inject2, 1);
	run(&r, "argv quoted CRLF", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_DATAERR, "CRLF inside a quoted local part refused");
	result_free(&r);

	opts_make(&o, 0, 0, angle, 1);
	run(&r, "argv angle", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_DATAERR, "stray '>' refused");
	result_free(&r);

	opts_make(&o, 0, 0, utf8, 1);
	run(&r, "argv utf8", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_DATAERR && strstr(r.err, "SMTPUTF8") != NULL &&
	    strstr(r.err, "j\\303\\266rg") != NULL,
	    "non-ASCII recipient refused, shown escaped (%s)", r.err);
	result_free(&r);

	opts_make(&o, 1, 0, NULL, 0);
	run(&r, "-t bad quote", S("To: \"Bob <b@example.com>\nSubject: x\n\nb\n"),
	    &o, &c);
	CHECK(r.ex == EX_DATAERR, "-t: unterminated quote in To: EX_DATAERR");
	CHECK_STR(r.err, "cannot parse the To: header field: unterminated "
	    "quoted string at offset 1", "-t bad quote: error names the field");
	result_free(&r);

	run(&r, "-t bad group", S("Cc: G: a@example.com, b@example.com\n\nb\n"),
	    &o, &c);
	CHECK(r.ex == EX_DATAERR && strstr(r.err, "Cc:") != NULL &&
	    strstr(r.err, "unterminated group") != NULL,
	    "-t: unterminated group in Cc: EX_DATAERR (%s)", r.err);
	result_free(&r);

	opts_make(&o, 0, 0, ok, 1);
	run(&r, "bad To without -t", S("To: \"Bob <b@example.com>\n\nb\n"), &o,
	    &c);
	CHECK(r.ex == EX_OK && hdr_has(&r, "To: \"Bob <b@example.com>"),
	    "unparsable To without -t: left as written");
	result_free(&r);

	run(&r, "header NUL", S("Subject: x\nX-Bad: a\0b\n\nbody\n"), &o, &c);
	CHECK(r.ex == EX_DATAERR, "NUL in a header: EX_DATAERR");
	CHECK_STR(r.err, "header line 2 contains a NUL byte",
	    "header NUL: error text");
	result_free(&r);

	for (i = 0; i < 12000; i++)
		bytes_add(&in, S("X-Pad: 0123456789012345678901234567890123456"
		    "789012345678901234567890123456789012345678901234567\n"));
	run(&r, "huge header", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_DATAERR && strstr(r.err, "header block") != NULL,
	    "header block over 1 MiB: EX_DATAERR (%s)", r.err);
	result_free(&r);

	/* 2 MiB of text before any line end: a body, not a header. */
	in.len = 0;
	for (i = 0; i < 2 * 1024 * 1024 / 64; i++)
		bytes_add(&in, S("0123456789 123456789 123456789 123456789 "
		    "123456789 1234567890123"));
	bytes_add(&in, "\n", 1);
	run(&r, "huge first line", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_OK && hdr_has(&r, "Content-Transfer-Encoding: "
	    "quoted-printable"), "2 MiB first line: taken as body (%s)", r.err);
	result_free(&r);
	free(in.p);

	setenv("TMPDIR", "/nonexistent/relay-test", 1);
	run(&r, "bad TMPDIR", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(r.ex == EX_TEMPFAIL && strstr(r.err, "/nonexistent") != NULL,
	    "unusable TMPDIR: EX_TEMPFAIL (%s)", r.err);
	result_free(&r);
	unsetenv("TMPDIR");
}

/* ---- fields added ------------------------------------------------------- */

static void
test_added_fields(void)
{
	static char *to[] = { "a@example.com" };
	static const struct {
		const char	*fullname;
		const char	*from;
	} names[] = {
		{ "CronDaemon", "From: CronDaemon <me@example.com>" },
		{ "Cron Daemon", "From: Cron Daemon <me@example.com>" },
		{ "Smith, John", "From: \"Smith, John\" <me@example.com>" },
		{ "Joe \"Q\" \\ Public", "From: \"Joe \\\"Q\\\" \\\\ Public\" "
		    "<me@example.com>" },
		{ "J\xc3\xb6rg M\xc3\xbcller",
		    "From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <me@example.com>" },
		{ "Evil\r\nBcc: x@evil.test", "From: \"Evil  Bcc: "
		    "x@evil.test\" <me@example.com>" },
		{ "", "From: <me@example.com>" },
	};
	struct conf c;
	struct msgopts o;
	struct result r;
	const char *v;
	size_t i;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);

	run(&r, "added", S("Subject: x\n\nb\n"), &o, &c);
	CHECK(hdr_count(&r, "From:") == 1 && hdr_count(&r, "Date:") == 1 &&
	    hdr_count(&r, "Message-ID:") == 1, "From, Date, Message-ID added");
	v = hdr_value(&r, "Date:");
	CHECK(v != NULL && (matches(v, "A, 99 A 9999 99:99:99 ~9999") ||
	    matches(v, "AAA, 99 AAA 9999 99:99:99 ~9999")),
	    "Date is RFC 5322 (%s)", v ? v : "none");
	v = hdr_value(&r, "Message-ID:");
	CHECK(v != NULL && matches(v,
	    "<99999999999999.################@example.com>"),
	    "Message-ID form (%s)", v ? v : "none");
	CHECK(r.ex == EX_OK && strstr(r.hdrs, "\r\nSubject: x\r\nFrom: ") != NULL
	    && strstr(r.hdrs, "\r\nDate: ") < strstr(r.hdrs, "\r\nMessage-ID: "),
	    "added at the end, in order");
	result_free(&r);

	run(&r, "present", S("From: Someone <s@example.com>\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Message-ID: <fixed@example.com>\n\nb\n"), &o, &c);
	CHECK(hdr_count(&r, "From:") == 1 && hdr_count(&r, "Date:") == 1 &&
	    hdr_count(&r, "Message-ID:") == 1 &&
	    hdr_has(&r, "From: Someone <s@example.com>") &&
	    hdr_has(&r, "Date: Mon, 1 Jan 2024 00:00:00 +0000") &&
	    hdr_has(&r, "Message-ID: <fixed@example.com>"),
	    "existing From, Date, Message-ID untouched");
	result_free(&r);

	run(&r, "case", S("FROM: s@example.com\nmessage-id: <m@x>\n\nb\n"),
	    &o, &c);
	CHECK(hdr_count(&r, "From:") == 1 && hdr_count(&r, "Message-ID:") == 1,
	    "field names compare case-insensitively");
	result_free(&r);

	for (i = 0; i < N(names); i++) {
		o.fullname = names[i].fullname;
		run(&r, "-F", S("Subject: x\n\nb\n"), &o, &c);
		CHECK(hdr_has(&r, names[i].from), "-F name %zu -> %s", i,
		    names[i].from);
		CHECK(hdr_count(&r, "Bcc:") == 0, "-F cannot inject a field");
		result_free(&r);
	}
}

static void
test_long_headers(void)
{
	static char *to[] = { "a@example.com" };
	struct bytes in = { 0 }, subj = { 0 }, unf = { 0 };
	struct conf c;
	struct msgopts o;
	struct result r;
	const char *p, *e;
	size_t i;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	bytes_add(&subj, "Subject:", 8);
	for (i = 0; i < 300; i++)
		bytes_add(&subj, " word", 5);
	bytes_add(&in, subj.p, subj.len);
	bytes_add(&in, "\nTo: ", 5);
	for (i = 0; i < 100; i++)
		bytes_add(&in, S("Some Body <user1234567890@example.com>, "));
	bytes_add(&in, "last@example.com\nX-Blob: ", 25);
	for (i = 0; i < 2500; i++)
		bytes_add(&in, "z", 1);
	bytes_add(&in, "\n\nbody\n", 7);
	run(&r, "long headers", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_OK, "long headers: accepted (%s)", r.err);
	CHECK_STR(r.msg.note, "3 header fields with lines over 998 octets "
	    "folded", "long headers: note");
	p = r.hdrs ? strstr(r.hdrs, "\r\nSubject:") : NULL;
	e = p ? strstr(p, "\r\nTo:") : NULL;
	if (p != NULL && e != NULL) {
		for (p += 2; p < e; p++)
			if (!(p[0] == '\r' && p[1] == '\n'))
				bytes_add(&unf, p, 1);
			else
				p++;
	}
	CHECK(unf.len == subj.len && memcmp(unf.p, subj.p, subj.len) == 0,
	    "Subject folded at whitespace, unfolds to the original");
	CHECK(r.hdrs != NULL && strstr(r.hdrs, "example.com>,\r\n Some") !=
	    NULL && strstr(r.hdrs, "Some\r\n Body") == NULL &&
	    strstr(r.hdrs, "Body\r\n <") == NULL,
	    "To folded after commas only");
	CHECK(r.hdrs != NULL && strstr(r.hdrs, "zzz\r\n zzz") != NULL,
	    "a run without whitespace broken with CRLF SP");
	result_free(&r);
	free(in.p);
	free(subj.p);
	free(unf.p);
}

static void
test_pipe(void)
{
	static char *to[] = { "a@example.com" };
	static const char msg[] = "Subject: pipe\n\nline\n";
	struct conf c;
	struct msgopts o;
	struct msg m;
	char err[ERRLEN];
	int fds[2], ex;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	if (pipe(fds) == -1 || write(fds[1], msg, strlen(msg)) !=
	    (ssize_t)strlen(msg) || close(fds[1]) == -1) {
		perror("pipe");
		exit(2);
	}
	ex = msg_read(&m, fds[0], &o, &c, err, sizeof(err));
	CHECK(ex == EX_OK && m.bodylen == 6, "message read from a pipe");
	msg_free(&m);
	(void)close(fds[0]);
}

/*
 * msg_to_7bit(): for a smarthost without 8BITMIME.  want_hdr, if not
 * NULL, is a header line that must then be sent.
 */
static void
to_7bit(struct result *r, const char *what, const char *data,
    int want_changed, const char *want_hdr)
{
	static char *to[] = { "a@example.com" };
	struct conf c;
	struct msgopts o;
	struct bytes wire = { 0 }, text = { 0 };
	const char *end;
	off_t before;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	run(r, what, data, strlen(data), &o, &c);
	CHECK(r->ex == EX_OK, "%s: accepted (%s)", what, r->err);
	if (r->ex != EX_OK)
		return;
	before = r->msg.size;
	CHECK(msg_to_7bit(&r->msg, r->err, sizeof(r->err)) == EX_OK,
	    "%s: msg_to_7bit succeeds", what);
	CHECK((r->msg.size != before) == want_changed, "%s: %s", what,
	    want_changed ? "re-encoded" : "left alone");
	CHECK(msg_send(&r->msg, put_collect, &wire) == 0 &&
	    unstuff(&wire, &text) == 0 && (off_t)text.len == r->msg.size,
	    "%s: size %lld is what is sent after it", what,
	    (long long)r->msg.size);
	CHECK(wire_is_clean(&wire), "%s: still CRLF only, no long line", what);
	end = mem_find(text.p, text.len, S("\r\n\r\n"));
	if (want_hdr != NULL)
		CHECK(end != NULL && mem_find(text.p, (size_t)(end - text.p) +
		    2, want_hdr, strlen(want_hdr)) != NULL, "%s: sends \"%s\"",
		    what, want_hdr);
	free(wire.p);
	free(text.p);
}

static void
test_to_7bit(void)
{
	struct result r;

	to_7bit(&r, "8-bit text", "Subject: x\n\nsch\xc3\xb6n = ja\n", 1,
	    "Content-Type: text/plain; charset=utf-8\r\n");
	CHECK(r.msg.eightbit == 0, "8-bit text: nothing 8-bit left");
	CHECK_STR(r.msg.note, "MIME headers added for the 8-bit body "
	    "(charset utf-8); body converted to quoted-printable: the "
	    "smarthost does not offer 8BITMIME", "8-bit text: note");
	result_free(&r);
	to_7bit(&r, "8-bit text, CTE", "Content-Transfer-Encoding: 8bit\n\n"
	    "sch\xc3\xb6n\n", 1, "Content-Transfer-Encoding: "
	    "quoted-printable\r\n");
	result_free(&r);
	to_7bit(&r, "latin-1 text", "Subject: x\n\ncaf\xe9\n", 1,
	    "Content-Type: text/plain; charset=unknown-8bit\r\n");
	result_free(&r);
	to_7bit(&r, "7-bit text", "Subject: x\n\nplain\n", 0, NULL);
	CHECK(r.msg.note == NULL, "7-bit text: no note");
	result_free(&r);
	to_7bit(&r, "8-bit header only", "Subject: \xc3\xbc\n\nplain\n", 0,
	    NULL);
	CHECK(r.msg.eightbit == 1, "8-bit header only: still 8-bit");
	result_free(&r);
	to_7bit(&r, "base64 body", "Content-Transfer-Encoding: base64\n\n"
	    "w7w=\n\xff\n", 0, NULL);
	result_free(&r);
	to_7bit(&r, "multipart", "Content-Type: multipart/mixed; "
	    "boundary=b\n\n--b\n\n\xc3\xbc\n--b--\n", 0, NULL);
	result_free(&r);
}

/* ---- the queue's copy: msg_write and msg_load --------------------------- */

static int
same_bytes(const struct bytes *a, const struct bytes *b)
{
	return a->len == b->len && (a->len == 0 ||
	    memcmp(a->p, b->p, a->len) == 0);
}

/* The whole file, read from offset 0. */
static void
file_bytes(int fd, struct bytes *b)
{
	char buf[8192];
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		bytes_add(b, buf, (size_t)n);
		off += n;
	}
	if (n == -1) {
		perror("pread");
		exit(2);
	}
	if (b->p == NULL)
		bytes_add(b, "", 0);
}

/*
 * Write src's queue copy to a new file, check it is the DATA content
 * unstuffed (sent holds that, as run() left it), and load it into dst.
 * The file is closed before returning: dst must hold its own descriptor.
 */
static int
reload(const char *what, const struct msg *src, const struct bytes *sent,
    struct msg *dst)
{
	struct bytes file = { 0 };
	char err[ERRLEN] = "";
	int fd, ex;

	fd = input_file("", 0);
	CHECK(msg_write(src, fd) == 0, "%s: msg_write succeeds", what);
	file_bytes(fd, &file);
	CHECK(same_bytes(&file, sent) && (off_t)file.len == src->size,
	    "%s: the queue's copy is the DATA content unstuffed (%zu octets)",
	    what, file.len);
	ex = msg_load(dst, fd, src->body8, src->body_notutf8, err,
	    sizeof(err));
	(void)close(fd);
	CHECK(ex == EX_OK, "%s: msg_load succeeds (%s)", what, err);
	free(file.p);
	return ex;
}

/*
 * msg_read, msg_write, msg_load, msg_send: the same bytes as msg_send.
 * Returns the header block's size, for the cases about it.
 */
static off_t
roundtrip(const char *what, const char *data, size_t len, int dotend)
{
	static char *to[] = { "a@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;
	struct bytes wire = { 0 };
	struct msg m;
	off_t hsize;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, dotend, to, 1);
	run(&r, what, data, len, &o, &c);
	CHECK(r.ex == EX_OK, "%s: accepted (%s)", what, r.err);
	if (r.ex == EX_OK && reload(what, &r.msg, &r.text, &m) == EX_OK) {
		CHECK(msg_send(&m, put_collect, &wire) == 0 &&
		    same_bytes(&wire, &r.wire), "%s: the loaded copy sends "
		    "the same %zu octets", what, r.wire.len);
		CHECK(m.size == r.msg.size && m.eightbit == r.msg.eightbit &&
		    m.nhdrs == r.msg.nhdrs, "%s: same size %lld, 8-bit flag "
		    "%d, %zu fields", what, (long long)r.msg.size,
		    r.msg.eightbit, r.msg.nhdrs);
		CHECK(m.sender == NULL && m.nrcpts == 0 && m.note == NULL,
		    "%s: no envelope loaded", what);
		msg_free(&m);
	}
	hsize = r.msg.size - r.msg.bodylen - 2;
	free(wire.p);
	result_free(&r);
	return hsize;
}

static const struct {
	const char	*what;
	const char	*data;
	size_t		 len;
	int		 dotend;
} rt_cases[] = {
	{ "rt plain", S("Subject: plain\n\nhello\n"), 0 },
	{ "rt CRLF input", S("Subject: crlf\r\nTo: a@example.com\r\n\r\n"
	    "line 1\r\nline 2\r\n"), 0 },
	{ "rt CR input", S("Subject: cr\r\rone\rtwo\r"), 0 },
	{ "rt no final line break", S("Subject: x\n\nno newline"), 0 },
	{ "rt empty body", S("Subject: x\n\n"), 0 },
	{ "rt empty input", S(""), 0 },
	{ "rt no header", S("just a body line\nand another\n"), 0 },
	{ "rt folded fields", S("Subject: a\n b\n\tc\nX-Empty:\nX-WSP: x\n "
	    "\n\nbody\n"), 0 },
	{ "rt blank lines first", S("Subject: x\n\n\n\n  indented\n\n"), 0 },
	{ "rt utf-8 body", S("Subject: x\n\nsch\xc3\xb6n\n"), 0 },
	{ "rt latin-1 body", S("Subject: x\n\ncaf\xe9\n"), 0 },
	{ "rt 8-bit header", S("Subject: \xc3\xbc\n\nplain\n"), 0 },
	{ "rt lone dots, -i", S("Subject: x\n\n.\n..\n.x\n. \nend\n."), 0 },
	{ "rt lone dot ends", S("Subject: x\n\n..\n.x\n.\nignored\n"), 1 },
	{ "rt field starting with a dot", S(".Subject: odd\n\nbody\n"), 0 },
	{ "rt NUL in body", S("Subject: x\n\na\0b\n"), 0 },
	{ "rt multipart 8-bit", S("Content-Type: multipart/mixed; "
	    "boundary=b\n\n--b\n\n\xc3\xbc\n--b--\n"), 0 },
	{ "rt base64 body", S("Content-Transfer-Encoding: base64\n\n"
	    "w7w=\n\xff\n"), 0 },
};

/* Bodies and header blocks bigger than a 64 KiB chunk, long lines. */
static void
test_roundtrip_big(void)
{
	static const char pad[] = "X-Pad: 0123456789012345678901234567890123"
	    "456789012345678901234567890123456789012345678901234567\n";
	struct bytes in = { 0 };
	size_t i;

	bytes_add(&in, S("Subject: long line\n\n"));
	for (i = 0; i < 2000; i++)
		bytes_add(&in, i % 7 == 6 ? " " : "x", 1);
	bytes_add(&in, S("\nshort\n"));
	(void)roundtrip("rt long line (quoted-printable)", in.p, in.len, 0);

	in.len = 0;
	bytes_add(&in, S("Content-Type: multipart/mixed; boundary=b\n\n--b\n\n"));
	for (i = 0; i < 2500; i++)
		bytes_add(&in, "y", 1);
	bytes_add(&in, S("\n--b--\n"));
	(void)roundtrip("rt long line in multipart (folded)", in.p, in.len, 0);

	in.len = 0;
	bytes_add(&in, S("Subject:"));
	for (i = 0; i < 600; i++)
		bytes_add(&in, S(" word"));
	bytes_add(&in, S("\n\nbody\n"));
	(void)roundtrip("rt long header (folded)", in.p, in.len, 0);

	/* A dot line starting exactly at the second 64 KiB of the body. */
	in.len = 0;
	bytes_add(&in, S("Subject: big\r\n\r\n"));
	fill_lines(&in, 65536, "\r\n");
	bytes_add(&in, S(".dot at the chunk boundary\r\n"));
	fill_lines(&in, 300000, "\r\n");
	(void)roundtrip("rt 360 KB body", in.p, in.len, 0);

	in.len = 0;
	for (i = 0; i < 1000; i++)
		bytes_add(&in, pad, strlen(pad));
	bytes_add(&in, S("\nbody\n"));
	(void)roundtrip("rt 100 KB header block", in.p, in.len, 0);

	/* Under msg_read's 1 MiB (CRLF counted), over it once rewritten. */
	in.len = 0;
	for (i = 0; i < 1024 * 1024 / sizeof(pad); i++)
		bytes_add(&in, pad, strlen(pad));
	bytes_add(&in, S("\nbody\n"));
	CHECK(roundtrip("rt header block near 1 MiB", in.p, in.len, 0) >
	    1024 * 1024, "rt header block near 1 MiB: over 1 MiB once "
	    "rewritten, and loaded");
	free(in.p);
}

static void
test_roundtrip(void)
{
	size_t i;

	for (i = 0; i < N(rt_cases); i++)
		(void)roundtrip(rt_cases[i].what, rt_cases[i].data,
		    rt_cases[i].len, rt_cases[i].dotend);
	test_roundtrip_big();
}

/* msg_to_7bit on the loaded copy: what it does on the original. */
static void
test_roundtrip_7bit(void)
{
	static const struct {
		const char	*what;
		const char	*data;
		int		 changed;
	} cases[] = {
		{ "7bit rt utf-8", "Subject: x\n\nsch\xc3\xb6n = ja\n", 1 },
		{ "7bit rt latin-1", "Subject: x\n\ncaf\xe9\n", 1 },
		{ "7bit rt CTE 8bit", "Content-Transfer-Encoding: 8bit\n\n"
		    "\xc3\xbc\n", 1 },
		{ "7bit rt 7-bit", "Subject: x\n\nplain\n", 0 },
		{ "7bit rt multipart", "Content-Type: multipart/mixed; "
		    "boundary=b\n\n--b\n\n\xc3\xbc\n--b--\n", 0 },
	};
	static char *to[] = { "a@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;
	struct bytes w1 = { 0 }, w2 = { 0 };
	struct msg m;
	size_t i;
	int ex1, ex2;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	for (i = 0; i < N(cases); i++) {
		run(&r, cases[i].what, cases[i].data, strlen(cases[i].data),
		    &o, &c);
		if (r.ex != EX_OK || reload(cases[i].what, &r.msg, &r.text,
		    &m) != EX_OK) {
			CHECK(0, "%s: read and reloaded (%s)", cases[i].what,
			    r.err);
			result_free(&r);
			continue;
		}
		ex1 = msg_to_7bit(&r.msg, r.err, sizeof(r.err));
		ex2 = msg_to_7bit(&m, r.err, sizeof(r.err));
		w1.len = w2.len = 0;
		CHECK(ex1 == EX_OK && ex2 == EX_OK &&
		    msg_send(&r.msg, put_collect, &w1) == 0 &&
		    msg_send(&m, put_collect, &w2) == 0 && same_bytes(&w1, &w2),
		    "%s: loaded copy sends the same after msg_to_7bit",
		    cases[i].what);
		CHECK(m.size == r.msg.size && m.eightbit == r.msg.eightbit &&
		    m.body8 == r.msg.body8, "%s: same size and flags",
		    cases[i].what);
		CHECK((m.bodyoff == 0) == cases[i].changed, "%s: %s",
		    cases[i].what, cases[i].changed ? "re-encoded into a "
		    "body file from offset 0" : "body left in the file");
		msg_free(&m);
		result_free(&r);
	}
	free(w1.p);
	free(w2.p);
}

/* Queue files written by hand: what msg_load takes and refuses. */
static const struct {
	const char	*what;
	const char	*data;
	size_t		 len;
	int		 body8;
	int		 ex;
	const char	*err;		/* in the error message */
	size_t		 nhdrs;		/* when loaded: */
	off_t		 bodyoff;
	int		 eightbit;
} load_cases[] = {
	{ "load one field", S("Subject: x\r\n\r\nbody\r\n"), 0, EX_OK, NULL,
	    1, 14, 0 },
	{ "load no fields", S("\r\nbody\r\n"), 0, EX_OK, NULL, 0, 2, 0 },
	{ "load empty body", S("Subject: x\r\n\r\n"), 0, EX_OK, NULL, 1, 14,
	    0 },
	{ "load empty line body", S("Subject: x\r\n\r\n\r\n"), 0, EX_OK, NULL,
	    1, 14, 0 },
	{ "load folds", S("Subject: a\r\n b\r\n\tc\r\n \r\nTo: d\r\n\r\nb\r\n"),
	    0, EX_OK, NULL, 2, 32, 0 },
	{ "load CRLF CRLF in the body", S("A: 1\r\n\r\n\r\n\r\nB: 2\r\n"), 0,
	    EX_OK, NULL, 1, 8, 0 },
	{ "load 8-bit field", S("Subject: \xc3\xbc\r\n\r\nb\r\n"), 0, EX_OK,
	    NULL, 1, 15, 1 },
	{ "load 8-bit body", S("Subject: x\r\n\r\nb\r\n"), 1, EX_OK, NULL, 1,
	    14, 1 },
	{ "load dot lines", S(".A: 1\r\n\r\n.\r\n..\r\n"), 0, EX_OK, NULL, 1,
	    9, 0 },
	{ "load empty file", S(""), 0, EX_DATAERR, "no empty line", 0, 0, 0 },
	{ "load no empty line", S("Subject: x\r\n"), 0, EX_DATAERR,
	    "no empty line", 0, 0, 0 },
	{ "load cut in a field", S("Subject: x"), 0, EX_DATAERR,
	    "no empty line", 0, 0, 0 },
	{ "load cut in the empty line", S("Subject: x\r\n\r"), 0, EX_DATAERR,
	    "no empty line", 0, 0, 0 },
	{ "load LF lines", S("Subject: x\n\nbody\n"), 0, EX_DATAERR,
	    "no empty line", 0, 0, 0 },
	{ "load body cut", S("Subject: x\r\n\r\nbody"), 0, EX_DATAERR,
	    "does not end with CRLF", 0, 0, 0 },
	{ "load body cut in CRLF", S("Subject: x\r\n\r\nbody\r"), 0,
	    EX_DATAERR, "does not end with CRLF", 0, 0, 0 },
	{ "load 1-octet body", S("Subject: x\r\n\r\n\n"), 0, EX_DATAERR,
	    "does not end with CRLF", 0, 0, 0 },
	{ "load fold first", S(" Subject: x\r\n\r\nb\r\n"), 0, EX_DATAERR,
	    "line 1 ", 0, 0, 0 },
	{ "load no colon", S("A: 1\r\nno colon\r\n\r\nb\r\n"), 0, EX_DATAERR,
	    "line 2 of the message file is not a header field", 0, 0, 0 },
	{ "load empty name", S(": x\r\n\r\nb\r\n"), 0, EX_DATAERR,
	    "not a header field", 0, 0, 0 },
	{ "load bare LF", S("A: 1\nB: 2\r\n\r\nb\r\n"), 0, EX_DATAERR,
	    "line 1 of the message file holds a NUL, CR or LF", 0, 0, 0 },
	{ "load bare CR", S("A: 1\r\nB: 2\r3\r\n\r\nb\r\n"), 0, EX_DATAERR,
	    "line 2 ", 0, 0, 0 },
	{ "load NUL in a fold", S("A: 1\r\n x\0y\r\n\r\nb\r\n"), 0,
	    EX_DATAERR, "line 2 ", 0, 0, 0 },
};

/* msg_load's answer to data; the loaded message is sent and checked. */
static void
load_one(const char *what, const char *data, size_t len, int body8,
    int want_ex, const char *want_err, size_t nhdrs, off_t bodyoff,
    int eightbit)
{
	struct bytes wire = { 0 }, text = { 0 };
	struct msg m;
	char err[ERRLEN] = "";
	int fd, ex;

	fd = input_file(data, len);
	ex = msg_load(&m, fd, body8, 0, err, sizeof(err));
	(void)close(fd);
	CHECK(ex == want_ex && (want_err == NULL ||
	    strstr(err, want_err) != NULL), "%s: %s (%s)", what,
	    want_ex == EX_OK ? "loaded" : "refused", err);
	if (ex != EX_OK) {
		CHECK(m.bodyfd == -1 && m.nhdrs == 0 && m.hdrs == NULL,
		    "%s: nothing held after the error", what);
		msg_free(&m);
		return;
	}
	CHECK(m.nhdrs == nhdrs && m.bodyoff == bodyoff &&
	    m.bodylen == (off_t)len - bodyoff && m.size == (off_t)len &&
	    m.eightbit == eightbit, "%s: %zu fields, body at %lld, size %lld, "
	    "8-bit %d", what, m.nhdrs, (long long)m.bodyoff,
	    (long long)m.size, m.eightbit);
	CHECK(msg_send(&m, put_collect, &wire) == 0 &&
	    unstuff(&wire, &text) == 0 && text.len == len &&
	    memcmp(text.p, data, len) == 0 && wire_is_clean(&wire),
	    "%s: sends the file, dot-stuffed", what);
	msg_free(&m);
	msg_free(&m);
	free(wire.p);
	free(text.p);
}

/* Fields of n octets in all: lines "X:aaa...\r\n" of 100 (n % 100 > 3). */
static void
fill_fields(struct bytes *b, size_t n)
{
	size_t i, start = b->len;

	fill_lines(b, n, "\r\n");
	for (i = start; i < b->len; i += 100)
		memcpy(b->p + i, "X:", 2);
}

/* The 2 MiB cap and the block's end where 64 KiB reads meet. */
static void
test_load_limits(void)
{
	const size_t cap = 2 * 1024 * 1024;
	struct bytes in = { 0 };
	char what[80], err[ERRLEN];
	struct msg m;
	size_t at, k;
	int fds[2];

	fill_fields(&in, cap);
	bytes_add(&in, S("\r\nbody\r\n"));
	load_one("load 2 MiB of fields", in.p, in.len, 0, EX_OK, NULL,
	    (cap + 99) / 100, (off_t)cap + 2, 0);
	in.len = 0;
	fill_fields(&in, cap + 1);
	bytes_add(&in, S("\r\nbody\r\n"));
	load_one("load 2 MiB + 1 of fields", in.p, in.len, 0, EX_DATAERR,
	    "larger than 2 MiB", 0, 0, 0);
	in.len = 0;
	fill_fields(&in, 3 * cap / 2);
	load_one("load 3 MiB, no end", in.p, in.len, 0, EX_DATAERR,
	    "larger than 2 MiB", 0, 0, 0);

	/* One folded field ending at "at", CRLF CRLF right after it. */
	for (at = 65530; at <= 65538; at++) {
		in.len = 0;
		bytes_add(&in, S("X: "));
		fill_lines(&in, at - 1, "\r\n");
		in.len -= 2;
		for (k = 3; k < in.len; k++)
			if (in.p[k - 2] == '\r' && in.p[k - 1] == '\n')
				in.p[k] = ' ';
		bytes_add(&in, S("\r\n\r\nbody\r\n"));
		(void)snprintf(what, sizeof(what), "load block end at %zu", at);
		load_one(what, in.p, in.len, 0, EX_OK, NULL, 1, (off_t)at + 4,
		    0);
	}
	free(in.p);

	if (pipe(fds) == -1) {
		perror("pipe");
		exit(2);
	}
	CHECK(msg_load(&m, fds[0], 0, 0, err, sizeof(err)) == EX_IOERR,
	    "load from a pipe: EX_IOERR (%s)", err);
	(void)close(fds[0]);
	(void)close(fds[1]);
}

/* ENOSPC and other write errors come back as errno. */
static void
test_write_errors(void)
{
	static char *to[] = { "a@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;
	struct bytes in = { 0 };
	int fd;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	bytes_add(&in, S("Subject: x\n\n"));
	fill_lines(&in, 200000, "\n");
	run(&r, "write errors", in.p, in.len, &o, &c);
	if ((fd = open("/dev/full", O_WRONLY)) != -1) {
		errno = 0;
		CHECK(msg_write(&r.msg, fd) == -1 && errno == ENOSPC,
		    "msg_write to /dev/full: -1, ENOSPC (%s)", strerror(errno));
		(void)close(fd);
	} else
		CHECK(1, "# SKIP /dev/full: %s", strerror(errno));
	fd = input_file("", 0);
	(void)close(fd);
	errno = 0;
	CHECK(msg_write(&r.msg, fd) == -1 && errno == EBADF,
	    "msg_write to a closed descriptor: -1, EBADF");
	result_free(&r);
	free(in.p);
}

/* Aliases can make the header block grow: msg_read keeps it loadable. */
static void
test_rewritten_cap(void)
{
	static char *to[] = { "a@example.com" };
	struct conf c;
	struct msgopts o;
	struct result r;
	struct msg m;
	struct bytes in = { 0 };
	size_t i;

	conf_make(&c, "me@example.com", NULL, al_basic, N(al_basic));
	opts_make(&o, 0, 0, to, 1);
	bytes_add(&in, S("Cc: ops"));
	for (i = 0; i < 40000; i++)
		bytes_add(&in, S(", ops"));
	bytes_add(&in, S("\n\nbody\n"));
	run(&r, "alias growth to 1.4 MB", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_OK && r.msg.size > 1024 * 1024,
	    "alias growth to 1.4 MB: accepted (%s)", r.err);
	if (r.ex == EX_OK && reload("alias growth to 1.4 MB", &r.msg, &r.text,
	    &m) == EX_OK)
		msg_free(&m);
	result_free(&r);

	in.len = 0;
	bytes_add(&in, S("Cc: ops"));
	for (i = 0; i < 70000; i++)
		bytes_add(&in, S(", ops"));
	bytes_add(&in, S("\n\nbody\n"));
	run(&r, "alias growth to 2.5 MB", in.p, in.len, &o, &c);
	CHECK(r.ex == EX_DATAERR && strstr(r.err, "2 MiB") != NULL,
	    "alias growth to 2.5 MB: EX_DATAERR (%s)", r.err);
	result_free(&r);
	free(in.p);
}

static void
test_load(void)
{
	size_t i;

	for (i = 0; i < N(load_cases); i++)
		load_one(load_cases[i].what, load_cases[i].data,
		    load_cases[i].len, load_cases[i].body8, load_cases[i].ex,
		    load_cases[i].err, load_cases[i].nhdrs,
		    load_cases[i].bodyoff, load_cases[i].eightbit);
	test_load_limits();
}

/* A To: field of n distinct addresses, "Subject", and a body line. */
static char *
many_rcpts(size_t n, size_t *len)
{
	char *text, *p;
	size_t i;

	if ((text = malloc(n * 24 + 64)) == NULL)
		exit(2);
	memcpy(text, "To: ", 4);
	p = text + 4;
	for (i = 0; i < n; i++)
		p += snprintf(p, 24, "%su%zu@example.com", i ? ", " : "", i);
	p += snprintf(p, 64, "\nSubject: many\n\nbody\n");
	*len = (size_t)(p - text);
	return text;
}

static void
test_max_recipients(void)
{
	static char *three[] = { "a@example.com", "b@example.com",
	    "c@example.com" };
	static char *four[] = { "a@example.com", "b@example.com",
	    "c@example.com", "d@example.com" };
	static char *dups[] = { "a@example.com, a@example.com",
	    "b@example.com", "A@example.com", "b@example.com" };
	static char *alias[] = { "ops", "root" };
	static const char msg[] = "Subject: x\n\nbody\n";
	struct timespec t0, t1;
	struct result r;
	struct msgopts o;
	struct conf c;
	char *text;
	size_t len;
	double secs;

	conf_make(&c, "me@example.com", NULL, al_basic, N(al_basic));
	c.max_rcpts = 3;
	opts_make(&o, 0, 0, three, 3);
	run(&r, "3 recipients, max 3", S(msg), &o, &c);
	CHECK(r.ex == EX_OK && r.msg.nrcpts == 3, "3 recipients, max 3: taken");
	result_free(&r);
	opts_make(&o, 0, 0, four, 4);
	run(&r, "4 recipients, max 3", S(msg), &o, &c);
	CHECK(r.ex == EX_DATAERR, "4 recipients, max 3: EX_DATAERR (%d)", r.ex);
	CHECK_STR(r.err, "at least 4 recipients; max_recipients is 3",
	    "4 recipients, max 3: message");
	result_free(&r);
	/* The same address twice is one recipient; case matters (local). */
	opts_make(&o, 0, 0, dups, 4);
	run(&r, "duplicates", S(msg), &o, &c);
	CHECK(r.ex == EX_OK && r.msg.nrcpts == 3,
	    "duplicates count once: %zu recipients", r.msg.nrcpts);
	result_free(&r);
	/* Alias targets count: ops is two, root one. */
	c.max_rcpts = 2;
	opts_make(&o, 0, 0, alias, 2);
	run(&r, "alias targets", S(msg), &o, &c);
	CHECK(r.ex == EX_DATAERR && strcmp(r.err, "at least 3 recipients; "
	    "max_recipients is 2") == 0, "alias targets count: %s", r.err);
	result_free(&r);

	/* -t: the header's recipients; 1000 taken, 1001 refused. */
	c.max_rcpts = 1000;
	opts_make(&o, 1, 0, NULL, 0);
	text = many_rcpts(1000, &len);
	run(&r, "1000 in To:", text, len, &o, &c);
	CHECK(r.ex == EX_OK && r.msg.nrcpts == 1000, "1000 in To: taken");
	result_free(&r);
	free(text);
	text = many_rcpts(1001, &len);
	run(&r, "1001 in To:", text, len, &o, &c);
	CHECK(r.ex == EX_DATAERR && strcmp(r.err, "at least 1001 recipients; "
	    "max_recipients is 1000") == 0, "1001 in To: refused: %s", r.err);
	result_free(&r);
	free(text);
	/* 0 (a struct conf not from conf_load): no limit. */
	c.max_rcpts = 0;
	text = many_rcpts(1500, &len);
	run(&r, "no limit", text, len, &o, &c);
	CHECK(r.ex == EX_OK && r.msg.nrcpts == 1500, "max_rcpts 0: no limit");
	result_free(&r);
	free(text);

	/* 40000 addresses (700 KB): refused at once, not after n * n. */
	c.max_rcpts = 1000;
	text = many_rcpts(40000, &len);
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	run(&r, "40000 in To:", text, len, &o, &c);
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(r.ex == EX_DATAERR && strstr(r.err, "max_recipients is 1000"),
	    "40000 in To: refused: %s", r.err);
	CHECK(secs < 5, "40000 in To: refused in %.2fs", secs);
	result_free(&r);
	free(text);
}

static void
test_max_size(void)
{
	static char *to[] = { "a@example.com" };
	/* Nothing to add: the size is the input's, CRLF counted. */
	static const char head[] = "From: me@example.com\n"
	    "Date: Mon, 02 Nov 2026 10:00:00 +0000\n"
	    "Message-ID: <1@example.com>\nSubject: size\n\n";
	char want[ERRLEN], *big;
	struct result r;
	struct msgopts o;
	struct conf c;
	off_t exact, pos;
	size_t n = 4 * 1024 * 1024, hlen = sizeof(head) - 1;
	int fd;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	if ((big = malloc(n)) == NULL)
		exit(2);
	memcpy(big, head, hlen);
	memset(big + hlen, 'x', 5000);
	memcpy(big + hlen + 5000, "\n", 1);
	run(&r, "max_size 0", big, hlen + 5001, &o, &c);
	CHECK(r.ex == EX_OK, "max_size 0: no limit");
	exact = r.msg.size;
	result_free(&r);
	c.max_size = exact;
	run(&r, "max_size the message's size", big, hlen + 5001, &o, &c);
	CHECK(r.ex == EX_OK && r.msg.size == exact,
	    "a message of max_size octets is taken (%lld)", (long long)exact);
	result_free(&r);
	c.max_size = exact - 1;
	run(&r, "max_size one less", big, hlen + 5001, &o, &c);
	snprintf(want, sizeof(want), "message larger than max_size (%lld "
	    "octets)", (long long)exact - 1);
	CHECK(r.ex == EX_DATAERR, "one octet over: EX_DATAERR (%d)", r.ex);
	CHECK(strncmp(r.err, want, strlen(want)) == 0, "one octet over: %s",
	    r.err);
	result_free(&r);

	/* Fields relay adds count: a message it must complete. */
	c.max_size = 100;
	run(&r, "completed", "Subject: x\n\nshort\n", 18, &o, &c);
	CHECK(r.ex == EX_DATAERR && strncmp(r.err, "message larger than "
	    "max_size (100 octets) once made ready to send (", 48) == 0,
	    "added fields count: %s", r.err);
	result_free(&r);

	/* 4 MiB, max 64 KiB: refused having read little of it. */
	memset(big + hlen, 'x', n - hlen);
	big[n - 1] = '\n';
	c.max_size = 65536;
	fd = input_file(big, n);
	memset(&r, 0, sizeof(r));
	r.ex = msg_read(&r.msg, fd, &o, &c, r.err, sizeof(r.err));
	pos = lseek(fd, 0, SEEK_CUR);
	CHECK(r.ex == EX_DATAERR && strcmp(r.err, "message larger than "
	    "max_size (65536 octets)") == 0, "4 MiB, max 64k: %s", r.err);
	CHECK(pos > 0 && pos <= 3 * 65536, "stopped reading at %lld octets",
	    (long long)pos);
	(void)close(fd);
	result_free(&r);
	/* Also with the whole message in one header line. */
	memcpy(big, "X-Long: ", 8);
	fd = input_file(big, n);
	memset(&r, 0, sizeof(r));
	r.ex = msg_read(&r.msg, fd, &o, &c, r.err, sizeof(r.err));
	CHECK(r.ex == EX_DATAERR && strcmp(r.err, "message larger than "
	    "max_size (65536 octets)") == 0, "a long header line: %s", r.err);
	(void)close(fd);
	result_free(&r);
	free(big);
}

/* `count` copies of line, then a Subject and a body of bodylen 'x'. */
static char *
repeated(const char *line, size_t count, size_t bodylen, size_t *len)
{
	size_t n = strlen(line), i;
	char *text, *p;

	if ((p = text = malloc(n * count + bodylen + 64)) == NULL)
		exit(2);
	for (i = 0; i < count; i++, p += n)
		memcpy(p, line, n);
	memcpy(p, "Subject: x\n\n", 12);
	p += 12;
	memset(p, 'x', bodylen);
	p += bodylen;
	*p++ = '\n';
	*len = (size_t)(p - text);
	return text;
}

/*
 * Fields of a big header block starting with name: hdr_count() calls
 * strstr() once a line, which ASan makes scan the rest of the block.
 */
static size_t
fields_named(const struct result *r, const char *name)
{
	size_t i, n = 0, len = strlen(name);
	const char *p = r->hdrs;

	for (i = 0; p != NULL && p[i] != '\0'; i++)
		if (p[i] == '\n' && strncasecmp(p + i + 1, name, len) == 0)
			n++;
	return n;
}

static double
seconds(const struct timespec *t0)
{
	struct timespec t1;

	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * A 1 MiB header block of tiny fields or folds must take time in
 * proportion: removing, merging or growing them one by one took minutes.
 */
static void
test_many_fields(void)
{
	static char *to[] = { "a@example.com" };
	struct timespec t0;
	struct result r;
	struct msgopts o;
	struct conf c;
	char *text;
	size_t len;
	double secs;

	conf_make(&c, "me@example.com", NULL, NULL, 0);
	opts_make(&o, 0, 0, to, 1);
	text = repeated("Bcc:\n", 170000, 4, &len);
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	run(&r, "170000 Bcc", text, len, &o, &c);
	secs = seconds(&t0);
	CHECK(r.ex == EX_OK && hdr_count(&r, "Bcc:") == 0 &&
	    hdr_count(&r, "Subject:") == 1, "170000 Bcc: fields removed");
	CHECK(secs < 10, "170000 Bcc: in %.2fs", secs);
	result_free(&r);
	free(text);

	text = repeated("Content-Transfer-Encoding: 8bit\n", 30000, 2000, &len);
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	run(&r, "30000 CTE", text, len, &o, &c);
	secs = seconds(&t0);
	CHECK(r.ex == EX_OK && hdr_count(&r, "Content-Transfer-Encoding:") == 1 &&
	    hdr_has(&r, "Content-Transfer-Encoding: quoted-printable"),
	    "30000 CTE fields: one, quoted-printable");
	CHECK(secs < 10, "30000 CTE: in %.2fs", secs);
	result_free(&r);
	free(text);

	text = repeated(" b\n", 260000, 4, &len);
	memcpy(text, "X:", 2);
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	run(&r, "260000 folds", text, len, &o, &c);
	secs = seconds(&t0);
	CHECK(r.ex == EX_OK && fields_named(&r, "X:") == 1 &&
	    r.msg.size > 1000000, "260000 folds: one field");
	CHECK(secs < 10, "260000 folds: in %.2fs", secs);
	result_free(&r);
	free(text);
}

int
main(void)
{
	unsetenv("TMPDIR");
	test_line_endings();
	test_chunk_boundaries();
	test_lone_dot();
	test_stuffing();
	test_qp();
	test_multipart();
	test_bcc();
	test_extract();
	test_aliases();
	test_sender();
	test_no_rcpts();
	test_bad_input();
	test_added_fields();
	test_long_headers();
	test_pipe();
	test_to_7bit();
	test_roundtrip();
	test_roundtrip_7bit();
	test_load();
	test_write_errors();
	test_rewritten_cap();
	test_max_recipients();
	test_max_size();
	test_many_fields();
	UNIT_END();
}
