/* Unit tests for the SMTP reply parser and the shared helpers. */
#include <stdlib.h>
#include <string.h>

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

int
main(void)
{
	test_replies();
	test_reply_limits();
	test_sanitise();
	test_base64();
	UNIT_END();
}
