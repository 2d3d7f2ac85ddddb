/*
 * The header block and the envelope drawn from it, msg_read's steps
 * before the body's: the fields (find, add, replace, drop), the envelope
 * sender and recipients (-f, argv, -t, aliases), local names in the
 * header rewritten for the wire, Bcc removed, the From, Date and
 * Message-ID a message lacks added, and From: set to the configured
 * sender where set_from_header says so.
 */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define EW_CHUNK	45		/* RFC 2047 2: 75-octet encoded-words */

/* Header fields with a job; names compare case-insensitively. */
#define F_EXTRACT	0x01	/* -t takes recipients from it */
#define F_REMOVE	0x02	/* never sent */
#define F_ALIAS		0x04	/* local names mapped through aliases */
#define F_SENDER	0x08	/* local names become the envelope sender */
#define F_RESENT	0x10	/* -t takes these instead, when there are any */

/*
 * -t reads To, Cc and Bcc, or when the message has Resent-To, Resent-Cc
 * or Resent-Bcc (RFC 5322 3.6.6: it is being resent) those alone, as
 * Sendmail and Postfix do: the original recipients had it already.
 */
static const struct {
	const char	*name;
	int		 flags;
} fieldtab[] = {
	{ "To",		F_EXTRACT | F_ALIAS },
	{ "Cc",		F_EXTRACT | F_ALIAS },
	{ "Bcc",	F_EXTRACT | F_REMOVE },	/* RFC 5322 3.6.3 */
	{ "Resent-To",	F_RESENT | F_ALIAS },
	{ "Resent-Cc",	F_RESENT | F_ALIAS },
	{ "Resent-Bcc",	F_RESENT | F_REMOVE },
	{ "Return-Path", F_REMOVE },		/* RFC 5321 4.4 */
	{ "Reply-To",	F_ALIAS },
	{ "From",	F_SENDER },
	{ "Sender",	F_SENDER },
};

/* For error messages: untrusted text made printable, cut to fit. */
static const char *
printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	sanitise(dst, dstlen, src, srclen);
	return dst;
}

/* ---- headers ------------------------------------------------------------ */

/*
 * RFC 5322 3.6.8: field-name = 1*ftext (printable ASCII but ':'); obs
 * syntax (4.5) allows WSP before the colon.  Returns the name's length, 0
 * if this is not a header field line.
 */
size_t
field_name(const char *s, size_t len, size_t *valoff)
{
	size_t i, n;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == ':')
			break;
	}
	if ((n = i) == 0)
		return 0;
	while (i < len && is_wsp((unsigned char)s[i]))
		i++;
	if (i == len || s[i] != ':')
		return 0;
	*valoff = i + 1;
	return n;
}

int
field_is(const struct header *h, const char *name)
{
	return h->namelen == strlen(name) &&
	    strncasecmp(h->text, name, h->namelen) == 0;
}

static int
field_flags(const struct header *h)
{
	size_t i;

	for (i = 0; i < sizeof(fieldtab) / sizeof(fieldtab[0]); i++)
		if (field_is(h, fieldtab[i].name))
			return fieldtab[i].flags;
	return 0;
}

struct header *
find_field(const struct msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nhdrs; i++)
		if (field_is(&m->hdrs[i], name))
			return &m->hdrs[i];
	return NULL;
}

/*
 * Append a field; text is taken over on success.  The array doubles when
 * nhdrs reaches a power of two (8 first): header blocks of 20000 fields
 * must not cost 20000 reallocs.  header_compact only lowers nhdrs, so
 * the capacity is always more than nhdrs.
 */
int
header_push(struct work *w, char *text, size_t len)
{
	struct msg *m = w->msg;
	struct header *h;
	size_t valoff = 0, namelen, n = m->nhdrs;

	namelen = field_name(text, len, &valoff);
	if (n == 0 || (n >= 8 && (n & (n - 1)) == 0)) {
		if ((h = reallocarray(m->hdrs, n < 8 ? 8 : 2 * n,
		    sizeof(*h))) == NULL)
			return nomem(w);
		m->hdrs = h;
	}
	h = &m->hdrs[m->nhdrs++];
	h->text = text;
	h->len = len;
	h->cap = len + 1;
	h->namelen = namelen;
	h->valoff = valoff;
	return EX_OK;
}

