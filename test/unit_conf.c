/*
 * Unit tests for conf.c and secret.c: each test writes relay.conf into a
 * fresh temporary directory (the current directory while the tests run,
 * so that messages read "relay.conf:N: ..."), loads it and checks the
 * result or the exact error message.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "test/unit.h"

#define CONF	"relay.conf"
#define PIN	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char tmpdir[] = "/tmp/unit_conf.XXXXXX";

static void
write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	FILE *fp;

	if ((fp = fopen(path, "w")) == NULL ||
	    fwrite(text, 1, len, fp) != len || fclose(fp) != 0 ||
	    chmod(path, mode) == -1) {
		perror(path);
		exit(1);
	}
}

/* Write CONF with this text and mode, then load it. */
static int
load_text(struct conf *c, const char *text, mode_t mode, char *err)
{
	write_file(CONF, text, strlen(text), mode);
	err[0] = '\0';
	return conf_load(c, CONF, err, ERRLEN);
}

static int
load(struct conf *c, const char *text, char *err)
{
	return load_text(c, text, 0600, err);
}

/* The file must be rejected with exactly this message. */
static void
expect_error(const char *text, const char *want, const char *what)
{
	struct conf c;
	char err[ERRLEN];
	int rv;

	rv = load(&c, text, err);
	CHECK(rv == -1, "%s: rejected", what);
	CHECK_STR(err, want, "%s: message", what);
	CHECK(c.host == NULL && c.path == NULL, "%s: conf left empty", what);
	conf_free(&c);
}

/* The file must be rejected with a message that starts like this. */
static void
expect_error_prefix(const char *text, const char *want, const char *what)
{
	struct conf c;
	char err[ERRLEN];
	int rv;

	rv = load(&c, text, err);
	CHECK(rv == -1, "%s: rejected", what);
	CHECK(strncmp(err, want, strlen(want)) == 0 &&
	    strlen(err) > strlen(want), "%s: message \"%s\"", what, err);
	CHECK(strchr(err, '\n') == NULL, "%s: one line", what);
	conf_free(&c);
}

static int
load_ok(struct conf *c, const char *text, const char *what)
{
	char err[ERRLEN];
	int rv;

	rv = load(c, text, err);
	CHECK(rv == 0, "%s: accepted%s%s", what, rv ? ": " : "", err);
	return rv;
}

/*
 * The file loads, but fetching the secret (as a connection would) fails
 * with exactly this message: a password_file is read only then.
 */
static void
expect_secret_error(const char *text, const char *want, const char *what)
{
	struct conf c;
	char err[ERRLEN] = "";

	if (load_ok(&c, text, what) == 0) {
		CHECK(conf_secret(&c, err, ERRLEN) == -1 && c.password == NULL,
		    "%s: fetching it fails", what);
		CHECK_STR(err, want, "%s: message", what);
	}
	conf_free(&c);
}

/* A secret file that secret_file_open must refuse with this message. */
static void
expect_open_error(const char *keyword, const char *file, const char *want,
    const char *what)
{
	char err[ERRLEN] = "";
	int fd;

	fd = secret_file_open(keyword, file, err, ERRLEN);
	CHECK(fd == -1, "%s: refused", what);
	if (fd != -1)
		(void)close(fd);
	CHECK_STR(err, want, "%s: message", what);
}

/* Load, then fetch the secret as a connection would; 0 or -1. */
static int
load_secret(struct conf *c, const char *text, const char *what)
{
	char err[ERRLEN] = "";

	if (load_ok(c, text, what) == -1)
		return -1;
	if (conf_secret(c, err, ERRLEN) == -1) {
		CHECK(0, "%s: secret fetched: %s", what, err);
		return -1;
	}
	return 0;
}

static void
test_minimal(void)
{
	struct conf c;

	if (load_ok(&c, "host smtp.example.com\n", "minimal") == -1)
		return;
	CHECK_STR(c.path, CONF, "minimal: path kept as given");
	CHECK_STR(c.host, "smtp.example.com", "minimal: host");
	CHECK(c.port == 465, "minimal: default port 465");
	CHECK(c.tls == TLS_IMPLICIT, "minimal: default tls implicit");
	CHECK(c.user == NULL && c.password == NULL, "minimal: no AUTH");
	CHECK(c.from == NULL, "minimal: no from");
	CHECK(c.domain == NULL, "minimal: no domain");
	CHECK_STR(c.ca_file, RELAY_CA_DEFAULT, "minimal: default ca_file");
	/* syslog, unless there is no socket to send it to (a container). */
	CHECK(c.log == (access("/dev/log", W_OK) == 0 ? LOGTO_SYSLOG :
	    LOGTO_STDERR), "minimal: default log syslog, else stderr");
	CHECK(c.naliases == 0 && c.aliases == NULL, "minimal: no aliases");
	CHECK(c.timeout[TMO_CONNECT] == 30, "minimal: timeout_connect 30");
	CHECK(c.timeout[TMO_GREETING] == 300, "minimal: timeout_greeting 300");
	CHECK(c.timeout[TMO_COMMAND] == 300, "minimal: timeout_command 300");
	CHECK(c.timeout[TMO_DATA_INIT] == 120,
	    "minimal: timeout_data_init 120");
	CHECK(c.timeout[TMO_DATA_BLOCK] == 180,
	    "minimal: timeout_data_block 180");
	CHECK(c.timeout[TMO_DATA_END] == 600, "minimal: timeout_data_end 600");
	/* The EHLO name is chosen per connection (names.c). */
	CHECK(c.helo == NULL, "minimal: no helo until a connection needs one");
	CHECK(c.force_from == 0 && c.set_from == FROMHDR_AUTO &&
	    c.nlocal_domains == 0, "minimal: -f overrides from, "
	    "set_from_header auto, no local_domains");
	conf_free(&c);
	CHECK(c.host == NULL && c.helo == NULL, "conf_free clears the conf");
	conf_free(&c);
	CHECK(1, "conf_free twice is harmless");
}

static void
test_syntax(void)
{
	struct conf c;

	if (load_ok(&c, "# relay\n\n   \t\n  # indented comment\r\n"
	    "\t host \t mx.example.com \t \r\n", "comments, blanks, CRLF") == 0)
		CHECK_STR(c.host, "mx.example.com", "blanks around the value");
	conf_free(&c);

	if (load_ok(&c, "host h.example\nuser me\n"
	    "password my # secret pass\n", "password with '#'") == 0)
		CHECK_STR(c.password, "my # secret pass",
		    "no trailing comments: '#' and spaces kept");
	conf_free(&c);

	if (load_ok(&c, "host h.example\nuser me\n"
	    "password \"  p#ss \\\"word\\\" \\\\ \"\n", "quoted password") == 0)
		CHECK_STR(c.password, "  p#ss \"word\" \\ ",
		    "quoted value with escapes and outer blanks");
	conf_free(&c);

	if (load_ok(&c, "host \"h.example\"\n", "quoted host") == 0)
		CHECK_STR(c.host, "h.example", "quoted plain value");
	conf_free(&c);

	expect_error("host h\nuser me\npassword \"abc\n",
	    CONF ":3: quoted value has no closing quote", "unterminated quote");
	expect_error("host h\nuser me\npassword \"a\\bc\"\n",
	    CONF ":3: quoted value: a backslash must be followed by '\"' "
	    "or '\\'", "bad escape");
	expect_error("host h\nuser me\npassword \"abc\" def\n",
	    CONF ":3: text after the closing quote", "text after quote");
	expect_error("host\n", CONF ":1: missing value for \"host\"",
	    "missing value");
	expect_error("host   \t\n", CONF ":1: missing value for \"host\"",
	    "blank value");
	expect_error("host \"\"\n", CONF ":1: missing value for \"host\"",
	    "empty quoted value");
	expect_error("port 25\n", CONF ": missing required keyword \"host\"",
	    "missing host");
	expect_error("", CONF ": missing required keyword \"host\"",
	    "empty file");
	expect_error("host a.example\nport 25\n# x\nport 587\n",
	    CONF ":4: \"port\" already set at line 2", "duplicate keyword");
	expect_error("HOST a.example\n",
	    CONF ":1: unknown keyword \"HOST\" (did you mean \"host\"?)",
	    "keywords are lowercase");
}

