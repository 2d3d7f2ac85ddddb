/*
 * RFC 5322 section 3.4 address lists, as found in To/Cc/Bcc/From fields
 * and in sendmail's argv, and the check every envelope address passes
 * before it goes into an SMTP command.
 *
 * The parser works in two passes: a lexer turns the text into tokens
 * (atoms, quoted strings, domain literals, comments, special characters),
 * dropping folding whitespace; the parser then walks the tokens.  Every
 * token keeps its offsets so callers can rewrite a header in place.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

enum toktype {
	T_ATOM,			/* 1*atext */
	T_QSTR,			/* quoted-string, quotes included */
	T_DLIT,			/* domain-literal, brackets included */
	T_COMMENT,		/* (comment), nested ones included */
	T_SPECIAL		/* one of < > @ , ; : . */
};

struct tok {
	enum toktype	 type;
	char		 ch;		/* T_SPECIAL: which one */
	size_t		 start;		/* offsets into the text */
	size_t		 end;
};

struct parser {
	const char	*text;
	size_t		 len;
	struct tok	*toks;
	size_t		 ntoks;
	size_t		 tokcap;
	size_t		 pos;		/* next token to look at */
	char		*scratch;	/* addr being built, len + 1 bytes */
	size_t		 slen;
	struct mailbox	*mbs;
	size_t		 nmbs;
	size_t		 mbcap;
	char		*err;
	size_t		 errlen;
};

/* What a stray token is called in an error message. */
static const char *const tokname[] = {
	[T_ATOM] = "word",
	[T_QSTR] = "quoted string",
	[T_DLIT] = "domain literal",
	[T_COMMENT] = "comment",
	[T_SPECIAL] = "character",
};

/* RFC 5322 3.2.3: atext besides letters and digits. */
static const char atext_punct[] = "!#$%&'*+-/=?^_`{|}~";
/* RFC 5322 3.2.3 specials that are tokens of their own here. */
static const char token_specials[] = "<>@,;:.";

/* An error of the parse; always -1. */
#define perr(p, ...)	errf((p)->err, (p)->errlen, -1, __VA_ARGS__)

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* RFC 6532 3.2 lets UTF-8 into atext; addr_check() refuses it later. */
static int
is_atext(unsigned char c)
{
	return c >= 0x80 || is_alnum(c) ||
	    (c != '\0' && strchr(atext_punct, c) != NULL);
}

/*
 * RFC 5322 3.2.2 FWS: a line break is only whitespace when it folds, that
 * is when WSP follows.  Anything else (a bare CR or LF, a CRLF then text)
 * is refused: in an argv recipient it would be SMTP command injection.
 */
static int
skip_fold(struct parser *p, size_t i, size_t *next)
{
	size_t j = i;

	if (p->text[j] == '\r' && j + 1 < p->len && p->text[j + 1] == '\n')
		j += 2;
	else if (p->text[j] == '\n')
		j++;
	else
		return perr(p, "bare carriage return at offset %zu", i);
	if (j >= p->len || !is_wsp((unsigned char)p->text[j]))
		return perr(p, "line break not followed by whitespace at "
		    "offset %zu", i);
	*next = j;
	return 0;
}

/* RFC 5322 3.2.1 quoted-pair: a backslash and one VCHAR or WSP. */
static int
skip_pair(struct parser *p, size_t i, size_t *next)
{
	unsigned char c;

	if (i + 1 >= p->len)
		return perr(p, "backslash at end of text at offset %zu", i);
	c = (unsigned char)p->text[i + 1];
	if (c < 0x20 && c != '\t')
		return perr(p, "bad quoted-pair at offset %zu", i);
	*next = i + 2;
	return 0;
}

/*
 * arr holds n elements in room for *cap: return it with room for one
 * more (doubling), or NULL with the error set.
 */
static void *
grow(struct parser *p, void *arr, size_t *cap, size_t n, size_t size)
{
	size_t want = *cap ? *cap * 2 : 16;
	void *bigger;

	if (n < *cap)
		return arr;
	if ((bigger = reallocarray(arr, want, size)) == NULL) {
		(void)perr(p, "out of memory");
		return NULL;
	}
	*cap = want;
	return bigger;
}

static int
push_tok(struct parser *p, enum toktype type, size_t start, size_t end)
{
	struct tok *t;

	if ((t = grow(p, p->toks, &p->tokcap, p->ntoks, sizeof(*t))) == NULL)
		return -1;
	p->toks = t;
	t = &p->toks[p->ntoks++];
	t->type = type;
	t->ch = p->text[start];
	t->start = start;
	t->end = end;
	return 0;
}

