/*
 * The configuration file: one "keyword value" setting a line, read through
 * one keyword table into a struct conf, then checked as a whole.  Errors
 * name the file and line so that an administrator can go straight there.
 */
#include <sys/stat.h>

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

#ifndef _PATH_LOG
#define _PATH_LOG	"/dev/log"	/* musl's <syslog.h> does not name it */
#endif

#define BLANKS		" \t"
#define MAXKEYWORDS	48	/* size of parser.seen */
#define HINTMAX		32	/* longest word worth a "did you mean" */
#define SHOWN		128	/* room for a value quoted in an error */
/*
 * Hostile or broken input must not take all memory: a line of the file
 * is capped (secret.c caps a secret from elsewhere), with room for OAuth
 * tokens.
 */
#define LINE_CAP	65536	/* octets of a line, its ending not counted */
#define DEFAULT_MAX_RCPTS 1000
#define ENV_LINE	((size_t)-1)	/* "line" of a RELAY_* setting */
/* rcpt_add() looks for duplicates one by one: keep n * n reasonable. */
#define MAX_RCPTS_CAP	100000

struct parser;

struct keyword {
	const char	*name;
	int		(*set)(struct parser *, const struct keyword *, char *);
	int		 arg;		/* which timeout, for timeout_* */
	int		 repeat;	/* may be given more than once */
};

struct parser {
	struct conf	*conf;
	char		 path[256];	/* the file name, safe to print */
	size_t		 lineno;
	mode_t		 mode;		/* of the configuration file */
	size_t		 seen[MAXKEYWORDS];	/* line of each keyword, or 0 */
	size_t		*alias_line;	/* line of each conf->aliases entry */
	int		 queue_none;	/* "queue none" was given */
	int		 tls_verify;	/* VERIFY_* as given, or -1 */
	int		 use_env;	/* "environment yes" was given */
	const char	*env_var;	/* the RELAY_* variable being applied */
	char		*err;
	size_t		 errlen;
};

/* kw_retry's field; those from FAILED_MAX_AGE on may also be 0 (never). */
enum { RETRY_MIN, RETRY_MAX, MAX_AGE, FAILED_MAX_AGE, DELAY_WARNING };
enum { VERIFY_PIN, VERIFY_BOTH };		/* tls_verify's words */
enum { PIN_CERT, PIN_PUBKEY };			/* kw_pin's field */

static int	kw_host(struct parser *, const struct keyword *, char *);
static int	kw_environment(struct parser *, const struct keyword *,
		    char *);
static int	kw_port(struct parser *, const struct keyword *, char *);
static int	kw_tls(struct parser *, const struct keyword *, char *);
static int	kw_user(struct parser *, const struct keyword *, char *);
static int	kw_password(struct parser *, const struct keyword *, char *);
static int	kw_password_file(struct parser *, const struct keyword *,
		    char *);
static int	kw_password_command(struct parser *, const struct keyword *,
		    char *);
static int	kw_password_env(struct parser *, const struct keyword *,
		    char *);
static int	kw_from(struct parser *, const struct keyword *, char *);
static int	kw_domain(struct parser *, const struct keyword *, char *);
static int	kw_helo(struct parser *, const struct keyword *, char *);
static int	kw_local_domains(struct parser *, const struct keyword *,
		    char *);
static int	kw_from_override(struct parser *, const struct keyword *,
		    char *);
static int	kw_from_header(struct parser *, const struct keyword *,
		    char *);
static int	kw_ca_file(struct parser *, const struct keyword *, char *);
static int	kw_pin(struct parser *, const struct keyword *, char *);
static int	kw_tls_verify(struct parser *, const struct keyword *, char *);
static int	kw_client_cert(struct parser *, const struct keyword *,
		    char *);
static int	kw_client_key(struct parser *, const struct keyword *,
		    char *);
static int	kw_max_size(struct parser *, const struct keyword *, char *);
static int	kw_max_recipients(struct parser *, const struct keyword *,
		    char *);
static int	kw_alias(struct parser *, const struct keyword *, char *);
static int	kw_log(struct parser *, const struct keyword *, char *);
static int	kw_timeout(struct parser *, const struct keyword *, char *);
static int	kw_queue(struct parser *, const struct keyword *, char *);
static int	kw_spool(struct parser *, const struct keyword *, char *);
static int	kw_retry(struct parser *, const struct keyword *, char *);
static int	kw_submit_timeout(struct parser *, const struct keyword *,
		    char *);

static const struct keyword keywords[] = {
	{ "host",		kw_host,		0,		0 },
	{ "environment",	kw_environment,		0,		0 },
	{ "port",		kw_port,		0,		0 },
	{ "tls",		kw_tls,			0,		0 },
	{ "user",		kw_user,		0,		0 },
	{ "password",		kw_password,		0,		0 },
	{ "password_file",	kw_password_file,	0,		0 },
	{ "password_command",	kw_password_command,	0,		0 },
	{ "password_env",	kw_password_env,	0,		0 },
	{ "from",		kw_from,		0,		0 },
	{ "domain",		kw_domain,		0,		0 },
	{ "helo",		kw_helo,		0,		0 },
	{ "local_domains",	kw_local_domains,	0,		1 },
	{ "allow_from_override", kw_from_override,	0,		0 },
	{ "set_from_header",	kw_from_header,		0,		0 },
	{ "ca_file",		kw_ca_file,		0,		0 },
	{ "tls_fingerprint",	kw_pin,			PIN_CERT,	0 },
	{ "tls_pubkey_fingerprint", kw_pin,		PIN_PUBKEY,	0 },
	{ "tls_verify",		kw_tls_verify,		0,		0 },
	{ "tls_client_cert",	kw_client_cert,		0,		0 },
	{ "tls_client_key",	kw_client_key,		0,		0 },
	{ "alias",		kw_alias,		0,		1 },
	{ "log",		kw_log,			0,		0 },
	{ "timeout_connect",	kw_timeout,	TMO_CONNECT,		0 },
	{ "timeout_greeting",	kw_timeout,	TMO_GREETING,		0 },
	{ "timeout_command",	kw_timeout,	TMO_COMMAND,		0 },
	{ "timeout_data_init",	kw_timeout,	TMO_DATA_INIT,		0 },
	{ "timeout_data_block",	kw_timeout,	TMO_DATA_BLOCK,		0 },
	{ "timeout_data_end",	kw_timeout,	TMO_DATA_END,		0 },
	{ "submit_timeout",	kw_submit_timeout,	0,		0 },
	{ "queue",		kw_queue,		0,		0 },
	{ "spool",		kw_spool,		0,		0 },
	{ "retry_min",		kw_retry,		RETRY_MIN,	0 },
	{ "retry_max",		kw_retry,		RETRY_MAX,	0 },
	{ "max_age",		kw_retry,		MAX_AGE,	0 },
	{ "failed_max_age",	kw_retry,		FAILED_MAX_AGE,	0 },
	{ "delay_warning",	kw_retry,		DELAY_WARNING,	0 },
	{ "max_size",		kw_max_size,		0,		0 },
	{ "max_recipients",	kw_max_recipients,	0,		0 },
};
#define NKEYWORDS	(sizeof(keywords) / sizeof(keywords[0]))
typedef char seen_is_big_enough[NKEYWORDS <= MAXKEYWORDS ? 1 : -1];