int
header_add(struct work *w, const char *text)
{
	char *copy;
	int ex;

	if ((copy = strdup(text)) == NULL)
		return nomem(w);
	if ((ex = header_push(w, copy, strlen(copy))) != EX_OK)
		free(copy);
	return ex;
}

/* Replace a field's whole text (name included); b is taken over. */
void
header_replace(struct header *h, struct buf *b)
{
	free(h->text);
	h->text = b->p;
	h->len = b->len;
	h->cap = b->cap;
	h->namelen = field_name(h->text, h->len, &h->valoff);
	memset(b, 0, sizeof(*b));
}

/*
 * Drop the fields whose drop[] is set, in one pass: deleting them one by
 * one would move the rest each time, and 170000 "Bcc:" lines fit in the
 * 1 MiB header block (minutes of memmove).
 */
void
header_compact(struct msg *m, const unsigned char *drop)
{
	size_t i, kept = 0;

	for (i = 0; i < m->nhdrs; i++) {
		if (drop[i])
			free(m->hdrs[i].text);
		else
			m->hdrs[kept++] = m->hdrs[i];
	}
	m->nhdrs = kept;
}

/* ---- envelope ----------------------------------------------------------- */

static int
dup_into(struct work *w, const char *s, char **out)
{
	if ((*out = strdup(s)) == NULL)
		return nomem(w);
	return EX_OK;
}

/*
 * Is addr a local name (relay.h: local_name)?  Its local part into name
 * when name is not NULL.  The one test of "local" for the envelope and
 * the header alike.
 */
static int
is_local(struct work *w, const char *addr, char *name, size_t size)
{
	char part[ADDR_MAX + 1];

	if (name == NULL) {
		name = part;
		size = sizeof(part);
	}
	return addr[0] != '\0' && local_name(w->conf, addr, name, size);
}

/* The caller's login name and GECOS full name, looked up once. */
static int
passwd_entry(struct work *w)
{
	struct passwd *pw;
	size_t n;

	if (w->pw_done)
		return w->login != NULL ? 0 : -1;
	w->pw_done = 1;
	if ((pw = getpwuid(getuid())) == NULL)
		return -1;
	if ((w->login = strdup(pw->pw_name)) == NULL)
		return -1;
	/* GECOS: "Full Name,office,phone,...". */
	n = pw->pw_gecos != NULL ? strcspn(pw->pw_gecos, ",") : 0;
	if (n > 0 && (w->gecos = strndup(pw->pw_gecos, n)) == NULL)
		return -1;
	return 0;
}

/*
 * The sender when -f gives none we can use: the configured one, else
 * login@domain, else the AUTH user if it is an address.
 */
static int
default_sender(struct work *w, char **out)
{
	const struct conf *c = w->conf;
	struct buf b = { NULL, 0, 0 };

	if (c->from != NULL)
		return dup_into(w, c->from, out);
	if (c->domain != NULL) {
		if (passwd_entry(w) == -1)
			return failf(w, EX_OSERR, "cannot find the login name "
			    "of uid %lu", (unsigned long)getuid());
		if (buf_printf(&b, "%s@%s", w->login, c->domain) == -1)
			return nomem(w);
		*out = b.p;
		return EX_OK;
	}
	if (c->user != NULL && strchr(c->user, '@') != NULL)
		return dup_into(w, c->user, out);
	return failf(w, EX_CONFIG, "no envelope sender: set \"from\" in %s",
	    c->path != NULL ? c->path : RELAY_CONF_DEFAULT);
}

/* Can default_sender make an address? */
static int
have_default_sender(const struct conf *c)
{
	return c->from != NULL || c->domain != NULL ||
	    (c->user != NULL && strchr(c->user, '@') != NULL);
}

