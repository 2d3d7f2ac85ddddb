/*
 * The SMTP submission dialogue (RFC 5321, 3207, 4954, 2920, 1870, 6152):
 * greeting, EHLO, STARTTLS, AUTH, then MAIL, RCPT, DATA for each message
 * (RSET between them), QUIT.  It knows nothing of files: each message
 * reaches it through msg_send().
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "relay.h"

/*
 * A reply line with its CRLF must fit tls.c's 16384-octet receive buffer;
 * AUTH challenges may be 12288 octets (RFC 4954 4).
 */
#define LINE_MAX_IN	16383	/* 16382 octets and the NUL */
#define REPLY_LINES	1000	/* lines in one reply: EHLO has a dozen */
#define CMD_MAX		1024
#define AUTH_LINE_MAX	512	/* RFC 4954 4: AUTH with initial response */
#define PIPELINE_MAX	100	/* recipients sent in one pipelined group */
#define QUIT_TIMEOUT	10

int verbose;

struct caps {
	int	 starttls;
	int	 pipelining;
	int	 eightbitmime;
	int	 auth_plain;
	int	 auth_login;
	long long size;		/* 0: no limit announced */
	char	 auth[128];	/* mechanisms as offered, for messages */
};

struct smtp {
	const struct conf	*conf;
	struct conn		*c;
	struct caps		 caps;
	struct reply		 r;
	char			 line[LINE_MAX_IN];
	char			*err;
	size_t			 errlen;
	int			 broken;	/* no further command possible */
	int			 transactions;	/* MAILs sent so far */
	int			 data_ok;	/* this one's message taken */
	int			 dot_sent;	/*   or maybe taken */
	char			 helo[DOMAIN_MAX + 1];	/* what EHLO says */
};

/* ---- replies ------------------------------------------------------------- */

void
reply_init(struct reply *r)
{
	r->code = 0;
	r->lines = 0;
	r->len = 0;
	r->text[0] = '\0';
}

/*
 * RFC 5321 4.2: "xyz-text" continues a reply, "xyz text" or "xyz" ends
 * it; every line carries the same code, whose first digit is 2 to 5.
 */
int
reply_feed(struct reply *r, const char *line, size_t len, char *err,
    size_t errlen)
{
	char show[64];
	int code, last;

	sanitise(show, sizeof show, line, len);
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || !isdigit((unsigned char)line[2]) ||
	    (len > 3 && line[3] != ' ' && line[3] != '-')) {
		snprintf(err, errlen, "malformed reply \"%s\"", show);
		return -1;
	}
	/*
	 * RFC 5321 4.2: the text is printable ASCII.  A NUL would end the
	 * line for every string function after us, hiding what follows
	 * (an EHLO keyword: "does not offer STARTTLS").
	 */
	if (memchr(line, '\0', len) != NULL) {
		snprintf(err, errlen, "malformed reply \"%s\" (a NUL byte)",
		    show);
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + line[2] - '0';
	/* Many short lines stay under REPLY_MAX: count them too. */
	if (r->lines >= REPLY_LINES) {
		snprintf(err, errlen, "reply of more than %d lines",
		    REPLY_LINES);
		return -1;
	}
	if (r->lines > 0 && code != r->code) {
		snprintf(err, errlen, "reply changes code from %d to %d in "
		    "\"%s\"", r->code, code, show);
		return -1;
	}
	if (r->len + len + 2 > sizeof r->text) {
		snprintf(err, errlen, "reply longer than %zu octets",
		    sizeof r->text);
		return -1;
	}
	if (r->lines > 0)
		r->text[r->len++] = '\n';
	memcpy(r->text + r->len, line, len);
	r->len += len;
	r->text[r->len] = '\0';
	r->code = code;
	r->lines++;
	last = len == 3 || line[3] == ' ';
	return last;
}

/*
 * The reply as one safe line, for messages, the log, the queue and
 * bounces: each line sanitised on its own (a backslash of the reply
 * stays "\\", never read as an escape), the lines joined by " / ".
 */
static void
reply_oneline(const struct reply *r, char *buf, size_t size)
{
	const char *nl;
	size_t at = 0, n, used;

	buf[0] = '\0';
	do {
		nl = memchr(r->text + at, '\n', r->len - at);
		n = nl != NULL ? (size_t)(nl - (r->text + at)) : r->len - at;
		if (at > 0 && strlcat(buf, " / ", size) >= size)
			break;
		used = strlen(buf);
		sanitise(buf + used, size - used, r->text + at, n);
		at += n + 1;
	} while (nl != NULL);
}

static int
reply_exit(int code)
{
	return code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL;
}

/* ---- talking ------------------------------------------------------------- */

