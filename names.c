/*
 * The machine's own names: its host name and fully qualified name, which
 * addresses are local names (at the host itself, RFC 5321 2.3.5), the
 * EHLO name (RFC 5321 4.1.1.1) and the domain of the addresses relay
 * makes up (bounces, Message-IDs).  A bare host name is never used where
 * a domain is needed: strict servers refuse it.
 */
#include <sys/socket.h>

#include <netdb.h>

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "relay.h"

/* The domain of last resort (RFC 2606 2: .invalid never resolves). */
#define NO_DOMAIN	"localhost.invalid"

static char	host_buf[DOMAIN_MAX + 1];	/* gethostname(), or "" */
static int	host_looked;
static char	fqdn_buf[DOMAIN_MAX + 1];	/* its FQDN, or "" */
static int	fqdn_looked;

/* Letters, digits, '-' and '.': a name that can go after EHLO and '@'. */
static int
dns_name(const char *name)
{
	const unsigned char *s;

	if (*name == '\0' || *name == '.' || strlen(name) > DOMAIN_MAX)
		return 0;
	for (s = (const unsigned char *)name; *s != '\0'; s++)
		if (!isalnum(*s) && *s != '-' && *s != '.')
			return 0;
	return 1;
}

/* The host name, looked up once; "" when there is none we can use. */
static const char *
host_name(void)
{
	if (host_looked)
		return host_buf;
	host_looked = 1;
	if (gethostname(host_buf, sizeof(host_buf)) == -1)
		host_buf[0] = '\0';
	host_buf[sizeof(host_buf) - 1] = '\0';
	if (!dns_name(host_buf))
		host_buf[0] = '\0';
	return host_buf;
}

/*
 * The canonical name of the host name (getaddrinfo AI_CANONNAME, which
 * reads /etc/hosts first), else the host name itself, when it has a dot.
 */
const char *
host_fqdn(void)
{
	struct addrinfo hints, *res;
	const char *host = host_name();

	if (fqdn_looked)
		return fqdn_buf[0] != '\0' ? fqdn_buf : NULL;
	fqdn_looked = 1;
	if (*host == '\0')
		return NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(host, NULL, &hints, &res) == 0) {
		if (res->ai_canonname != NULL && dns_name(res->ai_canonname) &&
		    strchr(res->ai_canonname, '.') != NULL)
			(void)strlcpy(fqdn_buf, res->ai_canonname,
			    sizeof(fqdn_buf));
		freeaddrinfo(res);
	}
	if (fqdn_buf[0] == '\0' && strchr(host, '.') != NULL)
		(void)strlcpy(fqdn_buf, host, sizeof(fqdn_buf));
	return fqdn_buf[0] != '\0' ? fqdn_buf : NULL;
}

/* Names compare without case and without a root dot ("vm." is "vm"). */
static int
same_name(const char *a, const char *b, size_t blen)
{
	size_t alen = strlen(a);

	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	return alen == blen && alen > 0 && strncasecmp(a, b, alen) == 0;
}

static int
local_domain(const struct conf *c, const char *dom, size_t len)
{
	const char *fqdn, *host;
	size_t i, hlen;

	if (same_name("localhost", dom, len) ||
	    same_name(host_name(), dom, len))
		return 1;
	for (i = 0; i < c->nlocal_domains; i++)
		if (same_name(c->local_domains[i], dom, len))
			return 1;
	/*
	 * The FQDN costs a resolver call: ask only for a domain that can be
	 * it, the host name's own ("vm.example.org" for host vm).
	 */
	host = host_name();
	hlen = strlen(host);
	if (hlen == 0 || len <= hlen || dom[hlen] != '.' ||
	    strncasecmp(dom, host, hlen) != 0)
		return 0;
	return (fqdn = host_fqdn()) != NULL && same_name(fqdn, dom, len);
}

int
local_name(const struct conf *c, const char *addr, char *name, size_t size)
{
	const char *at = strrchr(addr, '@');
	size_t len = at != NULL ? (size_t)(at - addr) : strlen(addr);

	if (len == 0 || len >= size)
		return 0;
	if (at != NULL && !local_domain(c, at + 1, strlen(at + 1)))
		return 0;
	memcpy(name, addr, len);
	name[len] = '\0';
	return 1;
}

const char *
helo_name(const struct conf *c)
{
	const char *fqdn;

	if (c->helo != NULL)
		return c->helo;
	if ((fqdn = host_fqdn()) != NULL)
		return fqdn;
	return c->domain;
}

/* The domain of an address, if it has a usable one. */
static const char *
domain_of(const char *addr)
{
	const char *at;

	if (addr == NULL || (at = strrchr(addr, '@')) == NULL ||
	    !dns_name(at + 1))
		return NULL;
	return at + 1;
}

const char *
own_domain(const struct conf *c)
{
	const char *d;

	/* A configured EHLO name with a dot, not an address literal. */
	if (c->helo != NULL && c->helo[0] != '[' &&
	    strchr(c->helo, '.') != NULL)
		return c->helo;
	if ((d = host_fqdn()) != NULL || (d = c->domain) != NULL ||
	    (d = domain_of(c->from)) != NULL || (d = domain_of(c->user)) != NULL)
		return d;
	return NO_DOMAIN;
}