static void
test_unknown(void)
{
	struct conf c;
	char err[ERRLEN];
	int rv;

	expect_error("host h\nprot 25\n",
	    CONF ":2: unknown keyword \"prot\" (did you mean \"port\"?)",
	    "unknown keyword, transposition hint");
	expect_error("host h\npasword x\n",
	    CONF ":2: unknown keyword \"pasword\" (did you mean "
	    "\"password\"?)", "unknown keyword, deletion hint");
	expect_error("host h\ntimeout_conect 3\n",
	    CONF ":2: unknown keyword \"timeout_conect\" (did you mean "
	    "\"timeout_connect\"?)", "unknown keyword, long hint");
	expect_error("host h\nfrobnicate yes\n",
	    CONF ":2: unknown keyword \"frobnicate\"", "unknown, no hint");
	expect_error("host h\nfoo bar\n",
	    CONF ":2: unknown keyword \"foo\"", "short word, no wild hint");
	expect_error("host h\nx\033[2J 1\n",
	    CONF ":2: unknown keyword \"x\\033[2J\"", "keyword escaped");

	rv = load(&c, "host h\npassword=hunter2\n", err);
	CHECK(rv == -1, "key=value rejected");
	CHECK_STR(err, CONF ":2: \"password\" must be followed by a blank, "
	    "not '='", "key=value message");
	CHECK(strstr(err, "hunter2") == NULL, "key=value: secret not shown");
	conf_free(&c);
	rv = load(&c, "host h\nAuthPass=hunter2\n", err);
	CHECK(rv == -1, "ssmtp line rejected");
	CHECK_STR(err, CONF ":2: unknown keyword \"AuthPass=...\"",
	    "ssmtp line: secret not shown");
	conf_free(&c);
	expect_error("host h\nuser me\npassword = hunter2\n",
	    CONF ":3: \"password\" must be followed by a blank, not '=' "
	    "(quote a value that begins with '=')", "keyword = value");
	expect_error("host h\nuser me\npassword =hunter2\n",
	    CONF ":3: \"password\" must be followed by a blank, not '=' "
	    "(quote a value that begins with '=')", "value begins with '='");
	if (load_ok(&c, "host h\nuser me\npassword \"=hunter2\"\n",
	    "quoted value beginning with '='") == 0)
		CHECK_STR(c.password, "=hunter2", "'=' kept when quoted");
	conf_free(&c);
}

static void
test_host(void)
{
	struct conf c;
	char longhost[5 + 256 + 3];

	if (load_ok(&c, "host SMTP.Example.COM.\n", "host normalised") == 0)
		CHECK_STR(c.host, "smtp.example.com",
		    "host lowercased, root dot stripped");
	conf_free(&c);
	if (load_ok(&c, "host 192.0.2.1\ntls_fingerprint " PIN "\n", "IPv4 host") == 0)
		CHECK_STR(c.host, "192.0.2.1", "IPv4 literal kept");
	conf_free(&c);
	if (load_ok(&c, "host 2001:db8::1\ntls none\n", "IPv6 host") == 0)
		CHECK_STR(c.host, "2001:db8::1", "IPv6 literal kept");
	conf_free(&c);
	expect_error("host smtp.example.com 587\n",
	    CONF ":1: host \"smtp.example.com 587\" is not a host name or "
	    "IP address", "host with a space");
	memset(longhost, 'a', sizeof(longhost));
	memcpy(longhost, "host ", 5);
	memcpy(longhost + 5 + 256, ".\n", 3);
	expect_error(longhost, CONF ":1: host name is longer than 255 "
	    "characters", "256-character host");
	memcpy(longhost + 5 + 255, ".\n", 3);
	if (load_ok(&c, longhost, "255 characters and a root dot") == 0)
		CHECK(strlen(c.host) == 255, "255-character host kept");
	conf_free(&c);
	expect_error("host .\n",
	    CONF ":1: host \"\" is not a host name or IP address", "host .");
}

static void
test_port_tls(void)
{
	static const struct {
		const char	*text;
		int		 port;
		enum tls_mode	 tls;
	} cases[] = {
		{ "host h\n", 465, TLS_IMPLICIT },
		{ "host h\nport 465\n", 465, TLS_IMPLICIT },
		{ "host h\nport 587\n", 587, TLS_STARTTLS },
		{ "host h\nport 25\n", 25, TLS_STARTTLS },
		{ "host h\ntls implicit\n", 465, TLS_IMPLICIT },
		{ "host h\ntls starttls\n", 587, TLS_STARTTLS },
		{ "host h\ntls none\n", 25, TLS_NONE },
		{ "host h\ntls none\nport 2525\n", 2525, TLS_NONE },
		{ "host h\ntls implicit\nport 1465\n", 1465, TLS_IMPLICIT },
		{ "host h\nport 65535\n", 65535, TLS_STARTTLS },
		{ "host h\nport 1\n", 1, TLS_STARTTLS },
	};
	struct conf c;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (load_ok(&c, cases[i].text, "port/tls case") == 0)
			CHECK(c.port == cases[i].port && c.tls == cases[i].tls,
			    "port/tls %zu: port %d tls %d", i, c.port,
			    (int)c.tls);
		conf_free(&c);
	}
	expect_error("host h\nport 0\n",
	    CONF ":2: port \"0\" is too small (expected 1-65535)", "port 0");
	expect_error("host h\nport 70000\n",
	    CONF ":2: port \"70000\" is too large (expected 1-65535)",
	    "port 70000");
	expect_error("host h\nport abc\n",
	    CONF ":2: port \"abc\" is invalid (expected 1-65535)", "port abc");
	expect_error("host h\nport 25x\n",
	    CONF ":2: port \"25x\" is invalid (expected 1-65535)", "port 25x");
	expect_error("host h\ntls ssl\n",
	    CONF ":2: tls \"ssl\" is not one of implicit, starttls, none",
	    "bad tls word");
	expect_error("host h\ntls STARTTLS\n",
	    CONF ":2: tls \"STARTTLS\" is not one of implicit, starttls, none",
	    "tls words are lowercase");
}

static void
test_credentials(void)
{
	/* The mode check on a file with an inline password (NULL: accepted). */
	static const struct {
		const char	*text;
		mode_t		 mode;
		const char	*want;
	} modes[] = {
		{ "host h\nuser me\npassword s3cret\n", 0640, NULL },
		{ "host h\nuser me\npassword s3cret\n", 0644,
		    CONF ":3: password given inline but " CONF " is readable "
		    "by others (mode 0644): chmod o-rwx " CONF ", or use "
		    "password_file" },
		{ "host h\nuser me\npassword s3cret\n", 0602,
		    CONF ":3: password given inline but " CONF " is writable "
		    "by others (mode 0602): chmod o-rwx " CONF ", or use "
		    "password_file" },
		{ "host h\n", 0644, NULL },	/* no password: any mode */
	};
	struct conf c;
	char err[ERRLEN];
	size_t i;
	int rv;

	if (load_ok(&c, "host h\nuser me@example.com\npassword s3cret\n",
	    "user and password") == 0) {
		CHECK_STR(c.user, "me@example.com", "user");
		CHECK_STR(c.password, "s3cret", "password");
	}
	conf_free(&c);

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		rv = load_text(&c, modes[i].text, modes[i].mode, err);
		CHECK(rv == (modes[i].want == NULL ? 0 : -1),
		    "mode %04o: %s", (unsigned)modes[i].mode,
		    modes[i].want == NULL ? "accepted" : "rejected");
		if (modes[i].want != NULL)
			CHECK_STR(err, modes[i].want, "mode %04o message",
			    (unsigned)modes[i].mode);
		conf_free(&c);
	}

	expect_error("host h\ntls none\nuser me\npassword x\n",
	    CONF ":2: tls none cannot be combined with user (credentials "
	    "would cross the network in clear)", "tls none + user");
	expect_error("host h\npassword x\ntls none\n",
	    CONF ":3: tls none cannot be combined with password (credentials "
	    "would cross the network in clear)", "tls none + password");
	expect_error("host h\nuser me\n",
	    CONF ":2: user is set but none of password, password_file, "
	    "password_command or password_env is", "user without password");
	expect_error("host h\n\npassword x\n",
	    CONF ":3: password is set but user is not",
	    "password without user");
	expect_error("host h\nuser me\npassword x\npassword_file pw\n",
	    CONF ":4: password and password_file cannot both be set "
	    "(password at line 3)", "password + password_file");
	expect_secret_error("host h\nuser me\npassword_file nonexistent\n",
	    CONF ":3: password_file nonexistent: No such file or directory",
	    "password_file missing");
	expect_error("host h\nuser me\npassword x\npassword x\n",
	    CONF ":4: \"password\" already set at line 3", "password twice");
}