static void
trace(const char *dir, const char *text, size_t len)
{
	char show[1024];

	if (!verbose)
		return;
	sanitise(show, sizeof show, text, len);
	fprintf(stderr, "%s %s\n", dir, show);
}

/*
 * Queue one command.  `shown` is what -v prints instead of the command
 * when it carries credentials.
 */
static int
send_cmd(struct smtp *s, const char *shown, const char *fmt, ...)
{
	char cmd[CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof cmd - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd - 2) {
		snprintf(s->err, s->errlen, "command too long");
		return EX_SOFTWARE;
	}
	trace(">>>", shown ? shown : cmd, shown ? strlen(shown) : (size_t)n);
	memcpy(cmd + n, "\r\n", 3);
	n += 2;
	if (conn_write(s->c, cmd, (size_t)n) == -1) {
		s->broken = 1;
		snprintf(s->err, s->errlen, "%s: %s", conn_peer(s->c),
		    conn_error(s->c));
		explicit_bzero(cmd, sizeof cmd);
		return EX_TEMPFAIL;
	}
	explicit_bzero(cmd, sizeof cmd);
	return EX_OK;
}

/*
 * Read one whole reply to `what`.  Returns EX_OK with s->r filled, or a
 * sysexits code with s->err set.  421 ends the session at any point.
 */
