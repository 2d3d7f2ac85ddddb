/*
 * Unit tests for queue.c: the envelope format both ways (valid envelopes
 * and their canonical form, refusals with their exact message), then the
 * queue on disk in a temporary directory: creation, locking, updates,
 * failure, removal, listing, crash leftovers.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "unit.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define S(lit)	lit, sizeof(lit) - 1	/* a literal with its NULs */
#define NOW	((time_t)1795358101)	/* 2026-11-22T14:35:01Z */

static char tmpdir[] = "/tmp/unit_queue.XXXXXX";
static char qdir[256];

/* ---- helpers ------------------------------------------------------------ */

static void
die(const char *what)
{
	perror(what);
	exit(2);
}

/* "qdir/sub" in buf. */
static const char *
qpath(char *buf, size_t size, const char *sub)
{
	snprintf(buf, size, "%s/%s", qdir, sub);
	return buf;
}

static int
exists(const char *sub)
{
	char path[512];
	struct stat st;

	return lstat(qpath(path, sizeof(path), sub), &st) == 0;
}

static int
mode_of(const char *sub)
{
	char path[512];
	struct stat st;

	if (lstat(qpath(path, sizeof(path), sub), &st) == -1)
		return -1;
	return (int)(st.st_mode & 07777);
}

static ino_t
inode_of(const char *sub)
{
	char path[512];
	struct stat st;

	if (lstat(qpath(path, sizeof(path), sub), &st) == -1)
		return 0;
	return st.st_ino;
}

/* Entries of qdir/sub other than "." and "..", or -1. */
static int
count_entries(const char *sub)
{
	char path[512];
	struct dirent *de;
	DIR *dp;
	int n = 0;

	if ((dp = opendir(qpath(path, sizeof(path), sub))) == NULL)
		return -1;
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	(void)closedir(dp);
	return n;
}

/* The whole of an open file, NUL-terminated; *lenp its length. */
static char *
fd_bytes(int fd, size_t *lenp)
{
	char *buf = NULL, *grown;
	size_t len = 0, cap = 0;
	off_t off = 0;
	ssize_t n;

	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = (len + 4096 + 1) * 2;
			if ((grown = realloc(buf, cap)) == NULL)
				die("realloc");
			buf = grown;
		}
		if ((n = pread(fd, buf + len, 4096, off)) == -1)
			die("pread");
		if (n == 0)
			break;
		len += (size_t)n;
		off += n;
	}
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

/* qdir/sub's bytes, or NULL if it cannot be opened. */
static char *
file_text(const char *sub, size_t *lenp)
{
	char path[512], *text;
	int fd;

	if ((fd = open(qpath(path, sizeof(path), sub), O_RDONLY)) == -1)
		return NULL;
	text = fd_bytes(fd, lenp);
	(void)close(fd);
	return text;
}

static void
write_file(const char *sub, const char *text, size_t len)
{
	char path[512];
	int fd;

	if ((fd = open(qpath(path, sizeof(path), sub), O_WRONLY | O_CREAT |
	    O_TRUNC, 0600)) == -1 || write(fd, text, len) != (ssize_t)len ||
	    close(fd) == -1)
		die(path);
}

static void
make_dir(const char *sub)
{
	char path[512];

	if (mkdir(qpath(path, sizeof(path), sub), 0700) == -1)
		die(path);
}

/* Set the mtime of qdir/sub to `ago` seconds in the past. */
static void
age(const char *sub, time_t ago)
{
	struct timespec ts[2];
	char path[512];

	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - ago;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (utimensat(AT_FDCWD, qpath(path, sizeof(path), sub), ts,
	    AT_SYMLINK_NOFOLLOW) == -1)
		die(path);
}

/* An unlinked temporary file holding data, at offset 0. */
static int
temp_file(const char *data, size_t len)
{
	char path[] = "/tmp/unit_queue.file.XXXXXX";
	int fd;

	if ((fd = mkstemp(path)) == -1 || unlink(path) == -1 ||
	    write(fd, data, len) != (ssize_t)len ||
	    lseek(fd, 0, SEEK_SET) == -1)
		die("temp file");
	return fd;
}

/* Can this process take qdir/sub's lock through a new open? */
static int
lockable(const char *sub)
{
	char path[512];
	int fd, ok;

	if ((fd = open(qpath(path, sizeof(path), sub), O_RDONLY)) == -1)
		return -1;
	ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
	(void)close(fd);
	return ok;
}

static int
is_hex_id(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++)
		if (strchr("0123456789abcdef", id[i]) == NULL)
			return 0;
	return i == 14;
}

/* ---- fault injection ---------------------------------------------------- */

/*
 * The test binary's own mkdirat, renameat and fsync: queue.o calls these.
 * Once armed, the call after `fault_after` good ones fails with
 * fault_errno, once; otherwise they are the system calls.
 */
enum { F_NONE, F_MKDIRAT, F_RENAMEAT, F_FSYNC };
static int fault_fn, fault_errno;
static unsigned fault_after;

static void
arm(int fn, unsigned after, int e)
{
	fault_fn = fn;
	fault_after = after;
	fault_errno = e;
}

static int
fault(int fn)
{
	if (fault_fn != fn)
		return 0;
	if (fault_after > 0) {
		fault_after--;
		return 0;
	}
	fault_fn = F_NONE;
	errno = fault_errno;
	return 1;
}

int
mkdirat(int dfd, const char *path, mode_t mode)
{
	if (fault(F_MKDIRAT))
		return -1;
	return (int)syscall(SYS_mkdirat, dfd, path, mode);
}

int
renameat(int olddfd, const char *oldpath, int newdfd, const char *newpath)
{
	if (fault(F_RENAMEAT))
		return -1;
#ifdef SYS_renameat
	return (int)syscall(SYS_renameat, olddfd, oldpath, newdfd, newpath);
#else
	return (int)syscall(SYS_renameat2, olddfd, oldpath, newdfd, newpath,
	    0);
#endif
}

int
fsync(int fd)
{
	if (fault(F_FSYNC))
		return -1;
	return (int)syscall(SYS_fsync, fd);
}

/* ---- the envelope format: valid ----------------------------------------- */

#define FULL								\
	"version 1\n"							\
	"id 6921b3c5a1f03e\n"						\
	"origin stdin\n"						\
	"uid 1000\n"							\
	"created 2026-11-22T14:35:01Z\n"				\
	"size 1234\n"							\
	"body 7bit\n"							\
	"attempts 2\n"							\
	"last-attempt 2026-11-22T14:40:01Z\n"				\
	"next-attempt 2026-11-22T14:50:01Z\n"				\
	"last-error smtp.example.com[192.0.2.25]:465: 451 4.7.1 "	\
	    "greylisted\n"						\
	"sender <alice@example.com>\n"					\
	"rcpt pending <bob@example.org> 451 4.7.1 greylisted\n"		\
	"rcpt sent <carol@example.org> 250 2.0.0 Ok: queued as 12345\n"	\
	"rcpt failed <dave@example.org> 550 5.1.1 no such user\n"

/* The fields every canonical envelope has, for an entry built by hand. */
#define HEAD(id, origin, uid, created, size, body, attempts)		\
	"version 1\nid " id "\norigin " origin "\nuid " uid		\
	"\ncreated " created "\nsize " size "\nbody " body		\
	"\nattempts " attempts "\n"