static void
test_password_file(void)
{
	struct conf c;
	char err[ERRLEN];
	int rv;

	write_file("pw", "s3 #cret\r\nsecond line\n", 22, 0600);
	if (load_secret(&c, "host h\nuser me\npassword_file pw\n",
	    "password_file") == 0)
		CHECK_STR(c.password, "s3 #cret", "first line, CRLF stripped");
	conf_free(&c);

	write_file("pw", "nonewline", 9, 0640);
	if (load_secret(&c, "host h\nuser me\npassword_file pw\n",
	    "password_file without newline, mode 0640") == 0)
		CHECK_STR(c.password, "nonewline", "last line without LF");
	conf_free(&c);

	/* The file's own mode matters, not the config file's. */
	write_file("pw", "x\n", 2, 0600);
	rv = load_text(&c, "host h\nuser me\npassword_file pw\n",
	    0644, err);
	CHECK(rv == 0 && conf_secret(&c, err, ERRLEN) == 0,
	    "password_file, config 0644 ok");
	conf_free(&c);

	write_file("pw", "\n", 1, 0600);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw: first line is empty",
	    "password_file empty line");
	write_file("pw", "", 0, 0600);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw: first line is empty",
	    "password_file empty");
	write_file("pw", "x\n", 2, 0644);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw is readable by others (mode 0644): "
	    "chmod o-rwx pw", "password_file 0644");
	write_file("pw", "a\0b\n", 4, 0600);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw: contains a NUL byte",
	    "password_file with NUL");
	write_file("pw", "ab\0", 3, 0600);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw: contains a NUL byte",
	    "password_file ending in NUL");
	expect_secret_error("host h\nuser me\npassword_file .\n",
	    CONF ":3: password_file .: not a regular file",
	    "password_file directory");
	write_file("pw", "x\n", 2, 0600);
	expect_error("host h\npassword_file pw\n",
	    CONF ":2: password_file is set but user is not",
	    "password_file without user");
	expect_error("host h\nuser me\npassword_file pw\npassword x\n",
	    CONF ":4: password and password_file cannot both be set "
	    "(password_file at line 3)", "password_file + password");
	(void)unlink("pw");
}

static void
test_addresses(void)
{
	struct conf c;

	if (load_ok(&c, "host h\nfrom relay@example.com\n"
	    "domain Example.ORG.\nhelo mx1.example.net\nca_file /etc/ca.pem\n"
	    "log stderr\n", "from, domain, helo, ca_file, log") == 0) {
		CHECK_STR(c.from, "relay@example.com", "from");
		CHECK_STR(c.domain, "example.org", "domain normalised");
		CHECK_STR(c.helo, "mx1.example.net", "helo");
		CHECK_STR(c.ca_file, "/etc/ca.pem", "ca_file");
		CHECK(c.log == LOGTO_STDERR, "log stderr");
	}
	conf_free(&c);

	expect_error("host h\nfrom root\n",
	    CONF ":2: from \"root\": not a full address (user@domain)",
	    "from without @");
	expect_error("host h\nfrom <root@example.com>\n",
	    CONF ":2: from \"<root@example.com>\": write the address without "
	    "angle brackets", "from with angle brackets");
	expect_error("host h\nfrom Root <root@example.com>\n",
	    CONF ":2: from \"Root <root@example.com>\": write the address "
	    "without angle brackets", "from with display name");
	expect_error_prefix("host h\nfrom ro\rot@example.com\n",
	    CONF ":2: from \"ro\\015ot@example.com\": ", "from with CR");
	expect_error_prefix("host h\nfrom a@b@c example.com\n",
	    CONF ":2: from \"a@b@c example.com\": ", "from with a blank");
	expect_error("host h\ndomain a@example.com\n",
	    CONF ":2: domain \"a@example.com\" is not a domain name",
	    "domain with @");
	expect_error("host h\ndomain example com\n",
	    CONF ":2: domain \"example com\" is not a domain name",
	    "domain with a blank");
	expect_error("host h\nhelo my host\n",
	    CONF ":2: helo \"my host\" is not a valid host name (no blanks, "
	    "control characters, '<' or '>')", "helo with a blank");
	expect_error("host h\nhelo <x>\n",
	    CONF ":2: helo \"<x>\" is not a valid host name (no blanks, "
	    "control characters, '<' or '>')", "helo with brackets");
	expect_error("host h\nhelo a\033b\n",
	    CONF ":2: helo \"a\\033b\" is not a valid host name (no blanks, "
	    "control characters, '<' or '>')", "helo with ESC");
	expect_error("host h\nhelo \"a\rb\"\n",
	    CONF ":2: helo \"a\\015b\" is not a valid host name (no blanks, "
	    "control characters, '<' or '>')", "helo with CR");
	expect_error("host h\nlog file\n",
	    CONF ":2: log \"file\" is not one of syslog, stderr", "bad log");
}

static void
test_aliases(void)
{
	struct conf c;
	const struct alias *a;

	if (load_ok(&c, "host h\n"
	    "alias * postmaster@example.com\n"
	    "alias root admin@example.com, ops@example.com\n"
	    "alias www\ta@example.com b@example.com,c@example.com , \n",
	    "aliases") == 0) {
		CHECK(c.naliases == 3, "three aliases");
		a = conf_alias(&c, "root");
		CHECK(a != NULL && strcmp(a->name, "root") == 0 &&
		    a->ntargets == 2, "root: exact match before catch-all");
		if (a != NULL && a->ntargets == 2) {
			CHECK_STR(a->targets[0], "admin@example.com",
			    "root target 1");
			CHECK_STR(a->targets[1], "ops@example.com",
			    "root target 2");
		}
		a = conf_alias(&c, "www");
		CHECK(a != NULL && a->ntargets == 3,
		    "www: blank and comma separated targets");
		if (a != NULL && a->ntargets == 3)
			CHECK_STR(a->targets[2], "c@example.com",
			    "www target 3");
		a = conf_alias(&c, "nobody");
		CHECK(a != NULL && strcmp(a->name, "*") == 0 &&
		    a->ntargets == 1, "unknown name: catch-all");
		a = conf_alias(&c, "Root");
		CHECK(a != NULL && strcmp(a->name, "*") == 0,
		    "names match exactly (case)");
	}
	conf_free(&c);

	if (load_ok(&c, "host h\nalias root r@example.com\n",
	    "alias without catch-all") == 0) {
		CHECK(conf_alias(&c, "root") != NULL, "root found");
		CHECK(conf_alias(&c, "daemon") == NULL, "no match: NULL");
	}
	conf_free(&c);

	expect_error("host h\nalias root a@example.com\nalias ops o@example\n"
	    "alias root b@example.com\n",
	    CONF ":4: alias \"root\" already defined at line 2",
	    "duplicate alias");
	expect_error("host h\nalias root bob\n",
	    CONF ":2: alias \"root\": target \"bob\": not a full address "
	    "(user@domain)", "alias target without @");
	expect_error("host h\nalias root a@example.com, <b@example.com>\n",
	    CONF ":2: alias \"root\": target \"<b@example.com>\": write the "
	    "address without angle brackets", "alias target in brackets");
	expect_error("host h\nalias root\n",
	    CONF ":2: alias \"root\" has no target address", "alias no target");
	expect_error("host h\nalias root , ,\n",
	    CONF ":2: alias \"root\" has no target address",
	    "alias only commas");
	expect_error("host h\nalias root@x a@example.com\n",
	    CONF ":2: alias name \"root@x\" is not a local name "
	    "(no '@', ':' or ',')", "alias name with @");
	expect_error("host h\nalias root: a@example.com\n",
	    CONF ":2: alias name \"root:\" is not a local name "
	    "(no '@', ':' or ',')", "aliases(5) style name");
	expect_error("host h\nalias ro\033ot a@example.com\n",
	    CONF ":2: alias name \"ro\\033ot\" is not a local name "
	    "(no '@', ':' or ',')", "alias name with ESC");
}