static int
read_reply(struct smtp *s, const char *what)
{
	char why[ERRLEN], show[512];
	ssize_t len;
	int done;

	reply_init(&s->r);
	do {
		len = conn_getline(s->c, s->line, sizeof s->line);
		if (len == -1) {
			s->broken = 1;
			snprintf(s->err, s->errlen, "%s: no reply to %s: %s",
			    conn_peer(s->c), what, conn_error(s->c));
			return EX_TEMPFAIL;
		}
		trace("<<<", s->line, (size_t)len);
		done = reply_feed(&s->r, s->line, (size_t)len, why,
		    sizeof why);
		if (done == -1) {
			s->broken = 1;
			snprintf(s->err, s->errlen, "%s: %s to %s",
			    conn_peer(s->c), why, what);
			return EX_PROTOCOL;
		}
	} while (!done);
	if (s->r.code == 421) {
		s->broken = 1;
		reply_oneline(&s->r, show, sizeof show);
		snprintf(s->err, s->errlen, "%s closed the session at %s: %s",
		    conn_peer(s->c), what, show);
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

/* Send one command and read its reply; want is the first digit hoped for. */
static int
command(struct smtp *s, int tmo, int want, const char *what,
    const char *shown, const char *fmt, ...)
{
	char cmd[CMD_MAX], show[512];
	va_list ap;
	int n, ex;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd) {
		snprintf(s->err, s->errlen, "%s: command too long", what);
		return EX_SOFTWARE;
	}
	conn_timeout(s->c, s->conf->timeout[tmo]);
	ex = send_cmd(s, shown, "%s", cmd);
	explicit_bzero(cmd, sizeof cmd);
	if (ex == EX_OK)
		ex = read_reply(s, what);
	if (ex != EX_OK)
		return ex;
	if (s->r.code / 100 == want)
		return EX_OK;
	reply_oneline(&s->r, show, sizeof show);
	snprintf(s->err, s->errlen, "%s refused %s: %s", conn_peer(s->c),
	    what, show);
	return reply_exit(s->r.code);
}

/* ---- capabilities -------------------------------------------------------- */

static void
caps_word(struct caps *caps, char *kw)
{
	char *arg, *mech, *last;

	arg = kw + strcspn(kw, " =");
	if (*arg != '\0')
		*arg++ = '\0';
	if (strcasecmp(kw, "STARTTLS") == 0)
		caps->starttls = 1;
	else if (strcasecmp(kw, "PIPELINING") == 0)
		caps->pipelining = 1;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		caps->eightbitmime = 1;
	else if (strcasecmp(kw, "SIZE") == 0)
		/* RFC 1870 4: no number, or 0, means no fixed limit. */
		caps->size = strtonum(arg, 0, 1LL << 50, NULL);
	else if (strcasecmp(kw, "AUTH") == 0) {
		strlcpy(caps->auth, arg, sizeof caps->auth);
		for (mech = strtok_r(arg, " ", &last); mech != NULL;
		    mech = strtok_r(NULL, " ", &last)) {
			if (strcasecmp(mech, "PLAIN") == 0)
				caps->auth_plain = 1;
			else if (strcasecmp(mech, "LOGIN") == 0)
				caps->auth_login = 1;
		}
	}
}

/* EHLO keywords follow the first line, which names the server. */
static void
caps_parse(struct caps *caps, const struct reply *r)
{
	const char *line, *next;
	char kw[512];
	size_t len;

	memset(caps, 0, sizeof *caps);
	for (line = strchr(r->text, '\n'); line != NULL; line = next) {
		line++;
		next = strchr(line, '\n');
		len = next ? (size_t)(next - line) : strlen(line);
		if (len <= 4 || len - 4 >= sizeof kw)
			continue;
		memcpy(kw, line + 4, len - 4);
		kw[len - 4] = '\0';
		caps_word(caps, kw);
	}
}

/* ---- the dialogue ---------------------------------------------------------- */

/*
 * RFC 5321 4.1.4: the EHLO argument is the client's FQDN, or when it has
 * none an address literal; strict servers refuse a bare host name
 * (Postfix's reject_non_fqdn_helo_hostname).  Decided per connection,
 * since the literal is that of the socket.
 */
static void
helo_choose(struct smtp *s)
{
	const char *name = helo_name(s->conf);

	if (name == NULL &&
	    conn_local_literal(s->c, s->helo, sizeof s->helo) == 0)
		return;
	if (name == NULL)
		name = own_domain(s->conf);
	strlcpy(s->helo, name, sizeof s->helo);
}

static int
ehlo(struct smtp *s)
{
	int ex;

	ex = command(s, TMO_COMMAND, 2, "EHLO", NULL, "EHLO %s", s->helo);
	/* RFC 5321 3.2: fall back to HELO, but only where nothing needs EHLO */
	if (ex == EX_UNAVAILABLE && s->conf->tls == TLS_NONE &&
	    s->conf->user == NULL) {
		ex = command(s, TMO_COMMAND, 2, "HELO", NULL, "HELO %s",
		    s->helo);
		memset(&s->caps, 0, sizeof s->caps);
		return ex;
	}
	if (ex == EX_OK)
		caps_parse(&s->caps, &s->r);
	return ex;
}

static int
starttls(struct smtp *s)
{
	int ex;

	if (!s->caps.starttls) {
		snprintf(s->err, s->errlen, "%s does not offer STARTTLS; "
		    "refusing to go on in clear (it may be misconfigured, or "
		    "someone on the path removed it)", conn_peer(s->c));
		s->broken = 1;	/* not even QUIT: nothing more in clear */
		return EX_TEMPFAIL;
	}
	if ((ex = command(s, TMO_COMMAND, 2, "STARTTLS", NULL,
	    "STARTTLS")) != EX_OK)
		return ex;
	if (conn_starttls(s->c, &ex, s->err, s->errlen) == -1) {
		/*
		 * The server took STARTTLS and now reads a TLS handshake: a
		 * QUIT would go out in clear into it (RFC 3207 4).  Hang up.
		 */
		s->broken = 1;
		return ex;
	}
	trace("***", "TLS started", 11);
	/* RFC 3207 4.2: forget all we learnt in clear and ask again. */
	memset(&s->caps, 0, sizeof s->caps);
	return ehlo(s);
}

static int
auth_result(struct smtp *s, const char *mech)
{
	char show[512];

	if (s->r.code == 235)
		return EX_OK;
	reply_oneline(&s->r, show, sizeof show);
	snprintf(s->err, s->errlen, "%s refused AUTH %s as %s: %s",
	    conn_peer(s->c), mech, s->conf->user, show);
	/* RFC 4954 6: 454 is temporary, 535 wrong credentials. */
	return s->r.code / 100 == 4 ? EX_TEMPFAIL : EX_NOPERM;
}

/*
 * A line that carries credentials: prefix and Base64, of any length (a
 * long OAuth token will not fit CMD_MAX), never copied to a fixed buffer.
 * -v shows `shown` instead.
 */
static int
send_secret(struct smtp *s, const char *shown, const char *prefix,
    const char *b64, size_t len)
{
	trace(">>>", shown, strlen(shown));
	if (conn_write(s->c, prefix, strlen(prefix)) == -1 ||
	    conn_write(s->c, b64, len) == -1 ||
	    conn_write(s->c, "\r\n", 2) == -1) {
		s->broken = 1;
		snprintf(s->err, s->errlen, "%s: %s", conn_peer(s->c),
		    conn_error(s->c));
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

/* Base64 of data in a new buffer of *size octets, for freezero(). */
static char *
b64_secret(struct smtp *s, const void *data, size_t len, size_t *size,
    ssize_t *b64len)
{
	char *b64;

	*size = (len + 2) / 3 * 4 + 1;
	if ((b64 = malloc(*size)) == NULL) {
		snprintf(s->err, s->errlen, "AUTH: %s", strerror(errno));
		return NULL;
	}
	if ((*b64len = b64_encode(b64, *size, data, len)) == -1) {
		freezero(b64, *size);
		snprintf(s->err, s->errlen, "AUTH: cannot encode credentials");
		return NULL;
	}
	return b64;
}

/* One step of AUTH: send a Base64 line, hidden from -v. */
static int
auth_step(struct smtp *s, const void *data, size_t len, const char *what)
{
	char *b64;
	size_t size;
	ssize_t blen;
	int ex;

	if ((b64 = b64_secret(s, data, len, &size, &blen)) == NULL)
		return EX_OSERR;
	conn_timeout(s->c, s->conf->timeout[TMO_COMMAND]);
	ex = send_secret(s, "[credentials hidden]", "", b64, (size_t)blen);
	freezero(b64, size);
	if (ex == EX_OK)
		ex = read_reply(s, what);
	return ex;
}

static int
auth_plain(struct smtp *s)
{
	char *token, *b64 = NULL;
	size_t ulen = strlen(s->conf->user), plen = strlen(s->conf->password);
	size_t tlen = ulen + plen + 2, size = 0;
	ssize_t blen = 0;
	int ex;

	if ((token = malloc(tlen)) == NULL) {
		snprintf(s->err, s->errlen, "AUTH: %s", strerror(errno));
		return EX_OSERR;
	}
	/* RFC 4616: empty authzid, NUL, authcid, NUL, password. */
	token[0] = '\0';
	memcpy(token + 1, s->conf->user, ulen);
	token[ulen + 1] = '\0';
	memcpy(token + ulen + 2, s->conf->password, plen);
	if ((b64 = b64_secret(s, token, tlen, &size, &blen)) == NULL)
		ex = EX_OSERR;
	/* RFC 4954 4: an initial response only if the line stays in 512. */
	else if ((size_t)blen + sizeof("AUTH PLAIN \r\n") - 1 <=
	    AUTH_LINE_MAX) {
		conn_timeout(s->c, s->conf->timeout[TMO_COMMAND]);
		ex = send_secret(s, "AUTH PLAIN [credentials hidden]",
		    "AUTH PLAIN ", b64, (size_t)blen);
		if (ex == EX_OK)
			ex = read_reply(s, "AUTH PLAIN");
	} else {
		/* Else an empty challenge (334) and the response alone. */
		ex = command(s, TMO_COMMAND, 3, "AUTH PLAIN", NULL,
		    "AUTH PLAIN");
		if (ex == EX_OK) {
			conn_timeout(s->c, s->conf->timeout[TMO_COMMAND]);
			ex = send_secret(s, "[credentials hidden]", "", b64,
			    (size_t)blen);
			if (ex == EX_OK)
				ex = read_reply(s, "AUTH PLAIN");
		} else if (!s->broken)
			ex = EX_OK;	/* refused: auth_result says why */
	}
	freezero(token, tlen);
	if (b64 != NULL)
		freezero(b64, size);
	return ex == EX_OK ? auth_result(s, "PLAIN") : ex;
}

static int
auth_login(struct smtp *s)
{
	int ex;

	ex = command(s, TMO_COMMAND, 3, "AUTH LOGIN", NULL, "AUTH LOGIN");
	if (ex == EX_OK)
		ex = auth_step(s, s->conf->user, strlen(s->conf->user),
		    "AUTH LOGIN");
	if (ex == EX_OK && s->r.code == 334)
		ex = auth_step(s, s->conf->password,
		    strlen(s->conf->password), "AUTH LOGIN");
	else if (ex != EX_OK && !s->broken)
		ex = EX_OK;	/* refused: auth_result says why */
	return ex == EX_OK ? auth_result(s, "LOGIN") : ex;
}

static int
authenticate(struct smtp *s)
{
	/* RFC 4954 14: credentials only over verified TLS. */
	if (!conn_is_tls(s->c)) {
		snprintf(s->err, s->errlen, "refusing to send credentials "
		    "without TLS");
		return EX_SOFTWARE;
	}
	/* password_command and password_env are fetched by conf_secret(). */
	if (s->conf->password == NULL) {
		snprintf(s->err, s->errlen, "no password to send: it was "
		    "not fetched (conf_secret)");
		return EX_SOFTWARE;
	}
	if (s->caps.auth_plain)
		return auth_plain(s);
	if (s->caps.auth_login)
		return auth_login(s);
	if (s->caps.auth[0] == '\0')
		snprintf(s->err, s->errlen, "%s does not offer AUTH, but "
		    "user is set in %s", conn_peer(s->c), s->conf->path);
	else
		snprintf(s->err, s->errlen, "%s offers AUTH %s; relay needs "
		    "PLAIN or LOGIN", conn_peer(s->c), s->caps.auth);
	return EX_UNAVAILABLE;
}

/* ---- the envelope and the message ---------------------------------------- */

static void
rcpt_record(struct smtp *s, struct rcpt *rc)
{
	char show[512];

	reply_oneline(&s->r, show, sizeof show);
	rc->code = s->r.code;
	free(rc->reply);
	rc->reply = strdup(show);
}

/*
 * A refusal of the whole message is every recipient's answer: those the
 * envelope concerned (all) or those RCPT had taken (accepted only).
 */
static void
rcpts_mark(struct smtp *s, struct msg *m, int all)
{
	size_t i;

	for (i = 0; i < m->nrcpts; i++)
		if (all || m->rcpts[i].code / 100 == 2)
			rcpt_record(s, &m->rcpts[i]);
}

/* The same for a refusal relay makes itself (SIZE, no 8-bit path). */
static void
rcpts_mark_local(struct msg *m, int code, const char *why)
{
	size_t i;

	for (i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].code = code;
		free(m->rcpts[i].reply);
		m->rcpts[i].reply = strdup(why);
	}
}

/* Recipients the smarthost refused, as "<a@x>: 550 ...; <b@y>: ...". */
static int
refused_summary(struct smtp *s, const struct msg *m, int accepted)
{
	size_t i, o;
	int temp = 0;

	s->err[0] = '\0';
	for (i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].code / 100 == 2)
			continue;
		if (m->rcpts[i].code / 100 != 5)
			temp = 1;
		o = strlen(s->err);
		snprintf(s->err + o, s->errlen - o, "%s<%s>: %s", o ? "; " :
		    "", m->rcpts[i].addr, m->rcpts[i].reply ?
		    m->rcpts[i].reply : "no reply");
	}
	if (accepted > 0) {
		o = strlen(s->err);
		snprintf(s->err + o, s->errlen - o, " (delivered to the "
		    "other %d recipient%s)", accepted, accepted == 1 ? "" :
		    "s");
	}
	/* With a temporary refusal among them, a later try may still work. */
	return temp ? EX_TEMPFAIL : EX_NOUSER;
}

