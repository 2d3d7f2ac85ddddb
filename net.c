/*
 * TCP to the smarthost: a connection to each address of its name in turn,
 * and reads and writes on the socket, every wait bounded by the deadline
 * smtp.c sets per command (conn_timeout).  tls.c builds the stream on it.
 */
#include <sys/socket.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

/* ---- deadlines and raw socket I/O --------------------------------------- */

/*
 * A submission's first try has a total deadline (submit_timeout): every
 * wait ends by then, and the message stays queued for relay -q.
 */
void
sock_timeout(struct sock *s, int seconds)
{
	clock_gettime(CLOCK_MONOTONIC, &s->deadline);
	s->deadline.tv_sec += seconds;
	s->timeout = seconds;
	s->capped = s->cap.tv_sec != 0 && (s->cap.tv_sec < s->deadline.tv_sec ||
	    (s->cap.tv_sec == s->deadline.tv_sec &&
	    s->cap.tv_nsec < s->deadline.tv_nsec));
	if (s->capped)
		s->deadline = s->cap;
}

/* Wait until fd is ready for events or the deadline passes. */
static int
wait_fd(struct sock *s, short events)
{
	struct pollfd pfd;
	struct timespec now;
	long long ms;
	int n;

	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (long long)(s->deadline.tv_sec - now.tv_sec) * 1000 +
		    (s->deadline.tv_nsec - now.tv_nsec) / 1000000;
		if (ms <= 0 && s->capped) {
			snprintf(s->error, sizeof s->error, "submit_timeout "
			    "(%d s) reached; relay -q retries", s->cap_seconds);
			return -1;
		}
		if (ms <= 0) {
			snprintf(s->error, sizeof s->error,
			    "timed out after %d s", s->timeout);
			return -1;
		}
		pfd.fd = s->fd;
		pfd.events = events;
		n = poll(&pfd, 1, ms > 60000 ? 60000 : (int)ms);
		if (n > 0)
			return 0;
		if (n == -1 && errno != EINTR) {
			snprintf(s->error, sizeof s->error, "poll: %s",
			    strerror(errno));
			return -1;
		}
	}
}

/*
 * A server without TCP_NODELAY (stock Postfix) holds a small segment,
 * such as the greeting after its TLS Finished, until we ACK the one
 * before; with nothing to send, Linux would wait 40 ms to ACK.  Ask for
 * immediate ACKs before every read (the kernel clears the mode itself).
 */
static void
quick_ack(int fd)
{
#ifdef TCP_QUICKACK
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
	(void)fd;
#endif
}

ssize_t
sock_read(struct sock *s, void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		quick_ack(s->fd);
		if (wait_fd(s, POLLIN) == -1)
			return -1;
		n = read(s->fd, buf, len);
		if (n > 0)
			return n;
		if (n == 0) {
			strlcpy(s->error, "connection closed by the smarthost",
			    sizeof s->error);
			s->hungup = 1;
			return -1;
		}
		if (errno == ECONNRESET)
			s->hungup = 1;
		if (errno != EINTR && errno != EAGAIN) {
			snprintf(s->error, sizeof s->error, "read: %s",
			    strerror(errno));
			return -1;
		}
	}
}

/* MSG_NOSIGNAL: our parent may not expect us to die of SIGPIPE. */
ssize_t
sock_write(struct sock *s, const void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		if (wait_fd(s, POLLOUT) == -1)
			return -1;
		n = send(s->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0)
			return n;
		/*
		 * A server that ends a handshake may be gone before our
		 * next flight is out: that is a hang-up too.
		 */
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) {
			strlcpy(s->error, errno == EPIPE ? "connection closed "
			    "by the smarthost" : "connection reset by the "
			    "smarthost", sizeof s->error);
			s->hungup = 1;
			return -1;
		}
		if (n == -1 && errno != EINTR && errno != EAGAIN) {
			snprintf(s->error, sizeof s->error, "write: %s",
			    strerror(errno));
			return -1;
		}
	}
}

/* ---- connecting ---------------------------------------------------------- */

static int
connect_one(struct sock *s, const struct conf *conf,
    const struct addrinfo *ai)
{
	int fd, soerr, one = 1;
	socklen_t solen = sizeof soerr;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		snprintf(s->error, sizeof s->error, "socket: %s",
		    strerror(errno));
		return -1;
	}
	s->fd = fd;
	/*
	 * Our writes are whole commands or full TLS records; Nagle would
	 * hold back the last records of the handshake flight until the
	 * server's delayed ACK, some 40 ms per connection.
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1) {
		snprintf(s->error, sizeof s->error, "setsockopt: %s",
		    strerror(errno));
		goto fail;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		snprintf(s->error, sizeof s->error, "%s", strerror(errno));
		goto fail;
	}
	sock_timeout(s, conf->timeout[TMO_CONNECT]);
	if (wait_fd(s, POLLOUT) == -1)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &solen) == -1)
		soerr = errno;
	if (soerr == 0)
		return 0;
	snprintf(s->error, sizeof s->error, "%s", strerror(soerr));
fail:
	close(fd);
	s->fd = -1;
	return -1;
}

/*
 * Try every address of the smarthost (AAAA and A, in getaddrinfo's order)
 * until one answers; the error kept is a summary of all attempts.
 */
int
connect_any(struct sock *s, const struct conf *conf)
{
	struct addrinfo hints, *res, *ai;
	char port[8], addr[INET6_ADDRSTRLEN], tried[ERRLEN] = "";
	int rv;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/*
	 * No AI_ADDRCONFIG: it hides ::1 on hosts with loopback only, and an
	 * address family without a route fails at once and we move on.
	 */
	snprintf(port, sizeof port, "%d", conf->port);
	rv = getaddrinfo(conf->host, port, &hints, &res);
	if (rv != 0) {
		snprintf(s->error, sizeof s->error, "cannot resolve %s: %s",
		    conf->host, gai_strerror(rv));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
		    sizeof addr, NULL, 0, NI_NUMERICHOST) != 0)
			strlcpy(addr, "?", sizeof addr);
		snprintf(s->peer, sizeof s->peer, "%s[%s]:%d",
		    conf->host, addr, conf->port);
		if (connect_one(s, conf, ai) == 0) {
			freeaddrinfo(res);
			return 0;
		}
		if (tried[0] != '\0')
			strlcat(tried, ", ", sizeof tried);
		strlcat(tried, addr, sizeof tried);
		strlcat(tried, ": ", sizeof tried);
		strlcat(tried, s->error, sizeof tried);
	}
	freeaddrinfo(res);
	snprintf(s->error, sizeof s->error, "cannot connect to %s port %d (",
	    conf->host, conf->port);
	strlcat(s->error, tried, sizeof s->error);
	strlcat(s->error, ")", sizeof s->error);
	return -1;
}
