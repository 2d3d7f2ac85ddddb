/*
 * Small helpers shared by several files, one of each: the error
 * formatter, the log line, making untrusted text safe to print, Base64
 * and hex, the buffered writer, whole reads and writes, and whether relay
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

/*
 * The one error formatter: every err buffer passed between files is
 * filled here.  A truncated message is still a useful one.
 */
int
verrf(char *err, size_t errlen, int ret, const char *fmt, va_list ap)
{
	if (errlen > 0)
		(void)vsnprintf(err, errlen, fmt, ap);
	return ret;
}

int
errf(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)verrf(err, errlen, ret, fmt, ap);
	va_end(ap);
	return ret;
}

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

void
hex_encode(char *dst, size_t dstlen, const void *src, size_t n, int how)
{
	const char *digits = how & HEX_UPPER ? "0123456789ABCDEF" :
	    "0123456789abcdef";
	const unsigned char *in = src;
	size_t i, o = 0, sep;

	if (dstlen == 0)
		return;
	for (i = 0; i < n; i++) {
		sep = i > 0 && (how & HEX_COLONS);
		if (o + sep + 2 >= dstlen)
			break;
		if (sep)
			dst[o++] = ':';
		dst[o++] = digits[in[i] >> 4];
		dst[o++] = digits[in[i] & 15];
	}
	dst[o] = '\0';
}

void
hex_random(char *dst, size_t dstlen)
{
	unsigned char rnd[32];
	size_t n = dstlen > 0 ? (dstlen - 1) / 2 : 0;

	if (n > sizeof(rnd))
		n = sizeof(rnd);
	arc4random_buf(rnd, n);
	hex_encode(dst, dstlen, rnd, n, 0);
}

void
wbuf_init(struct wbuf *b, msg_put_fn put, void *ctx)
{
	b->put = put;
	b->ctx = ctx;
	b->used = 0;
}

int
wbuf_flush(struct wbuf *b)
{
	if (b->used > 0 && b->put(b->ctx, b->buf, b->used) == -1)
		return -1;
	b->used = 0;
	return 0;
}

/* wbuf_put for what does not fit in the room left. */
int
wbuf_put_more(struct wbuf *b, const char *p, size_t n)
{
	size_t room;

	while (n > 0) {
		if (b->used == sizeof(b->buf) && wbuf_flush(b) == -1)
			return -1;
		room = sizeof(b->buf) - b->used;
		if (room > n)
			room = n;
		memcpy(b->buf + b->used, p, room);
		b->used += room;
		p += room;
		n -= room;
	}
	return 0;
}

int
wbuf_put_fd(void *ctx, const char *p, size_t n)
{
	return write_all(*(int *)ctx, p, n);
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
privileged(void)
{
	return getegid() != getgid() || geteuid() != getuid();
}