static int
send_mail_from(struct smtp *s, const struct msg *m)
{
	char params[80] = "";

	if (s->caps.size > 0)
		snprintf(params, sizeof params, " SIZE=%lld",
		    (long long)m->size);
	if (m->eightbit && s->caps.eightbitmime)
		strlcat(params, " BODY=8BITMIME", sizeof params);
	conn_timeout(s->c, s->conf->timeout[TMO_COMMAND]);
	return send_cmd(s, NULL, "MAIL FROM:<%s>%s", m->sender, params);
}

static int
check_mail_reply(struct smtp *s, struct msg *m)
{
	char show[512];

	if (s->r.code / 100 == 2)
		return EX_OK;
	reply_oneline(&s->r, show, sizeof show);
	snprintf(s->err, s->errlen, "%s refused MAIL FROM:<%s>: %s",
	    conn_peer(s->c), m->sender, show);
	return reply_exit(s->r.code);
}

/* Reply to RCPT for recipient i, sent earlier (pipelined) or just now. */
static int
rcpt_reply(struct smtp *s, struct msg *m, size_t i, int *accepted)
{
	int ex;

	conn_timeout(s->c, s->conf->timeout[TMO_COMMAND]);
	if ((ex = read_reply(s, "RCPT TO")) != EX_OK)
		return ex;
	rcpt_record(s, &m->rcpts[i]);
	*accepted += s->r.code / 100 == 2;
	return EX_OK;
}