/*
 * A quoted string, comment or domain literal: scan from the opener to the
 * matching closer, honouring quoted-pairs and folds.  Comments nest (RFC
 * 5322 3.2.2).
 */
static int
lex_enclosed(struct parser *p, size_t start, size_t *next)
{
	static const struct {
		char		 open;
		char		 close;
		int		 nests;
		const char	*name;
	} kinds[] = {
		{ '"', '"', 0, "quoted string" },
		{ '(', ')', 1, "comment" },
		{ '[', ']', 0, "domain literal" },
	};
	size_t k, i = start + 1;
	int depth = 1;

	for (k = 0; kinds[k].open != p->text[start]; k++)
		;
	while (i < p->len) {
		char c = p->text[i];

		if (c == '\\') {
			if (skip_pair(p, i, &i) == -1)
				return -1;
		} else if (c == '\r' || c == '\n') {
			if (skip_fold(p, i, &i) == -1)
				return -1;
		} else if (c == '\0') {
			return perr(p, "NUL byte at offset %zu", i);
		} else if (c == kinds[k].close) {
			i++;
			if (--depth == 0) {
				*next = i;
				return 0;
			}
		} else {
			if (kinds[k].nests && c == kinds[k].open)
				depth++;
			i++;
		}
	}
	return perr(p, "unterminated %s at offset %zu", kinds[k].name, start);
}

static int
lex(struct parser *p)
{
	size_t i = 0, start;

	while (i < p->len) {
		unsigned char c = (unsigned char)p->text[i];

		start = i;
		if (is_wsp(c)) {
			i++;
		} else if (c == '\r' || c == '\n') {
			if (skip_fold(p, i, &i) == -1)
				return -1;
		} else if (c == '"' || c == '(' || c == '[') {
			if (lex_enclosed(p, start, &i) == -1)
				return -1;
			if (push_tok(p, c == '"' ? T_QSTR : c == '(' ?
			    T_COMMENT : T_DLIT, start, i) == -1)
				return -1;
		} else if (c != '\0' && strchr(token_specials, c) != NULL) {
			if (push_tok(p, T_SPECIAL, start, ++i) == -1)
				return -1;
		} else if (is_atext(c)) {
			while (i < p->len && is_atext((unsigned char)p->text[i]))
				i++;
			if (push_tok(p, T_ATOM, start, i) == -1)
				return -1;
		} else if (c == ')' || c == ']') {
			return perr(p, "unbalanced '%c' at offset %zu", c, i);
		} else if (c > 0x20 && c < 0x7f) {
			return perr(p, "unexpected '%c' at offset %zu", c, i);
		} else {
			return perr(p, "unexpected byte 0x%02x at offset %zu",
			    c, i);
		}
	}
	return 0;
}

/* Index of the next token that is not a comment, or ntoks. */
static size_t
peek(const struct parser *p)
{
	size_t i;

	for (i = p->pos; i < p->ntoks; i++)
		if (p->toks[i].type != T_COMMENT)
			break;
	return i;
}

static int
is_special(const struct parser *p, size_t i, char ch)
{
	return i < p->ntoks && p->toks[i].type == T_SPECIAL &&
	    p->toks[i].ch == ch;
}

static int
is_word(const struct parser *p, size_t i)
{
	return i < p->ntoks &&
	    (p->toks[i].type == T_ATOM || p->toks[i].type == T_QSTR);
}

static int
unexpected(struct parser *p, size_t i)
{
	const struct tok *t;

	if (i >= p->ntoks)
		return perr(p, "unexpected end of text at offset %zu", p->len);
	t = &p->toks[i];
	if (t->type == T_SPECIAL)
		return perr(p, "unexpected '%c' at offset %zu", t->ch,
		    t->start);
	return perr(p, "unexpected %s at offset %zu", tokname[t->type],
	    t->start);
}

/*
 * Append a token's text to the address being built.  Folds inside quoted
 * strings and literals are unfolded (RFC 5322 3.2.2: CRLF is removed, the
 * WSP stays), so no line break ever reaches an address.
 */
static void
append_tok(struct parser *p, size_t i)
{
	const struct tok *t = &p->toks[i];
	size_t k;

	for (k = t->start; k < t->end; k++)
		if (p->text[k] != '\r' && p->text[k] != '\n')
			p->scratch[p->slen++] = p->text[k];
}