#define DURATION_1D	"is not a duration from 1s to 1d (a number with an " \
			"optional unit s, m, h or d, as in 5m)"
#define DURATION_366D	"is not a duration from 1s to 366d (a number with " \
			"an optional unit s, m, h or d, as in 5m)"

/* Durations: plain seconds or one unit; the queue's keywords. */
static void
test_queue_keywords(void)
{
	static const struct {
		const char	*text;
		int		 min, max, age;
	} ok[] = {
		{ "host h\n", 300, 14400, 432000 },
		{ "host h\nretry_min 60\nretry_max 2h\nmax_age 1d\n",
		    60, 7200, 86400 },
		{ "host h\nretry_min 30s\nretry_max 30s\nmax_age 366d\n",
		    30, 30, 366 * 86400 },
		{ "host h\nretry_min 1m\n", 60, 14400, 432000 },
	};
	static const struct {
		const char	*text, *want, *name;
	} bad[] = {
		{ "host h\nmax_age 367d\n",
		    CONF ":2: max_age \"367d\" " DURATION_366D, "367 days" },
		{ "host h\nretry_min 5x\n",
		    CONF ":2: retry_min \"5x\" " DURATION_366D, "bad unit" },
		{ "host h\nretry_min m\n",
		    CONF ":2: retry_min \"m\" " DURATION_366D, "unit alone" },
		{ "host h\nretry_max 1 h\n",
		    CONF ":2: retry_max \"1 h\" " DURATION_366D, "space" },
		{ "host h\nretry_min 2h\nretry_max 1h\n",
		    CONF ": retry_min (7200s) is longer than retry_max (3600s)",
		    "min over max" },
		{ "host h\nqueue spool/relay\n",
		    CONF ":2: queue \"spool/relay\" must be an absolute path "
		    "or \"none\"", "relative queue" },
		{ "host h\nspool in\n",
		    CONF ":2: spool \"in\" must be an absolute path",
		    "relative spool" },
		{ "host h\nqueue none\nspool /var/in\n",
		    CONF ": spool /var/in needs a queue (it is \"queue none\")",
		    "spool without queue" },
	};
	struct conf c;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (load_ok(&c, ok[i].text, ok[i].text) != 0)
			continue;
		CHECK(c.retry_min == ok[i].min && c.retry_max == ok[i].max &&
		    c.max_age == ok[i].age, "durations of %s", ok[i].text);
		CHECK_STR(c.queue, RELAY_QUEUE_DEFAULT, "default queue");
		CHECK(c.spool == NULL, "no spool by default");
		conf_free(&c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i].text, bad[i].want, bad[i].name);
	if (load_ok(&c, "host h\ntimeout_data_end 1d\ntimeout_connect 2m\n",
	    "timeouts with units") == 0) {
		CHECK(c.timeout[TMO_DATA_END] == 86400 &&
		    c.timeout[TMO_CONNECT] == 120, "timeouts take units");
		conf_free(&c);
	}
	if (load_ok(&c, "host h\nqueue none\n", "queue none") == 0) {
		CHECK(c.queue == NULL, "queue none: no queue");
		conf_free(&c);
	}
	if (load_ok(&c, "host h\nqueue /q\nspool /in\n", "queue, spool") ==
	    0) {
		CHECK_STR(c.queue, "/q", "queue set");
		CHECK_STR(c.spool, "/in", "spool set");
		conf_free(&c);
	}
}

static void
test_timeouts(void)
{
	struct conf c;

	if (load_ok(&c, "host h\ntimeout_connect 1\ntimeout_greeting 2\n"
	    "timeout_command 3\ntimeout_data_init 4\ntimeout_data_block 5\n"
	    "timeout_data_end 86400\n", "all timeouts") == 0)
		CHECK(c.timeout[TMO_CONNECT] == 1 &&
		    c.timeout[TMO_GREETING] == 2 &&
		    c.timeout[TMO_COMMAND] == 3 &&
		    c.timeout[TMO_DATA_INIT] == 4 &&
		    c.timeout[TMO_DATA_BLOCK] == 5 &&
		    c.timeout[TMO_DATA_END] == 86400, "each timeout set");
	conf_free(&c);
	expect_error("host h\ntimeout_connect 0\n",
	    CONF ":2: timeout_connect \"0\" " DURATION_1D, "timeout 0");
	expect_error("host h\ntimeout_data_end 86401\n",
	    CONF ":2: timeout_data_end \"86401\" " DURATION_1D,
	    "timeout 86401");
	expect_error("host h\ntimeout_command -5\n",
	    CONF ":2: timeout_command \"-5\" " DURATION_1D,
	    "negative timeout");
	expect_error("host h\ntimeout_greeting 1\ntimeout_greeting 2\n",
	    CONF ":3: \"timeout_greeting\" already set at line 2",
	    "timeout twice");
}

/* Mistakes an administrator coming from ssmtp or msmtp makes. */
static void
test_hints(void)
{
	struct conf c;

	expect_error("host 192.0.2.1\n", CONF ": host 192.0.2.1 is an IP "
	    "address: relay can verify a certificate only against a host name "
	    "(or set tls_fingerprint or tls_pubkey_fingerprint)",
	    "IP address without a pin");
	expect_error("host smtp.example.com:587\n",
	    CONF ":1: host \"smtp.example.com:587\": give the port on a line "
	    "of its own (\"port 587\")", "host with a port");
	if (load_ok(&c, "host ::1\ntls_fingerprint " PIN "\n", "IPv6 address as host") == 0)
		CHECK_STR(c.host, "::1", "IPv6 host kept");
	conf_free(&c);
	expect_error("host h\nport 587 # submission\n",
	    CONF ":2: port \"587 # submission\" is invalid (expected 1-65535)"
	    " (a '#' after a value is part of it: put comments on lines of "
	    "their own)", "comment after a value");
	if (load_ok(&c, "host h\nuser u\npassword pa #ss\n",
	    "'#' inside an accepted value") == 0)
		CHECK_STR(c.password, "pa #ss", "'#' kept in the password");
	conf_free(&c);
}

static void
test_fingerprint(void)
{
	static const unsigned char want[32] = {
		0x52, 0xb3, 0x58, 0xf6, 0x02, 0xc2, 0x51, 0x0c,
		0xeb, 0xf7, 0xd4, 0x20, 0xda, 0xe2, 0xe6, 0x48,
		0xc8, 0x29, 0x48, 0x0d, 0x00, 0xf3, 0x20, 0xcd,
		0x61, 0x2f, 0x64, 0x25, 0x89, 0xa1, 0x85, 0xb0
	};
	static const char *const forms[] = {
		"52:B3:58:F6:02:C2:51:0C:EB:F7:D4:20:DA:E2:E6:48:C8:29:48:0D:"
		    "00:F3:20:CD:61:2F:64:25:89:A1:85:B0",
		"sha256 Fingerprint=52:B3:58:F6:02:C2:51:0C:EB:F7:D4:20:DA:E2:"
		    "E6:48:C8:29:48:0D:00:F3:20:CD:61:2F:64:25:89:A1:85:B0",
		"52b358f602c2510cebf7d420dae2e648c829480d00f320cd612f642589a185b0",
	};
	static const char *const bad[] = {
		"52:B3",
		"52b358f602c2510cebf7d420dae2e648c829480d00f320cd612f642589a185b0"
		    "00",
		"52b358f602c2510cebf7d420dae2e648c829480d00f320cd612f642589a185b",
		"zzb358f602c2510cebf7d420dae2e648c829480d00f320cd612f642589a185b0",
		":52b358f602c2510cebf7d420dae2e648c829480d00f320cd612f642589a185b0",
	};
	char text[256];
	struct conf c;
	size_t i;

	if (load_ok(&c, "host h\n", "no tls_fingerprint") == 0)
		CHECK(c.pinned == 0, "not pinned by default");
	conf_free(&c);
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(text, sizeof(text), "host h\ntls_fingerprint %s\n",
		    forms[i]);
		if (load_ok(&c, text, forms[i]) == 0)
			CHECK(c.pinned && memcmp(c.pin, want, 32) == 0,
			    "tls_fingerprint form %zu: the right 32 octets", i);
		conf_free(&c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "host h\ntls_fingerprint %s\n",
		    bad[i]);
		expect_error(text, CONF ":2: tls_fingerprint must be the SHA-256 "
		    "of the certificate: 64 hex digits, colons allowed",
		    "bad tls_fingerprint");
	}
	expect_error("host h\ntls none\ntls_fingerprint " "52b358f602c2510c"
	    "ebf7d420dae2e648c829480d00f320cd612f642589a185b0\n",
	    CONF ":3: tls_fingerprint needs TLS, but tls is none",
	    "tls_fingerprint with tls none");
}