static int
send_rcpt(struct smtp *s, const struct rcpt *rc)
{
	conn_timeout(s->c, s->conf->timeout[TMO_COMMAND]);
	return send_cmd(s, NULL, "RCPT TO:<%s>", rc->addr);
}

/* One command, one reply: MAIL, each RCPT, then DATA if anyone is left. */
static int
envelope_stepwise(struct smtp *s, struct msg *m, int *accepted)
{
	size_t i;
	int ex;

	if (s->transactions++ > 0 && (ex = command(s, TMO_COMMAND, 2, "RSET",
	    NULL, "RSET")) != EX_OK)
		return ex;
	if ((ex = send_mail_from(s, m)) != EX_OK ||
	    (ex = read_reply(s, "MAIL FROM")) != EX_OK)
		return ex;
	if ((ex = check_mail_reply(s, m)) != EX_OK) {
		rcpts_mark(s, m, 1);
		return ex;
	}
	for (i = 0; i < m->nrcpts; i++)
		if ((ex = send_rcpt(s, &m->rcpts[i])) != EX_OK ||
		    (ex = rcpt_reply(s, m, i, accepted)) != EX_OK)
			return ex;
	if (*accepted == 0)
		return refused_summary(s, m, 0);
	conn_timeout(s->c, s->conf->timeout[TMO_DATA_INIT]);
	if ((ex = send_cmd(s, NULL, "DATA")) != EX_OK ||
	    (ex = read_reply(s, "DATA")) != EX_OK)
		return ex;
	return EX_OK;
}

