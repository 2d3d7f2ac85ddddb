/*
 * Unit tests for addr.c: the RFC 5322 address-list parser (with the spans
 * callers rewrite headers through) and the envelope address check.
 */
#include <stdlib.h>
#include <string.h>

#include "relay.h"
#include "unit.h"

/* One expected mailbox: its address, and the text of its two spans. */
struct want {
	const char	*addr;
	const char	*mailbox;	/* text[mb_start..mb_end) */
	const char	*addrspec;	/* text[as_start..as_end) */
};

static char *
span(const char *text, size_t start, size_t end)
{
	static char out[1024];
	size_t n = end - start;

	if (end < start || n >= sizeof(out))
		return NULL;
	memcpy(out, text + start, n);
	out[n] = '\0';
	return out;
}

/* Parse text and compare every mailbox with want[]. */
static void
expect(const char *what, const char *text, const struct want *want,
    size_t nwant)
{
	struct mailbox *mbs;
	size_t i, nmbs;
	char err[ERRLEN] = "";
	int rc;

	rc = addrlist_parse(text, strlen(text), &mbs, &nmbs, err, sizeof(err));
	CHECK(rc == 0, "%s: parses (%s)", what, err);
	if (rc != 0)
		return;
	CHECK(nmbs == nwant, "%s: %zu mailboxes (want %zu)", what, nmbs,
	    nwant);
	for (i = 0; i < nmbs && i < nwant; i++) {
		CHECK_STR(mbs[i].addr, want[i].addr, "%s: #%zu addr", what, i);
		CHECK(mbs[i].mb_start <= mbs[i].as_start &&
		    mbs[i].as_end <= mbs[i].mb_end &&
		    mbs[i].mb_end <= strlen(text),
		    "%s: #%zu spans nest", what, i);
		CHECK_STR(span(text, mbs[i].mb_start, mbs[i].mb_end),
		    want[i].mailbox, "%s: #%zu mailbox span", what, i);
		CHECK_STR(span(text, mbs[i].as_start, mbs[i].as_end),
		    want[i].addrspec, "%s: #%zu addr-spec span", what, i);
	}
	addrlist_free(mbs, nmbs);
}

static void
expect_error(const char *what, const char *text, size_t len,
    const char *errwant)
{
	struct mailbox *mbs = (struct mailbox *)&mbs;
	size_t nmbs = 42;
	char err[ERRLEN] = "";
	int rc;

	rc = addrlist_parse(text, len, &mbs, &nmbs, err, sizeof(err));
	CHECK(rc == -1, "%s: refused", what);
	CHECK(mbs == NULL && nmbs == 0, "%s: no mailboxes left over", what);
	if (errwant != NULL)
		CHECK_STR(err, errwant, "%s: error text", what);
	else
		CHECK(err[0] != '\0', "%s: error says why (%s)", what, err);
	if (rc == 0)
		addrlist_free(mbs, nmbs);
}

#define N(a)	(sizeof(a) / sizeof((a)[0]))

/* A header block in the spirit of RFC 5322 appendix A, as msmtp tests. */
static void
test_appendix_a(void)
{
	static const struct want group[] = {
		{ "c@public.example", "Chris Jones <c@public.example>",
		    "c@public.example" },
		{ "joe@example.org", "joe@example.org", "joe@example.org" },
		{ "jdoe@one.test", "John <jdoe@one.test> (my dear friend)",
		    "jdoe@one.test" },
	};
	static const struct want pete[] = {
		{ "pete@silly.test", "Pete(A nice \\) chap) "
		    "<pete(his account)@silly.test(his host)>",
		    "pete(his account)@silly.test" },
	};
	static const struct want quoted[] = {
		{ "smith@home.example",
		    "\"Mary Smith: Personal Account\" <smith@home.example>",
		    "smith@home.example" },
		{ "john.q.public@example.com", "\"Joe Q. Public; the "
		    "\\\"great\\\"\" <john.q.public@example.com>",
		    "john.q.public@example.com" },
		{ "mary@x.test", "Mary Smith <mary@x.test>", "mary@x.test" },
		{ "jdoe@example.org", "jdoe@example.org", "jdoe@example.org" },
		{ "one@y.test", "Who? <one@y.test>", "one@y.test" },
		{ "boss@nil.test", "<boss@nil.test>", "boss@nil.test" },
		{ "sysservices@example.net", "\"Giant; \\\"Big\\\" Box\" "
		    "<sysservices@example.net>", "sysservices@example.net" },
	};
	static const struct want obsphrase[] = {
		{ "john.q.public@example.com",
		    "Joe Q. Public <john.q.public@example.com>",
		    "john.q.public@example.com" },
	};
	static const struct want route[] = {
		{ "user@host.test", "Routed <@node.test,@node2.test:"
		    "user@host.test>", "user@host.test" },
		{ "x@y.test", "<@a.test:x@y.test>", "x@y.test" },
	};
	static const struct want local[] = {
		{ "root", "root", "root" },
		{ "www-data", "www-data", "www-data" },
		{ "root", "root (Cron Daemon)", "root" },
		{ "alice", "Alice <alice>", "alice" },
	};
	static const struct want mixed[] = {
		{ "a@x.test", "a@x.test", "a@x.test" },
		{ "b@y.test", "B <b@y.test>", "b@y.test" },
		{ "c@z.test", "c@z.test", "c@z.test" },
	};

	expect("group, folded with CRLF",
	    " A Group:Chris Jones <c@public.example>,joe@example.org,\r\n"
	    " John <jdoe@one.test> (my dear friend);", group, N(group));
	expect("group, folded with LF",
	    "A Group:Chris Jones <c@public.example>,joe@example.org,\n"
	    "\tJohn <jdoe@one.test> (my dear friend); ", group, N(group));
	expect("empty group", " undisclosed-recipients:;", NULL, 0);
	expect("empty group with CFWS", " Undisclosed (none) recipients : ; ",
	    NULL, 0);
	expect("comments everywhere", " Pete(A nice \\) chap) "
	    "<pete(his account)@silly.test(his host)>", pete, N(pete));
	expect("quoted names with ':' ';' and '\"'",
	    "\"Mary Smith: Personal Account\" <smith@home.example>,\r\n"
	    " \"Joe Q. Public; the \\\"great\\\"\" "
	    "<john.q.public@example.com>, Mary Smith <mary@x.test>,\r\n"
	    "\tjdoe@example.org, Who? <one@y.test>, <boss@nil.test>,\r\n"
	    " \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
	    quoted, N(quoted));
	expect("obsolete phrase with a dot",
	    "Joe Q. Public <john.q.public@example.com>", obsphrase,
	    N(obsphrase));
	expect("obsolete routes dropped",
	    "Routed <@node.test,@node2.test:user@host.test>, "
	    "<@a.test:x@y.test>", route, N(route));
	expect("bare local names", "root, www-data,root (Cron Daemon),\r\n"
	    " Alice <alice>", local, N(local));
	expect("groups among mailboxes and empty elements",
	    "a@x.test,, Friends: B <b@y.test>;, ,c@z.test,", mixed,
	    N(mixed));
}

