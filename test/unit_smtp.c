/*
 * Unit tests for the SMTP reply parser and the shared helpers, and for
 * the limits on what a server may send, against canned servers.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "relay.h"
#include "unit.h"

static struct reply r;
static char err[ERRLEN];

/* Feed lines until one completes the reply; returns the last result. */
static int
feed(const char *const *lines)
{
	int rv = 0;

	reply_init(&r);
	err[0] = '\0';
	for (; *lines != NULL; lines++)
		if ((rv = reply_feed(&r, *lines, strlen(*lines), err,
		    sizeof err)) != 0)
			break;
	return rv;
}

static void
test_replies(void)
{
	const char *one[] = { "250 2.0.0 Ok: queued as 123", NULL };
	const char *bare[] = { "354", NULL };
	const char *multi[] = { "250-mail.example.com", "250-PIPELINING",
	    "250-SIZE 1000", "250 AUTH PLAIN LOGIN", NULL };
	const char *partial[] = { "250-first", NULL };
	const char *mixed[] = { "250-first", "251 second", NULL };
	const char *letter[] = { "25O ok", NULL };
	const char *short2[] = { "25", NULL };
	const char *digit1[] = { "650 nope", NULL };
	const char *digit2[] = { "260 nope", NULL };
	const char *sep[] = { "250x", NULL };
	const char *empty[] = { "", NULL };
	const char *http[] = { "HTTP/1.1 400 Bad Request", NULL };

	CHECK(feed(one) == 1 && r.code == 250 && r.lines == 1,
	    "single-line reply completes with its code");
	CHECK_STR(r.text, "250 2.0.0 Ok: queued as 123", "text kept");
	CHECK(feed(bare) == 1 && r.code == 354,
	    "a bare code is a complete reply (RFC 5321 4.2)");
	CHECK(feed(multi) == 1 && r.code == 250 && r.lines == 4,
	    "multi-line reply completes on the line with a space");
	CHECK(strstr(r.text, "250-PIPELINING\n250-SIZE 1000") != NULL,
	    "multi-line text joined by newlines");
	CHECK(feed(partial) == 0 && r.lines == 1,
	    "continuation line leaves the reply incomplete");
	CHECK(feed(mixed) == -1 && strstr(err, "250 to 251") != NULL,
	    "changing code inside a reply is refused: %s", err);
	CHECK(feed(letter) == -1 && strstr(err, "malformed reply \"25O ok\""),
	    "letter in the code is refused: %s", err);
	CHECK(feed(short2) == -1, "two-digit reply refused");
	CHECK(feed(digit1) == -1, "first digit outside 2-5 refused");
	CHECK(feed(digit2) == -1, "second digit outside 0-5 refused");
	CHECK(feed(sep) == -1, "code followed by a letter refused");
	CHECK(feed(empty) == -1, "empty line refused");
	CHECK(feed(http) == -1, "HTTP banner refused: %s", err);
}