static int
is_atom(const struct parser *p, size_t i)
{
	return i < p->ntoks && p->toks[i].type == T_ATOM;
}

/*
 * The rest of a dotted sequence after its first part at *last: each "."
 * must be followed by a part that is_part accepts (`what` names it).
 */
static int
parse_dotted(struct parser *p, size_t *last,
    int (*is_part)(const struct parser *, size_t), const char *what)
{
	size_t i, j;

	for (;;) {
		i = peek(p);
		if (!is_special(p, i, '.'))
			return 0;
		p->pos = i + 1;
		j = peek(p);
		if (!is_part(p, j))
			return perr(p, "expected %s after '.' at offset %zu",
			    what, p->toks[i].start);
		append_tok(p, i);
		append_tok(p, j);
		*last = j;
		p->pos = j + 1;
	}
}

/*
 * local-part = dot-atom / quoted-string / obs-local-part (RFC 5322 3.4.1,
 * 4.4): words separated by dots, CFWS between them dropped.
 */
static int
parse_local(struct parser *p, size_t *last)
{
	size_t i = peek(p);

	if (is_special(p, i, '@'))
		return perr(p, "missing local part at offset %zu",
		    p->toks[i].start);
	if (!is_word(p, i))
		return unexpected(p, i);
	append_tok(p, i);
	*last = i;
	p->pos = i + 1;
	return parse_dotted(p, last, is_word, "a word");
}

/* domain = dot-atom / domain-literal / obs-domain (RFC 5322 3.4.1, 4.4). */
static int
parse_domain(struct parser *p, size_t at, size_t *last)
{
	size_t i = peek(p);

	if (i < p->ntoks && p->toks[i].type == T_DLIT) {
		append_tok(p, i);
		*last = i;
		p->pos = i + 1;
		return 0;
	}
	if (!is_atom(p, i))
		return perr(p, "missing domain after '@' at offset %zu", at);
	append_tok(p, i);
	*last = i;
	p->pos = i + 1;
	return parse_dotted(p, last, is_atom, "a domain label");
}

/* addr-spec, or a bare local name such as "root"; sets its span. */
static int
parse_addr_spec(struct parser *p, size_t *as_start, size_t *as_end)
{
	size_t first, last, at;

	p->slen = 0;
	first = peek(p);
	if (parse_local(p, &last) == -1)
		return -1;
	at = peek(p);
	if (is_special(p, at, '@')) {
		p->scratch[p->slen++] = '@';
		p->pos = at + 1;
		if (parse_domain(p, p->toks[at].start, &last) == -1)
			return -1;
	}
	*as_start = p->toks[first].start;
	*as_end = p->toks[last].end;
	return 0;
}

/*
 * RFC 5322 4.4 obs-route: "@a,@b:" before the addr-spec in an angle
 * address.  It is parsed and dropped (RFC 5321 C: routes are ignored).
 */
static int
skip_route(struct parser *p)
{
	size_t i, last, keep = p->slen;

	for (;;) {
		i = peek(p);
		if (is_special(p, i, ',')) {
			p->pos = i + 1;
		} else if (is_special(p, i, '@')) {
			p->pos = i + 1;
			if (parse_domain(p, p->toks[i].start, &last) == -1)
				return -1;
			p->slen = keep;
		} else if (is_special(p, i, ':')) {
			p->pos = i + 1;
			return 0;
		} else {
			return unexpected(p, i);
		}
	}
}

/* angle-addr = "<" [obs-route] addr-spec ">"; "<>" gives "". */
static int
parse_angle(struct parser *p, size_t *as_start, size_t *as_end)
{
	size_t open = peek(p), i;

	p->pos = open + 1;
	p->slen = 0;
	i = peek(p);
	if (is_special(p, i, '>')) {
		*as_start = *as_end = p->toks[i].start;
		p->pos = i + 1;
		return 0;
	}
	if (is_special(p, i, '@') && skip_route(p) == -1)
		return -1;
	if (parse_addr_spec(p, as_start, as_end) == -1)
		return -1;
	i = peek(p);
	if (!is_special(p, i, '>')) {
		if (i < p->ntoks && !is_special(p, i, ',') &&
		    !is_special(p, i, ';'))
			return unexpected(p, i);
		return perr(p, "missing '>' for the '<' at offset %zu",
		    p->toks[open].start);
	}
	p->pos = i + 1;
	return 0;
}

