/*
 * libFuzzer target for msg_read() and msg_send(): whatever the caller
 * feeds, relay either refuses with a sysexits code and a one-line reason,
 * or emits something SMTP can carry.  The first input octet picks -t/-i.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "relay.h"

struct sink {
	size_t	 total;		/* octets emitted, terminator included */
	size_t	 linelen;	/* octets in the current line */
	int	 cr;		/* previous octet was CR */
	char	 tail[5];	/* last five octets */
};

static int
check(void *ctx, const char *buf, size_t len)
{
	struct sink *s = ctx;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = buf[i];

		if (c == '\0')
			abort();		/* NUL on the wire */
		if (s->cr && c != '\n')
			abort();		/* bare CR */
		if (c == '\n' && !s->cr)
			abort();		/* bare LF */
		s->cr = c == '\r';
		if (c == '\n')
			s->linelen = 0;
		else if (c != '\r' && ++s->linelen > 999)
			abort();		/* 998 + a stuffed dot */
		memmove(s->tail, s->tail + 1, 4);
		s->tail[4] = c;
		s->total++;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *targets[] = { "admin@example.org", "ops@example.org" };
	static struct alias aliases[] = { { "root", targets, 2 } };
	static char *argv_rcpts[] = { "root, a@example.org" };
	struct conf conf;
	struct msgopts mo;
	struct msg m;
	struct sink s;
	char err[ERRLEN];
	int fd, ex;

	if (size < 1)
		return 0;
	memset(&conf, 0, sizeof conf);
	conf.path = "fuzz.conf";
	conf.from = "sender@example.org";
	conf.domain = "example.org";
	conf.helo = "client.example.org";
	conf.aliases = aliases;
	conf.naliases = 1;
	memset(&mo, 0, sizeof mo);
	mo.extract = data[0] & 1;
	mo.dotend = (data[0] & 2) != 0;
	mo.argv_rcpts = argv_rcpts;
	mo.nargv = (data[0] & 4) ? 1 : 0;
	if ((fd = memfd_create("msg", 0)) == -1 ||
	    write(fd, data + 1, size - 1) != (ssize_t)(size - 1) ||
	    lseek(fd, 0, SEEK_SET) == -1)
		abort();
	err[0] = '\0';
	ex = msg_read(&m, fd, &mo, &conf, err, sizeof err);
	close(fd);
	if (ex != EX_OK) {
		/* Refused: a reason of one line. */
		if (err[0] == '\0' || strchr(err, '\n') != NULL)
			abort();
		return 0;
	}
	/* As for a smarthost without 8BITMIME. */
	if ((data[0] & 8) && msg_to_7bit(&m, err, sizeof err) != EX_OK)
		abort();
	memset(&s, 0, sizeof s);
	if (msg_send(&m, check, &s) != 0)
		abort();
	/* One terminator, right after a line end; SIZE is what was sent. */
	if (memcmp(s.tail + 2, ".\r\n", 3) != 0 || s.tail[0] != '\r' ||
	    s.tail[1] != '\n' || s.total < (size_t)m.size + 3)
		abort();
	if (m.nrcpts == 0 || m.sender == NULL || addr_check(m.sender) != NULL)
		abort();
	for (size_t i = 0; i < m.nrcpts; i++)
		if (addr_check(m.rcpts[i].addr) != NULL ||
		    strchr(m.rcpts[i].addr, '@') == NULL)
			abort();
	msg_free(&m);
	return 0;
}