static void
test_reply_limits(void)
{
	char line[1000];
	int i, rv = 0;

	memset(line, 'x', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	memcpy(line, "250-", 4);
	reply_init(&r);
	for (i = 0; i < 200 && rv == 0; i++)
		rv = reply_feed(&r, line, strlen(line), err, sizeof err);
	CHECK(rv == -1 && strstr(err, "reply longer than") != NULL,
	    "an endless reply is cut off at REPLY_MAX: %s", err);
	CHECK(i * sizeof line < 2 * REPLY_MAX, "cut off early enough");

	/* A NUL would hide the rest of the line, and the lines after it. */
	reply_init(&r);
	rv = reply_feed(&r, "250-a\0b", 7, err, sizeof err);
	CHECK(rv == -1 && strstr(err, "malformed reply \"250-a\\000b\"") !=
	    NULL, "a NUL in a reply line: malformed (%s)", err);
}

static void
test_sanitise(void)
{
	static const struct {
		const char	*in;
		size_t		 inlen, outsize;
		const char	*want, *what;
	} cases[] = {
		{ "ok text", 7, 64, "ok text", "printable text unchanged" },
		{ "a\033[2Jb\r\n", 8, 64, "a\\033[2Jb\\015\\012",
		    "escapes made visible" },
		{ "a\0b", 3, 64, "a\\000b", "NUL does not truncate" },
		{ "back\\slash", 10, 64, "back\\\\slash", "backslash doubled" },
		{ "abcdef", 6, 4, "abc", "output bounded and terminated" },
		{ "\001\002", 2, 4, "",
		    "an escape that does not fit is dropped whole" },
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		sanitise(out, cases[i].outsize, cases[i].in, cases[i].inlen);
		CHECK_STR(out, cases[i].want, "%s", cases[i].what);
	}
	/* What sanitise made, shown again: its escapes stay single. */
	sanitise_kept(out, sizeof out, "C:\\\\012dir \\033");
	CHECK_STR(out, "C:\\\\012dir \\033", "sanitise_kept keeps escapes");
	sanitise_kept(out, sizeof out, "a\033b");
	CHECK_STR(out, "a\\033b", "sanitise_kept escapes a raw ESC");
}

static void
test_base64(void)
{
	/* RFC 4648 10, and the AUTH PLAIN token of "user", "secret". */
	static const struct {
		const char	*in;
		size_t		 inlen;
		const char	*want;
	} vectors[] = {
		{ "", 0, "" }, { "f", 1, "Zg==" }, { "fo", 2, "Zm8=" },
		{ "foo", 3, "Zm9v" }, { "foob", 4, "Zm9vYg==" },
		{ "fooba", 5, "Zm9vYmE=" }, { "foobar", 6, "Zm9vYmFy" },
		{ "\0user\0secret", 12, "AHVzZXIAc2VjcmV0" },
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		CHECK(b64_encode(out, sizeof out, vectors[i].in,
		    vectors[i].inlen) == (ssize_t)strlen(vectors[i].want),
		    "Base64 of %zu octets: length", vectors[i].inlen);
		CHECK_STR(out, vectors[i].want, "Base64 of %zu octets",
		    vectors[i].inlen);
	}
	CHECK(b64_encode(out, 5, "abc", 3) == 4, "exact fit accepted");
	CHECK(b64_encode(out, 4, "abc", 3) == -1, "too small refused");
	CHECK(b64_encode(out, 0, "", 0) == -1, "zero-sized buffer refused");
}

static void
test_reply_lines(void)
{
	int i, rv = 0;

	reply_init(&r);
	for (i = 0; i < 999 && rv == 0; i++)
		rv = reply_feed(&r, "250-x", 5, err, sizeof err);
	rv = rv == 0 ? reply_feed(&r, "250 x", 5, err, sizeof err) : -1;
	CHECK(rv == 1 && r.lines == 1000, "a reply of 1000 lines is taken");
	reply_init(&r);
	for (i = 0, rv = 0; i < 5000 && rv == 0; i++)
		rv = reply_feed(&r, "250-", 4, err, sizeof err);
	CHECK(rv == -1 && i == 1001, "line 1001 is refused (at %d)", i);
	CHECK_STR(err, "reply of more than 1000 lines",
	    "1001 lines: message");
}

/*
 * A server on 127.0.0.1 that sends canned bytes, whatever it is told,
 * then reads until the client goes.  Returns its pid; *port is set.
 */
static pid_t
canned_server(const char *bytes, size_t len, int *port)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	char buf[4096];
	pid_t pid;
	int s, c;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(s, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(s, 1) == -1 ||
	    getsockname(s, (struct sockaddr *)&sin, &slen) == -1 ||
	    (pid = fork()) == -1) {
		perror("canned_server");
		exit(2);
	}
	if (pid == 0) {
		alarm(20);
		if ((c = accept(s, NULL, NULL)) == -1 ||
		    write_all(c, bytes, len) == -1)
			_exit(1);
		while (read(c, buf, sizeof buf) > 0)
			;
		_exit(0);
	}
	(void)close(s);
	*port = ntohs(sin.sin_port);
	return pid;
}