/*
 * -f/-r: one mailbox; "" or "<>" is the null path (RFC 5321 4.5.5).  A
 * local name such as cron's "-f root", or mailutils' "-f root@HOST",
 * leaves *out NULL: the default sender applies, since the smarthost has
 * no use for it (and strict ones refuse root@HOST).  A qualified one is
 * kept when there is no default to put instead.
 */
static int
sender_from_opt(struct work *w, const char *from, char **out)
{
	struct mailbox *mbs;
	size_t nmbs;
	char why[ERRLEN], shown[128];
	int ex = EX_OK;

	*out = NULL;
	if (addrlist_parse(from, strlen(from), &mbs, &nmbs, why,
	    sizeof(why)) == -1)
		return failf(w, EX_DATAERR, "bad sender address \"%s\": %s",
		    printable(shown, sizeof(shown), from, strlen(from)), why);
	if (nmbs > 1)
		ex = failf(w, EX_USAGE, "sender \"%s\" holds more than one "
		    "address", printable(shown, sizeof(shown), from,
		    strlen(from)));
	else if (nmbs == 0 || mbs[0].addr[0] == '\0')
		ex = dup_into(w, "", out);
	else if (!is_local(w, mbs[0].addr, NULL, 0) ||
	    (strchr(mbs[0].addr, '@') != NULL &&
	    !have_default_sender(w->conf)))
		ex = dup_into(w, mbs[0].addr, out);
	addrlist_free(mbs, nmbs);
	return ex;
}

int
step_sender(struct work *w)
{
	struct msg *m = w->msg;
	const char *why, *from = w->opts->from;
	char shown[300];
	int ex;

	/* allow_from_override no: providers take only the account's own. */
	if (w->conf->force_from && !w->opts->report)
		from = NULL;
	if (from != NULL &&
	    (ex = sender_from_opt(w, from, &m->sender)) != EX_OK)
		return ex;
	if (m->sender == NULL && (ex = default_sender(w, &m->sender)) != EX_OK)
		return ex;
	if ((why = addr_check(m->sender)) != NULL)
		return failf(w, from != NULL && strchr(from, '@') != NULL ?
		    EX_DATAERR : EX_CONFIG, "bad sender address \"%s\": %s",
		    printable(shown, sizeof(shown), m->sender,
		    strlen(m->sender)), why);
	return EX_OK;
}

static int
rcpt_add(struct work *w, const char *addr)
{
	struct msg *m = w->msg;
	struct rcpt *r;
	const char *why;
	char shown[300];
	size_t i;

	if ((why = addr_check(addr)) != NULL || addr[0] == '\0')
		return failf(w, EX_DATAERR, "bad recipient address \"%s\": %s",
		    printable(shown, sizeof(shown), addr, strlen(addr)),
		    why != NULL ? why : "empty address");
	for (i = 0; i < m->nrcpts; i++)
		if (strcmp(m->rcpts[i].addr, addr) == 0)
			return EX_OK;
	/*
	 * Refused at the first one too many: the search above makes n
	 * recipients cost n * n, and a 1 MiB To: field holds 100000.  (0:
	 * no limit, for a struct conf not made by conf_load.)
	 */
	if (w->conf->max_rcpts > 0 && m->nrcpts >= w->conf->max_rcpts)
		return failf(w, EX_DATAERR, "at least %zu recipients; "
		    "max_recipients is %zu", m->nrcpts + 1,
		    w->conf->max_rcpts);
	if (m->nrcpts == w->rcptcap) {
		size_t cap = w->rcptcap ? w->rcptcap * 2 : 8;

		if ((r = reallocarray(m->rcpts, cap, sizeof(*r))) == NULL)
			return nomem(w);
		m->rcpts = r;
		w->rcptcap = cap;
	}
	r = &m->rcpts[m->nrcpts];
	if ((r->addr = strdup(addr)) == NULL)
		return nomem(w);
	r->code = 0;
	r->reply = NULL;
	m->nrcpts++;
	return EX_OK;
}