/*
 * RFC 2920: MAIL, every RCPT and DATA in one write, then every reply in
 * order, even after a refusal.  If DATA was accepted for an envelope that
 * failed, end that empty transaction cleanly (3.1).
 */
static int
envelope_pipelined(struct smtp *s, struct msg *m, int *accepted)
{
	char mail_show[512];
	size_t i;
	int ex, mail_ex, mail_code, data_code, rset;

	/* RFC 2920 3.1: RSET may open a pipelined group. */
	rset = s->transactions++ > 0;
	if (rset && (ex = send_cmd(s, NULL, "RSET")) != EX_OK)
		return ex;
	if ((ex = send_mail_from(s, m)) != EX_OK)
		return ex;
	for (i = 0; i < m->nrcpts; i++)
		if ((ex = send_rcpt(s, &m->rcpts[i])) != EX_OK)
			return ex;
	if ((ex = send_cmd(s, NULL, "DATA")) != EX_OK)
		return ex;
	if (rset && (ex = read_reply(s, "RSET")) != EX_OK)
		return ex;
	if (rset && s->r.code / 100 != 2) {
		s->broken = 1;	/* the rest of the group is meaningless */
		snprintf(s->err, s->errlen, "%s refused RSET", conn_peer(s->c));
		return EX_TEMPFAIL;
	}
	if ((ex = read_reply(s, "MAIL FROM")) != EX_OK)
		return ex;
	mail_ex = check_mail_reply(s, m);
	mail_code = s->r.code;
	reply_oneline(&s->r, mail_show, sizeof mail_show);
	for (i = 0; i < m->nrcpts; i++)
		if ((ex = rcpt_reply(s, m, i, accepted)) != EX_OK)
			return ex;
	if (mail_ex != EX_OK) {
		*accepted = 0;
		rcpts_mark_local(m, mail_code, mail_show);
	}
	conn_timeout(s->c, s->conf->timeout[TMO_DATA_INIT]);
	if ((ex = read_reply(s, "DATA")) != EX_OK)
		return ex;
	if (s->r.code == 354 && (mail_ex != EX_OK || *accepted == 0)) {
		data_code = s->r.code;
		conn_timeout(s->c, s->conf->timeout[TMO_DATA_END]);
		if (send_cmd(s, NULL, ".") == EX_OK)
			(void)read_reply(s, "end of data");
		s->r.code = data_code;
	}
	if (mail_ex != EX_OK) {
		/* check_mail_reply() wrote s->err before later replies came. */
		return mail_ex;
	}
	if (*accepted == 0)
		return refused_summary(s, m, 0);
	return EX_OK;
}

/* Returns EX_OK when the server waits for the message (354). */
static int
envelope(struct smtp *s, struct msg *m, int *accepted)
{
	char show[512];
	int ex;

	*accepted = 0;
	if (s->caps.pipelining && m->nrcpts <= PIPELINE_MAX)
		ex = envelope_pipelined(s, m, accepted);
	else
		ex = envelope_stepwise(s, m, accepted);
	if (ex != EX_OK || s->r.code == 354)
		return ex;
	rcpts_mark(s, m, 0);
	reply_oneline(&s->r, show, sizeof show);
	snprintf(s->err, s->errlen, "%s refused DATA: %s", conn_peer(s->c),
	    show);
	return reply_exit(s->r.code);
}

static int
put_data(void *ctx, const char *buf, size_t len)
{
	struct smtp *s = ctx;

	conn_timeout(s->c, s->conf->timeout[TMO_DATA_BLOCK]);
	return conn_write(s->c, buf, len);
}