/*
 * smtp_open() against the canned bytes: plain, no AUTH.  Returns its
 * exit code (EX_OK: the session opened and was closed again).
 */
static int
session(const char *bytes, size_t len, char *errbuf, size_t errlen)
{
	struct conf c;
	struct delivery d;
	struct smtp *s;
	pid_t pid;
	int port, ex = EX_OK, status, i;

	pid = canned_server(bytes, len, &port);
	memset(&c, 0, sizeof c);
	c.path = "unit.conf";
	c.host = "127.0.0.1";
	c.port = port;
	c.tls = TLS_NONE;
	c.helo = "client.example.org";
	for (i = 0; i < TMO_COUNT; i++)
		c.timeout[i] = 10;
	errbuf[0] = '\0';
	if ((s = smtp_open(&c, &d, &ex, errbuf, errlen)) != NULL)
		smtp_close(s);
	(void)waitpid(pid, &status, 0);
	return s != NULL ? EX_OK : ex;
}

/* Greeting lines and replies to EHLO and QUIT, made to measure. */
static char *
canned(size_t greeting_lines, size_t long_line, size_t *len)
{
	char *b, *p;
	size_t i, size = greeting_lines * 8 + long_line + 64;

	if ((p = b = malloc(size)) == NULL)
		exit(2);
	for (i = 0; i + 1 < greeting_lines; i++) {
		memcpy(p, "220-hi\r\n", 8);
		p += 8;
	}
	memcpy(p, "220 ", 4);
	p += 4;
	if (long_line > 4) {
		memset(p, 'x', long_line - 4);
		p += long_line - 4;
	}
	memcpy(p, "\r\n250 ok\r\n221 bye\r\n", 19);
	*len = (size_t)(p - b) + 19;
	return b;
}

static void
test_session_limits(void)
{
	char e[ERRLEN], *b;
	size_t len;
	int ex;

	b = canned(1, 0, &len);
	ex = session(b, len, e, sizeof e);
	CHECK(ex == EX_OK, "canned session opens: %s", e);
	free(b);
	b = canned(1000, 0, &len);
	ex = session(b, len, e, sizeof e);
	CHECK(ex == EX_OK, "a greeting of 1000 lines: %s", e);
	free(b);
	b = canned(1001, 0, &len);
	ex = session(b, len, e, sizeof e);
	CHECK(ex == EX_PROTOCOL && strstr(e, ": reply of more than 1000 "
	    "lines to the greeting") != NULL, "1001 lines refused (%d): %s",
	    ex, e);
	free(b);
	/* conn_getline: a line of 16382 octets and CRLF fills its buffer. */
	b = canned(1, 16382, &len);
	ex = session(b, len, e, sizeof e);
	CHECK(ex == EX_OK, "a reply line of 16382 octets: %s", e);
	free(b);
	b = canned(1, 16383, &len);
	ex = session(b, len, e, sizeof e);
	CHECK(ex == EX_TEMPFAIL && strstr(e, "reply line longer than 16382 "
	    "octets") != NULL, "16383 octets refused (%d): %s", ex, e);
	free(b);
	/* 4 MiB without a line end: refused, not buffered. */
	b = canned(1, 4 << 20, &len);
	ex = session(b, len - 19, e, sizeof e);
	CHECK(ex == EX_TEMPFAIL && strstr(e, "reply line longer than 16382 "
	    "octets") != NULL, "4 MiB line refused (%d): %s", ex, e);
	free(b);
}

int
main(void)
{
	test_replies();
	test_reply_limits();
	test_sanitise();
	test_base64();
	test_reply_lines();
	test_session_limits();
	UNIT_END();
}