/*
 * A local name (no '@', or at one of the host's names) goes through the
 * aliases, else gets the domain (RFC 6409 4.2: the MSA wants qualified
 * addresses, and smarthosts either refuse bare names or qualify them with
 * their own domain).  Without a domain a qualified one goes as it is.
 */
static int
rcpt_resolve(struct work *w, const char *addr)
{
	const struct alias *al;
	struct buf b = { NULL, 0, 0 };
	char shown[128], name[ADDR_MAX + 1];
	size_t i;
	int ex;

	if (!is_local(w, addr, name, sizeof(name)))
		return rcpt_add(w, addr);
	if ((al = conf_alias(w->conf, name)) != NULL) {
		for (i = 0; i < al->ntargets; i++)
			if ((ex = rcpt_add(w, al->targets[i])) != EX_OK)
				return ex;
		return EX_OK;
	}
	if (w->conf->domain == NULL && strchr(addr, '@') != NULL)
		return rcpt_add(w, addr);
	if (w->conf->domain == NULL)
		return failf(w, EX_NOUSER, "local recipient \"%s\" has no "
		    "alias and no domain is set in %s",
		    printable(shown, sizeof(shown), addr, strlen(addr)),
		    w->conf->path != NULL ? w->conf->path :
		    RELAY_CONF_DEFAULT);
	if (buf_printf(&b, "%s@%s", name, w->conf->domain) == -1)
		return nomem(w);
	ex = rcpt_add(w, b.p);
	free(b.p);
	return ex;
}

/* field: the header field the list comes from, NULL for argv. */
static int
rcpt_list(struct work *w, const char *text, size_t len, const char *field)
{
	struct mailbox *mbs;
	size_t i, nmbs;
	char why[ERRLEN], shown[128];
	int ex = EX_OK;

	if (addrlist_parse(text, len, &mbs, &nmbs, why, sizeof(why)) == -1) {
		if (field != NULL)
			return failf(w, EX_DATAERR, "cannot parse the %s: "
			    "header field: %s", field, why);
		return failf(w, EX_DATAERR, "bad recipient \"%s\": %s",
		    printable(shown, sizeof(shown), text, len), why);
	}
	for (i = 0; i < nmbs && ex == EX_OK; i++)
		ex = rcpt_resolve(w, mbs[i].addr);
	addrlist_free(mbs, nmbs);
	return ex;
}

/*
 * argv recipients, each an address list (Debian cron passes MAILTO
 * "a@x,b@y" as one argument); with -t the header ones too, added to argv
 * as Postfix and msmtp do.
 */
int
step_rcpts(struct work *w)
{
	const struct msgopts *o = w->opts;
	const struct msg *m = w->msg;
	const struct header *h;
	char name[64];
	size_t i;
	int ex, want = F_EXTRACT;

	for (i = 0; i < m->nhdrs; i++)
		if (field_flags(&m->hdrs[i]) & F_RESENT)
			want = F_RESENT;
	for (i = 0; i < o->nargv; i++) {
		if ((ex = rcpt_list(w, o->argv_rcpts[i],
		    strlen(o->argv_rcpts[i]), NULL)) != EX_OK)
			return ex;
	}
	for (i = 0; o->extract && i < m->nhdrs; i++) {
		h = &m->hdrs[i];
		if (!(field_flags(h) & want))
			continue;
		(void)printable(name, sizeof(name), h->text, h->namelen);
		if ((ex = rcpt_list(w, h->text + h->valoff,
		    h->len - h->valoff, name)) != EX_OK)
			return ex;
	}
	if (m->nrcpts > 0)
		return EX_OK;
	if (o->extract)
		return failf(w, EX_DATAERR, "no recipient addresses found in "
		    "the message header");
	return failf(w, EX_USAGE, "no recipients given");
}

/* ---- header rewriting --------------------------------------------------- */