static void
test_files(void)
{
	struct conf c;
	char err[ERRLEN], *big;
	size_t n = 1 << 20;
	int rv;

	rv = conf_load(&c, "nonexistent.conf", err, sizeof(err));
	CHECK(rv == -1, "nonexistent file rejected");
	CHECK_STR(err, "nonexistent.conf: No such file or directory",
	    "nonexistent file message");
	conf_free(&c);
	rv = conf_load(&c, ".", err, sizeof(err));
	CHECK(rv == -1, "directory rejected");
	CHECK_STR(err, ".: Is a directory", "directory message");
	conf_free(&c);

	write_file(CONF, "host h\nuser a\0b\n", 16, 0600);
	rv = conf_load(&c, CONF, err, sizeof(err));
	CHECK(rv == -1, "NUL rejected");
	CHECK_STR(err, CONF ":2: line contains a NUL byte", "NUL message");
	conf_free(&c);

	/*
	 * Far longer than any fixed line buffer (msmtp stops at 500), but
	 * capped: a line is never taken into memory whole, whatever its size.
	 */
	if ((big = malloc(n + 64)) == NULL)
		return;
	memcpy(big, "host h\nuser me\npassword ", 24);
	memset(big + 24, 'x', n);
	memcpy(big + 24 + n, "\n", 2);
	expect_error(big, CONF ":3: line longer than 65536 octets",
	    "1 MiB password line");
	/* An OAuth token of 16 KiB fits. */
	memcpy(big + 24 + 16384, "\n", 2);
	if (load_ok(&c, big, "16 KiB password line") == 0)
		CHECK(strlen(c.password) == 16384, "16 KiB password kept whole");
	conf_free(&c);
	/* The cap is on the line without its ending: 9 + 65527 octets. */
	memset(big + 24, 'x', n);
	memcpy(big + 24 + 65527, "\r\n", 3);
	if (load_ok(&c, big, "a line of 65536 octets and CRLF") == 0)
		CHECK(strlen(c.password) == 65527, "65536-octet line kept");
	conf_free(&c);
	big[24 + 65527] = '\0';
	if (load_ok(&c, big, "a line of 65536 octets at the end") == 0)
		CHECK(strlen(c.password) == 65527, "last line, no LF, kept");
	conf_free(&c);
	memset(big + 24, 'x', n);
	memcpy(big + 24 + 65528, "\n", 2);
	expect_error(big, CONF ":3: line longer than 65536 octets",
	    "a line of 65537 octets");
	big[24 + 65528] = '\0';
	expect_error(big, CONF ":3: line longer than 65536 octets",
	    "65537 octets at the end");
	memcpy(big + 24 + 65528, "\r\n", 3);
	expect_error(big, CONF ":3: line longer than 65536 octets",
	    "65537 octets and CRLF");
	memset(big, 'k', n);
	big[n] = '\0';
	expect_error(big, CONF ":1: line longer than 65536 octets",
	    "1 MiB keyword");
	free(big);

	/* A short error buffer truncates, never overflows. */
	write_file(CONF, "host h\nprot 25\n", 15, 0600);
	rv = conf_load(&c, CONF, err, 12);
	CHECK(rv == -1, "short err buffer");
	CHECK_STR(err, CONF ":", "short err buffer truncated");
	conf_free(&c);
}

/* Each way of giving the secret excludes the others, in either order. */
static void
test_secret_exclusive(void)
{
	static const char *const kw[] = {
		"password", "password_file", "password_command", "password_env"
	};
	static const char *const val[] = {
		"x", "pw", "/bin/echo x", "RELAY_TEST_PW"
	};
	char text[256], want[256], what[96];
	size_t i, j;

	write_file("pw", "x\n", 2, 0600);
	for (i = 0; i < 4; i++) {
		for (j = 0; j < 4; j++) {
			if (i == j)
				continue;
			snprintf(text, sizeof(text), "host h\nuser me\n%s %s\n"
			    "%s %s\n", kw[i], val[i], kw[j], val[j]);
			snprintf(want, sizeof(want), CONF ":4: %s and %s cannot "
			    "both be set (%s at line 3)", kw[i < j ? i : j],
			    kw[i < j ? j : i], kw[i]);
			snprintf(what, sizeof(what), "%s then %s", kw[i], kw[j]);
			expect_error(text, want, what);
		}
		snprintf(text, sizeof(text), "host h\n%s %s\n", kw[i], val[i]);
		snprintf(want, sizeof(want), CONF ":2: %s is set but user is "
		    "not", kw[i]);
		snprintf(what, sizeof(what), "%s without user", kw[i]);
		expect_error(text, want, what);
		snprintf(text, sizeof(text), "host h\ntls none\n%s %s\n",
		    kw[i], val[i]);
		snprintf(want, sizeof(want), CONF ":2: tls none cannot be "
		    "combined with %s (credentials would cross the network in "
		    "clear)", kw[i]);
		snprintf(what, sizeof(what), "%s with tls none", kw[i]);
		expect_error(text, want, what);
	}
	(void)unlink("pw");
}

static void
test_password_file_limits(void)
{
	struct conf c;
	char *big;
	size_t n = 70000;

	if ((big = malloc(n)) == NULL)
		return;
	memset(big, 'x', n);
	big[16384] = '\n';
	write_file("pw", big, n, 0600);
	if (load_secret(&c, "host h\nuser me\npassword_file pw\n",
	    "16 KiB password_file") == 0)
		CHECK(strlen(c.password) == 16384, "16 KiB password read whole");
	conf_free(&c);
	memset(big, 'x', n);
	memcpy(big + 65536, "\r\n", 2);
	write_file("pw", big, n, 0600);
	if (load_secret(&c, "host h\nuser me\npassword_file pw\n",
	    "password_file line of 65536 octets") == 0)
		CHECK(strlen(c.password) == 65536, "65536 octets read whole");
	conf_free(&c);
	memset(big, 'x', n);
	write_file("pw", big, n, 0600);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw: first line is longer than 65536 "
	    "octets", "password_file line too long");
	write_file("pw", big, 65537, 0600);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw: first line is longer than 65536 "
	    "octets", "password_file of 65537 octets, no LF");
	free(big);
	/* Group access is the administrator's choice (a setgid group). */
	write_file("pw", "x\n", 2, 0640);
	if (load_secret(&c, "host h\nuser me\npassword_file pw\n",
	    "password_file 0640") == 0)
		CHECK_STR(c.password, "x", "group-readable password_file");
	conf_free(&c);
	write_file("pw", "x\n", 2, 0604);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw is readable by others (mode 0604): "
	    "chmod o-rwx pw", "password_file 0604");
	write_file("pw", "x\n", 2, 0601);
	expect_secret_error("host h\nuser me\npassword_file pw\n",
	    CONF ":3: password_file pw is accessible by others (mode 0601): "
	    "chmod o-rwx pw", "password_file 0601");
	(void)unlink("pw");
	/* A FIFO must not hang relay (no writer would ever come). */
	if (mkfifo("fifo", 0600) == 0) {
		expect_secret_error("host h\nuser me\npassword_file fifo\n",
		    CONF ":3: password_file fifo: not a regular file",
		    "password_file FIFO");
		(void)unlink("fifo");
	}
}

/* Write an executable script at tmpdir/name; its absolute path to path. */
static void
script(const char *name, const char *body, char *path, size_t size)
{
	char text[4096];

	snprintf(path, size, "%s/%s", tmpdir, name);
	snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", body);
	write_file(path, text, strlen(text), 0700);
}

/*
 * Load "password_command CMD" (plus extra lines) and run conf_secret.
 * Returns its result; the password, or err, are left in c / err.
 */
static int
run_command(struct conf *c, const char *cmd, const char *extra, char *err)
{
	char text[1024];
	int rv;

	snprintf(text, sizeof(text), "host h\nuser me\npassword_command %s\n"
	    "%s", cmd, extra);
	if (load(c, text, err) == -1) {
		CHECK(0, "%s: loads: %s", cmd, err);
		return -2;
	}
	CHECK(c->password == NULL, "%s: not run by conf_load", cmd);
	err[0] = '\0';
	rv = conf_secret(c, err, ERRLEN);
	CHECK(strchr(err, '\n') == NULL, "%s: error on one line", cmd);
	return rv;
}

