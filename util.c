/*
 * Small helpers shared by several files: the log, making untrusted text
 * safe to print, Base64 for AUTH, what is whitespace, and whether relay
 * runs setgid.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

void
log_line(const struct conf *conf, int ok, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (conf->log == LOGTO_STDERR)
		fprintf(stderr, "%s: %s\n", getprogname(), line);
	else
		syslog(ok ? LOG_INFO : LOG_ERR, "%s", line);
}

/*
 * Octets outside printable ASCII as \ooo, like vis(3) VIS_OCTAL; a
 * backslash as "\\" unless src is such text already (encoded), so that
 * each backslash of the result starts exactly one escape.
 */
static void
vis_copy(char *dst, size_t dstlen, const char *src, size_t srclen,
    int encoded)
{
	static const char digits[] = "01234567";
	size_t i, o = 0;

	if (dstlen == 0)
		return;
	for (i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c >= 0x20 && c < 0x7f && (c != '\\' || encoded)) {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = (char)c;
		} else if (c == '\\') {
			if (o + 2 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else {
			if (o + 4 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = digits[(c >> 6) & 7];
			dst[o++] = digits[(c >> 3) & 7];
			dst[o++] = digits[c & 7];
		}
	}
	dst[o] = '\0';
}

/*
 * Server replies and message text reach terminals and syslog: encoded
 * as above, so a hostile smarthost cannot send terminal escapes, and the
 * text can be read back exactly (relay(8), Delivery).  Always terminates
 * dst.
 */
void
sanitise(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	vis_copy(dst, dstlen, src, srclen, 0);
}

/*
 * Text sanitise() made, read back from an envelope: shown as it is (its
 * escapes stay single), any octet a hand edit left outside printable
 * ASCII escaped.
 */
void
sanitise_kept(char *dst, size_t dstlen, const char *src)
{
	vis_copy(dst, dstlen, src, strlen(src), 1);
}

ssize_t
b64_encode(char *dst, size_t dstlen, const void *src, size_t srclen)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *in = src;
	size_t i, o = 0;

	if (dstlen == 0 || srclen > (dstlen - 1) / 4 * 3)
		return -1;
	for (i = 0; i + 2 < srclen; i += 3) {
		dst[o++] = alphabet[in[i] >> 2];
		dst[o++] = alphabet[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		dst[o++] = alphabet[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		dst[o++] = alphabet[in[i + 2] & 63];
	}
	if (i < srclen) {
		dst[o++] = alphabet[in[i] >> 2];
		if (i + 1 < srclen) {
			dst[o++] = alphabet[((in[i] & 3) << 4) |
			    (in[i + 1] >> 4)];
			dst[o++] = alphabet[(in[i + 1] & 15) << 2];
		} else {
			dst[o++] = alphabet[(in[i] & 3) << 4];
			dst[o++] = '=';
		}
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return (ssize_t)o;
}

/* All of it, or -1 with errno set (ENOSPC must reach the caller). */
int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Up to n octets at off; a short count means the end of the file. */
ssize_t
pread_all(int fd, char *p, size_t n, off_t off)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = pread(fd, p + got, n - got, off + (off_t)got);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Wall time since start (CLOCK_MONOTONIC), for the log's duration=. */
double
seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

int
privileged(void)
{
	return getegid() != getgid() || geteuid() != getuid();
}