/*
 * What a local name in a header becomes: in To/Cc/Reply-To its alias
 * targets (one replaces the addr-spec, several the whole mailbox) or its
 * qualified form; in From/Sender the envelope sender.  Returns 0 when the
 * mailbox stays as it is.
 */
static int
local_replacement(struct work *w, int flags, const char *addr,
    struct buf *out, int *whole)
{
	const struct alias *al;
	char name[ADDR_MAX + 1];
	size_t i;

	*whole = 0;
	if (!is_local(w, addr, name, sizeof(name)))
		return 0;
	if (flags & F_SENDER) {
		if (w->msg->sender[0] == '\0')
			return 0;
		return buf_str(out, w->msg->sender) == -1 ? -1 : 1;
	}
	if ((al = conf_alias(w->conf, name)) != NULL) {
		if (al->ntargets == 0)
			return 0;
		*whole = al->ntargets > 1;
		for (i = 0; i < al->ntargets; i++)
			if (buf_printf(out, "%s%s", i > 0 ? ", " : "",
			    al->targets[i]) == -1)
				return -1;
		return 1;
	}
	if (w->conf->domain == NULL)
		return 0;
	return buf_printf(out, "%s@%s", name, w->conf->domain) == -1 ? -1 : 1;
}

/*
 * Rewrite the local names in one address field in place, through the
 * spans the parser gave; everything else (display names, comments,
 * folding) stays as written.  A field that does not parse is left alone.
 */
static int
rewrite_field(struct work *w, struct header *h, int flags)
{
	const char *val = h->text + h->valoff;
	struct mailbox *mbs;
	struct buf out = { NULL, 0, 0 }, rep = { NULL, 0, 0 };
	size_t i, nmbs, copied = 0, start, end;
	char why[ERRLEN];
	int r = 0, whole, changed = 0;

	if (addrlist_parse(val, h->len - h->valoff, &mbs, &nmbs, why,
	    sizeof(why)) == -1)
		return EX_OK;
	if (buf_add(&out, h->text, h->valoff) == -1)
		r = -1;
	for (i = 0; i < nmbs && r != -1; i++) {
		rep.len = 0;
		if ((r = local_replacement(w, flags, mbs[i].addr, &rep,
		    &whole)) != 1)
			continue;
		changed = 1;
		start = whole ? mbs[i].mb_start : mbs[i].as_start;
		end = whole ? mbs[i].mb_end : mbs[i].as_end;
		if (buf_add(&out, val + copied, start - copied) == -1 ||
		    buf_add(&out, rep.p, rep.len) == -1)
			r = -1;
		copied = end;
	}
	if (r != -1 && buf_add(&out, val + copied,
	    h->len - h->valoff - copied) == -1)
		r = -1;
	addrlist_free(mbs, nmbs);
	free(rep.p);
	if (r != -1 && changed)
		header_replace(h, &out);
	free(out.p);
	return r == -1 ? nomem(w) : EX_OK;
}

int
step_rewrite(struct work *w)
{
	struct msg *m = w->msg;
	unsigned char *drop;
	size_t i;
	int flags, ex = EX_OK;

	if (m->nhdrs == 0)
		return EX_OK;
	if ((drop = calloc(m->nhdrs, 1)) == NULL)
		return nomem(w);
	for (i = 0; i < m->nhdrs && ex == EX_OK; i++) {
		flags = field_flags(&m->hdrs[i]);
		if (flags & F_REMOVE)
			drop[i] = 1;
		else if (flags & (F_ALIAS | F_SENDER))
			ex = rewrite_field(w, &m->hdrs[i], flags);
	}
	header_compact(m, drop);
	free(drop);
	return ex;
}

/* ---- fields we add ------------------------------------------------------ */

static int
is_atext_or_space(unsigned char c)
{
	static const char punct[] = "!#$%&'*+-/=?^_`{|}~ ";

	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr(punct, c) != NULL);
}

/*
 * RFC 2047 encoded-words for a name with non-ASCII octets, each at most 75
 * characters, split between UTF-8 sequences.
 */