static const struct {
	const char	*what;
	const char	*text;
	const char	*canon;	/* format(parse(text)), NULL: text */
} valid[] = {
	{ "full (relay.8's example)", FULL, NULL },
	{ "minimal: version, id, created, null sender",
	    "version 1\nid x1\ncreated 2026-11-22T14:35:01Z\nsender <>\n",
	    HEAD("x1", "stdin", "0", "2026-11-22T14:35:01Z", "0", "7bit",
	    "0") "sender <>\n" },
	{ "failed entry: no rcpt, reason, null sender",
	    HEAD("6921b3c5000001", "spool bad file", "0",
	    "2026-11-22T14:35:01Z", "0", "7bit", "0")
	    "reason spool file bad file: is not a regular file\n"
	    "sender <>\n", NULL },
	{ "replies with spaces, leading and inner",
	    HEAD("r", "stdin", "1", "2026-11-22T14:35:01Z", "10", "7bit",
	    "1")
	    "sender <a@example.com>\n"
	    "rcpt sent <b@example.org> 250  two  spaces \n"
	    "rcpt pending <c@example.org>  451 leading space\n"
	    "rcpt failed <d@example.org> x\n", NULL },
	{ "rcpt with a trailing space only: no reply",
	    HEAD("r", "stdin", "1", "2026-11-22T14:35:01Z", "10", "7bit",
	    "1") "sender <a@example.com>\nrcpt sent <b@example.org> \n",
	    HEAD("r", "stdin", "1", "2026-11-22T14:35:01Z", "10", "7bit",
	    "1") "sender <a@example.com>\nrcpt sent <b@example.org>\n" },
	{ "unknown keys ignored",
	    "version 1\nx-future some value\nid u\n"
	    "created 2026-11-22T14:35:01Z\ndsn-notify NEVER\nsender <>\n"
	    "rcpt pending <b@example.org>\norcpt rfc822;b@example.org\n",
	    HEAD("u", "stdin", "0", "2026-11-22T14:35:01Z", "0", "7bit", "0")
	    "sender <>\nrcpt pending <b@example.org>\n" },
	{ "keys in another order, no final newline",
	    "rcpt sent <b@example.org> 250 ok\nsender <a@example.com>\n"
	    "attempts 3\ncreated 2026-11-22T14:35:01Z\nid o\nversion 1\n"
	    "next-attempt 2026-11-22T15:35:01Z\nuid 7",
	    HEAD("o", "stdin", "7", "2026-11-22T14:35:01Z", "0", "7bit", "3")
	    "next-attempt 2026-11-22T15:35:01Z\n"
	    "sender <a@example.com>\nrcpt sent <b@example.org> 250 ok\n" },
	{ "body 8bit, note, bounce origin",
	    HEAD("b", "bounce 6921b3c5a1f03e", "0", "2026-11-22T14:35:01Z",
	    "99", "8bit", "0") "note body re-encoded as quoted-printable\n"
	    "sender <>\nrcpt pending <alice@example.com>\n", NULL },
	{ "body 8bit-not-utf8",
	    HEAD("b", "stdin", "0", "2026-11-22T14:35:01Z", "99",
	    "8bit-not-utf8", "0") "sender <a@example.com>\n"
	    "rcpt pending <b@example.org>\n", NULL },
	{ "controls in text fields become '?'",
	    "version 1\nid c\norigin spool a\tb\ncreated "
	    "2026-11-22T14:35:01Z\nlast-error x\033[2Jy\x7f\r\n"
	    "sender <>\nrcpt failed <b@example.org> 550\tno\r\n",
	    HEAD("c", "spool a?b", "0", "2026-11-22T14:35:01Z", "0", "7bit",
	    "0") "last-error x?[2Jy??\nsender <>\n"
	    "rcpt failed <b@example.org> 550?no?\n" },
	{ "quoted local part, 8-bit reply kept",
	    HEAD("q", "stdin", "0", "2026-11-22T14:35:01Z", "0", "7bit", "0")
	    "sender <\"a b\"@example.com>\n"
	    "rcpt failed <b@example.org> 550 unzul\xc3\xa4ssig\n", NULL },
	{ "largest numbers",
	    HEAD("n", "stdin", "4294967295", "9999-12-31T23:59:59Z",
	    "1125899906842624", "7bit", "1000000") "sender <>\n", NULL },
	{ "epoch; a zero last-attempt is \"never\"",
	    HEAD("e", "stdin", "0", "1970-01-01T00:00:00Z", "0", "7bit", "0")
	    "last-attempt 1970-01-01T00:00:00Z\nsender <>\n",
	    HEAD("e", "stdin", "0", "1970-01-01T00:00:00Z", "0", "7bit", "0")
	    "sender <>\n" },
};

static void
test_parse_full(void)
{
	struct qentry e;
	char err[ERRLEN] = "";

	if (qentry_parse(&e, FULL, strlen(FULL), err, sizeof(err)) != 0) {
		CHECK(0, "full envelope parses: %s", err);
		return;
	}
	CHECK_STR(e.id, "6921b3c5a1f03e", "full: id");
	CHECK_STR(e.origin, "stdin", "full: origin");
	CHECK(e.uid == 1000, "full: uid");
	CHECK(e.created == NOW, "full: created is 2026-11-22T14:35:01Z");
	CHECK(e.size == 1234, "full: size");
	CHECK(e.body8 == 0 && e.body_notutf8 == 0, "full: body 7bit");
	CHECK(e.attempts == 2, "full: attempts");
	CHECK(e.last_attempt == NOW + 300, "full: last-attempt");
	CHECK(e.next_attempt == NOW + 900, "full: next-attempt");
	CHECK_STR(e.last_error, "smtp.example.com[192.0.2.25]:465: 451 4.7.1 "
	    "greylisted", "full: last-error");
	CHECK(e.reason == NULL && e.note == NULL, "full: no reason, no note");
	CHECK_STR(e.sender, "alice@example.com", "full: sender");
	CHECK(e.failed == 0 && e.msgfd == -1, "full: not failed, no lock");
	CHECK(e.nrcpts == 3, "full: three rcpts");
	if (e.nrcpts == 3) {
		CHECK(e.rcpts[0].state == RS_PENDING &&
		    e.rcpts[1].state == RS_SENT &&
		    e.rcpts[2].state == RS_FAILED, "full: rcpt states");
		CHECK_STR(e.rcpts[0].addr, "bob@example.org", "full: rcpt 1");
		CHECK_STR(e.rcpts[1].addr, "carol@example.org",
		    "full: rcpt 2");
		CHECK_STR(e.rcpts[2].addr, "dave@example.org", "full: rcpt 3");
		CHECK_STR(e.rcpts[1].reply, "250 2.0.0 Ok: queued as 12345",
		    "full: reply with spaces");
		CHECK_STR(e.rcpts[2].reply, "550 5.1.1 no such user",
		    "full: failed reply");
	}
	qentry_free(&e);
	CHECK(e.sender == NULL && e.rcpts == NULL && e.nrcpts == 0 &&
	    e.msgfd == -1, "qentry_free clears the entry");
	qentry_free(&e);
	CHECK(1, "qentry_free twice is harmless");
}

static void
test_parse_valid(void)
{
	struct qentry e, e2;
	char err[ERRLEN], *out, *out2;
	const char *want;
	size_t i;

	for (i = 0; i < N(valid); i++) {
		err[0] = '\0';
		if (qentry_parse(&e, valid[i].text, strlen(valid[i].text), err,
		    sizeof(err)) != 0) {
			CHECK(0, "%s: parses (%s)", valid[i].what, err);
			continue;
		}
		CHECK(1, "%s: parses", valid[i].what);
		want = valid[i].canon != NULL ? valid[i].canon : valid[i].text;
		out = qentry_format(&e);
		CHECK_STR(out, want, "%s: canonical form", valid[i].what);
		if (out != NULL && qentry_parse(&e2, out, strlen(out), err,
		    sizeof(err)) == 0) {
			out2 = qentry_format(&e2);
			CHECK_STR(out2, out, "%s: format(parse(canonical)) is "
			    "the same", valid[i].what);
			free(out2);
			qentry_free(&e2);
		} else
			CHECK(0, "%s: canonical form parses (%s)",
			    valid[i].what, err);
		free(out);
		qentry_free(&e);
	}
}

/* ---- the envelope format: refused ---------------------------------------- */

#define BASE	"version 1\nid x\ncreated 2026-11-22T14:35:01Z\n"
#define MISSING	"envelope: version, id, created or sender is missing"