static int
data(struct smtp *s, struct msg *m)
{
	char note[64], show[512];

	snprintf(note, sizeof note, "[message, %lld octets]",
	    (long long)m->size);
	trace(">>>", note, strlen(note));
	if (msg_send(m, put_data, s) == -1) {
		s->broken = 1;
		snprintf(s->err, s->errlen, "%s: lost while sending the "
		    "message: %s", conn_peer(s->c), conn_error(s->c));
		return EX_TEMPFAIL;
	}
	/* From here on the server may have the whole message. */
	s->dot_sent = 1;
	if (conn_flush(s->c) == -1) {
		s->broken = 1;
		snprintf(s->err, s->errlen, "%s: lost while sending the "
		    "message: %s", conn_peer(s->c), conn_error(s->c));
		return EX_TEMPFAIL;
	}
	trace(">>>", ".", 1);
	/* RFC 5321 4.5.3.2.6: the server may take long to accept it. */
	conn_timeout(s->c, s->conf->timeout[TMO_DATA_END]);
	if (read_reply(s, "end of data") != EX_OK) {
		/* Sent but not confirmed: the status is unknown. */
		strlcat(s->err, " (the message may or may not have been "
		    "delivered)", s->errlen);
		return EX_TEMPFAIL;
	}
	if (s->r.code / 100 == 2) {
		s->data_ok = 1;
		return EX_OK;
	}
	rcpts_mark(s, m, 0);
	reply_oneline(&s->r, show, sizeof show);
	snprintf(s->err, s->errlen, "%s refused the message: %s",
	    conn_peer(s->c), show);
	return reply_exit(s->r.code);
}

/* Greeting, EHLO, STARTTLS, AUTH: ready for MAIL. */
static int
session_start(struct smtp *s)
{
	char show[512];
	int ex;

	conn_timeout(s->c, s->conf->timeout[TMO_GREETING]);
	if ((ex = read_reply(s, "the greeting")) != EX_OK) {
		/* A silent server on a plaintext connection wants TLS first. */
		if (!conn_is_tls(s->c) && s->r.lines == 0)
			strlcat(s->err, " (if the smarthost expects TLS from "
			    "the first byte, set \"tls implicit\")", s->errlen);
		return ex;
	}
	if (s->r.code / 100 != 2) {
		reply_oneline(&s->r, show, sizeof show);
		snprintf(s->err, s->errlen, "%s refused the session: %s",
		    conn_peer(s->c), show);
		return reply_exit(s->r.code);
	}
	if ((ex = ehlo(s)) != EX_OK)
		return ex;
	if (s->conf->tls == TLS_STARTTLS && (ex = starttls(s)) != EX_OK)
		return ex;
	if (s->conf->user != NULL && (ex = authenticate(s)) != EX_OK)
		return ex;
	return EX_OK;
}

/* What relay itself must refuse before MAIL: too big, no 8-bit path. */
static int
fit_message(struct smtp *s, struct msg *m)
{
	int ex;

	/* RFC 6152 3: no 8-bit octets to a server that did not ask. */
	if (m->eightbit && !s->caps.eightbitmime &&
	    (ex = msg_to_7bit(m, s->err, s->errlen)) != EX_OK) {
		rcpts_mark_local(m, 554, s->err);
		return ex;
	}
	if (s->caps.size > 0 && m->size > s->caps.size) {
		snprintf(s->err, s->errlen, "message is %lld octets, %s "
		    "accepts at most %lld", (long long)m->size,
		    conn_peer(s->c), s->caps.size);
		rcpts_mark_local(m, 552, s->err);
		return EX_UNAVAILABLE;
	}
	return EX_OK;
}

static void
quit(struct smtp *s)
{
	char scratch[ERRLEN];

	if (s->broken)
		return;
	s->err = scratch;
	s->errlen = sizeof scratch;
	/* RFC 5321 4.1.1.10: wait for the 221, but not for long. */
	conn_timeout(s->c, QUIT_TIMEOUT);
	if (send_cmd(s, NULL, "QUIT") == EX_OK)
		(void)read_reply(s, "QUIT");
	s->broken = 1;
}

struct smtp *
smtp_open(const struct conf *conf, struct delivery *d, int *exitcode,
    char *err, size_t errlen)
{
	struct smtp *s;

	memset(d, 0, sizeof *d);
	err[0] = '\0';
	if ((s = calloc(1, sizeof *s)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		*exitcode = EX_OSERR;
		return NULL;
	}
	s->conf = conf;
	s->err = err;
	s->errlen = errlen;
	trace("***", "relay " RELAY_VERSION, strlen("relay " RELAY_VERSION));
	if ((s->c = conn_open(conf, exitcode, err, errlen)) == NULL) {
		free(s);
		return NULL;
	}
	strlcpy(d->relay, conn_peer(s->c), sizeof d->relay);
	trace("***", d->relay, strlen(d->relay));
	helo_choose(s);
	if ((*exitcode = session_start(s)) != EX_OK) {
		if (s->r.lines > 0)
			reply_oneline(&s->r, d->last, sizeof d->last);
		/* err stays the caller's: quit() uses its own buffer. */
		smtp_close(s);
		return NULL;
	}
	return s;
}

/*
 * Only a message the server took with 2xx after the dot is delivered: a
 * recipient taken by RCPT is not, when the session died after it.
 */
static void
settle(struct smtp *s, struct msg *m)
{
	size_t i;

	for (i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].code / 100 != 2)
			continue;
		if (s->data_ok) {
			rcpt_record(s, &m->rcpts[i]);
			continue;
		}
		m->rcpts[i].code = 0;
		free(m->rcpts[i].reply);
		m->rcpts[i].reply = strdup(s->err);
	}
}