/* The command must fail with exactly this message (after "relay.conf: "). */
static void
command_fails(const char *name, const char *body, const char *extra,
    const char *want, const char *what)
{
	struct conf c;
	char path[512], err[ERRLEN], full[ERRLEN + 600];

	script(name, body, path, sizeof(path));
	CHECK(run_command(&c, path, extra, err) == -1, "%s: refused", what);
	snprintf(full, sizeof(full), CONF ": password_command %s %s", path,
	    want);
	CHECK_STR(err, full, "%s: message", what);
	CHECK(c.password == NULL, "%s: no password", what);
	CHECK(strstr(err, "TOPSECRET") == NULL, "%s: output not shown", what);
	conf_free(&c);
}

/* The command must give exactly this password. */
static void
command_gives(const char *name, const char *body, const char *args,
    const char *want, const char *what)
{
	struct conf c;
	char path[512], cmd[1024], err[ERRLEN];

	script(name, body, path, sizeof(path));
	snprintf(cmd, sizeof(cmd), "%s%s", path, args);
	if (run_command(&c, cmd, "", err) == 0)
		CHECK_STR(c.password, want, "%s", what);
	else
		CHECK(0, "%s: %s", what, err);
	conf_free(&c);
}

static void
test_password_command(void)
{
	struct conf c;
	struct passwd *pw;
	struct timespec t0, t1;
	char path[512], want[1024], body[256], err[ERRLEN];
	double secs;
	int fd;

	expect_error("host h\nuser me\npassword_command pass show smtp\n",
	    CONF ":3: password_command \"pass\": the program must be given as "
	    "an absolute path (it is run without a shell)", "relative program");
	expect_error("host h\nuser me\npassword_command ./pw.sh\n",
	    CONF ":3: password_command \"./pw.sh\": the program must be given "
	    "as an absolute path (it is run without a shell)",
	    "./ program");
	expect_error("host h\nuser me\npassword_command $(cat /pw)\n",
	    CONF ":3: password_command \"$(cat\": the program must be given "
	    "as an absolute path (it is run without a shell)",
	    "shell syntax");

	command_gives("ok", "printf 's3cret\\n'", "", "s3cret", "one line");
	command_gives("crlf", "printf 's3 cr#et\\r\\nsecond\\n'", "",
	    "s3 cr#et", "first line, CRLF trimmed, blanks kept");
	command_gives("nolf", "printf 'nolf'", "", "nolf", "no line ending");
	command_gives("args", "printf '%s|%s|%s|%d\\n' \"$1\" \"$2\" \"$3\" $#",
	    " a;b  $HOME\t`id` >x", "a;b|$HOME|`id`|4",
	    "split at blanks, no shell");
	CHECK(access("x", F_OK) == -1, "no shell: no redirection");
	pw = getpwuid(getuid());
	snprintf(want, sizeof(want), "/usr/bin:/bin|%s|%s|%s||",
	    pw != NULL ? pw->pw_dir : "", pw != NULL ? pw->pw_name : "",
	    pw != NULL ? pw->pw_name : "");
	(void)setenv("RELAY_TEST_LEAK", "leak", 1);
	command_gives("env", "printf '%s|%s|%s|%s|%s|%s\\n' \"$PATH\" \"$HOME\" "
	    "\"$LOGNAME\" \"$USER\" \"$RELAY_TEST_LEAK\" \"$LD_PRELOAD\"", "",
	    want, "a clean environment");
	(void)unsetenv("RELAY_TEST_LEAK");
	command_gives("cwd", "pwd", "", "/", "run in /");
	command_gives("stdin", "if read x; then echo \"stdin:$x\"; else "
	    "echo 'stdin empty'; fi", "", "stdin empty", "stdin is /dev/null");
	/* A descriptor of ours, not close-on-exec, stays ours. */
	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		snprintf(body, sizeof(body), "test -e /proc/self/fd/%d && "
		    "echo open || echo closed", fd);
		command_gives("fds", body, "", "closed", "no descriptor leaks");
		(void)close(fd);
	}
	command_gives("more", "echo first; head -c 200000 /dev/zero", "",
	    "first", "more output after the first line is read and dropped");
	snprintf(body, sizeof(body), "head -c 65536 /dev/zero | tr '\\0' x");
	script("max", body, path, sizeof(path));
	if (run_command(&c, path, "", err) == 0)
		CHECK(c.password != NULL && strlen(c.password) == 65536,
		    "65536 octets taken");
	else
		CHECK(0, "65536 octets taken: %s", err);
	conf_free(&c);
	/* Whoever ignored SIGCHLD before us must not make us lose the child. */
	(void)signal(SIGCHLD, SIG_IGN);
	command_gives("sigchld", "echo ok", "", "ok", "SIGCHLD ignored");
	CHECK(signal(SIGCHLD, SIG_DFL) == SIG_IGN, "SIGCHLD left as it was");

	command_fails("exit3", "echo TOPSECRET; exit 3", "",
	    "exited with status 3", "non-zero exit");
	command_fails("silent", "exit 0", "", "printed nothing",
	    "no output");
	command_fails("emptyline", "printf '\\nTOPSECRET\\n'", "",
	    "printed an empty first line", "empty first line");
	command_fails("nul", "printf 'TOP\\000SECRET\\n'", "",
	    "printed a NUL byte", "NUL in the output");
	command_fails("long", "head -c 65537 /dev/zero | tr '\\0' x", "",
	    "printed a first line longer than 65536 octets", "65537 octets");
	command_fails("signal", "kill -TERM $$", "",
	    "was killed by signal 15", "killed by a signal");
	(void)chmod(path, 0600);	/* path is still "max" */
	snprintf(want, sizeof(want), CONF ": password_command %s: cannot run "
	    "it: Permission denied", path);
	if (run_command(&c, path, "", err) == -1)
		CHECK_STR(err, want, "not executable: message");
	else
		CHECK(0, "not executable: refused");
	conf_free(&c);
	snprintf(path, sizeof(path), "%s/nonexistent", tmpdir);
	snprintf(want, sizeof(want), CONF ": password_command %s: cannot run "
	    "it: No such file or directory", path);
	if (run_command(&c, path, "", err) == -1)
		CHECK_STR(err, want, "missing program: message");
	else
		CHECK(0, "missing program: refused");
	conf_free(&c);

	/* The deadline: 30 s, or timeout_command if shorter. */
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	command_fails("slow", "echo TOPSECRET; exec sleep 10",
	    "timeout_command 1\n", "did not finish in 1s and was killed",
	    "timeout");
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(secs >= 0.9 && secs < 3, "timeout: killed after %.2fs", secs);
	command_fails("daemon", "sleep 10 & echo TOPSECRET", "timeout_command 1\n",
	    "did not close its output in 1s", "output kept open by a child");
	if (load_ok(&c, "host h\nuser me\npassword_command /bin/true\n",
	    "default timeout") == 0)
		CHECK(c.timeout[TMO_COMMAND] == 300, "timeout_command 300");
	conf_free(&c);

	/* Fetched once; a second call keeps it. */
	script("once", "echo first", path, sizeof(path));
	if (run_command(&c, path, "", err) == 0) {
		script("once", "echo second", path, sizeof(path));
		CHECK(conf_secret(&c, err, ERRLEN) == 0 &&
		    strcmp(c.password, "first") == 0, "conf_secret runs once");
	}
	conf_free(&c);
	/* Nothing to fetch: inline, password_file, no user at all. */
	if (load_ok(&c, "host h\nuser me\npassword inline\n", "inline") == 0)
		CHECK(conf_secret(&c, err, ERRLEN) == 0 &&
		    strcmp(c.password, "inline") == 0,
		    "conf_secret keeps an inline password");
	conf_free(&c);
	if (load_ok(&c, "host h\n", "no user") == 0)
		CHECK(conf_secret(&c, err, ERRLEN) == 0 && c.password == NULL,
		    "conf_secret without user: nothing");
	conf_free(&c);
	(void)unlink("x");
}