static const struct {
	const char	*what;
	const char	*text;
	size_t		 len;
	const char	*err;	/* exact; a prefix if it ends in ~ */
} invalid[] = {
	{ "version 2", S("version 2\nid x\ncreated 2026-11-22T14:35:01Z\n"
	    "sender <>\n"), "envelope line 1: written by a newer relay "
	    "(format version too high)" },
	{ "version 2 after the other fields", S(BASE "sender <>\nversion 2\n"),
	    "envelope line 5: written by a newer relay (format version too "
	    "high)" },
	{ "version 0", S("version 0\nid x\n"), "envelope line 1: bad version" },
	{ "version word", S("version one\n"),
	    "envelope line 1: a number is out of range" },
	{ "version huge", S("version 99999999999999999999\n"),
	    "envelope line 1: ~" },
	{ "CRLF lines are refused", S("version 1\r\nid x\r\n"
	    "created 2026-11-22T14:35:01Z\r\nsender <>\r\n"),
	    "envelope line 1: ~" },
	{ "CRLF after the version line",
	    S("version 1\nid x\r\ncreated 2026-11-22T14:35:01Z\r\n"
	    "sender <>\r\n"), "envelope line 3: bad time" },
	{ "bad time: blank for T", S(BASE "next-attempt 2026-11-22 14:35:01Z\n"
	    "sender <>\n"), "envelope line 4: bad time" },
	{ "bad time: no Z", S("version 1\nid x\ncreated 2026-11-22T14:35:01\n"
	    "sender <>\n"), "envelope line 3: bad time" },
	{ "bad time: month 13", S("version 1\nid x\n"
	    "created 2026-13-01T00:00:00Z\nsender <>\n"),
	    "envelope line 3: bad time" },
	{ "bad time: hour 24", S(BASE "last-attempt 2026-11-22T24:00:00Z\n"),
	    "envelope line 4: bad time" },
	{ "bad time: before 1970", S("version 1\nid x\n"
	    "created 1969-12-31T23:59:59Z\n"), "envelope line 3: bad time" },
	{ "bad time: trailing text", S("version 1\nid x\n"
	    "created 2026-11-22T14:35:01Z junk\n"),
	    "envelope line 3: bad time" },
	{ "bad time: seconds since the epoch", S("version 1\nid x\n"
	    "created 1795358101\n"), "envelope line 3: bad time" },
	{ "bad time: empty", S("version 1\nid x\ncreated \n"),
	    "envelope line 3: bad time" },
	{ "bad time: negative hour", S("version 1\nid x\n"
	    "created 2026-11-22T-5:00:00Z\nsender <>\n"),
	    "envelope line 3: bad time" },
	{ "bad time: negative minute", S(BASE "next-attempt "
	    "2026-11-22T14:-1:00Z\nsender <>\n"), "envelope line 4: bad time" },
	{ "bad state word", S(BASE "sender <>\nrcpt queued <b@example.org>\n"),
	    "envelope line 5: a recipient state must be pending, sent or "
	    "failed" },
	{ "state word in capitals", S(BASE "sender <>\n"
	    "rcpt Pending <b@example.org>\n"), "envelope line 5: a recipient "
	    "state must be pending, sent or failed" },
	{ "rcpt without an address", S(BASE "sender <>\nrcpt pending\n"),
	    "envelope line 5: a recipient state must be pending, sent or "
	    "failed" },
	{ "rcpt without brackets", S(BASE "sender <>\n"
	    "rcpt pending b@example.org\n"), "envelope line 5: an address in "
	    "angle brackets is missing" },
	{ "rcpt without '>'", S(BASE "sender <>\n"
	    "rcpt pending <b@example.org\n"), "envelope line 5: an address in "
	    "angle brackets is missing" },
	{ "rcpt with two blanks before the address", S(BASE "sender <>\n"
	    "rcpt pending  <b@example.org>\n"), "envelope line 5: an address "
	    "in angle brackets is missing" },
	{ "address with a space", S(BASE "sender <>\n"
	    "rcpt pending <b c@example.org>\n"),
	    "envelope line 5: contains a space" },
	{ "address with a control", S(BASE "sender <>\n"
	    "rcpt sent <b\001c@example.org> 250 ok\n"),
	    "envelope line 5: contains a control character" },
	{ "address with a CR", S(BASE "sender <b\r@example.org>\n"),
	    "envelope line 4: contains a line break" },
	{ "address with '<'", S(BASE "sender <>\n"
	    "rcpt failed <b<c@example.org> 550 no\n"),
	    "envelope line 5: contains '<' or '>'" },
	{ "address with 8-bit octets", S(BASE "sender <>\n"
	    "rcpt pending <j\xc3\xb6rg@example.org>\n"),
	    "envelope line 5: contains non-ASCII characters (SMTPUTF8 is not "
	    "supported)" },
	{ "address too long", S(BASE "sender <>\nrcpt pending <"
	    "b@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	    "example>\n"), "envelope line 5: longer than 256 octets" },
	{ "empty recipient address", S(BASE "sender <>\nrcpt pending <>\n"),
	    "envelope line 5: ~" },
	{ "sender without brackets", S(BASE "sender a@example.com\n"),
	    "envelope line 4: an address in angle brackets is missing" },
	{ "text after the sender", S(BASE "sender <a@example.com> x\n"),
	    "envelope line 4: text after the sender" },
	{ "missing sender", S(BASE "rcpt pending <b@example.org>\n"), MISSING },
	{ "missing created", S("version 1\nid x\nsender <>\n"), MISSING },
	{ "missing version", S("id x\ncreated 2026-11-22T14:35:01Z\n"
	    "sender <>\n"), MISSING },
	{ "missing id", S("version 1\ncreated 2026-11-22T14:35:01Z\n"
	    "sender <>\n"), MISSING },
	{ "empty envelope", S(""), MISSING },
	{ "NUL octet", S(BASE "sender <>\0\n"),
	    "envelope holds a NUL octet" },
	{ "NUL octet at the end", S(BASE "sender <>\n\0"),
	    "envelope holds a NUL octet" },
	{ "a line without a space", S(BASE "sender <>\nrcpt\n"),
	    "envelope line 5: a line is not \"key value\"" },
	{ "an empty line", S("version 1\n\nid x\n"),
	    "envelope line 2: a line is not \"key value\"" },
	{ "a CR alone", S("version 1\nid x\r\n\r\n"),
	    "envelope line 3: a line is not \"key value\"" },
	{ "id empty", S("version 1\nid \n"), "envelope line 2: bad id" },
	{ "id of 32 characters", S("version 1\n"
	    "id 0123456789abcdef0123456789abcdef\n"),
	    "envelope line 2: bad id" },
	{ "uid 2^32", S(BASE "uid 4294967296\n"),
	    "envelope line 4: a number is out of range" },
	{ "uid negative", S(BASE "uid -1\n"),
	    "envelope line 4: a number is out of range" },
	{ "size 2^50 + 1", S(BASE "size 1125899906842625\n"),
	    "envelope line 4: a number is out of range" },
	{ "size 2^64", S(BASE "size 18446744073709551616\n"),
	    "envelope line 4: a number is out of range" },
	{ "size with a unit", S(BASE "size 12k\n"),
	    "envelope line 4: a number is out of range" },
	{ "attempts 1000001", S(BASE "attempts 1000001\n"),
	    "envelope line 4: a number is out of range" },
	{ "attempts empty", S(BASE "attempts \n"),
	    "envelope line 4: a number is out of range" },
};

static void
test_parse_invalid(void)
{
	struct qentry e;
	char err[ERRLEN];
	size_t i, n;
	int rv;

	for (i = 0; i < N(invalid); i++) {
		strlcpy(err, "(unset)", sizeof(err));
		rv = qentry_parse(&e, invalid[i].text, invalid[i].len, err,
		    sizeof(err));
		CHECK(rv == -1, "%s: refused", invalid[i].what);
		n = strlen(invalid[i].err);
		if (invalid[i].err[n - 1] == '~')
			CHECK(strncmp(err, invalid[i].err, n - 1) == 0 &&
			    strlen(err) > n - 1, "%s: message \"%s\"",
			    invalid[i].what, err);
		else
			CHECK_STR(err, invalid[i].err, "%s: message",
			    invalid[i].what);
		CHECK(strchr(err, '\n') == NULL, "%s: one line",
		    invalid[i].what);
		CHECK(e.sender == NULL && e.rcpts == NULL && e.origin == NULL &&
		    e.msgfd == -1, "%s: entry left empty", invalid[i].what);
		qentry_free(&e);
	}
}

/*
 * Every time parse accepts must be written back in a form parse accepts:
 * otherwise the next queue_save makes the entry unreadable.
 */
static void
test_parse_time_roundtrip(void)
{
	static const char *const times[] = {
		"9999-12-31T23:59:60Z",	/* leap second, the last year */
		"2026-02-30T00:00:00Z",	/* no such day */
		"2026-11-22T14:35:60Z",
		"1970-01-01T-1:00:00Z",	/* a negative hour: 1969 */
	};
	struct qentry e, e2;
	char text[256], err[ERRLEN], *out;
	size_t i;

	for (i = 0; i < N(times); i++) {
		snprintf(text, sizeof(text), BASE "next-attempt %s\n"
		    "sender <>\n", times[i]);
		if (qentry_parse(&e, text, strlen(text), err,
		    sizeof(err)) != 0) {
			CHECK(1, "time %s: refused", times[i]);
			continue;
		}
		out = qentry_format(&e);
		err[0] = '\0';
		CHECK(out != NULL && qentry_parse(&e2, out, strlen(out), err,
		    sizeof(err)) == 0, "time %s: accepted, so written back "
		    "readable (%s)", times[i], err);
		if (out != NULL)
			qentry_free(&e2);
		free(out);
		qentry_free(&e);
	}
}

/* qentry_format of an entry built in memory (as relay fills one). */
static void
test_format(void)
{
	struct qrcpt r[2];
	struct qentry e;
	char *out;

	memset(&e, 0, sizeof(e));
	memset(r, 0, sizeof(r));
	strlcpy(e.id, "6921b3c5a1f03e", sizeof(e.id));
	e.created = NOW;
	e.last_attempt = NOW + 1;
	e.uid = 1000;
	e.size = 5;
	e.body8 = 1;
	e.body_notutf8 = 1;
	e.sender = "";
	e.last_error = "line\r\nbreak";
	e.reason = "why\n";
	r[0].addr = "b@example.org";
	r[0].reply = "451 first\nsecond line";
	r[1].addr = "c@example.org";
	r[1].state = RS_SENT;
	e.rcpts = r;
	e.nrcpts = 2;
	e.msgfd = -1;
	out = qentry_format(&e);
	CHECK_STR(out, HEAD("6921b3c5a1f03e", "stdin", "1000",
	    "2026-11-22T14:35:01Z", "5", "8bit-not-utf8", "0")
	    "last-attempt 2026-11-22T14:35:02Z\n"
	    "last-error line??break\nreason why?\nsender <>\n"
	    "rcpt pending <b@example.org> 451 first?second line\n"
	    "rcpt sent <c@example.org>\n",
	    "format: no origin is stdin, line breaks in text become '?'");
	free(out);
}

/* ---- the queue on disk -------------------------------------------------- */

static const char message[] =
    "From: Alice <alice@example.com>\n"
    "To: bob@example.org\n"
    "Subject: queued\n"
    "\n"
    "Hello.\n"
    ".\n"
    "Bye.\n";

static void
conf_make(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->path = "/etc/relay-test.conf";
	c->host = "smtp.example.com";
	c->helo = "client.example.net";
	c->from = "alice@example.com";
}

/* A message as relay reads it, for bob and carol. */
static int
make_msg(struct msg *m, const char *what)
{
	static char *to[] = { "bob@example.org", "carol@example.org" };
	struct msgopts o;
	struct conf c;
	char err[ERRLEN] = "";
	int fd, ex;

	conf_make(&c);
	memset(&o, 0, sizeof(o));
	o.argv_rcpts = to;
	o.nargv = N(to);
	fd = temp_file(message, strlen(message));
	ex = msg_read(m, fd, &o, &c, err, sizeof(err));
	(void)close(fd);
	CHECK(ex == EX_OK, "%s: msg_read of the test message (%s)", what,
	    err);
	return ex;
}

/* The bytes msg_write gives for m. */
static char *
written(const struct msg *m, size_t *lenp)
{
	char *text;
	int fd;

	fd = temp_file("", 0);
	if (msg_write(m, fd) == -1)
		die("msg_write");
	text = fd_bytes(fd, lenp);
	(void)close(fd);
	return text;
}

static void
test_open(struct queue *q)
{
	char err[ERRLEN] = "", path[512];
	struct queue q2;
	int ex;

	snprintf(qdir, sizeof(qdir), "%s/spool", tmpdir);
	ex = queue_open(q, qdir, err, sizeof(err));
	CHECK(ex == EX_OK, "queue_open creates %s (%s)", qdir, err);
	if (ex != EX_OK)
		exit(1);
	CHECK(mode_of("") == 0700, "queue directory mode 0700 (%o)",
	    mode_of(""));
	CHECK(mode_of("tmp") == 0700 && mode_of("queue") == 0700 &&
	    mode_of("failed") == 0700, "tmp/ queue/ failed/ mode 0700");
	CHECK(count_entries("") == 3, "nothing else in the directory");
	CHECK(strcmp(q->dir, qdir) == 0 && q->fd != -1 && q->tmpfd != -1 &&
	    q->queuefd != -1 && q->failedfd != -1, "queue_open fills q");

	ex = queue_open(&q2, qdir, err, sizeof(err));
	CHECK(ex == EX_OK, "queue_open of an existing queue (%s)", err);
	queue_close(&q2);
	CHECK(q2.dir == NULL && q2.fd == -1 && q2.queuefd == -1,
	    "queue_close clears q");
	queue_close(&q2);
	CHECK(1, "queue_close twice is harmless");

	snprintf(path, sizeof(path), "%s/none/spool", tmpdir);
	err[0] = '\0';
	ex = queue_open(&q2, path, err, sizeof(err));
	CHECK(ex == EX_CANTCREAT, "queue_open under a missing directory: "
	    "EX_CANTCREAT (%d)", ex);
	CHECK(strncmp(err, path, strlen(path)) == 0 && strstr(err,
	    strerror(ENOENT)) != NULL, "... message \"%s\"", err);
	CHECK(q2.dir == NULL && q2.fd == -1, "... q left closed");
}

static void
test_new_id(void)
{
	char id[32], id2[32], want[16];
	time_t before;

	before = time(NULL);
	queue_new_id(id, sizeof(id));
	queue_new_id(id2, sizeof(id2));
	snprintf(want, sizeof(want), "%08llx", (long long)before);
	CHECK(is_hex_id(id), "queue_new_id: 14 hex digits (%s)", id);
	CHECK(strncmp(id, want, 6) == 0, "queue_new_id: starts with the time "
	    "(%s, %s)", id, want);
	CHECK(strcmp(id, id2) != 0, "queue_new_id: two ids differ");
}

static char first_id[32];

/* queue_add, locking, queue_save, queue_fail. */
static void
test_add(struct queue *q)
{
	struct qentry e, e2, e3;
	struct msg m;
	char err[ERRLEN] = "", sub[128], *msgtext, *file, *env, *fmt;
	size_t mlen, flen;
	ino_t ino;
	int ex, rv;

	if (make_msg(&m, "queue_add") != EX_OK)
		return;
	ex = queue_add(q, &m, "stdin", &e, err, sizeof(err));
	CHECK(ex == EX_OK, "queue_add (%s)", err);
	if (ex != EX_OK) {
		msg_free(&m);
		return;
	}
	strlcpy(first_id, e.id, sizeof(first_id));
	CHECK(is_hex_id(e.id), "queue_add: a 14-digit id (%s)", e.id);
	CHECK(e.msgfd != -1, "queue_add: the entry holds its message file");
	CHECK(count_entries("tmp") == 0, "queue_add: tmp/ empty");
	CHECK(count_entries("queue") == 1, "queue_add: one entry in queue/");
	snprintf(sub, sizeof(sub), "queue/%s", e.id);
	CHECK(mode_of(sub) == 0700, "queue_add: entry directory mode 0700");
	CHECK(count_entries(sub) == 2, "queue_add: message and envelope only");
	snprintf(sub, sizeof(sub), "queue/%s/message", e.id);
	CHECK(mode_of(sub) == 0600, "queue_add: message mode 0600");
	msgtext = written(&m, &mlen);
	file = file_text(sub, &flen);
	CHECK(file != NULL && flen == mlen && memcmp(file, msgtext, mlen) == 0,
	    "queue_add: message file is msg_write's output (%zu octets)",
	    flen);
	CHECK((off_t)flen == m.size && e.size == m.size,
	    "queue_add: size %lld is the file's", (long long)e.size);
	free(file);
	free(msgtext);
	CHECK(lockable(sub) == 0, "queue_add: message is flock'ed");

	snprintf(sub, sizeof(sub), "queue/%s/envelope", e.id);
	CHECK(mode_of(sub) == 0600, "queue_add: envelope mode 0600");
	env = file_text(sub, NULL);
	fmt = qentry_format(&e);
	CHECK_STR(env, fmt, "queue_add: envelope is qentry_format(e)");
	free(env);
	free(fmt);
	CHECK(e.created >= time(NULL) - 5 && e.created <= time(NULL),
	    "queue_add: created now");
	CHECK(e.uid == getuid() && e.attempts == 0 && e.last_attempt == 0 &&
	    e.next_attempt == 0 && e.failed == 0, "queue_add: fresh fields");
	CHECK_STR(e.sender, "alice@example.com", "queue_add: sender");
	CHECK_STR(e.origin, "stdin", "queue_add: origin");
	CHECK(e.nrcpts == 2 && strcmp(e.rcpts[0].addr, "bob@example.org") ==
	    0 && strcmp(e.rcpts[1].addr, "carol@example.org") == 0 &&
	    e.rcpts[0].state == RS_PENDING && e.rcpts[1].state == RS_PENDING &&
	    e.rcpts[0].reply == NULL, "queue_add: two pending rcpts");

	/* flock is per open file description: a second open conflicts. */
	rv = queue_lock(q, e.id, &e2, err, sizeof(err));
	CHECK(rv == 1, "queue_lock while queue_add's entry holds it: busy "
	    "(%d)", rv);
	CHECK(e2.msgfd == -1 && e2.sender == NULL, "... nothing loaded");
	qentry_free(&e2);
	rv = queue_peek(q, 0, e.id, &e2, err, sizeof(err));
	CHECK(rv == 0 && e2.msgfd == -1 && e2.nrcpts == 2,
	    "queue_peek reads a locked entry (%d)", rv);
	qentry_free(&e2);

	snprintf(sub, sizeof(sub), "queue/%s/message", e.id);
	ino = inode_of(sub);
	qentry_free(&e);
	CHECK(lockable(sub) == 1, "qentry_free releases the lock");
	err[0] = '\0';
	rv = queue_lock(q, first_id, &e2, err, sizeof(err));
	CHECK(rv == 0, "queue_lock after qentry_free (%d %s)", rv, err);
	if (rv != 0) {
		msg_free(&m);
		return;
	}
	CHECK(e2.msgfd != -1 && lockable(sub) == 0, "queue_lock holds it");
	CHECK(queue_lock(q, first_id, &e3, err, sizeof(err)) == 1,
	    "a second queue_lock: busy");
	qentry_free(&e3);
	CHECK_STR(e2.id, first_id, "queue_lock: id");
	CHECK_STR(e2.sender, "alice@example.com", "queue_lock: sender");
	CHECK_STR(e2.origin, "stdin", "queue_lock: origin");
	CHECK(e2.size == m.size && e2.uid == getuid() && e2.attempts == 0 &&
	    e2.failed == 0 && e2.body8 == 0, "queue_lock: same fields");
	CHECK(e2.nrcpts == 2 && strcmp(e2.rcpts[1].addr,
	    "carol@example.org") == 0, "queue_lock: same rcpts");

	/* queue_save: a new envelope, the message and its lock untouched. */
	e2.attempts = 1;
	e2.last_attempt = NOW;
	e2.next_attempt = NOW + 300;
	e2.last_error = strdup("smtp.example.com[127.0.0.1]:465: 451 later");
	e2.rcpts[0].state = RS_SENT;
	e2.rcpts[0].reply = strdup("250 2.0.0 Ok: queued as 1");
	e2.rcpts[1].reply = strdup("451 4.7.1 greylisted");
	err[0] = '\0';
	ex = queue_save(q, &e2, err, sizeof(err));
	CHECK(ex == 0, "queue_save (%s)", err);
	snprintf(sub, sizeof(sub), "queue/%s/envelope.new", first_id);
	CHECK(!exists(sub), "queue_save: no envelope.new left");
	snprintf(sub, sizeof(sub), "queue/%s/envelope", first_id);
	env = file_text(sub, NULL);
	fmt = qentry_format(&e2);
	CHECK_STR(env, fmt, "queue_save: envelope is the new one");
	CHECK(env != NULL && strstr(env, "\nattempts 1\n") != NULL &&
	    strstr(env, "\nrcpt sent <bob@example.org> 250 2.0.0 Ok: queued "
	    "as 1\n") != NULL, "queue_save: attempts and states written");
	free(env);
	free(fmt);
	snprintf(sub, sizeof(sub), "queue/%s/message", first_id);
	CHECK(inode_of(sub) == ino, "queue_save: message file unchanged");
	CHECK(lockable(sub) == 0, "queue_save: still locked");
	rv = queue_peek(q, 0, first_id, &e3, err, sizeof(err));
	CHECK(rv == 0 && e3.attempts == 1 && e3.next_attempt == NOW + 300 &&
	    e3.nrcpts == 2 && e3.rcpts[0].state == RS_SENT &&
	    e3.rcpts[1].state == RS_PENDING && e3.rcpts[1].reply != NULL &&
	    strcmp(e3.rcpts[1].reply, "451 4.7.1 greylisted") == 0,
	    "queue_peek reads the saved envelope");
	qentry_free(&e3);

	/* queue_fail: into failed/ with the reason. */
	e2.reason = strdup("all recipients failed");
	err[0] = '\0';
	ex = queue_fail(q, &e2, err, sizeof(err));
	CHECK(ex == 0, "queue_fail (%s)", err);
	CHECK(e2.failed == 1, "queue_fail: entry marked failed");
	snprintf(sub, sizeof(sub), "queue/%s", first_id);
	CHECK(!exists(sub), "queue_fail: gone from queue/");
	snprintf(sub, sizeof(sub), "failed/%s/message", first_id);
	CHECK(inode_of(sub) == ino, "queue_fail: message in failed/");
	CHECK(lockable(sub) == 0, "queue_fail: still locked");
	CHECK(count_entries("tmp") == 0, "queue_fail: tmp/ empty");
	rv = queue_lock(q, first_id, &e3, err, sizeof(err));
	CHECK(rv == 1, "queue_lock of a failed entry: gone (%d)", rv);
	qentry_free(&e3);

	/* queue_save of a failed entry writes in failed/. */
	e2.attempts = 7;
	err[0] = '\0';
	CHECK(queue_save(q, &e2, err, sizeof(err)) == 0,
	    "queue_save in failed/ (%s)", err);
	snprintf(sub, sizeof(sub), "failed/%s/envelope.new", first_id);
	CHECK(!exists(sub), "queue_save in failed/: no envelope.new");
	qentry_free(&e2);

	rv = queue_peek(q, 1, first_id, &e3, err, sizeof(err));
	CHECK(rv == 0, "queue_peek in failed/ (%d %s)", rv, err);
	if (rv == 0) {
		CHECK_STR(e3.reason, "all recipients failed",
		    "queue_peek in failed/: reason");
		CHECK(e3.failed == 1 && e3.attempts == 7 && e3.msgfd == -1,
		    "queue_peek in failed/: failed, saved fields, no lock");
	}
	qentry_free(&e3);
	rv = queue_peek(q, 0, first_id, &e3, err, sizeof(err));
	CHECK(rv == 1, "queue_peek in queue/ of a failed entry: gone (%d)",
	    rv);
	qentry_free(&e3);
	msg_free(&m);
}

static void
test_ids(struct queue *q)
{
	static const char *const want[] = {
		"00000001000002", "6921b3c5000001", "6921b3c5000003",
	};
	struct qentry e;
	struct msg m;
	char err[ERRLEN] = "", **ids;
	size_t n, i;
	int ok;

	ok = queue_ids(q, 1, &ids, &n, err, sizeof(err)) == 0 && n == 1 &&
	    strcmp(ids[0], first_id) == 0;
	CHECK(ok, "queue_ids(failed) lists the failed entry");
	if (n > 0)
		queue_ids_free(ids, n);
	ok = queue_ids(q, 0, &ids, &n, err, sizeof(err)) == 0 && n == 0;
	CHECK(ok, "queue_ids(queue) empty (%zu)", n);
	if (n > 0)
		queue_ids_free(ids, n);

	if (make_msg(&m, "queue_ids") != EX_OK)
		return;
	for (i = N(want); i-- > 0;) {
		err[0] = '\0';
		CHECK(queue_add_as(q, &m, "stdin", want[i], getuid(), &e, err,
		    sizeof(err)) == EX_OK && strcmp(e.id, want[i]) == 0,
		    "queue_add_as %s (%s)", want[i], err);
		qentry_free(&e);
	}
	make_dir("queue/.hidden");
	make_dir("queue/.6921b3c5000000");
	ok = queue_ids(q, 0, &ids, &n, err, sizeof(err)) == 0;
	CHECK(ok && n == N(want), "queue_ids: three ids, dot-names left out "
	    "(%zu)", n);
	for (i = 0; ok && i < n && i < N(want); i++)
		CHECK_STR(ids[i], want[i], "queue_ids: oldest first, #%zu", i);
	if (ok)
		queue_ids_free(ids, n);
	for (i = 0; i < N(want); i++) {
		if (queue_lock(q, want[i], &e, err, sizeof(err)) == 0)
			(void)queue_remove(q, &e, err, sizeof(err));
		qentry_free(&e);
	}
	rmdir(qpath(err, sizeof(err), "queue/.hidden"));
	rmdir(qpath(err, sizeof(err), "queue/.6921b3c5000000"));
	CHECK(count_entries("queue") == 0, "queue_ids: cleaned up");
	msg_free(&m);
}

static void
test_remove(struct queue *q)
{
	struct qentry e, e2;
	struct msg m;
	char err[ERRLEN] = "", sub[128];
	int ex;

	if (make_msg(&m, "queue_remove") != EX_OK)
		return;
	ex = queue_add(q, &m, "stdin", &e, err, sizeof(err));
	CHECK(ex == EX_OK, "queue_add for removal (%s)", err);
	msg_free(&m);
	if (ex != EX_OK)
		return;
	/* A crash leftover under the same name must not be in the way. */
	snprintf(sub, sizeof(sub), "tmp/%s", e.id);
	make_dir(sub);
	snprintf(sub, sizeof(sub), "tmp/%s/envelope.new", e.id);
	write_file(sub, "x", 1);
	err[0] = '\0';
	ex = queue_remove(q, &e, err, sizeof(err));
	CHECK(ex == 0, "queue_remove (%s)", err);
	CHECK(count_entries("queue") == 0, "queue_remove: queue/ empty");
	CHECK(count_entries("tmp") == 0, "queue_remove: tmp/ empty");
	CHECK(queue_lock(q, e.id, &e2, err, sizeof(err)) == 1,
	    "queue_lock after queue_remove: gone");
	qentry_free(&e2);
	qentry_free(&e);
}

/* Entries made by hand: what queue_lock says about broken ones. */
static void
test_lock_errors(struct queue *q)
{
	static const struct {
		const char	*what;
		const char	*envelope;	/* NULL: no file */
		const char	*err;		/* NULL: returns 1 */
	} cases[] = {
		{ "garbage", "garbage\n",
		    "envelope line 1: a line is not \"key value\"" },
		{ "version 2", "version 2\n", "envelope line 1: written by a "
		    "newer relay (format version too high)" },
		{ "other id", "version 1\nid 6921b3c5ffffff\n"
		    "created 2026-11-22T14:35:01Z\nsender <>\n",
		    "envelope says id 6921b3c5ffffff" },
		{ "no envelope", NULL, "envelope: No such file or directory" },
	};
	static const char id[] = "6921b3c5bad000";
	struct qentry e;
	char err[ERRLEN], sub[128];
	size_t i;
	int rv;

	rv = queue_lock(q, "6921b3c5000404", &e, err, sizeof(err));
	CHECK(rv == 1, "queue_lock of a missing id: 1 (%d)", rv);
	qentry_free(&e);
	strlcpy(err, "", sizeof(err));
	rv = queue_lock(q, "../queue", &e, err, sizeof(err));
	CHECK(rv == -1 && err[0] != '\0', "queue_lock of \"../queue\": "
	    "refused (%d %s)", rv, err);
	qentry_free(&e);
	rv = queue_lock(q, ".hidden", &e, err, sizeof(err));
	CHECK(rv == -1, "queue_lock of a dot-name: refused (%d)", rv);
	qentry_free(&e);

	snprintf(sub, sizeof(sub), "queue/%s", id);
	make_dir(sub);
	snprintf(sub, sizeof(sub), "queue/%s/message", id);
	write_file(sub, "Subject: x\r\n\r\nbody\r\n", 20);
	for (i = 0; i < N(cases); i++) {
		snprintf(sub, sizeof(sub), "queue/%s/envelope", id);
		if (cases[i].envelope != NULL)
			write_file(sub, cases[i].envelope,
			    strlen(cases[i].envelope));
		else
			(void)unlink(qpath(err, sizeof(err), sub));
		strlcpy(err, "(unset)", sizeof(err));
		rv = queue_lock(q, id, &e, err, sizeof(err));
		CHECK(rv == -1, "queue_lock, envelope %s: -1 (%d)",
		    cases[i].what, rv);
		CHECK_STR(err, cases[i].err, "queue_lock, envelope %s: "
		    "message", cases[i].what);
		CHECK(e.msgfd == -1 && e.sender == NULL,
		    "queue_lock, envelope %s: entry empty", cases[i].what);
		qentry_free(&e);
		snprintf(sub, sizeof(sub), "queue/%s/message", id);
		CHECK(lockable(sub) == 1, "queue_lock, envelope %s: not left "
		    "locked", cases[i].what);
		rv = queue_peek(q, 0, id, &e, err, sizeof(err));
		CHECK(rv == -1, "queue_peek, envelope %s: -1", cases[i].what);
		qentry_free(&e);
	}
	CHECK(exists(sub), "a broken entry is left alone");
	/* Clean up by hand: queue_remove needs a loaded entry. */
	(void)unlink(qpath(err, sizeof(err), sub));
	snprintf(sub, sizeof(sub), "queue/%s", id);
	(void)rmdir(qpath(err, sizeof(err), sub));
	CHECK(count_entries("queue") == 0, "broken entry cleaned up");
}

static void
test_add_as(struct queue *q)
{
	static const char id[] = "6921b3c5abcdef";
	struct qentry e, e2;
	struct msg m;
	char err[ERRLEN] = "", sub[128], *before, *after;
	int ex;

	if (make_msg(&m, "queue_add_as") != EX_OK)
		return;
	ex = queue_add_as(q, &m, "spool cron.1", id, getuid(), &e, err,
	    sizeof(err));
	CHECK(ex == EX_OK && strcmp(e.id, id) == 0, "queue_add_as %s (%s)",
	    id, err);
	CHECK_STR(e.origin, "spool cron.1", "queue_add_as: origin");
	snprintf(sub, sizeof(sub), "queue/%s/envelope", id);
	before = file_text(sub, NULL);

	strlcpy(err, "", sizeof(err));
	ex = queue_add_as(q, &m, "stdin", id, getuid(), &e2, err,
	    sizeof(err));
	CHECK(ex != EX_OK, "queue_add_as with an id taken in queue/ fails "
	    "(%d)", ex);
	CHECK(strstr(err, strerror(EEXIST)) != NULL, "... EEXIST in \"%s\"",
	    err);
	CHECK(e2.msgfd == -1 && e2.sender == NULL, "... entry left empty");
	CHECK(count_entries("tmp") == 0 && count_entries("queue") == 1,
	    "... nothing left in tmp/ or queue/");
	after = file_text(sub, NULL);
	CHECK_STR(after, before, "... the entry there is untouched");
	snprintf(sub, sizeof(sub), "queue/%s/message", id);
	CHECK(lockable(sub) == 0, "... and still locked by its owner");
	free(after);
	free(before);
	qentry_free(&e2);

	/* Taken in failed/. */
	ex = queue_fail(q, &e, err, sizeof(err));
	CHECK(ex == 0, "queue_fail for the next case (%s)", err);
	qentry_free(&e);
	strlcpy(err, "", sizeof(err));
	ex = queue_add_as(q, &m, "stdin", id, getuid(), &e2, err,
	    sizeof(err));
	CHECK(ex != EX_OK && strstr(err, strerror(EEXIST)) != NULL,
	    "queue_add_as with an id taken in failed/: EEXIST (%d \"%s\")",
	    ex, err);
	CHECK(count_entries("tmp") == 0 && count_entries("queue") == 0 &&
	    exists("failed/6921b3c5abcdef/envelope"),
	    "... nothing left in tmp/, the entry still in failed/");
	qentry_free(&e2);

	/* Taken in tmp/: another run is building it, or a crash left it. */
	make_dir("tmp/6921b3c5abcd00");
	write_file("tmp/6921b3c5abcd00/message", "x", 1);
	strlcpy(err, "", sizeof(err));
	ex = queue_add_as(q, &m, "stdin", "6921b3c5abcd00", getuid(), &e2,
	    err, sizeof(err));
	CHECK(ex != EX_OK && strstr(err, strerror(EEXIST)) != NULL,
	    "queue_add_as with an id taken in tmp/: EEXIST (%d \"%s\")", ex,
	    err);
	CHECK(exists("tmp/6921b3c5abcd00/message") &&
	    count_entries("queue") == 0, "... tmp/ entry untouched");
	qentry_free(&e2);
	(void)unlink(qpath(err, sizeof(err), "tmp/6921b3c5abcd00/message"));
	(void)rmdir(qpath(err, sizeof(err), "tmp/6921b3c5abcd00"));

	/*
	 * An id queue_lock and queue_ids would never see (spool.c takes the
	 * id from a ".relay-ID" name in the spool directory).
	 */
	strlcpy(err, "", sizeof(err));
	ex = queue_add_as(q, &m, "stdin", ".x", getuid(), &e2, err,
	    sizeof(err));
	CHECK(ex != EX_OK && !exists("queue/.x"), "queue_add_as refuses the "
	    "id \".x\", which queue_ids and queue_lock ignore (%d)", ex);
	if (ex == EX_OK)
		(void)queue_remove(q, &e2, err, sizeof(err));
	qentry_free(&e2);
	CHECK(count_entries("tmp") == 0 && count_entries("queue") == 0,
	    "queue_add_as \".x\": nothing left behind");
	msg_free(&m);
}

static void
test_add_failed(struct queue *q)
{
	static const char bytes[] = "not a message\n\0binary\n";
	struct qentry e;
	char err[ERRLEN] = "", sub[128], *text, *fmt;
	size_t len;
	int ex, fd;

	ex = queue_add_failed(q, "6921b3c5f00001", getuid(), -1, "spool fifo",
	    "spool file fifo: is not a regular file", err, sizeof(err));
	CHECK(ex == EX_OK, "queue_add_failed without bytes (%s)", err);
	CHECK(count_entries("tmp") == 0 && count_entries("queue") == 0,
	    "queue_add_failed: only in failed/");
	text = file_text("failed/6921b3c5f00001/message", &len);
	CHECK(text != NULL && len == 0, "queue_add_failed: empty message");
	free(text);
	CHECK(lockable("failed/6921b3c5f00001/message") == 1,
	    "queue_add_failed: not left locked");
	if (queue_peek(q, 1, "6921b3c5f00001", &e, err, sizeof(err)) == 0) {
		CHECK_STR(e.reason, "spool file fifo: is not a regular file",
		    "queue_add_failed: reason");
		CHECK_STR(e.origin, "spool fifo", "queue_add_failed: origin");
		CHECK(e.sender != NULL && e.sender[0] == '\0' &&
		    e.nrcpts == 0 && e.uid == getuid() && e.failed == 1,
		    "queue_add_failed: null sender, no rcpt");
		fmt = qentry_format(&e);
		text = file_text("failed/6921b3c5f00001/envelope", NULL);
		CHECK_STR(text, fmt, "queue_add_failed: canonical envelope");
		free(text);
		free(fmt);
	} else
		CHECK(0, "queue_peek of queue_add_failed's entry (%s)", err);
	qentry_free(&e);

	fd = temp_file(bytes, sizeof(bytes) - 1);
	ex = queue_add_failed(q, "6921b3c5f00002", getuid(), fd, "spool bad",
	    "spool file bad: no recipient", err, sizeof(err));
	(void)close(fd);
	CHECK(ex == EX_OK, "queue_add_failed with bytes (%s)", err);
	text = file_text("failed/6921b3c5f00002/message", &len);
	CHECK(text != NULL && len == sizeof(bytes) - 1 &&
	    memcmp(text, bytes, len) == 0, "queue_add_failed: the bytes kept "
	    "(%zu)", len);
	free(text);
	if (queue_peek(q, 1, "6921b3c5f00002", &e, err, sizeof(err)) == 0)
		CHECK(e.size == (off_t)sizeof(bytes) - 1 && e.nrcpts == 0 &&
		    strcmp(e.reason, "spool file bad: no recipient") == 0,
		    "queue_add_failed with bytes: size %lld, reason",
		    (long long)e.size);
	else
		CHECK(0, "queue_peek of the second failed entry (%s)", err);
	qentry_free(&e);

	strlcpy(err, "", sizeof(err));
	ex = queue_add_failed(q, "6921b3c5f00002", getuid(), -1, "spool x",
	    "why", err, sizeof(err));
	CHECK(ex != EX_OK && strstr(err, strerror(EEXIST)) != NULL,
	    "queue_add_failed with a taken id: EEXIST (%d \"%s\")", ex, err);
	text = file_text("failed/6921b3c5f00002/message", &len);
	CHECK(text != NULL && len == sizeof(bytes) - 1, "... the failed "
	    "entry there is untouched");
	free(text);
	CHECK(count_entries("tmp") == 0, "... nothing left in tmp/");
	snprintf(sub, sizeof(sub), "failed/%s", "6921b3c5f00002");
	CHECK(count_entries(sub) == 2, "failed entry: message and envelope");
}

/*
 * Every step of queue_add that can fail: the right exit code, the errno
 * named, nothing left in tmp/ or queue/.
 */
static void
test_add_faults(struct queue *q)
{
	static const struct {
		const char	*what;
		int		 fn;
		int		 err;
		int		 ex;
	} cases[] = {
		{ "mkdir ENOSPC", F_MKDIRAT, ENOSPC, EX_TEMPFAIL },
		{ "mkdir EDQUOT", F_MKDIRAT, EDQUOT, EX_TEMPFAIL },
		{ "mkdir EROFS", F_MKDIRAT, EROFS, EX_CANTCREAT },
		{ "rename EIO", F_RENAMEAT, EIO, EX_TEMPFAIL },
		{ "fsync EIO", F_FSYNC, EIO, EX_TEMPFAIL },
		{ "fsync ENOSPC", F_FSYNC, ENOSPC, EX_TEMPFAIL },
	};
	struct qentry e;
	struct msg m;
	char err[ERRLEN], sub[128], failed[128], *text;
	unsigned after;
	size_t i;
	int ex;

	if (make_msg(&m, "faults") != EX_OK)
		return;
	for (i = 0; i < N(cases); i++) {
		for (after = 0; after < 20; after++) {
			strlcpy(err, "", sizeof(err));
			arm(cases[i].fn, after, cases[i].err);
			ex = queue_add(q, &m, "stdin", &e, err, sizeof(err));
			if (fault_fn != F_NONE) {	/* all calls made */
				arm(F_NONE, 0, 0);
				CHECK(ex == EX_OK, "%s: queue_add succeeds "
				    "with no fault (%s)", cases[i].what, err);
				if (ex == EX_OK)
					(void)queue_remove(q, &e, err,
					    sizeof(err));
				qentry_free(&e);
				break;
			}
			CHECK(ex == cases[i].ex, "%s at call %u: exit %d (%d)",
			    cases[i].what, after + 1, cases[i].ex, ex);
			CHECK(strstr(err, strerror(cases[i].err)) != NULL,
			    "%s at call %u: message \"%s\"", cases[i].what,
			    after + 1, err);
			CHECK(e.msgfd == -1 && e.sender == NULL, "%s at call "
			    "%u: entry left empty", cases[i].what, after + 1);
			CHECK(count_entries("queue") == 0 &&
			    count_entries("tmp") == 0, "%s at call %u: nothing "
			    "left behind", cases[i].what, after + 1);
			qentry_free(&e);
		}
	}

	/* A failed update leaves the entry as it was. */
	ex = queue_add(q, &m, "stdin", &e, err, sizeof(err));
	CHECK(ex == EX_OK, "queue_add for the update faults (%s)", err);
	msg_free(&m);
	if (ex != EX_OK)
		return;
	snprintf(sub, sizeof(sub), "queue/%s/envelope", e.id);
	snprintf(failed, sizeof(failed), "failed/%s", e.id);
	e.attempts = 5;
	arm(F_RENAMEAT, 0, EIO);
	strlcpy(err, "", sizeof(err));
	ex = queue_save(q, &e, err, sizeof(err));
	CHECK(ex == EX_TEMPFAIL && strstr(err, e.id) != NULL &&
	    strstr(err, strerror(EIO)) != NULL, "queue_save, rename EIO: "
	    "fails (%d \"%s\")", ex, err);
	text = file_text(sub, NULL);
	CHECK(text != NULL && strstr(text, "\nattempts 0\n") != NULL,
	    "queue_save, rename EIO: the old envelope stays");
	free(text);
	arm(F_RENAMEAT, 1, EIO);		/* queue_save's rename works */
	e.reason = strdup("given up");
	ex = queue_fail(q, &e, err, sizeof(err));
	CHECK(ex != 0 && e.failed == 0, "queue_fail, rename EIO: fails, "
	    "entry not marked failed (%d)", ex);
	CHECK(exists(sub) && !exists(failed),
	    "queue_fail, rename EIO: still in queue/");
	arm(F_RENAMEAT, 0, EIO);
	ex = queue_remove(q, &e, err, sizeof(err));
	CHECK(ex != 0 && exists(sub), "queue_remove, rename EIO: fails, "
	    "still in queue/ (%d)", ex);
	arm(F_NONE, 0, 0);
	ex = queue_remove(q, &e, err, sizeof(err));
	CHECK(ex == 0 && count_entries("queue") == 0 &&
	    count_entries("tmp") == 0, "queue_remove after the faults (%s)",
	    err);
	qentry_free(&e);
}

static void
test_tidy(struct queue *q)
{
	struct conf c;	/* failed_max_age 0: failed/ is t_keep.sh's */
	char path[512];
	int fd;

	memset(&c, 0, sizeof(c));
	c.log = LOGTO_STDERR;

	make_dir("tmp/old");
	write_file("tmp/old/message", "m", 1);
	write_file("tmp/old/envelope", "e", 1);
	write_file("tmp/old/envelope.new", "n", 1);
	age("tmp/old", 3600 + 60);
	make_dir("tmp/fresh");
	write_file("tmp/fresh/message", "m", 1);
	age("tmp/fresh", 3600 - 60);
	make_dir("tmp/locked");
	write_file("tmp/locked/message", "m", 1);
	age("tmp/locked", 2 * 3600);
	make_dir("tmp/empty");
	age("tmp/empty", 2 * 3600);
	write_file("tmp/scratch", "s", 1);
	age("tmp/scratch", 2 * 3600);
	write_file("tmp/newscratch", "s", 1);
	if ((fd = open(qpath(path, sizeof(path), "tmp/locked/message"),
	    O_RDONLY)) == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1)
		die("lock tmp/locked");

	queue_tidy(q, &c);
	CHECK(!exists("tmp/old"), "queue_tidy removes an hour-old tmp/ entry");
	CHECK(exists("tmp/fresh/message"), "queue_tidy keeps a fresh one");
	CHECK(exists("tmp/locked/message"), "queue_tidy keeps a locked one");
	CHECK(!exists("tmp/empty"), "queue_tidy removes an old empty one");
	CHECK(!exists("tmp/scratch"), "queue_tidy removes an old plain file");
	CHECK(exists("tmp/newscratch"), "queue_tidy keeps a fresh plain file");
	(void)close(fd);
	queue_tidy(q, &c);
	CHECK(!exists("tmp/locked"), "queue_tidy removes it once unlocked");
	age("tmp/fresh", 3600 + 1);
	queue_tidy(q, &c);
	CHECK(!exists("tmp/fresh"), "queue_tidy removes it once old");
	CHECK(count_entries("tmp") == 1, "queue_tidy: only the fresh file "
	    "left");
	(void)unlink(qpath(path, sizeof(path), "tmp/newscratch"));
	CHECK(count_entries("queue") == 0, "queue_tidy leaves queue/ alone");
}

/* Remove what the tests left: tmp/, queue/, failed/ and their entries. */
static void
cleanup(void)
{
	static const char *const subs[] = { "tmp", "queue", "failed" };
	static const char *const files[] = {
		"message", "envelope", "envelope.new"
	};
	char path[512], sub[1024];
	struct dirent *de;
	size_t i, j;
	DIR *dp;

	for (i = 0; i < N(subs); i++) {
		if ((dp = opendir(qpath(path, sizeof(path), subs[i]))) == NULL)
			continue;
		while ((de = readdir(dp)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			for (j = 0; j < N(files); j++) {
				snprintf(sub, sizeof(sub), "%s/%s/%s", path,
				    de->d_name, files[j]);
				(void)unlink(sub);
			}
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			(void)rmdir(sub);
		}
		(void)closedir(dp);
		(void)rmdir(path);
	}
	(void)rmdir(qdir);
	if (rmdir(tmpdir) == -1)
		printf("# %s left: %s\n", tmpdir, strerror(errno));
}

int
main(void)
{
	struct queue q;

	unsetenv("TMPDIR");
	test_parse_full();
	test_parse_valid();
	test_parse_invalid();
	test_parse_time_roundtrip();
	test_format();

	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp");
	test_open(&q);
	test_new_id();
	test_add(&q);
	test_ids(&q);
	test_remove(&q);
	test_lock_errors(&q);
	test_add_as(&q);
	test_add_failed(&q);
	test_add_faults(&q);
	test_tidy(&q);
	queue_close(&q);
	cleanup();
	UNIT_END();
}