static void
test_forms(void)
{
	static const struct want qlocal[] = {
		{ "\"john doe\"@example.com", "\"john doe\"@example.com",
		    "\"john doe\"@example.com" },
	};
	static const struct want qfold[] = {
		{ "\"a  b\"@x.test", "\"a\r\n  b\"@x.test",
		    "\"a\r\n  b\"@x.test" },
	};
	static const struct want literal[] = {
		{ "user@[192.0.2.1]", "<user@[192.0.2.1]>",
		    "user@[192.0.2.1]" },
	};
	static const struct want nested[] = {
		{ "a@x.test", "(lead) a@x.test (outer (inner \\) still) done)",
		    "a@x.test" },
	};
	static const struct want obslocal[] = {
		{ "john.doe@example.com", "john . doe @ example . com",
		    "john . doe @ example . com" },
	};
	static const struct want nullpath[] = {
		{ "", "<>", "" },
	};
	static const struct want utf8[] = {
		{ "j@x.test", "J\xc3\xb6rg <j@x.test>", "j@x.test" },
	};
	static const struct want cron[] = {
		{ "a@x", "a@x", "a@x" },
		{ "b@y", "b@y", "b@y" },
	};

	expect("quoted local part keeps its quotes", "\"john doe\"@example.com",
	    qlocal, N(qlocal));
	expect("fold inside a quoted string is unfolded",
	    "\"a\r\n  b\"@x.test", qfold, N(qfold));
	expect("domain literal", "<user@[192.0.2.1]>", literal, N(literal));
	expect("nested comments", " (lead) a@x.test (outer (inner \\) still) "
	    "done)", nested, N(nested));
	expect("obsolete local part and domain with CFWS",
	    "john . doe @ example . com", obslocal, N(obslocal));
	expect("null path", "<>", nullpath, N(nullpath));
	expect("UTF-8 display name", "J\xc3\xb6rg <j@x.test>", utf8, N(utf8));
	expect("Debian cron MAILTO", "a@x,b@y", cron, N(cron));
	expect("empty text", "", NULL, 0);
	expect("only CFWS", "  (nobody)\r\n ", NULL, 0);
}