/* RFC 5321 4.5.4.1: give up after 4-5 days.  A submission client may
 * retry sooner than its 30 minutes, as dma and nullmailer do. */
#define DEFAULT_RETRY_MIN	(5 * 60)
#define DEFAULT_RETRY_MAX	(4 * 3600)
#define DEFAULT_MAX_AGE		(5 * 86400)
/* Time to read the reason and take the message out; then it goes. */
#define DEFAULT_FAILED_MAX_AGE	(30 * 86400)
/* Postfix's delay_warning_time, 4h in its documentation's example. */
#define DEFAULT_DELAY_WARNING	(4 * 3600)
#define DURATION_MAX		(366 * 86400)
/* A caller (cron, a PHP request) waits no longer for the first try. */
#define DEFAULT_SUBMIT_TIMEOUT	20

/* RFC 5321 4.5.3.2. */
static const int default_timeout[TMO_COUNT] = {
	[TMO_CONNECT] = 30,
	[TMO_GREETING] = 300,
	[TMO_COMMAND] = 300,
	[TMO_DATA_INIT] = 120,
	[TMO_DATA_BLOCK] = 180,
	[TMO_DATA_END] = 600,
};

static const char *const tls_words[] = {
	[TLS_IMPLICIT] = "implicit",
	[TLS_STARTTLS] = "starttls",
	[TLS_NONE] = "none",
	NULL
};

static const char *const log_words[] = {
	[LOGTO_SYSLOG] = "syslog",
	[LOGTO_STDERR] = "stderr",
	NULL
};

static const char *const yesno_words[] = { "no", "yes", NULL };

/* msmtp's words for set_from_header, in enum from_header's order. */
static const char *const from_header_words[] = {
	[FROMHDR_AUTO] = "auto",
	[FROMHDR_ON] = "on",
	[FROMHDR_OFF] = "off",
	NULL
};

static const char *const verify_words[] = {
	[VERIFY_PIN] = "pin",
	[VERIFY_BOTH] = "both",
	NULL
};

/* The ways of giving the AUTH secret; exactly one goes with "user". */
static const char *const secret_keywords[] = {
	"password", "password_file", "password_command", "password_env"
};
#define NSECRET_KEYWORDS \
	(sizeof(secret_keywords) / sizeof(secret_keywords[0]))

/* ---- errors ------------------------------------------------------------ */

static int	where_err(struct parser *, int, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));

/*
 * "relay.conf:12: " (withline) or "relay.conf: " before the error;
 * always returns -1.
 */
static int
where_err(struct parser *p, int withline, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->env_var != NULL)
		n = snprintf(p->err, p->errlen, "%s: ", p->env_var);
	else if (withline && p->lineno != ENV_LINE)
		n = snprintf(p->err, p->errlen, "%s:%zu: ", p->path, p->lineno);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->path);
	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_start(ap, fmt);
	(void)verrf(p->err + n, p->errlen - (size_t)n, -1, fmt, ap);
	va_end(ap);
	return -1;
}

/* An error at the current line, or about the file as a whole. */
#define lerr(p, ...)	where_err(p, 1, __VA_ARGS__)
#define ferr(p, ...)	where_err(p, 0, __VA_ARGS__)

/* Values end up in messages on terminals and in syslog: escape them. */
static const char *
shown(char *buf, size_t size, const char *value)
{
	sanitise(buf, size, value, strlen(value));
	return buf;
}

/* ---- small helpers ----------------------------------------------------- */

static size_t
keyword_index(const struct keyword *kw)
{
	return (size_t)(kw - keywords);
}

static const struct keyword *
keyword_find(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYWORDS; i++)
		if (strcmp(keywords[i].name, name) == 0)
			return &keywords[i];
	return NULL;
}

/* Line where a keyword was given, 0 if it was not. */
static size_t
seen(const struct parser *p, const char *name)
{
	const struct keyword *kw = keyword_find(name);

	return kw == NULL ? 0 : p->seen[keyword_index(kw)];
}

static int
set_string(struct parser *p, char **field, const char *value)
{
	if ((*field = strdup(value)) == NULL)
		return lerr(p, "%s", strerror(errno));
	return 0;
}