static int
add_mailbox(struct parser *p, size_t mb_start, size_t mb_end,
    size_t as_start, size_t as_end)
{
	struct mailbox *mb;
	char *addr;

	if ((mb = grow(p, p->mbs, &p->mbcap, p->nmbs, sizeof(*mb))) == NULL)
		return -1;
	p->mbs = mb;
	if ((addr = malloc(p->slen + 1)) == NULL)
		return perr(p, "out of memory");
	memcpy(addr, p->scratch, p->slen);
	addr[p->slen] = '\0';
	mb = &p->mbs[p->nmbs++];
	mb->addr = addr;
	mb->mb_start = mb_start;
	mb->mb_end = mb_end;
	mb->as_start = as_start;
	mb->as_end = as_end;
	return 0;
}

/*
 * mailbox = name-addr / addr-spec.  kind is the token after the display
 * name: '<' for a name-addr.  The mailbox span runs from the first token
 * (a leading comment included) to the last, trailing comments included.
 */
static int
parse_mailbox(struct parser *p, size_t kind)
{
	size_t first = p->pos, as_start, as_end, mb_end;

	if (is_special(p, kind, '<')) {
		p->pos = kind;
		if (parse_angle(p, &as_start, &as_end) == -1)
			return -1;
	} else if (parse_addr_spec(p, &as_start, &as_end) == -1)
		return -1;
	mb_end = p->toks[p->pos - 1].end;
	while (p->pos < p->ntoks && p->toks[p->pos].type == T_COMMENT)
		mb_end = p->toks[p->pos++].end;
	return add_mailbox(p, p->toks[first].start, mb_end, as_start, as_end);
}

static int	parse_list(struct parser *, int, size_t);

/* group = display-name ":" [group-list] ";" [CFWS] (RFC 5322 3.4). */
static int
parse_group(struct parser *p, size_t colon, int in_group)
{
	size_t i, start = p->toks[p->pos].start;
	int named = 0;

	if (in_group)
		return perr(p, "group inside a group at offset %zu",
		    p->toks[colon].start);
	for (i = p->pos; i < colon; i++)
		named |= is_word(p, i);
	if (!named)
		return perr(p, "group without a name at offset %zu",
		    p->toks[colon].start);
	p->pos = colon + 1;
	if (parse_list(p, 1, start) == -1)
		return -1;
	p->pos = peek(p) + 1;		/* the ';' parse_list stopped at */
	return 0;
}

/*
 * address = mailbox / group.  What follows the leading words (a display
 * name or a local part) tells which: ':' a group, '<' a name-addr,
 * anything else an addr-spec.
 */
static int
parse_address(struct parser *p, int in_group)
{
	size_t k;

	for (k = p->pos; k < p->ntoks; k++) {
		if (p->toks[k].type != T_ATOM && p->toks[k].type != T_QSTR &&
		    p->toks[k].type != T_COMMENT && !is_special(p, k, '.'))
			break;
	}
	if (is_special(p, k, ':'))
		return parse_group(p, k, in_group);
	return parse_mailbox(p, k);
}

/*
 * address-list, or a group-list when in_group (then it stops at the ';').
 * Empty elements ("a@x,,b@y") are tolerated as in obs-addr-list (RFC 5322
 * 4.4).
 */
static int
parse_list(struct parser *p, int in_group, size_t group_start)
{
	size_t i;

	for (;;) {
		i = peek(p);
		if (i == p->ntoks) {
			if (in_group)
				return perr(p, "unterminated group at offset "
				    "%zu", group_start);
			return 0;
		}
		if (is_special(p, i, ',')) {
			p->pos = i + 1;
			continue;
		}
		if (is_special(p, i, ';')) {
			if (in_group)
				return 0;
			return unexpected(p, i);
		}
		if (parse_address(p, in_group) == -1)
			return -1;
		i = peek(p);
		if (i == p->ntoks || is_special(p, i, ','))
			continue;
		if (in_group && is_special(p, i, ';'))
			return 0;
		return unexpected(p, i);
	}
}