static int
encode_words(struct buf *out, const char *s, size_t len)
{
	char b64[64];
	size_t cut;

	while (len > 0) {
		cut = len < EW_CHUNK ? len : EW_CHUNK;
		while (cut < len && cut > 1 &&
		    ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
		if (b64_encode(b64, sizeof(b64), s, cut) == -1 ||
		    buf_printf(out, "=?UTF-8?B?%s?=%s", b64,
		    cut < len ? " " : "") == -1)
			return -1;
		s += cut;
		len -= cut;
	}
	return 0;
}

/*
 * A display name (RFC 5322 3.2.5 phrase): atoms if it is only atext and
 * spaces, else a quoted-string, else (non-ASCII) encoded-words.  Control
 * characters become spaces so -F cannot inject a header line.
 */
static int
display_name(struct buf *out, const char *name)
{
	struct buf clean = { NULL, 0, 0 };
	const unsigned char *s;
	int atoms = 1, ascii = 1, rc = 0;
	size_t i;

	while (*name == ' ')
		name++;
	for (s = (const unsigned char *)name; *s != '\0'; s++) {
		char c = (*s < 0x20 || *s == 0x7f) ? ' ' : (char)*s;

		atoms &= is_atext_or_space((unsigned char)c);
		ascii &= *s < 0x80;
		if (buf_add(&clean, &c, 1) == -1)
			return -1;
	}
	while (clean.len > 0 && clean.p[clean.len - 1] == ' ')
		clean.p[--clean.len] = '\0';
	if (clean.len == 0)
		rc = 0;
	else if (!ascii)
		rc = encode_words(out, clean.p, clean.len);
	else if (atoms)
		rc = buf_add(out, clean.p, clean.len);
	else {
		rc = buf_add(out, "\"", 1);
		for (i = 0; rc == 0 && i < clean.len; i++) {
			if (clean.p[i] == '"' || clean.p[i] == '\\')
				rc = buf_add(out, "\\", 1);
			if (rc == 0)
				rc = buf_add(out, &clean.p[i], 1);
		}
		if (rc == 0)
			rc = buf_add(out, "\"", 1);
	}
	free(clean.p);
	return rc;
}

/* From: Full Name <sender>, the name from -F, else GECOS. */
static int
add_from(struct work *w)
{
	struct buf b = { NULL, 0, 0 }, name = { NULL, 0, 0 };
	const char *fullname = w->opts->fullname;
	char *addr = NULL;
	int ex;

	if (w->conf->set_from == FROMHDR_ON)
		addr = strdup(w->conf->from);
	else if (w->msg->sender[0] != '\0')
		addr = strdup(w->msg->sender);
	else if (default_sender(w, &addr) != EX_OK)
		return EX_OK;	/* a bounce: no From we could make up */
	if (addr == NULL)
		return nomem(w);
	if (fullname == NULL && passwd_entry(w) == 0)
		fullname = w->gecos;
	ex = EX_OK;
	if ((fullname != NULL && display_name(&name, fullname) == -1) ||
	    buf_printf(&b, "From: %s%s<%s>", name.len > 0 ? name.p : "",
	    name.len > 0 ? " " : "", addr) == -1)
		ex = nomem(w);
	if (ex == EX_OK)
		ex = header_add(w, b.p);
	free(b.p);
	free(name.p);
	free(addr);
	return ex;
}

/* The display name of a parsed mailbox, as written: before its '<'. */
static void
display_span(const char *val, const struct mailbox *mb, size_t *start,
    size_t *end)
{
	size_t s = mb->mb_start, e = mb->as_start;

	if (e > s && val[e - 1] == '<')
		e--;
	while (s < e && strchr(" \t\r\n", val[s]) != NULL)
		s++;
	while (e > s && strchr(" \t\r\n", val[e - 1]) != NULL)
		e--;
	*start = s;
	*end = e;
}

/* Does any mailbox of the list differ from addr (case aside)? */
static int
other_than(const struct mailbox *mbs, size_t nmbs, const char *addr)
{
	size_t i;

	for (i = 0; i < nmbs; i++)
		if (strcasecmp(mbs[i].addr, addr) != 0)
			return 1;
	return 0;
}

/*
 * set_from_header on: From: becomes the from address, keeping the first
 * mailbox's display name, as msmtp does, for providers that take only
 * the account's own address (Microsoft 365, Gmail).  Replies must still
 * reach the caller's address: it goes to Reply-To when there is none.
 */
static int
from_rewrite(struct work *w, struct header *h)
{
	const char *val = h->text + h->valoff, *from = w->conf->from;
	struct mailbox *mbs = NULL;
	struct buf b = { NULL, 0, 0 }, reply = { NULL, 0, 0 };
	size_t nmbs = 0, ds = 0, de = 0;
	char why[ERRLEN];
	int ex = EX_OK, move;

	if (addrlist_parse(val, h->len - h->valoff, &mbs, &nmbs, why,
	    sizeof(why)) == -1)
		nmbs = 0;	/* nothing we could move: just replace it */
	if (nmbs > 0)
		display_span(val, &mbs[0], &ds, &de);
	move = nmbs > 0 && other_than(mbs, nmbs, from) &&
	    find_field(w->msg, "Reply-To") == NULL;
	if (buf_str(&b, "From: ") == -1 || buf_add(&b, val + ds, de - ds) ==
	    -1 || buf_printf(&b, "%s<%s>", de > ds ? " " : "", from) == -1 ||
	    (move && (buf_str(&reply, "Reply-To:") == -1 ||
	    buf_add(&reply, val, h->len - h->valoff) == -1)))
		ex = nomem(w);
	addrlist_free(mbs, nmbs);
	if (ex == EX_OK)
		header_replace(h, &b);
	if (ex == EX_OK && move && (ex = header_push(w, reply.p,
	    reply.len)) == EX_OK)
		reply.p = NULL;
	free(b.p);
	free(reply.p);
	return ex;
}

/* set_from_header: a missing From added (auto, on), one there made from. */
static int
from_field(struct work *w)
{
	struct header *h = find_field(w->msg, "From");

	if (h == NULL)
		return w->conf->set_from == FROMHDR_OFF ? EX_OK : add_from(w);
	if (w->conf->set_from == FROMHDR_ON)
		return from_rewrite(w, h);
	return EX_OK;
}

/* RFC 5322 3.3 date-time, local time, C locale. */
static int
add_date(struct work *w)
{
	char line[80];
	time_t now = time(NULL);
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL ||
	    strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S %z",
	    &tm) == 0)
		return failf(w, EX_OSERR, "cannot format the date");
	return header_add(w, line);
}