static void
test_errors(void)
{
	static const char nul[] = "a@x.test, b\0c@y.test";

	expect_error("unterminated quoted string", "a@x, \"Bob <b@y>",
	    15, "unterminated quoted string at offset 5");
	expect_error("unterminated comment", "a@x (oops (nested) <b@y>",
	    24, "unterminated comment at offset 4");
	expect_error("unbalanced ')'", "a@x) b", 6,
	    "unbalanced ')' at offset 3");
	expect_error("missing '>'", "Bob <b@y.test", 13,
	    "missing '>' for the '<' at offset 4");
	expect_error("stray '>'", "b@y.test>", 9,
	    "unexpected '>' at offset 8");
	expect_error("two addresses without a comma", "a@x.test b@y.test", 17,
	    "unexpected word at offset 9");
	expect_error("display name without address", "John Smith", 10, NULL);
	expect_error("missing domain", "a@", 2,
	    "missing domain after '@' at offset 1");
	expect_error("missing local part", "@x.test", 7,
	    "missing local part at offset 0");
	expect_error("unterminated group", "Friends: a@x.test, b@y.test", 27,
	    "unterminated group at offset 0");
	expect_error("group in a group", "G: H: a@x;;", 11, NULL);
	expect_error("';' outside a group", "a@x.test; b@y.test", 18, NULL);
	expect_error("unterminated domain literal", "a@[1.2.3.4", 10,
	    "unterminated domain literal at offset 2");
	expect_error("CRLF injection", "a@x.test\r\nRCPT TO:<evil@x.test>", 31,
	    "line break not followed by whitespace at offset 8");
	expect_error("bare LF", "a@x.test\n", 9, NULL);
	expect_error("bare CR", "a@x.test\rb", 10,
	    "bare carriage return at offset 8");
	expect_error("NUL byte", nul, sizeof(nul) - 1,
	    "unexpected byte 0x00 at offset 11");
	expect_error("dot without a word", "a.@x.test", 9, NULL);
	expect_error("control character", "a\x01@x.test", 8, NULL);
	expect_error("backslash at the end", "\"a\\", 3, NULL);
	expect_error("quoted-pair hiding a CR", "\"a\\\r\"@x", 7, NULL);
}

static void
check_ok(const char *addr)
{
	const char *why = addr_check(addr);

	CHECK(why == NULL, "addr_check accepts \"%s\" (%s)", addr,
	    why ? why : "ok");
}

static void
check_bad(const char *what, const char *addr, const char *reason)
{
	const char *why = addr_check(addr);

	CHECK(why != NULL, "addr_check refuses %s", what);
	if (reason != NULL)
		CHECK_STR(why, reason, "addr_check reason for %s", what);
}

static void
test_check(void)
{
	char local64[80], local65[80], dom255[300], whole257[300];
	char *s;

	check_ok("");
	check_ok("a@example.com");
	check_ok("first.last+tag@sub.example.com");
	check_ok("root");
	check_ok("www-data");
	check_ok("\"john doe\"@example.com");
	check_ok("\"a@b\"@example.com");
	check_ok("\"quote\\\"d\"@example.com");
	check_ok("user@[192.0.2.1]");

	memset(local64, 'l', 64);
	strlcpy(local64 + 64, "@x.test", sizeof(local64) - 64);
	check_ok(local64);
	memset(local65, 'l', 65);
	strlcpy(local65 + 65, "@x.test", sizeof(local65) - 65);
	check_bad("a 65-octet local part", local65,
	    "local part longer than 64 octets");

	/* a@ + 254 = 256 octets: the longest path allowed. */
	s = dom255;
	strlcpy(s, "a@", sizeof(dom255));
	memset(s + 2, 'd', 254);
	s[2 + 63] = s[2 + 127] = s[2 + 191] = '.';
	s[256] = '\0';
	check_ok(dom255);
	memcpy(whole257, dom255, 257);
	whole257[256] = 'd';
	whole257[257] = '\0';
	check_bad("a 257-octet address", whole257, "longer than 256 octets");
	memset(dom255 + 1, 'd', 256);
	dom255[1] = '@';
	dom255[257] = '\0';
	check_bad("a 255-octet domain plus local part", dom255,
	    "longer than 256 octets");

	check_bad("CRLF", "a@x.test\r\nRCPT TO:<b@y.test>",
	    "contains a line break");
	check_bad("LF", "a\n@x.test", "contains a line break");
	check_bad("a tab", "a\t@x.test", "contains a control character");
	check_bad("DEL", "a\x7f@x.test", "contains a control character");
	check_bad("a space", "a b@x.test", "contains a space");
	check_bad("a space in the domain", "a@x .test", "contains a space");
	check_bad("'<'", "a<b@x.test", "contains '<' or '>'");
	check_bad("'>' in a quoted local part", "\"a>\"@x.test",
	    "contains '<' or '>'");
	check_bad("non-ASCII", "j\xc3\xb6rg@x.test",
	    "contains non-ASCII characters (SMTPUTF8 is not supported)");
	check_bad("missing local part", "@x.test",
	    "missing local part before '@'");
	check_bad("missing domain", "a@", "missing domain after '@'");
	check_bad("two '@'", "a@b@x.test", "more than one '@'");
	check_bad("double dot in the local part", "a..b@x.test", NULL);
	check_bad("leading dot", ".a@x.test", NULL);
	check_bad("double dot in the domain", "a@x..test",
	    "empty label in the domain");
	check_bad("trailing dot in the domain", "a@x.test.", NULL);
	check_bad("a comma", "a,b@x.test", NULL);
	check_bad("unterminated quoted local part", "\"a@x.test", NULL);
	check_bad("text after a quoted local part", "\"a\"b@x.test", NULL);
	check_bad("bad address literal", "a@[1.2.3.4", NULL);
}

int
main(void)
{
	test_appendix_a();
	test_forms();
	test_errors();
	test_check();
	UNIT_END();
}
