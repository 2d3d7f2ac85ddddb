/*
 * Settings from the environment, for containers and unprivileged
 * installs without a configuration file: RELAY_HOST=x is "host x", one
 * variable per keyword, and RELAY_SMARTHOST=smtps://user@host:465 is
 * host, port, tls and user at once.  conf.c applies them through the
 * keyword table as if they were lines of a file.  A setgid relay never
 * gets here: its environment is replaced at start (relay.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

#define PREFIX		"RELAY_"
#define PREFIX_LEN	(sizeof(PREFIX) - 1)

extern char **environ;

/*
 * Not settings: RELAY_CONF names the file, and Kubernetes makes
 * RELAY_SERVICE_HOST, RELAY_PORT_25_TCP... for a service named "relay"
 * (RELAY_PORT itself it sets too: conf.c explains a "tcp://" value).
 */
static int
not_a_setting(const char *name)
{
	return strcmp(name, "RELAY_CONF") == 0 ||
	    strncmp(name, "RELAY_SERVICE_", 14) == 0 ||
	    strncmp(name, "RELAY_PORT_", 11) == 0;
}

static int
add(struct envset **sets, size_t *n, const char *var, const char *kw,
    const char *value, size_t len)
{
	struct envset *grown, *s;

	if ((grown = reallocarray(*sets, *n + 1, sizeof(**sets))) == NULL)
		return -1;
	*sets = grown;
	s = &grown[*n];
	s->var = s->keyword = s->value = NULL;
	if ((s->var = strdup(var)) == NULL ||
	    (s->keyword = strdup(kw)) == NULL ||
	    (s->value = strndup(value, len)) == NULL) {
		free(s->var);
		free(s->keyword);
		return -1;
	}
	(*n)++;
	return 0;
}

/*
 * RELAY_SMARTHOST: smtps://[user@]host[:port] (implicit TLS) or
 * smtp://[user@]host[:port] (STARTTLS, which relay requires).
 */
static int
add_url(struct envset **sets, size_t *n, const char *url, char *err,
    size_t errlen)
{
	const char *var = "RELAY_SMARTHOST", *rest, *at, *colon;
	const char *tls;

	if (strncmp(url, "smtps://", 8) == 0) {
		tls = "implicit";
		rest = url + 8;
	} else if (strncmp(url, "smtp://", 7) == 0) {
		tls = "starttls";
		rest = url + 7;
	} else
		return errf(err, errlen, -1, "%s: want smtps://[user@]host"
		    "[:port] or smtp://[user@]host[:port]", var);
	if (strchr(rest, '/') != NULL || strchr(rest, '?') != NULL)
		return errf(err, errlen, -1, "%s: a path or query after the "
		    "host means nothing here", var);
	if ((at = strrchr(rest, '@')) != NULL) {
		if (memchr(rest, ':', (size_t)(at - rest)) != NULL)
			return errf(err, errlen, -1, "%s: no password in the "
			    "URL (it would show in the environment); use "
			    "RELAY_PASSWORD_FILE", var);
		if (add(sets, n, var, "user", rest, (size_t)(at - rest)) == -1)
			goto nomem;
		rest = at + 1;
	}
	colon = strrchr(rest, ':');
	if (rest[0] == '[')		/* [IPv6]:port */
		colon = strstr(rest, "]:") != NULL ? strstr(rest, "]:") + 1 :
		    NULL;
	if (add(sets, n, var, "tls", tls, strlen(tls)) == -1 ||
	    add(sets, n, var, "host", rest, colon != NULL ?
	    (size_t)(colon - rest) : strlen(rest)) == -1 ||
	    (colon != NULL && add(sets, n, var, "port", colon + 1,
	    strlen(colon + 1)) == -1))
		goto nomem;
	return 0;
nomem:
	return errf(err, errlen, -1, "%s: %s", var, strerror(errno));
}

int
env_settings(struct envset **sets, size_t *n, char *err, size_t errlen)
{
	char name[64], kw[64];
	const char *eq, *entry;
	size_t i, len;

	*sets = NULL;
	*n = 0;
	for (i = 0; environ[i] != NULL; i++) {
		entry = environ[i];
		if (strncmp(entry, PREFIX, PREFIX_LEN) != 0 ||
		    (eq = strchr(entry, '=')) == NULL)
			continue;
		len = (size_t)(eq - entry);
		if (len >= sizeof(name)) {
			env_settings_free(*sets, *n);
			return errf(err, errlen, -1, "%.40s...: name too long",
			    entry);
		}
		memcpy(name, entry, len);
		name[len] = '\0';
		if (not_a_setting(name))
			continue;
		if (strcmp(name, "RELAY_SMARTHOST") == 0) {
			if (add_url(sets, n, eq + 1, err, errlen) == -1) {
				env_settings_free(*sets, *n);
				return -1;
			}
			continue;
		}
		for (len = 0; name[PREFIX_LEN + len] != '\0'; len++)
			kw[len] = (char)tolower((unsigned char)
			    name[PREFIX_LEN + len]);
		kw[len] = '\0';
		if (add(sets, n, name, kw, eq + 1, strlen(eq + 1)) == -1) {
			env_settings_free(*sets, *n);
			return errf(err, errlen, -1, "%s: %s", name,
			    strerror(errno));
		}
	}
	return 0;
}

void
env_settings_free(struct envset *sets, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(sets[i].var);
		free(sets[i].keyword);
		if (sets[i].value != NULL)
			freezero(sets[i].value, strlen(sets[i].value) + 1);
	}
	free(sets);
}