static void
test_password_env(void)
{
	struct conf c;
	char err[ERRLEN];

	expect_error("host h\nuser me\npassword_env 1PW\n",
	    CONF ":3: password_env \"1PW\" is not an environment variable name "
	    "(letters, digits and '_', not starting with a digit)",
	    "name starting with a digit");
	expect_error("host h\nuser me\npassword_env $PW\n",
	    CONF ":3: password_env \"$PW\" is not an environment variable name "
	    "(letters, digits and '_', not starting with a digit)",
	    "name with '$'");

	(void)setenv("RELAY_TEST_PW", "s3 #cret\n", 1);
	if (load_ok(&c, "host h\nuser me\npassword_env RELAY_TEST_PW\n",
	    "password_env") == 0) {
		CHECK(c.password == NULL && getenv("RELAY_TEST_PW") != NULL,
		    "password_env: not read by conf_load");
		CHECK(conf_secret(&c, err, ERRLEN) == 0, "password_env: read%s%s",
		    err[0] ? ": " : "", err);
		CHECK_STR(c.password, "s3 #cret", "password_env: value, LF "
		    "trimmed");
		CHECK(getenv("RELAY_TEST_PW") == NULL,
		    "password_env: removed from the environment");
	}
	conf_free(&c);

	if (load_ok(&c, "host h\nuser me\npassword_env RELAY_TEST_PW\n",
	    "password_env, unset") == 0) {
		CHECK(conf_secret(&c, err, ERRLEN) == -1, "unset: refused");
		CHECK_STR(err, CONF ": password_env RELAY_TEST_PW: the variable "
		    "is not set", "unset: message");
	}
	conf_free(&c);
	(void)setenv("RELAY_TEST_PW", "", 1);
	if (load_ok(&c, "host h\nuser me\npassword_env RELAY_TEST_PW\n",
	    "password_env, empty") == 0) {
		CHECK(conf_secret(&c, err, ERRLEN) == -1, "empty: refused");
		CHECK_STR(err, CONF ": password_env RELAY_TEST_PW: the variable "
		    "is empty", "empty: message");
	}
	conf_free(&c);

	/* A setgid relay: run as root with another effective group. */
	(void)setenv("RELAY_TEST_PW", "TOPSECRET", 1);
	if (geteuid() != 0 || setegid(65534) == -1) {
		printf("ok - password_env when privileged # skip not root\n");
		return;
	}
	if (load_ok(&c, "host h\nuser me\npassword_env RELAY_TEST_PW\n",
	    "password_env, privileged") == 0) {
		CHECK(privileged(), "setegid: privileged()");
		CHECK(conf_secret(&c, err, ERRLEN) == -1 && c.password == NULL,
		    "privileged: refused");
		CHECK_STR(err, CONF ": password_env cannot be used by a setgid "
		    "relay: the environment belongs to the caller; use "
		    "password_file or password_command", "privileged: message");
	}
	conf_free(&c);
	if (setegid(0) == -1)
		perror("setegid");
	(void)unsetenv("RELAY_TEST_PW");
}

static void
test_pubkey_pin(void)
{
	static const unsigned char want[32] = {
		0x52, 0xb3, 0x58, 0xf6, 0x02, 0xc2, 0x51, 0x0c,
		0xeb, 0xf7, 0xd4, 0x20, 0xda, 0xe2, 0xe6, 0x48,
		0xc8, 0x29, 0x48, 0x0d, 0x00, 0xf3, 0x20, 0xcd,
		0x61, 0x2f, 0x64, 0x25, 0x89, 0xa1, 0x85, 0xb0
	};
#define HEX	"52b358f602c2510cebf7d420dae2e648c829480d00f320cd612f642589a185b0"
	static const char *const forms[] = {
		HEX,
		"52:B3:58:F6:02:C2:51:0C:EB:F7:D4:20:DA:E2:E6:48:C8:29:48:0D:"
		    "00:F3:20:CD:61:2F:64:25:89:A1:85:B0",
		HEX "  -",		/* sha256sum */
		HEX " *-",		/* sha256sum -b */
		"SHA2-256(stdin)= " HEX,	/* openssl dgst -sha256, 3.x */
		"SHA256(stdin)= " HEX,		/* 1.1 */
		"(stdin)= " HEX,		/* -r or older */
	};
	static const char *const bad[] = {
		HEX "  cert.der", HEX " -x", HEX "-", HEX ":",
		"52b358f602c2510cebf7d420dae2e648c829480d00f320cd612f642589a185",
		HEX "00", "sha256sum: -: " HEX,
	};
	char text[256];
	struct conf c;
	size_t i;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(text, sizeof(text), "host h\n"
		    "tls_pubkey_fingerprint %s\n", forms[i]);
		if (load_ok(&c, text, forms[i]) == 0)
			CHECK(c.key_pinned && !c.pinned &&
			    memcmp(c.key_pin, want, 32) == 0 && !c.verify_chain,
			    "tls_pubkey_fingerprint form %zu: the right 32 "
			    "octets, pin only", i);
		conf_free(&c);
		/* The same forms give a certificate pin. */
		snprintf(text, sizeof(text), "host h\ntls_fingerprint %s\n",
		    forms[i]);
		if (load_ok(&c, text, forms[i]) == 0)
			CHECK(c.pinned && !c.key_pinned &&
			    memcmp(c.pin, want, 32) == 0,
			    "tls_fingerprint form %zu", i);
		conf_free(&c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "host h\n"
		    "tls_pubkey_fingerprint %s\n", bad[i]);
		expect_error(text, CONF ":2: tls_pubkey_fingerprint must be the "
		    "SHA-256 of the server's public key (its SubjectPublicKeyInfo "
		    "in DER): 64 hex digits, colons allowed", bad[i]);
	}
	/* Both pins: anchors.c wants both to match. */
	if (load_ok(&c, "host h\ntls_fingerprint " HEX "\n"
	    "tls_pubkey_fingerprint " PIN "\n", "both pins") == 0)
		CHECK(c.pinned && c.key_pinned && !c.verify_chain &&
		    memcmp(c.pin, want, 32) == 0 && c.key_pin[0] == 0x01 &&
		    c.key_pin[31] == 0xef, "both pins kept, pin only");
	conf_free(&c);
	expect_error("host h\ntls none\ntls_pubkey_fingerprint " HEX "\n",
	    CONF ":3: tls_pubkey_fingerprint needs TLS, but tls is none",
	    "tls_pubkey_fingerprint with tls none");
	if (load_ok(&c, "host 192.0.2.1\ntls_pubkey_fingerprint " HEX "\n",
	    "IP address with a key pin") == 0)
		CHECK(!c.verify_chain, "IP address, key pin: pin only");
	conf_free(&c);
}

static void
test_tls_verify(void)
{
	static const struct {
		const char	*text;
		int		 chain;
	} ok[] = {
		{ "host h\n", 1 },
		{ "host h\ntls_fingerprint " HEX "\n", 0 },
		{ "host h\ntls_fingerprint " HEX "\ntls_verify pin\n", 0 },
		{ "host h\ntls_fingerprint " HEX "\ntls_verify both\n", 1 },
		{ "host h\ntls_verify both\ntls_pubkey_fingerprint " HEX "\n",
		    1 },
		{ "host h\ntls_pubkey_fingerprint " HEX "\ntls_verify pin\n",
		    0 },
	};
	struct conf c;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (load_ok(&c, ok[i].text, "tls_verify case") == 0)
			CHECK(c.verify_chain == ok[i].chain,
			    "tls_verify case %zu: verify_chain %d", i,
			    ok[i].chain);
		conf_free(&c);
	}
	expect_error("host h\ntls_verify pin\n",
	    CONF ":2: tls_verify pin needs tls_fingerprint or "
	    "tls_pubkey_fingerprint", "tls_verify pin without a pin");
	expect_error("host h\ntls_verify both\n",
	    CONF ":2: tls_verify both needs tls_fingerprint or "
	    "tls_pubkey_fingerprint (without a pin, the chain and host name "
	    "are always checked)", "tls_verify both without a pin");
	expect_error("host h\ntls_verify none\n",
	    CONF ":2: tls_verify \"none\" is not one of pin, both",
	    "tls_verify none");
	expect_error("host h\ntls none\ntls_verify pin\n",
	    CONF ":3: tls_verify needs TLS, but tls is none",
	    "tls_verify with tls none");
	expect_error("host 192.0.2.1\ntls_fingerprint " HEX "\n"
	    "tls_verify both\n", CONF ": host 192.0.2.1 is an IP address: "
	    "relay can verify a certificate only against a host name, and "
	    "tls_verify both asks for that", "IP address and tls_verify both");
}