static void
lowercase(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Host names are compared without their root dot ("example.com."). */
static void
strip_root_dot(char *s)
{
	size_t len = strlen(s);

	if (len > 0 && s[len - 1] == '.')
		s[len - 1] = '\0';
}

/* Printable ASCII other than blanks, '<' and '>': safe after EHLO. */
static int
plain_token(const char *name)
{
	const unsigned char *s;

	if (*name == '\0' || strlen(name) > DOMAIN_MAX)
		return 0;
	for (s = (const unsigned char *)name; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f || *s == '<' || *s == '>')
			return 0;
	return 1;
}

static int
number(struct parser *p, const struct keyword *kw, const char *value,
    long long min, long long max, int *out)
{
	char buf[SHOWN];
	const char *errstr;
	long long n;

	n = strtonum(value, min, max, &errstr);
	if (errstr != NULL)
		return lerr(p, "%s \"%s\" is %s (expected %lld-%lld)",
		    kw->name, shown(buf, sizeof(buf), value), errstr, min, max);
	*out = (int)n;
	return 0;
}

/* One of a fixed set of words, e.g. for tls and log. */
static int
choice(struct parser *p, const struct keyword *kw, const char *value,
    const char *const *words, int *out)
{
	char buf[SHOWN], list[128] = "";
	size_t i;

	for (i = 0; words[i] != NULL; i++) {
		if (strcmp(words[i], value) == 0) {
			*out = (int)i;
			return 0;
		}
		if (i > 0)
			(void)strlcat(list, ", ", sizeof(list));
		(void)strlcat(list, words[i], sizeof(list));
	}
	return lerr(p, "%s \"%s\" is not one of %s", kw->name,
	    shown(buf, sizeof(buf), value), list);
}

/* Why an address cannot be used, or NULL if it can. */
static const char *
address_problem(const char *addr)
{
	if (strpbrk(addr, "<>") != NULL)
		return "write the address without angle brackets";
	if (strchr(addr, '@') == NULL)
		return "not a full address (user@domain)";
	return addr_check(addr);
}

/* ---- keyword handlers -------------------------------------------------- */

static int
kw_host(struct parser *p, const struct keyword *kw, char *value)
{
	char buf[SHOWN];
	struct in6_addr in6;

	strip_root_dot(value);
	if (strlen(value) > DOMAIN_MAX)
		return lerr(p, "host name is longer than %d characters",
		    DOMAIN_MAX);
	/* A host name or an IP address; anything else is a typo. */
	if (*value == '\0' || value[strspn(value,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-._:")] != '\0')
		return lerr(p, "%s \"%s\" is not a host name or IP address",
		    kw->name, shown(buf, sizeof(buf), value));
	/* ':' belongs in IPv6 addresses only: "name:587" is a port. */
	if (strchr(value, ':') != NULL && inet_pton(AF_INET6, value, &in6) != 1)
		return lerr(p, "%s \"%s\": give the port on a line of its own "
		    "(\"port %s\")", kw->name, shown(buf, sizeof(buf), value),
		    strrchr(value, ':') + 1);
	lowercase(value);
	return set_string(p, &p->conf->host, value);
}

static int
kw_port(struct parser *p, const struct keyword *kw, char *value)
{
	return number(p, kw, value, 1, 65535, &p->conf->port);
}

static int
kw_tls(struct parser *p, const struct keyword *kw, char *value)
{
	int mode;

	if (choice(p, kw, value, tls_words, &mode) == -1)
		return -1;
	p->conf->tls = (enum tls_mode)mode;
	return 0;
}

static int
kw_log(struct parser *p, const struct keyword *kw, char *value)
{
	int dest;

	if (choice(p, kw, value, log_words, &dest) == -1)
		return -1;
	p->conf->log = (enum log_dest)dest;
	return 0;
}

static int
kw_user(struct parser *p, const struct keyword *kw, char *value)
{
	(void)kw;
	return set_string(p, &p->conf->user, value);
}

/*
 * One way of giving the password only.  The two keywords are named in
 * the order of secret_keywords[], whichever came first in the file.
 */
static int
secret_once(struct parser *p, const struct keyword *kw)
{
	size_t i, mine = 0, line;

	while (strcmp(secret_keywords[mine], kw->name) != 0)
		mine++;
	for (i = 0; i < NSECRET_KEYWORDS; i++) {
		if (i == mine || (line = seen(p, secret_keywords[i])) == 0)
			continue;
		return lerr(p, "%s and %s cannot both be set (%s at line %zu)",
		    secret_keywords[i < mine ? i : mine],
		    secret_keywords[i < mine ? mine : i], secret_keywords[i],
		    line);
	}
	return 0;
}

static int
kw_password(struct parser *p, const struct keyword *kw, char *value)
{
	if (secret_once(p, kw) == -1)
		return -1;
	/* Group access is fine: a group such as "mail" lets senders read. */
	if (p->mode & S_IRWXO)
		return lerr(p, "password given inline but %s is %s by others "
		    "(mode %04o): chmod o-rwx %s, or use password_file",
		    p->path, others_can(p->mode),
		    (unsigned int)(p->mode & 07777), p->path);
	return set_string(p, &p->conf->password, value);
}

/*
 * Read later, by conf_secret(), when a connection needs it: a file that
 * cannot be read then costs no message (the message waits in the queue).
 */
static int
kw_password_file(struct parser *p, const struct keyword *kw, char *value)
{
	if (secret_once(p, kw) == -1)
		return -1;
	p->conf->password_line = p->lineno;
	return set_string(p, &p->conf->password_file, value);
}

/*
 * Run later, by conf_secret(): "/path/to/program arg...", split at blanks
 * and run without a shell, so the program must be given by its path.
 */
static int
kw_password_command(struct parser *p, const struct keyword *kw,
    char *value)
{
	char buf[SHOWN];
	size_t len;

	if (secret_once(p, kw) == -1)
		return -1;
	if (value[0] != '/') {
		len = strcspn(value, BLANKS);
		value[len] = '\0';
		return lerr(p, "%s \"%s\": the program must be given as an "
		    "absolute path (it is run without a shell)", kw->name,
		    shown(buf, sizeof(buf), value));
	}
	return set_string(p, &p->conf->password_command, value);
}

/* Read later, by conf_secret(), which also refuses it in a setgid relay. */
static int
kw_password_env(struct parser *p, const struct keyword *kw, char *value)
{
	char buf[SHOWN];

	if (secret_once(p, kw) == -1)
		return -1;
	if (isdigit((unsigned char)value[0]) || value[strspn(value,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_")] != '\0')
		return lerr(p, "%s \"%s\" is not an environment variable name "
		    "(letters, digits and '_', not starting with a digit)",
		    kw->name, shown(buf, sizeof(buf), value));
	return set_string(p, &p->conf->password_env, value);
}

static int
kw_from(struct parser *p, const struct keyword *kw, char *value)
{
	char buf[SHOWN];
	const char *why;

	if ((why = address_problem(value)) != NULL)
		return lerr(p, "%s \"%s\": %s", kw->name,
		    shown(buf, sizeof(buf), value), why);
	return set_string(p, &p->conf->from, value);
}

/*
 * A domain name for domain and local_domains: no root dot, lower case,
 * and postmaster@ it a usable address.  Returns 0, or -1 (p->err set).
 */
static int
domain_value(struct parser *p, const struct keyword *kw, char *value)
{
	char buf[SHOWN], probe[ADDR_MAX + 1];
	const char *why;

	strip_root_dot(value);
	if (*value == '\0' || strchr(value, '@') != NULL || !plain_token(value))
		return lerr(p, "%s \"%s\" is not a domain name", kw->name,
		    shown(buf, sizeof(buf), value));
	lowercase(value);
	/* Every name it qualifies must make a usable address. */
	if ((size_t)snprintf(probe, sizeof(probe), "postmaster@%s", value) >=
	    sizeof(probe))
		return lerr(p, "%s \"%s\" is too long", kw->name,
		    shown(buf, sizeof(buf), value));
	if ((why = addr_check(probe)) != NULL)
		return lerr(p, "%s \"%s\": %s", kw->name,
		    shown(buf, sizeof(buf), value), why);
	return 0;
}

static int
kw_domain(struct parser *p, const struct keyword *kw, char *value)
{
	if (domain_value(p, kw, value) == -1)
		return -1;
	return set_string(p, &p->conf->domain, value);
}

/* "local_domains vm.example.net mail.example.net": added to the list. */
static int
kw_local_domains(struct parser *p, const struct keyword *kw, char *value)
{
	struct conf *c = p->conf;
	char **names, *name;

	while ((name = strsep(&value, BLANKS ",")) != NULL) {
		if (*name == '\0')
			continue;
		if (domain_value(p, kw, name) == -1)
			return -1;
		names = reallocarray(c->local_domains, c->nlocal_domains + 1,
		    sizeof(*names));
		if (names == NULL)
			return lerr(p, "%s", strerror(errno));
		c->local_domains = names;
		if (set_string(p, &c->local_domains[c->nlocal_domains],
		    name) == -1)
			return -1;
		c->nlocal_domains++;
	}
	return 0;
}

static int
kw_from_override(struct parser *p, const struct keyword *kw, char *value)
{
	int yes;

	if (choice(p, kw, value, yesno_words, &yes) == -1)
		return -1;
	p->conf->force_from = !yes;
	return 0;
}

static int
kw_from_header(struct parser *p, const struct keyword *kw, char *value)
{
	int mode;

	if (choice(p, kw, value, from_header_words, &mode) == -1)
		return -1;
	p->conf->set_from = (enum from_header)mode;
	return 0;
}

static int
kw_helo(struct parser *p, const struct keyword *kw, char *value)
{
	char buf[SHOWN];

	if (!plain_token(value))
		return lerr(p, "%s \"%s\" is not a valid host name (no blanks, "
		    "control characters, '<' or '>')", kw->name,
		    shown(buf, sizeof(buf), value));
	return set_string(p, &p->conf->helo, value);
}

static int
kw_ca_file(struct parser *p, const struct keyword *kw, char *value)
{
	(void)kw;
	return set_string(p, &p->conf->ca_file, value);
}

static int
hex_digit(char ch)
{
	static const char digits[] = "0123456789abcdef";
	const char *d;

	if (ch == '\0' || (d = strchr(digits, tolower((unsigned char)ch))) ==
	    NULL)
		return -1;
	return (int)(d - digits);
}

/*
 * A SHA-256 digest as the usual tools print it: 64 hex digits, colons
 * allowed between pairs, after an optional "name=" or "name= " (openssl
 * x509 -fingerprint, openssl dgst) and before an optional "  -" or " *-"
 * (sha256sum reading its standard input).  Returns 0 or -1.
 */
static int
parse_sha256(const char *value, unsigned char *out, size_t outlen)
{
	const char *v = value, *eq;
	size_t n = 0;
	int hi, lo;

	if ((eq = strrchr(v, '=')) != NULL)
		v = eq + 1 + strspn(eq + 1, BLANKS);
	while (n < outlen) {
		if (*v == ':' && n > 0)
			v++;
		if ((hi = hex_digit(v[0])) == -1 || (lo = hex_digit(v[1])) ==
		    -1)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		v += 2;
	}
	if (*v == '\0')
		return 0;
	if (strspn(v, BLANKS) == 0)
		return -1;
	v += strspn(v, BLANKS);
	if (*v == '*')
		v++;
	return strcmp(v, "-") == 0 ? 0 : -1;
}

/*
 * tls_fingerprint: SHA-256 of the server's certificate (DER);
 * tls_pubkey_fingerprint: of its SubjectPublicKeyInfo (DER), which stays
 * the same when a certificate is renewed with the same key.  Given both,
 * anchors.c wants both to match.
 */
static int
kw_pin(struct parser *p, const struct keyword *kw, char *value)
{
	struct conf *c = p->conf;

	if (kw->arg == PIN_CERT) {
		if (parse_sha256(value, c->pin, sizeof(c->pin)) == -1)
			return lerr(p, "tls_fingerprint must be the SHA-256 of "
			    "the certificate: 64 hex digits, colons allowed");
		c->pinned = 1;
	} else {
		if (parse_sha256(value, c->key_pin, sizeof(c->key_pin)) == -1)
			return lerr(p, "tls_pubkey_fingerprint must be the "
			    "SHA-256 of the server's public key (its "
			    "SubjectPublicKeyInfo in DER): 64 hex digits, "
			    "colons allowed");
		c->key_pinned = 1;
	}
	return 0;
}

static int
kw_tls_verify(struct parser *p, const struct keyword *kw, char *value)
{
	return choice(p, kw, value, verify_words, &p->tls_verify);
}

/* Read by keys.c when TLS starts, as ca_file is by anchors.c. */
static int
kw_client_cert(struct parser *p, const struct keyword *kw, char *value)
{
	(void)kw;
	return set_string(p, &p->conf->client_cert, value);
}

/*
 * A private key: read and checked by keys.c each time TLS starts, on
 * the descriptor it reads, like a password_file by conf_secret().
 */
static int
kw_client_key(struct parser *p, const struct keyword *kw, char *value)
{
	(void)kw;
	return set_string(p, &p->conf->client_key, value);
}

/* max_size: "0" (no limit), "10485760", "10240k", "10M", "1G". */
static int
kw_max_size(struct parser *p, const struct keyword *kw, char *value)
{
	static const struct {
		char		 unit;
		long long	 scale;
	} sizes[] = {
		{ 'k', 1LL << 10 }, { 'm', 1LL << 20 }, { 'g', 1LL << 30 },
	};
	char buf[SHOWN], num[24];
	const char *errstr = "not a number";
	size_t len = strlen(value), i;
	long long n = 0, scale = 1;

	if (len > 1 && !isdigit((unsigned char)value[len - 1])) {
		scale = 0;
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			if (tolower((unsigned char)value[len - 1]) ==
			    sizes[i].unit)
				scale = sizes[i].scale;
		len--;
	}
	if (scale != 0 && len > 0 && len < sizeof(num) &&
	    isdigit((unsigned char)value[0])) {
		memcpy(num, value, len);
		num[len] = '\0';
		n = strtonum(num, 0, LLONG_MAX / scale, &errstr);
	}
	if (scale == 0 || errstr != NULL)
		return lerr(p, "%s \"%s\" is not a size (a number of octets "
		    "with an optional unit k, M or G, as in 10M; 0 for no "
		    "limit)", kw->name, shown(buf, sizeof(buf), value));
	p->conf->max_size = (off_t)(n * scale);
	return 0;
}

static int
kw_max_recipients(struct parser *p, const struct keyword *kw, char *value)
{
	int n = 0;

	if (number(p, kw, value, 1, MAX_RCPTS_CAP, &n) == -1)
		return -1;
	p->conf->max_rcpts = (size_t)n;
	return 0;
}

/* Units a duration may carry: "300", "300s", "5m", "4h", "5d". */
static const struct {
	char	 unit;
	int	 seconds;
} units[] = {
	{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
};

static int
duration(struct parser *p, const struct keyword *kw, const char *value,
    int max, int *out)
{
	char buf[SHOWN], num[16];
	const char *errstr = "not a number";
	size_t len = strlen(value), i;
	long long n = 0;
	int scale = 1;

	if (len > 1 && !isdigit((unsigned char)value[len - 1])) {
		scale = 0;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (value[len - 1] == units[i].unit)
				scale = units[i].seconds;
		len--;
	}
	if (scale != 0 && len > 0 && len < sizeof(num) &&
	    isdigit((unsigned char)value[0])) {
		memcpy(num, value, len);
		num[len] = '\0';
		n = strtonum(num, 1, max / scale, &errstr);
	}
	if (scale == 0 || errstr != NULL)
		return lerr(p, "%s \"%s\" is not a duration from 1s to %dd (a "
		    "number with an optional unit s, m, h or d, as in 5m)",
		    kw->name, shown(buf, sizeof(buf), value), max / 86400);
	*out = (int)(n * scale);
	return 0;
}

static int
kw_timeout(struct parser *p, const struct keyword *kw, char *value)
{
	return duration(p, kw, value, 86400, &p->conf->timeout[kw->arg]);
}

/* submit_timeout: a duration, or "0" for the per-command ones alone. */
static int
kw_submit_timeout(struct parser *p, const struct keyword *kw, char *value)
{
	if (strcmp(value, "0") == 0) {
		p->conf->submit_timeout = 0;
		return 0;
	}
	return duration(p, kw, value, 86400, &p->conf->submit_timeout);
}

static int
kw_retry(struct parser *p, const struct keyword *kw, char *value)
{
	int *field[] = {
		[RETRY_MIN] = &p->conf->retry_min,
		[RETRY_MAX] = &p->conf->retry_max,
		[MAX_AGE] = &p->conf->max_age,
		[FAILED_MAX_AGE] = &p->conf->failed_max_age,
		[DELAY_WARNING] = &p->conf->delay_warning,
	};

	if (kw->arg >= FAILED_MAX_AGE && strcmp(value, "0") == 0) {
		*field[kw->arg] = 0;
		return 0;
	}
	return duration(p, kw, value, DURATION_MAX, field[kw->arg]);
}

/* "none": no queue; a failure the caller must retry exits 75. */
static int
kw_queue(struct parser *p, const struct keyword *kw, char *value)
{
	char buf[SHOWN];

	if (strcmp(value, "none") == 0) {
		free(p->conf->queue);
		p->conf->queue = NULL;
		p->queue_none = 1;
		return 0;
	}
	if (value[0] != '/')
		return lerr(p, "%s \"%s\" must be an absolute path or \"none\"",
		    kw->name, shown(buf, sizeof(buf), value));
	return set_string(p, &p->conf->queue, value);
}

static int
kw_spool(struct parser *p, const struct keyword *kw, char *value)
{
	char buf[SHOWN];

	if (value[0] != '/')
		return lerr(p, "%s \"%s\" must be an absolute path", kw->name,
		    shown(buf, sizeof(buf), value));
	return set_string(p, &p->conf->spool, value);
}

static void
alias_free(struct alias *a)
{
	size_t i;

	for (i = 0; i < a->ntargets; i++)
		free(a->targets[i]);
	free(a->targets);
	free(a->name);
	memset(a, 0, sizeof(*a));
}

static int
alias_add_target(struct parser *p, struct alias *a, const char *target)
{
	char buf[SHOWN], tbuf[SHOWN];
	char **targets;
	const char *why;

	if ((why = address_problem(target)) != NULL)
		return lerr(p, "alias \"%s\": target \"%s\": %s",
		    shown(buf, sizeof(buf), a->name),
		    shown(tbuf, sizeof(tbuf), target), why);
	targets = reallocarray(a->targets, a->ntargets + 1, sizeof(*targets));
	if (targets == NULL)
		return lerr(p, "%s", strerror(errno));
	a->targets = targets;
	if ((a->targets[a->ntargets] = strdup(target)) == NULL)
		return lerr(p, "%s", strerror(errno));
	a->ntargets++;
	return 0;
}

/* "name target, target ..." into a; targets split at commas and blanks. */
static int
alias_parse(struct parser *p, struct alias *a, char *value)
{
	char buf[SHOWN];
	char *rest, *target;
	size_t i;

	rest = value + strcspn(value, BLANKS);
	if (*rest != '\0')
		*rest++ = '\0';
	if (value[strcspn(value, "@:,")] != '\0' || !plain_token(value))
		return lerr(p, "alias name \"%s\" is not a local name "
		    "(no '@', ':' or ',')", shown(buf, sizeof(buf), value));
	for (i = 0; i < p->conf->naliases; i++)
		if (strcmp(p->conf->aliases[i].name, value) == 0)
			return lerr(p, "alias \"%s\" already defined at "
			    "line %zu", shown(buf, sizeof(buf), value),
			    p->alias_line[i]);
	if ((a->name = strdup(value)) == NULL)
		return lerr(p, "%s", strerror(errno));
	while ((target = strsep(&rest, BLANKS ",")) != NULL)
		if (*target != '\0' && alias_add_target(p, a, target) == -1)
			return -1;
	if (a->ntargets == 0)
		return lerr(p, "alias \"%s\" has no target address",
		    shown(buf, sizeof(buf), a->name));
	return 0;
}

static int
kw_alias(struct parser *p, const struct keyword *kw, char *value)
{
	struct conf *c = p->conf;
	struct alias a = { NULL, NULL, 0 }, *aliases;
	size_t *lines;

	(void)kw;
	if (alias_parse(p, &a, value) == -1)
		goto fail;
	aliases = reallocarray(c->aliases, c->naliases + 1, sizeof(*aliases));
	if (aliases == NULL)
		goto nomem;
	c->aliases = aliases;
	lines = reallocarray(p->alias_line, c->naliases + 1, sizeof(*lines));
	if (lines == NULL)
		goto nomem;
	p->alias_line = lines;
	p->alias_line[c->naliases] = p->lineno;
	c->aliases[c->naliases++] = a;
	return 0;
nomem:
	(void)lerr(p, "%s", strerror(errno));
fail:
	alias_free(&a);
	return -1;
}

/* ---- lines ------------------------------------------------------------- */

static int
same_char(char a, char b)
{
	return tolower((unsigned char)a) == tolower((unsigned char)b);
}

/* Optimal string alignment distance, ignoring case, for "did you mean". */
static size_t
distance(const char *a, const char *b)
{
	size_t d[HINTMAX + 1][HINTMAX + 1];
	size_t la = strlen(a), lb = strlen(b), i, j, best;

	if (la > HINTMAX || lb > HINTMAX)
		return SIZE_MAX;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			best = d[i - 1][j - 1] +
			    (same_char(a[i - 1], b[j - 1]) ? 0 : 1);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && same_char(a[i - 1], b[j - 2]) &&
			    same_char(a[i - 2], b[j - 1]) &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

static const struct keyword *
keyword_near(const char *word)
{
	const struct keyword *near = NULL;
	size_t i, dist, best, limit;

	/* Two edits turn most short words into some keyword. */
	limit = strlen(word) <= 4 ? 1 : 2;
	best = limit + 1;
	for (i = 0; i < NKEYWORDS; i++) {
		dist = distance(word, keywords[i].name);
		if (dist < best) {
			best = dist;
			near = &keywords[i];
		}
	}
	return near;
}

static int
unknown_keyword(struct parser *p, char *word)
{
	char buf[SHOWN];
	const struct keyword *near;
	char *eq;

	/* "password=secret" (ssmtp style): never echo what follows '='. */
	if ((eq = strchr(word, '=')) != NULL) {
		*eq = '\0';
		if (keyword_find(word) != NULL)
			return lerr(p, "\"%s\" must be followed by a blank, "
			    "not '='", word);
		shown(buf, sizeof(buf), word);
		(void)strlcat(buf, "=...", sizeof(buf));
		return lerr(p, "unknown keyword \"%s\"", buf);
	}
	shown(buf, sizeof(buf), word);
	if ((near = keyword_near(word)) != NULL)
		return lerr(p, "unknown keyword \"%s\" (did you mean \"%s\"?)",
		    buf, near->name);
	return lerr(p, "unknown keyword \"%s\"", buf);
}

/*
 * A value may be a double-quoted string, so that it can have leading or
 * trailing blanks; only \" and \\ are escapes.  Unquoted in place.
 */
static int
unquote(struct parser *p, char *value)
{
	const char *src = value + 1;
	char *dst = value;

	if (*value != '"')
		return 0;
	for (; *src != '"'; src++) {
		if (*src == '\0')
			return lerr(p, "quoted value has no closing quote");
		if (*src == '\\') {
			src++;
			if (*src != '"' && *src != '\\')
				return lerr(p, "quoted value: a backslash "
				    "must be followed by '\"' or '\\'");
		}
		*dst++ = *src;
	}
	if (src[1] != '\0')
		return lerr(p, "text after the closing quote");
	*dst = '\0';
	return 0;
}

/* One setting, from a line or a RELAY_* variable. */
static int
set_keyword(struct parser *p, const struct keyword *kw, char *value)
{
	if (kw->set(p, kw, value) == -1)
		return -1;
	p->seen[keyword_index(kw)] = p->lineno;
	return 0;
}

static int
parse_line(struct parser *p, char *line, size_t len)
{
	const struct keyword *kw;
	char *word, *value;
	size_t prev;
	int commented;

	if (strlen(line) != len)
		return lerr(p, "line contains a NUL byte");
	while (len > 0 && strchr(BLANKS "\r\n", line[len - 1]) != NULL)
		line[--len] = '\0';
	word = line + strspn(line, BLANKS);
	if (*word == '\0' || *word == '#')
		return 0;
	value = word + strcspn(word, BLANKS);
	if (*value != '\0') {
		*value++ = '\0';
		value += strspn(value, BLANKS);
	}
	if ((kw = keyword_find(word)) == NULL)
		return unknown_keyword(p, word);
	if (!kw->repeat && (prev = p->seen[keyword_index(kw)]) != 0)
		return lerr(p, "\"%s\" already set at line %zu", kw->name,
		    prev);
	/* "password = x" would silently make "= x" the password. */
	if (*value == '=')
		return lerr(p, "\"%s\" must be followed by a blank, not '=' "
		    "(quote a value that begins with '=')", kw->name);
	if (unquote(p, value) == -1)
		return -1;
	if (*value == '\0')
		return lerr(p, "missing value for \"%s\"", kw->name);
	commented = strstr(value, " #") != NULL || strstr(value, "\t#") != NULL;
	if (set_keyword(p, kw, value) == -1) {
		/* The usual cause: a comment after the value (ssmtp allows). */
		if (commented)
			(void)strlcat(p->err, " (a '#' after a value is part "
			    "of it: put comments on lines of their own)",
			    p->errlen);
		return -1;
	}
	return 0;
}

/* ---- the environment (RELAY_*; env.c) --------------------------------- */

/* "environment yes": RELAY_* variables add to the file (never override). */
static int
kw_environment(struct parser *p, const struct keyword *kw, char *value)
{
	int yes;

	if (p->env_var != NULL)
		return lerr(p, "means something only in a file");
	if (choice(p, kw, value, yesno_words, &yes) == -1)
		return -1;
	p->use_env = yes;
	return 0;
}

/* Why a variable is refused before its keyword sees it, or NULL. */
static const char *
env_refusal(const struct envset *s, const struct keyword *kw)
{
	if (strcmp(kw->name, "password") == 0)
		return "a password in the environment shows in /proc and "
		    "\"docker inspect\": use RELAY_PASSWORD_FILE, "
		    "RELAY_PASSWORD_COMMAND, or RELAY_PASSWORD_ENV naming the "
		    "variable that holds it";
	if (strcmp(kw->name, "port") == 0 && strstr(s->value, "://") != NULL)
		return "looks like Kubernetes' variable for a service named "
		    "\"relay\" (set enableServiceLinks: false, or name the "
		    "service otherwise)";
	return NULL;
}

/* One RELAY_* setting; a repeatable keyword takes one value a line. */
static int
env_apply_one(struct parser *p, struct envset *s)
{
	const struct keyword *kw;
	const char *why;
	char *value, *next, near[64];
	size_t i, prev;

	p->env_var = s->var;
	if ((kw = keyword_find(s->keyword)) == NULL) {
		if ((kw = keyword_near(s->keyword)) == NULL)
			return lerr(p, "no such setting");
		for (i = 0; kw->name[i] != '\0' && i + 1 < sizeof(near); i++)
			near[i] = (char)toupper((unsigned char)kw->name[i]);
		near[i] = '\0';
		return lerr(p, "no such setting (did you mean RELAY_%s?)", near);
	}
	if ((why = env_refusal(s, kw)) != NULL)
		return lerr(p, "%s", why);
	if (!kw->repeat && (prev = p->seen[keyword_index(kw)]) != 0)
		return lerr(p, "\"%s\" is set in %s too (line %zu): set it in "
		    "one place", kw->name, p->path, prev);
	for (value = s->value; value != NULL; value = next) {
		if ((next = strchr(value, '\n')) != NULL)
			*next++ = '\0';
		if (!kw->repeat && next != NULL)
			return lerr(p, "one value, not several lines");
		if (*value == '\0')
			return lerr(p, "empty value");
		if (set_keyword(p, kw, value) == -1)
			return -1;
	}
	return 0;
}

/*
 * The RELAY_* settings, after the file's (or alone).  upper-case names
 * map to keywords (RELAY_TIMEOUT_CONNECT is timeout_connect).
 */
static int
env_apply(struct parser *p, struct envset *sets, size_t n)
{
	size_t i;

	p->lineno = ENV_LINE;
	for (i = 0; i < n; i++)
		if (env_apply_one(p, &sets[i]) == -1)
			return -1;
	p->env_var = NULL;
	return 0;
}

/* ---- the file as a whole ----------------------------------------------- */

/* The port follows from tls and tls from the port; 465 if neither. */
static int
is_ip_literal(const char *host)
{
	unsigned char ip[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1;
}

static void
settle_transport(struct parser *p)
{
	static const int tls_port[] = {
		[TLS_IMPLICIT] = 465, [TLS_STARTTLS] = 587, [TLS_NONE] = 25
	};
	struct conf *c = p->conf;

	if (!seen(p, "tls"))
		c->tls = (c->port == 0 || c->port == 465) ?
		    TLS_IMPLICIT : TLS_STARTTLS;
	if (c->port == 0)
		c->port = tls_port[c->tls];
}

static int
check_credentials(struct parser *p)
{
	static const char *const creds[] = {
		"user", "password", "password_file", "password_command",
		"password_env"
	};
	struct conf *c = p->conf;
	const char *source = NULL;
	size_t i, line = 0;

	/* Never send credentials over a channel without TLS. */
	if (c->tls == TLS_NONE) {
		for (i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
			if (seen(p, creds[i]) == 0)
				continue;
			p->lineno = seen(p, "tls");
			return lerr(p, "tls none cannot be combined with %s "
			    "(credentials would cross the network in clear)",
			    creds[i]);
		}
	}
	for (i = 0; i < NSECRET_KEYWORDS && source == NULL; i++)
		if ((line = seen(p, secret_keywords[i])) != 0)
			source = secret_keywords[i];
	if (c->user != NULL && source == NULL) {
		p->lineno = seen(p, "user");
		return lerr(p, "user is set but none of password, "
		    "password_file, password_command or password_env is");
	}
	if (c->user == NULL && source != NULL) {
		p->lineno = line;
		return lerr(p, "%s is set but user is not", source);
	}
	return 0;
}

/* A keyword that makes sense only over TLS, given with "tls none". */
static int
needs_tls(struct parser *p, const char *name)
{
	size_t line = seen(p, name);

	if (line == 0)
		return 0;
	p->lineno = line;
	return lerr(p, "%s needs TLS, but tls is none", name);
}

static int
check_tls(struct parser *p)
{
	static const char *const tls_only[] = {
		"tls_fingerprint", "tls_pubkey_fingerprint", "tls_verify",
		"tls_client_cert", "tls_client_key"
	};
	struct conf *c = p->conf;
	size_t i;
	int pin = c->pinned || c->key_pinned;

	for (i = 0; c->tls == TLS_NONE && i < sizeof(tls_only) /
	    sizeof(tls_only[0]); i++)
		if (needs_tls(p, tls_only[i]) == -1)
			return -1;
	/* Without a pin the chain and name are checked: nothing to choose. */
	if (p->tls_verify != -1 && !pin) {
		p->lineno = seen(p, "tls_verify");
		return lerr(p, "tls_verify %s needs tls_fingerprint or "
		    "tls_pubkey_fingerprint%s", verify_words[p->tls_verify],
		    p->tls_verify == VERIFY_BOTH ? " (without a pin, the "
		    "chain and host name are always checked)" : "");
	}
	c->verify_chain = !pin || p->tls_verify == VERIFY_BOTH;
	if (c->client_cert != NULL && c->client_key == NULL) {
		p->lineno = seen(p, "tls_client_cert");
		return lerr(p, "tls_client_cert is set but tls_client_key "
		    "is not");
	}
	if (c->client_key != NULL && c->client_cert == NULL) {
		p->lineno = seen(p, "tls_client_key");
		return lerr(p, "tls_client_key is set but tls_client_cert "
		    "is not");
	}
	/* BearSSL matches names only (no iPAddress SANs): it could never work. */
	if (c->tls != TLS_NONE && c->verify_chain && is_ip_literal(c->host)) {
		if (pin)
			return ferr(p, "host %s is an IP address: relay can "
			    "verify a certificate only against a host name, "
			    "and tls_verify both asks for that", c->host);
		return ferr(p, "host %s is an IP address: relay can verify a "
		    "certificate only against a host name (or set "
		    "tls_fingerprint or tls_pubkey_fingerprint)", c->host);
	}
	return 0;
}

/* Settings that make sense only with a from address to put in. */
static int
check_from(struct parser *p)
{
	static const char *const needs_from[] = {
		"allow_from_override", "set_from_header"
	};
	struct conf *c = p->conf;
	size_t i;
	int needed;

	if (c->from != NULL)
		return 0;
	for (i = 0; i < sizeof(needs_from) / sizeof(needs_from[0]); i++) {
		needed = i == 0 ? c->force_from : c->set_from == FROMHDR_ON;
		if (!needed)
			continue;
		p->lineno = seen(p, needs_from[i]);
		return lerr(p, "%s %s needs \"from\" (the address to use "
		    "instead of the caller's)", needs_from[i],
		    i == 0 ? "no" : "on");
	}
	return 0;
}

static int
finish(struct parser *p)
{
	struct conf *c = p->conf;

	if (c->host == NULL)
		return ferr(p, "missing required keyword \"host\"");
	settle_transport(p);
	if (check_tls(p) == -1 || check_credentials(p) == -1 ||
	    check_from(p) == -1)
		return -1;
	if (c->ca_file == NULL &&
	    set_string(p, &c->ca_file, RELAY_CA_DEFAULT) == -1)
		return -1;
	if (c->queue == NULL && !p->queue_none &&
	    set_string(p, &c->queue, RELAY_QUEUE_DEFAULT) == -1)
		return -1;
	/*
	 * No "log", and no syslog socket (a container): syslog(3) would drop
	 * every line without a word, so they go to stderr.  "log syslog"
	 * said so is kept: silent, as cron jobs want.
	 */
	if (seen(p, "log") == 0 && access(_PATH_LOG, W_OK) == -1)
		c->log = LOGTO_STDERR;
	if (c->retry_min > c->retry_max)
		return ferr(p, "retry_min (%ds) is longer than retry_max (%ds)",
		    c->retry_min, c->retry_max);
	if (c->spool != NULL && c->queue == NULL)
		return ferr(p, "spool %s needs a queue (it is \"queue none\")",
		    c->spool);
	return 0;
}

/*
 * One line into buf (LINE_CAP + 3 octets): at most LINE_CAP octets, then
 * CR LF, LF or the end of the file.  Returns the octets read (0 at the
 * end of the file), or -1 for a line too long or a read error (p->err
 * set).  getline() would take a line of any length into memory.
 */
static ssize_t
next_line(struct parser *p, FILE *fp, char *buf)
{
	size_t len = 0;
	int ch;

	while ((ch = getc(fp)) != EOF) {
		/* Room for LINE_CAP octets and a CR before the LF. */
		if (len == LINE_CAP + 1 && (ch != '\n' ||
		    buf[LINE_CAP] != '\r'))
			return lerr(p, "line longer than %d octets", LINE_CAP);
		buf[len++] = (char)ch;
		if (ch == '\n')
			break;
	}
	if (ferror(fp))
		return ferr(p, "%s", strerror(errno != 0 ? errno : EIO));
	if (len == LINE_CAP + 1 && buf[LINE_CAP] != '\n' &&
	    buf[LINE_CAP] != '\r')
		return lerr(p, "line longer than %d octets", LINE_CAP);
	buf[len] = '\0';
	return (ssize_t)len;
}

static int
read_lines(struct parser *p, FILE *fp)
{
	char *line;
	size_t size = LINE_CAP + 3;
	ssize_t len;
	int rv = 0;

	if ((line = malloc(size)) == NULL)
		return ferr(p, "%s", strerror(errno));
	errno = 0;
	while (rv == 0) {
		p->lineno++;
		if ((len = next_line(p, fp, line)) <= 0) {
			rv = (int)len;
			break;
		}
		rv = parse_line(p, line, (size_t)len);
	}
	/* A line may have held a password. */
	freezero(line, size);
	return rv;
}

/*
 * The configuration file, if it is a regular file: opened without
 * blocking, so that -C naming a FIFO (or a device) is an error, not a
 * wait for ever.  Returns NULL with p->err set otherwise.
 */
static FILE *
open_conf(struct parser *p, const char *path, struct stat *st)
{
	FILE *fp;
	int fd, flags;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		(void)ferr(p, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) == -1 || (flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1)
		(void)ferr(p, "%s", strerror(errno));
	else if (S_ISDIR(st->st_mode))
		(void)ferr(p, "%s", strerror(EISDIR));
	else if (!S_ISREG(st->st_mode))
		(void)ferr(p, "not a regular file");
	else if ((fp = fdopen(fd, "r")) == NULL)
		(void)ferr(p, "%s", strerror(errno));
	else
		return fp;
	(void)close(fd);
	return NULL;
}

/*
 * No file at the default path: the RELAY_* settings stand in for it.  A
 * file the caller named (-C, RELAY_CONF) must exist.
 */
static int
env_instead(const char *path)
{
	return strcmp(path, RELAY_CONF_DEFAULT) == 0 &&
	    access(path, F_OK) == -1 && errno == ENOENT;
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct parser p;
	struct envset *sets = NULL;
	size_t nsets = 0;
	char iobuf[BUFSIZ];
	struct stat st;
	FILE *fp;
	int i, rv = -1;

	memset(c, 0, sizeof(*c));
	memset(&p, 0, sizeof(p));
	p.conf = c;
	p.err = err;
	p.errlen = errlen;
	p.tls_verify = -1;
	shown(p.path, sizeof(p.path), path);
	for (i = 0; i < TMO_COUNT; i++)
		c->timeout[i] = default_timeout[i];
	c->log = LOGTO_SYSLOG;
	c->retry_min = DEFAULT_RETRY_MIN;
	c->retry_max = DEFAULT_RETRY_MAX;
	c->max_age = DEFAULT_MAX_AGE;
	c->failed_max_age = DEFAULT_FAILED_MAX_AGE;
	c->delay_warning = DEFAULT_DELAY_WARNING;
	c->max_rcpts = DEFAULT_MAX_RCPTS;
	c->submit_timeout = DEFAULT_SUBMIT_TIMEOUT;
	c->verify_chain = 1;

	if (!privileged() && env_settings(&sets, &nsets, err, errlen) == -1)
		return -1;
	if (nsets > 0 && env_instead(path)) {
		/* No file: the environment alone (a container). */
		(void)strlcpy(p.path, "the environment (RELAY_*)",
		    sizeof(p.path));
		if ((c->path = strdup(p.path)) == NULL)
			(void)ferr(&p, "%s", strerror(errno));
		else if (env_apply(&p, sets, nsets) == 0 && finish(&p) == 0)
			rv = 0;
	} else if ((c->path = strdup(path)) == NULL)
		(void)ferr(&p, "%s", strerror(errno));
	else if ((fp = open_conf(&p, path, &st)) != NULL) {
		/* Our own buffer, so that an inline password can be wiped. */
		if (setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf)) != 0)
			(void)ferr(&p, "%s", strerror(errno));
		else {
			p.mode = st.st_mode;
			if (read_lines(&p, fp) == 0 && (!p.use_env ||
			    env_apply(&p, sets, nsets) == 0) &&
			    finish(&p) == 0)
				rv = 0;
		}
		(void)fclose(fp);
		explicit_bzero(iobuf, sizeof(iobuf));
	}
	env_settings_free(sets, nsets);
	free(p.alias_line);
	if (rv == -1)
		conf_free(c);
	return rv;
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c->password != NULL)
		freezero(c->password, strlen(c->password) + 1);
	for (i = 0; i < c->naliases; i++)
		alias_free(&c->aliases[i]);
	free(c->aliases);
	free(c->path);
	free(c->host);
	free(c->user);
	free(c->from);
	free(c->domain);
	for (i = 0; i < c->nlocal_domains; i++)
		free(c->local_domains[i]);
	free(c->local_domains);
	free(c->helo);
	free(c->ca_file);
	free(c->client_cert);
	free(c->client_key);
	free(c->queue);
	free(c->spool);
	free(c->password_command);
	free(c->password_file);
	free(c->password_env);
	memset(c, 0, sizeof(*c));
}

const struct alias *
conf_alias(const struct conf *c, const char *name)
{
	const struct alias *catchall = NULL;
	size_t i;

	for (i = 0; i < c->naliases; i++) {
		if (strcmp(c->aliases[i].name, name) == 0)
			return &c->aliases[i];
		if (strcmp(c->aliases[i].name, "*") == 0)
			catchall = &c->aliases[i];
	}
	return catchall;
}