/* RFC 5322 3.6.4: <time.random@domain>, unique by its 64 random bits. */
static int
add_message_id(struct work *w)
{
	const char *at = strrchr(w->msg->sender, '@');
	const char *domain = at != NULL && at[1] != '\0' ? at + 1 :
	    own_domain(w->conf);
	char stamp[32], hex[17];		/* 64 random bits */
	time_t now = time(NULL);
	struct buf b = { NULL, 0, 0 };
	struct tm tm;
	int ex;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
		return failf(w, EX_OSERR, "cannot format the date");
	hex_random(hex, sizeof(hex));
	if (buf_printf(&b, "Message-ID: <%s.%s@%s>", stamp, hex, domain) == -1)
		return nomem(w);
	ex = header_add(w, b.p);
	free(b.p);
	return ex;
}

int
step_add_fields(struct work *w)
{
	static const struct {
		const char	*name;
		int		(*add)(struct work *);
	} added[] = {
		{ "Date", add_date },
		{ "Message-ID", add_message_id },
	};
	size_t i;
	int ex;

	if ((ex = from_field(w)) != EX_OK)
		return ex;
	for (i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
		if (find_field(w->msg, added[i].name) == NULL &&
		    (ex = added[i].add(w)) != EX_OK)
			return ex;
	}
	return EX_OK;
}