static void
test_client_cert(void)
{
	struct conf c;

	write_file("key.pem", "key\n", 4, 0600);
	if (load_ok(&c, "host h\ntls_client_cert /etc/cert.pem\n"
	    "tls_client_key key.pem\n", "client certificate") == 0) {
		CHECK_STR(c.client_cert, "/etc/cert.pem", "client_cert path");
		CHECK_STR(c.client_key, "key.pem", "client_key path");
	}
	conf_free(&c);
	if (load_ok(&c, "host h\n", "no client certificate") == 0)
		CHECK(c.client_cert == NULL && c.client_key == NULL,
		    "no client certificate by default");
	conf_free(&c);
	write_file("key.pem", "key\n", 4, 0640);
	if (load_ok(&c, "host h\ntls_client_cert c.pem\n"
	    "tls_client_key key.pem\n", "client key 0640") == 0)
		CHECK_STR(c.client_key, "key.pem", "group-readable key");
	conf_free(&c);
	/* Checked when TLS reads it (keys.c), not while loading. */
	write_file("key.pem", "key\n", 4, 0644);
	if (load_ok(&c, "host h\ntls_client_cert c.pem\n"
	    "tls_client_key key.pem\n", "client key 0644, loading") == 0)
		CHECK_STR(c.client_key, "key.pem", "client key read later");
	conf_free(&c);
	expect_open_error("tls_client_key", "key.pem", "tls_client_key "
	    "key.pem is readable by others (mode 0644): chmod o-rwx key.pem",
	    "client key 0644");
	expect_open_error("tls_client_key", "nokey.pem",
	    "tls_client_key nokey.pem: No such file or directory",
	    "client key missing");
	expect_open_error("tls_client_key", ".",
	    "tls_client_key .: not a regular file", "client key a directory");
	write_file("key.pem", "key\n", 4, 0600);
	expect_error("host h\ntls_client_cert c.pem\n",
	    CONF ":2: tls_client_cert is set but tls_client_key is not",
	    "cert without key");
	expect_error("host h\n\ntls_client_key key.pem\n",
	    CONF ":3: tls_client_key is set but tls_client_cert is not",
	    "key without cert");
	expect_error("host h\ntls none\ntls_client_cert c.pem\n"
	    "tls_client_key key.pem\n",
	    CONF ":3: tls_client_cert needs TLS, but tls is none",
	    "client certificate with tls none");
	(void)unlink("key.pem");
}

#define SIZE_MSG	"is not a size (a number of octets with an optional " \
			"unit k, M or G, as in 10M; 0 for no limit)"

static void
test_limits(void)
{
	static const struct {
		const char	*value;
		long long	 size;
	} sizes[] = {
		{ "0", 0 }, { "1", 1 }, { "1000", 1000 }, { "10k", 10240 },
		{ "10K", 10240 }, { "2M", 2097152 }, { "2m", 2097152 },
		{ "1G", 1073741824 }, { "35882M", 35882LL << 20 },
	};
	static const char *const bad_sizes[] = {
		"10x", "k", "-1", "1.5M", "10 M", "M10", "10MB",
		"99999999999999999999", "9999999999999G",
	};
	char text[128], want[256];
	struct conf c;
	size_t i;

	if (load_ok(&c, "host h\n", "limits: defaults") == 0)
		CHECK(c.max_size == 0 && c.max_rcpts == 1000,
		    "default max_size 0 (none), max_recipients 1000");
	conf_free(&c);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(text, sizeof(text), "host h\nmax_size %s\n",
		    sizes[i].value);
		if (load_ok(&c, text, sizes[i].value) == 0)
			CHECK((long long)c.max_size == sizes[i].size,
			    "max_size %s is %lld", sizes[i].value,
			    sizes[i].size);
		conf_free(&c);
	}
	for (i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		snprintf(text, sizeof(text), "host h\nmax_size %s\n",
		    bad_sizes[i]);
		snprintf(want, sizeof(want), CONF ":2: max_size \"%s\" "
		    SIZE_MSG, bad_sizes[i]);
		expect_error(text, want, bad_sizes[i]);
	}
	if (load_ok(&c, "host h\nmax_recipients 5\n", "max_recipients 5") == 0)
		CHECK(c.max_rcpts == 5, "max_recipients 5");
	conf_free(&c);
	if (load_ok(&c, "host h\nmax_recipients 100000\n",
	    "max_recipients 100000") == 0)
		CHECK(c.max_rcpts == 100000, "max_recipients 100000");
	conf_free(&c);
	expect_error("host h\nmax_recipients 0\n",
	    CONF ":2: max_recipients \"0\" is too small (expected 1-100000)",
	    "max_recipients 0");
	expect_error("host h\nmax_recipients 100001\n",
	    CONF ":2: max_recipients \"100001\" is too large (expected "
	    "1-100000)", "max_recipients 100001");
	expect_error("host h\nmax_recipient 10\n",
	    CONF ":2: unknown keyword \"max_recipient\" (did you mean "
	    "\"max_recipients\"?)", "max_recipient hint");
}

/* Empty the test directory (the scripts test_password_command wrote). */
static void
remove_all(void)
{
	DIR *d;
	struct dirent *e;

	if ((d = opendir(".")) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			(void)unlink(e->d_name);
	(void)closedir(d);
}

/* local_domains, allow_from_override, set_from_header (issue 11). */
static void
test_sender_names(void)
{
	struct conf c;

	if (load_ok(&c, "host h\nfrom a@example.com\n"
	    "local_domains vm.LAN., mail.vm.lan\nlocal_domains other.test\n"
	    "allow_from_override no\nset_from_header on\n",
	    "local_domains, allow_from_override, set_from_header") == 0) {
		CHECK(c.nlocal_domains == 3, "local_domains: three names");
		if (c.nlocal_domains == 3) {
			CHECK_STR(c.local_domains[0], "vm.lan",
			    "local_domains: lower case, no root dot");
			CHECK_STR(c.local_domains[2], "other.test",
			    "local_domains: given twice, added to");
		}
		CHECK(c.force_from == 1, "allow_from_override no");
		CHECK(c.set_from == FROMHDR_ON, "set_from_header on");
	}
	conf_free(&c);
	if (load_ok(&c, "host h\nallow_from_override yes\n"
	    "set_from_header off\n", "allow_from_override yes") == 0)
		CHECK(c.force_from == 0 && c.set_from == FROMHDR_OFF,
		    "allow_from_override yes, set_from_header off");
	conf_free(&c);
	expect_error("host h\nlocal_domains a@b\n",
	    CONF ":2: local_domains \"a@b\" is not a domain name",
	    "local_domains with @");
	expect_error("host h\nfrom a@example.com\nallow_from_override 0\n",
	    CONF ":3: allow_from_override \"0\" is not one of no, yes",
	    "allow_from_override 0");
	expect_error("host h\nset_from_header always\n",
	    CONF ":2: set_from_header \"always\" is not one of auto, on, off",
	    "set_from_header always");
	expect_error("host h\nallow_from_override no\n",
	    CONF ":2: allow_from_override no needs \"from\" (the address to "
	    "use instead of the caller's)", "allow_from_override no, no from");
	expect_error("host h\nset_from_header on\n",
	    CONF ":2: set_from_header on needs \"from\" (the address to "
	    "use instead of the caller's)", "set_from_header on, no from");
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL || chdir(tmpdir) == -1) {
		perror(tmpdir);
		return 1;
	}
	test_minimal();
	test_syntax();
	test_unknown();
	test_host();
	test_port_tls();
	test_credentials();
	test_password_file();
	test_addresses();
	test_aliases();
	test_timeouts();
	test_queue_keywords();
	test_fingerprint();
	test_hints();
	test_files();
	test_secret_exclusive();
	test_password_file_limits();
	test_password_command();
	test_password_env();
	test_pubkey_pin();
	test_tls_verify();
	test_client_cert();
	test_limits();
	test_sender_names();
	remove_all();
	if (chdir("/") == -1 || rmdir(tmpdir) == -1)
		perror(tmpdir);
	UNIT_END();
}