/* One transaction: the envelope, then the message if anyone was taken. */
static int
transaction(struct smtp *s, struct msg *m)
{
	int ex, accepted;

	s->data_ok = 0;
	s->dot_sent = 0;
	if ((ex = envelope(s, m, &accepted)) == EX_OK)
		ex = data(s, m);
	settle(s, m);
	return ex;
}

/* How many recipients were told 452, too many for that transaction. */
static size_t
count_452(const struct msg *m)
{
	size_t i, n = 0;

	for (i = 0; i < m->nrcpts; i++)
		n += m->rcpts[i].code == 452;
	return n;
}

/*
 * RFC 5321 4.5.3.1.10: a server with a limit on recipients answers 452
 * to those past it; they go in a further transaction.  part shares all
 * of m but the recipients, whose answers are copied back.
 */
static int
transaction_rest(struct smtp *s, struct msg *m)
{
	struct msg part = *m;
	struct rcpt *rest;
	size_t *idx, i, n = 0;
	int ex;

	if ((rest = calloc(count_452(m), sizeof *rest)) == NULL ||
	    (idx = calloc(count_452(m), sizeof *idx)) == NULL) {
		free(rest);
		snprintf(s->err, s->errlen, "%s", strerror(errno));
		return EX_OSERR;
	}
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].code == 452) {
			idx[n] = i;
			rest[n++].addr = m->rcpts[i].addr;
		}
	part.rcpts = rest;
	part.nrcpts = n;
	ex = transaction(s, &part);
	for (i = 0; i < n; i++) {
		m->rcpts[idx[i]].code = rest[i].code;
		free(m->rcpts[idx[i]].reply);
		m->rcpts[idx[i]].reply = rest[i].reply;
	}
	free(rest);
	free(idx);
	return ex;
}

static size_t
count_taken(const struct msg *m)
{
	size_t i, n = 0;

	for (i = 0; i < m->nrcpts; i++)
		n += m->rcpts[i].code / 100 == 2;
	return n;
}

int
smtp_send(struct smtp *s, struct msg *m, struct delivery *d, char *err,
    size_t errlen)
{
	size_t i;
	int ex, delivered = 0;

	s->err = err;
	s->errlen = errlen;
	err[0] = '\0';
	d->last[0] = '\0';
	s->data_ok = 0;
	s->dot_sent = 0;
	d->unsent = 0;
	for (i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].code = 0;
		free(m->rcpts[i].reply);
		m->rcpts[i].reply = NULL;
	}
	if (s->broken) {
		snprintf(err, errlen, "%s: the session has ended",
		    conn_peer(s->c));
		return EX_TEMPFAIL;
	}
	if ((ex = fit_message(s, m)) == EX_OK)
		ex = transaction(s, m);
	/* Each round moves at least one recipient: no loop. */
	while (s->data_ok && !s->broken && count_452(m) > 0) {
		delivered = 1;
		ex = transaction_rest(s, m);
	}
	delivered |= s->data_ok;
	if (s->r.lines > 0)
		reply_oneline(&s->r, d->last, sizeof d->last);
	/*
	 * Lost before the message went out, on a session that had carried
	 * others: the server's limit, not this message.  A new session may
	 * send it, unless part of it went already.
	 */
	d->unsent = s->broken && !s->dot_sent && ex == EX_TEMPFAIL &&
	    s->transactions > 1 && !delivered;
	/* For the log: what the smarthost said to the recipients. */
	if (!s->data_ok && m->nrcpts > 0 && m->rcpts[0].code != 0 &&
	    m->rcpts[0].reply != NULL)
		strlcpy(d->last, m->rcpts[0].reply, sizeof d->last);
	/* Over every transaction, unless the session's own error says more. */
	if ((ex == EX_OK || (delivered && !s->broken)) &&
	    count_taken(m) < m->nrcpts)
		ex = refused_summary(s, m, (int)count_taken(m));
	return ex;
}

int
smtp_usable(const struct smtp *s)
{
	return !s->broken;
}

void
smtp_close(struct smtp *s)
{
	if (s == NULL)
		return;
	quit(s);
	conn_close(s->c);
	explicit_bzero(s, sizeof *s);
	free(s);
}