int
addrlist_parse(const char *text, size_t len, struct mailbox **mbp,
    size_t *nmbp, char *err, size_t errlen)
{
	struct parser p;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	p.text = text;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	*mbp = NULL;
	*nmbp = 0;
	/* An address is never longer than the text it comes from. */
	if ((p.scratch = malloc(len + 1)) == NULL) {
		(void)perr(&p, "out of memory");
		return -1;
	}
	if (lex(&p) == 0 && parse_list(&p, 0, 0) == 0)
		rc = 0;
	free(p.scratch);
	free(p.toks);
	if (rc == -1) {
		addrlist_free(p.mbs, p.nmbs);
		return -1;
	}
	*mbp = p.mbs;
	*nmbp = p.nmbs;
	return 0;
}

void
addrlist_free(struct mailbox *mbs, size_t nmbs)
{
	size_t i;

	for (i = 0; i < nmbs; i++)
		free(mbs[i].addr);
	free(mbs);
}

/*
 * Characters that may never appear in an envelope address, anywhere.
 * Line breaks and controls would split or corrupt the SMTP command (MBSD
 * 2015, "SMTP Injection via recipient email addresses"); angle brackets
 * would end the path early; non-ASCII needs SMTPUTF8 (RFC 6531), which we
 * do not speak.
 */
static const char *
bad_char(const char *addr)
{
	const unsigned char *s;

	for (s = (const unsigned char *)addr; *s != '\0'; s++) {
		if (*s == '\r' || *s == '\n')
			return "contains a line break";
		if (*s < 0x20 || *s == 0x7f)
			return "contains a control character";
		if (*s >= 0x80)
			return "contains non-ASCII characters (SMTPUTF8 is "
			    "not supported)";
		if (*s == '<' || *s == '>')
			return "contains '<' or '>'";
	}
	return NULL;
}

/*
 * RFC 5321 4.1.2 Local-part = Dot-string / Quoted-string.  Sets *end to
 * the first octet after it.
 */
static const char *
check_local(const char *addr, size_t *end)
{
	size_t i = 0, dots = 0;

	if (addr[0] == '"') {
		for (i = 1; addr[i] != '"'; i++) {
			if (addr[i] == '\0' ||
			    (addr[i] == '\\' && addr[++i] == '\0'))
				return "unterminated quoted local part";
		}
		*end = i + 1;
		return NULL;
	}
	for (; addr[i] != '\0' && addr[i] != '@'; i++) {
		if (addr[i] == ' ')
			return "contains a space";
		if (addr[i] == '.') {
			if (i == 0 || addr[i - 1] == '.' || addr[i + 1] == '\0'
			    || addr[i + 1] == '@')
				dots++;
		} else if (!is_atext((unsigned char)addr[i]))
			return "invalid character in the local part";
	}
	if (dots > 0)
		return "misplaced '.' in the local part";
	*end = i;
	return NULL;
}

/* RFC 5321 4.1.2 Domain, or an address-literal in brackets. */
static const char *
check_domain(const char *dom)
{
	size_t i, len = strlen(dom);

	if (len == 0)
		return "missing domain after '@'";
	if (len > DOMAIN_MAX)
		return "domain longer than 255 octets";
	if (dom[0] == '[') {
		if (len < 3 || dom[len - 1] != ']')
			return "malformed address literal";
		for (i = 1; i < len - 1; i++)
			if (dom[i] == '[' || dom[i] == ']' ||
			    dom[i] == '\\' || dom[i] == ' ')
				return "malformed address literal";
		return NULL;
	}
	for (i = 0; i < len; i++) {
		if (dom[i] == '@')
			return "more than one '@'";
		if (dom[i] == ' ')
			return "contains a space";
		if (dom[i] == '.') {
			if (i == 0 || dom[i - 1] == '.' || i + 1 == len)
				return "empty label in the domain";
		} else if (!is_alnum((unsigned char)dom[i]) && dom[i] != '-' &&
		    dom[i] != '_')
			return "invalid character in the domain";
	}
	return NULL;
}

const char *
addr_check(const char *addr)
{
	const char *why;
	size_t end;

	if (addr[0] == '\0')
		return NULL;		/* the null path <> */
	if ((why = bad_char(addr)) != NULL)
		return why;
	if (strlen(addr) > ADDR_MAX)
		return "longer than 256 octets";
	if (addr[0] == '@')
		return "missing local part before '@'";
	if ((why = check_local(addr, &end)) != NULL)
		return why;
	if (end > LOCAL_MAX)
		return "local part longer than 64 octets";
	if (addr[end] == '\0')
		return NULL;		/* a local name; the caller qualifies */
	if (addr[end] != '@')
		return "text after the quoted local part";
	return check_domain(addr + end + 1);
}
