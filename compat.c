/*
 * What musl lacks of the BSD functions relay uses (libbsd gives them to
 * the dynamic build), written for the static build alone: make static
 * compiles this file and nothing else links it.
 */
#define _GNU_SOURCE		/* program_invocation_short_name */
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"

/*
 * The kernel's random numbers, as arc4random(3) promises them: never a
 * weaker fallback.  getrandom(2) needs no /dev (an empty container).
 */
void
arc4random_buf(void *buf, size_t n)
{
	unsigned char *p = buf;
	ssize_t got;

	while (n > 0) {
		got = getrandom(p, n > 256 ? 256 : n, 0);
		if (got == -1) {
			if (errno == EINTR)
				continue;
			abort();
		}
		p += got;
		n -= (size_t)got;
	}
}

/* Uniform in [0, upper_bound): draws below 2**32 % upper_bound are redone. */
uint32_t
arc4random_uniform(uint32_t upper_bound)
{
	uint32_t r, min;

	if (upper_bound < 2)
		return 0;
	min = -upper_bound % upper_bound;
	do
		arc4random_buf(&r, sizeof(r));
	while (r < min);
	return r % upper_bound;
}

void
closefrom(int lowfd)
{
	struct rlimit rl;
	long fd, max = 65536;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return;
#endif
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)max)
		max = (long)rl.rlim_cur;
	for (fd = lowfd; fd < max; fd++)
		(void)close((int)fd);
}

void
freezero(void *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

const char *
getprogname(void)
{
	return program_invocation_short_name;
}

/*
 * strtonum(3): base 10, the whole string, within [minval, maxval];
 * errstr may be NULL, as in OpenBSD's.
 */
long long
strtonum(const char *s, long long minval, long long maxval,
    const char **errstr)
{
	const char *why = NULL;
	long long v = 0;
	char *end;

	errno = 0;
	if (minval > maxval)
		why = "invalid";
	else {
		v = strtoll(s, &end, 10);
		if (s[0] == '\0' || *end != '\0')
			why = "invalid";
		else if ((v == LLONG_MIN && errno == ERANGE) || v < minval)
			why = "too small";
		else if ((v == LLONG_MAX && errno == ERANGE) || v > maxval)
			why = "too large";
	}
	if (errstr != NULL)
		*errstr = why;
	if (why == NULL)
		return v;
	errno = strcmp(why, "invalid") == 0 ? EINVAL : ERANGE;
	return 0;
}
