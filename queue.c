/*
 * The durable queue: one directory per message, so that an entry is
 * committed, moved to failed/ or taken away by one rename(2).
 *
 *	DIR/tmp/ID/	being built or being removed; never read
 *	DIR/queue/ID/	waiting: "message" (never changed) and "envelope"
 *	DIR/failed/ID/	given up on; the envelope says why
 *
 * The message file is the lock (flock, never blocking): it keeps its
 * inode for the entry's whole life, while the envelope is replaced by a
 * rename at every update.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define ENVELOPE_MAX	(4 * 1024 * 1024)	/* cap on what we read */
#define ORPHAN_AGE	3600	/* seconds before tmp/ leftovers go */

static const char *const subdirs[] = { "tmp", "queue", "failed" };
static const char *const states[] = {
	[RS_PENDING] = "pending",
	[RS_SENT] = "sent",
	[RS_FAILED] = "failed",
};

/* A full disk or a passing shortage is worth a retry; the rest is not. */
static int
errno_exit(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
	case EFBIG:		/* a file size limit: ulimit -f */
	case EIO:
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case EAGAIN:
	case EINTR:
		return EX_TEMPFAIL;
	default:
		return EX_CANTCREAT;
	}
}

/* An error into err; returns ex. */
#define qerr(err, errlen, ex, ...)	errf(err, errlen, ex, __VA_ARGS__)

/* "dir/queue/ID: No space left on device", errno's class as the exit. */
static int
syserr(const struct queue *q, const char *where, const char *id, char *err,
    size_t errlen)
{
	int e = errno;

	return qerr(err, errlen, errno_exit(e), "%s/%s%s%s: %s", q->dir,
	    where, id ? "/" : "", id ? id : "", strerror(e));
}

/* ---- the envelope file ---------------------------------------------- */

static void
fmt_time(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strlcpy(buf, "1970-01-01T00:00:00Z", size);
}

/* n decimal digits, already checked to be digits. */
static int
digits(const char *s, int n)
{
	int v = 0;

	while (n-- > 0)
		v = v * 10 + (*s++ - '0');
	return v;
}

/* Exactly what fmt_time writes, for a time it could have written. */
static int
parse_time(const char *s, time_t *out)
{
	static const char form[] = "dddd-dd-ddTdd:dd:ddZ";
	struct tm tm, back;
	size_t i;

	for (i = 0; form[i] != '\0'; i++)
		if (form[i] == 'd' ? !isdigit((unsigned char)s[i]) :
		    s[i] != form[i])
			return -1;
	if (s[i] != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = digits(s, 4) - 1900;
	tm.tm_mon = digits(s + 5, 2) - 1;
	tm.tm_mday = digits(s + 8, 2);
	tm.tm_hour = digits(s + 11, 2);
	tm.tm_min = digits(s + 14, 2);
	tm.tm_sec = digits(s + 17, 2);
	back = tm;	/* timegm() normalises what it is given */
	if (tm.tm_year < 70 || (*out = timegm(&back)) == (time_t)-1 ||
	    gmtime_r(out, &back) == NULL)
		return -1;
	/* 02-30 or 23:59:60 would come back as another day. */
	return back.tm_year == tm.tm_year && back.tm_mon == tm.tm_mon &&
	    back.tm_mday == tm.tm_mday && back.tm_hour == tm.tm_hour &&
	    back.tm_min == tm.tm_min && back.tm_sec == tm.tm_sec ? 0 : -1;
}

/* One line of text: anything that could break the format becomes '?'. */
static void
put_text(FILE *fp, const char *key, const char *text)
{
	const unsigned char *p;

	fprintf(fp, "%s ", key);
	for (p = (const unsigned char *)text; *p != '\0'; p++)
		putc(*p < ' ' || *p == 0x7f ? '?' : *p, fp);
	putc('\n', fp);
}

static const char *
body_word(const struct qentry *e)
{
	if (!e->body8)
		return "7bit";
	return e->body_notutf8 ? "8bit-not-utf8" : "8bit";
}

char *
qentry_format(const struct qentry *e)
{
	char *text = NULL, when[32];
	size_t len = 0, i;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	fprintf(fp, "version %d\nid %s\n", QUEUE_VERSION, e->id);
	put_text(fp, "origin", e->origin ? e->origin : "stdin");
	fmt_time(when, sizeof(when), e->created);
	fprintf(fp, "uid %lu\ncreated %s\nsize %lld\nbody %s\nattempts %u\n",
	    (unsigned long)e->uid, when, (long long)e->size, body_word(e),
	    e->attempts);
	if (e->last_attempt != 0) {
		fmt_time(when, sizeof(when), e->last_attempt);
		fprintf(fp, "last-attempt %s\n", when);
	}
	if (e->next_attempt != 0) {
		fmt_time(when, sizeof(when), e->next_attempt);
		fprintf(fp, "next-attempt %s\n", when);
	}
	if (e->warned != 0) {
		fmt_time(when, sizeof(when), e->warned);
		fprintf(fp, "delay-warned %s\n", when);
	}
	if (e->failed_at != 0) {
		fmt_time(when, sizeof(when), e->failed_at);
		fprintf(fp, "failed-at %s\n", when);
	}
	if (e->note != NULL)
		put_text(fp, "note", e->note);
	if (e->last_error != NULL)
		put_text(fp, "last-error", e->last_error);
	if (e->reason != NULL)
		put_text(fp, "reason", e->reason);
	fprintf(fp, "sender <%s>\n", e->sender);
	for (i = 0; i < e->nrcpts; i++) {
		fprintf(fp, "rcpt %s <%s>", states[e->rcpts[i].state],
		    e->rcpts[i].addr);
		if (e->rcpts[i].reply != NULL)
			put_text(fp, "", e->rcpts[i].reply);
		else
			putc('\n', fp);
	}
	if (ferror(fp)) {
		fclose(fp);
		free(text);
		return NULL;
	}
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int
set_str(char **field, const char *value)
{
	free(*field);
	return (*field = strdup(value)) == NULL ? -1 : 0;
}

/* "<addr>" as written by qentry_format; the address is checked again. */
static const char *
parse_path(const char *s, char **addr, const char **rest)
{
	const char *end, *why;

	if (*s != '<' || (end = strchr(s, '>')) == NULL)
		return "an address in angle brackets is missing";
	if ((*addr = strndup(s + 1, (size_t)(end - s - 1))) == NULL)
		return strerror(errno);
	if ((why = addr_check(*addr)) != NULL) {
		free(*addr);
		*addr = NULL;
		return why;
	}
	*rest = end + 1;
	return NULL;
}

static const char *
parse_rcpt(struct qentry *e, const char *value)
{
	struct qrcpt *r, *grown;
	const char *rest, *why;
	size_t n, st;

	n = strcspn(value, " ");
	for (st = 0; st < sizeof(states) / sizeof(states[0]); st++)
		if (strlen(states[st]) == n && strncmp(value, states[st], n) ==
		    0)
			break;
	if (st == sizeof(states) / sizeof(states[0]) || value[n] != ' ')
		return "a recipient state must be pending, sent or failed";
	if ((grown = reallocarray(e->rcpts, e->nrcpts + 1,
	    sizeof(*e->rcpts))) == NULL)
		return strerror(errno);
	e->rcpts = grown;
	r = &e->rcpts[e->nrcpts];
	memset(r, 0, sizeof(*r));
	r->state = (enum rstate)st;
	if ((why = parse_path(value + n + 1, &r->addr, &rest)) != NULL)
		return why;
	e->nrcpts++;
	if (r->addr[0] == '\0')
		return "a recipient cannot be the null address <>";
	if (*rest != '\0' && *rest != ' ')
		return "text right after a recipient's '>'";
	if (*rest == ' ' && rest[1] != '\0' &&
	    (r->reply = strdup(rest + 1)) == NULL)
		return strerror(errno);
	return NULL;
}

static const char *
parse_number(const char *value, long long max, long long *out)
{
	const char *errstr;

	*out = strtonum(value, 0, max, &errstr);
	return errstr != NULL ? "a number is out of range" : NULL;
}

/* The field of a key whose value is a time, or NULL. */
static time_t *
time_field(struct qentry *e, const char *key)
{
	if (strcmp(key, "created") == 0)
		return &e->created;
	if (strcmp(key, "last-attempt") == 0)
		return &e->last_attempt;
	if (strcmp(key, "next-attempt") == 0)
		return &e->next_attempt;
	if (strcmp(key, "delay-warned") == 0)
		return &e->warned;
	if (strcmp(key, "failed-at") == 0)
		return &e->failed_at;
	return NULL;
}

/* One "key value" line.  Returns NULL, or why the line is wrong. */
static const char *
parse_field(struct qentry *e, const char *key, const char *value)
{
	time_t *when;
	long long n;
	const char *why = NULL, *rest;

	if (strcmp(key, "version") == 0) {
		if ((why = parse_number(value, LLONG_MAX, &n)) == NULL &&
		    n > QUEUE_VERSION)
			why = "written by a newer relay (format version too "
			    "high)";
		else if (why == NULL && n < 1)
			why = "bad version";
	} else if (strcmp(key, "id") == 0) {
		if (strlen(value) >= sizeof(e->id) || value[0] == '\0')
			why = "bad id";
		else
			strlcpy(e->id, value, sizeof(e->id));
	} else if (strcmp(key, "uid") == 0) {
		if ((why = parse_number(value, 0xffffffffLL, &n)) == NULL)
			e->uid = (uid_t)n;
	} else if ((when = time_field(e, key)) != NULL) {
		if (parse_time(value, when) == -1)
			why = "bad time";
	} else if (strcmp(key, "size") == 0) {
		if ((why = parse_number(value, 1LL << 50, &n)) == NULL)
			e->size = (off_t)n;
	} else if (strcmp(key, "attempts") == 0) {
		if ((why = parse_number(value, 1000000, &n)) == NULL)
			e->attempts = (unsigned)n;
	} else if (strcmp(key, "body") == 0) {
		if (strcmp(value, "7bit") != 0 && strcmp(value, "8bit") != 0 &&
		    strcmp(value, "8bit-not-utf8") != 0)
			why = "body must be 7bit, 8bit or 8bit-not-utf8";
		e->body8 = strcmp(value, "7bit") != 0;
		e->body_notutf8 = strcmp(value, "8bit-not-utf8") == 0;
	} else if (strcmp(key, "origin") == 0) {
		if (set_str(&e->origin, value) == -1)
			why = strerror(errno);
	} else if (strcmp(key, "note") == 0) {
		if (set_str(&e->note, value) == -1)
			why = strerror(errno);
	} else if (strcmp(key, "last-error") == 0) {
		if (set_str(&e->last_error, value) == -1)
			why = strerror(errno);
	} else if (strcmp(key, "reason") == 0) {
		if (set_str(&e->reason, value) == -1)
			why = strerror(errno);
	} else if (strcmp(key, "sender") == 0) {
		free(e->sender);
		e->sender = NULL;
		if ((why = parse_path(value, &e->sender, &rest)) == NULL &&
		    *rest != '\0')
			why = "text after the sender";
	} else if (strcmp(key, "rcpt") == 0)
		why = parse_rcpt(e, value);
	/* Other keys: a later relay's additions, ignored. */
	return why;
}

int
qentry_parse(struct qentry *e, const char *text, size_t len, char *err,
    size_t errlen)
{
	char *copy, *line, *next, *value;
	const char *why = NULL;
	size_t lineno = 0;
	int have_version = 0, have_created = 0;

	memset(e, 0, sizeof(*e));
	e->msgfd = -1;
	if (memchr(text, '\0', len) != NULL)
		return qerr(err, errlen, -1, "envelope holds a NUL octet");
	if ((copy = strndup(text, len)) == NULL)
		return qerr(err, errlen, -1, "%s", strerror(errno));
	for (line = copy; why == NULL && line != NULL && *line != '\0';
	    line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((value = strchr(line, ' ')) == NULL) {
			why = "a line is not \"key value\"";
			break;
		}
		*value++ = '\0';
		have_version |= strcmp(line, "version") == 0;
		have_created |= strcmp(line, "created") == 0;
		why = parse_field(e, line, value);
	}
	free(copy);
	if (why == NULL && (!have_version || !have_created ||
	    e->id[0] == '\0' || e->sender == NULL)) {
		why = "version, id, created or sender is missing";
		lineno = 0;
	}
	if (why == NULL)
		return 0;
	qentry_free(e);
	if (lineno > 0)
		return qerr(err, errlen, -1, "envelope line %zu: %s", lineno,
		    why);
	return qerr(err, errlen, -1, "envelope: %s", why);
}

void
qentry_free(struct qentry *e)
{
	size_t i;

	if (e->msgfd != -1)
		(void)close(e->msgfd);	/* and with it the lock */
	for (i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].reply);
	}
	free(e->rcpts);
	free(e->sender);
	free(e->origin);
	free(e->note);
	free(e->last_error);
	free(e->reason);
	memset(e, 0, sizeof(*e));
	e->msgfd = -1;
}

/* ---- files ------------------------------------------------------------ */

/*
 * The mode for something new in directory parentfd: mode, less the group
 * bits unless the parent grants its group everything.  So a queue shared
 * by a group (root:relay 2770, relay(8) SECURITY) keeps each entry usable
 * by every relay process, whoever's submission made it, while a queue of
 * one user (0700) stays that user's alone.  The umask applies as well.
 */
static mode_t
like_parent(int parentfd, mode_t mode)
{
	struct stat st;

	if (fstat(parentfd, &st) == -1 || (st.st_mode & S_IRWXG) != S_IRWXG)
		return mode & ~(mode_t)S_IRWXG;
	return mode;
}

/* name in dfd, written whole and fsync'd; removed again on failure. */
static int
write_envelope(int dfd, const char *name, const struct qentry *e)
{
	char *text;
	int fd, saved;

	if ((text = qentry_format(e)) == NULL)
		return -1;
	if ((fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, like_parent(dfd, 0660))) == -1) {
		free(text);
		return -1;
	}
	if (write_all(fd, text, strlen(text)) == -1 || fsync(fd) == -1) {
		saved = errno;
		(void)close(fd);
		(void)unlinkat(dfd, name, 0);
		free(text);
		errno = saved;
		return -1;
	}
	free(text);
	return close(fd);
}

static int
read_envelope(int dfd, struct qentry *e, char *err, size_t errlen)
{
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd, rv;

	if ((fd = openat(dfd, "envelope", O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1)
		return qerr(err, errlen, -1, "envelope: %s", strerror(errno));
	if ((buf = malloc(ENVELOPE_MAX)) == NULL) {
		(void)close(fd);
		return qerr(err, errlen, -1, "%s", strerror(errno));
	}
	while (len < ENVELOPE_MAX &&
	    (n = read(fd, buf + len, ENVELOPE_MAX - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			rv = qerr(err, errlen, -1, "envelope: %s",
			    strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len == ENVELOPE_MAX)
		rv = qerr(err, errlen, -1, "envelope larger than %d octets",
		    ENVELOPE_MAX);
	else
		rv = qentry_parse(e, buf, len, err, errlen);
out:
	(void)close(fd);
	free(buf);
	return rv;
}

/* Empty and remove tmp/ID (or any entry directory). */
static void
purge(int parentfd, const char *id)
{
	static const char *const files[] = {
		"message", "envelope", "envelope.new"
	};
	size_t i;
	int dfd;

	if ((dfd = openat(parentfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW)) != -1) {
		for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			(void)unlinkat(dfd, files[i], 0);
		(void)close(dfd);
	}
	(void)unlinkat(parentfd, id, AT_REMOVEDIR);
}

/* ---- the queue -------------------------------------------------------- */

int
queue_open(struct queue *q, const char *dir, char *err, size_t errlen)
{
	int *fds[] = { &q->tmpfd, &q->queuefd, &q->failedfd };
	size_t i;

	memset(q, 0, sizeof(*q));
	q->fd = q->tmpfd = q->queuefd = q->failedfd = -1;
	if ((q->dir = strdup(dir)) == NULL)
		return qerr(err, errlen, EX_OSERR, "%s", strerror(errno));
	/* Made here, it is its user's alone; make install makes a group's. */
	if ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
	    (q->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		(void)qerr(err, errlen, errno_exit(errno), "%s: %s", dir,
		    strerror(errno));
		goto fail;
	}
	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if ((mkdirat(q->fd, subdirs[i], like_parent(q->fd, 0770)) ==
		    -1 && errno != EEXIST) ||
		    (*fds[i] = openat(q->fd, subdirs[i], O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
			(void)syserr(q, subdirs[i], NULL, err, errlen);
			goto fail;
		}
	}
	return EX_OK;
fail:
	i = (size_t)errno_exit(errno);
	queue_close(q);
	return (int)i;
}

void
queue_close(struct queue *q)
{
	if (q->fd != -1)
		(void)close(q->fd);
	if (q->tmpfd != -1)
		(void)close(q->tmpfd);
	if (q->queuefd != -1)
		(void)close(q->queuefd);
	if (q->failedfd != -1)
		(void)close(q->failedfd);
	free(q->dir);
	memset(q, 0, sizeof(*q));
	q->fd = q->tmpfd = q->queuefd = q->failedfd = -1;
}

/* Time first, so that names sort by age; random against collisions. */
void
queue_new_id(char *id, size_t idlen)
{
	snprintf(id, idlen, "%08llx%06x", (long long)time(NULL),
	    (unsigned)arc4random_uniform(0x1000000));
}

int
queue_has(struct queue *q, const char *id)
{
	struct stat st;

	return fstatat(q->queuefd, id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    fstatat(q->failedfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* An id is a plain name: no '/', not hidden, not empty. */
static int
valid_id(const char *id)
{
	return id[0] != '\0' && id[0] != '.' && strchr(id, '/') == NULL &&
	    strlen(id) < sizeof(((struct qentry *)0)->id);
}

/* tmp/ID for a new entry: the id given, or a fresh one. */
static int
new_entry_dir(struct queue *q, const char *want, char *id, size_t idlen)
{
	int tries, saved;

	if (want != NULL && !valid_id(want)) {
		errno = EINVAL;
		return -1;
	}
	for (tries = 0; tries < 100; tries++) {
		if (want != NULL)
			strlcpy(id, want, idlen);
		else
			queue_new_id(id, idlen);
		if (queue_has(q, id)) {
			saved = EEXIST;
		} else if (mkdirat(q->tmpfd, id, like_parent(q->tmpfd, 0770)) ==
		    0)
			return 0;
		else
			saved = errno;
		if (want != NULL || saved != EEXIST)
			break;
	}
	errno = saved;
	return -1;
}

static int
entry_init(struct qentry *e, const struct msg *m, const char *origin)
{
	size_t i;

	e->uid = getuid();
	e->created = time(NULL);
	e->size = m->size;
	e->body8 = m->body8;
	e->body_notutf8 = m->body_notutf8;
	if ((m->note != NULL && (e->note = strdup(m->note)) == NULL) ||
	    (e->sender = strdup(m->sender)) == NULL ||
	    (e->origin = strdup(origin)) == NULL ||
	    (e->rcpts = calloc(m->nrcpts, sizeof(*e->rcpts))) == NULL)
		return -1;
	for (; e->nrcpts < m->nrcpts; e->nrcpts++) {
		i = e->nrcpts;
		if ((e->rcpts[i].addr = strdup(m->rcpts[i].addr)) == NULL)
			return -1;
	}
	return 0;
}

/* Write tmp/ID/message and tmp/ID/envelope, durable, message locked. */
static int
build_entry(struct queue *q, int dfd, const struct msg *m, struct qentry *e)
{
	int fd;

	if ((fd = openat(dfd, "message", O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, like_parent(dfd, 0660))) == -1)
		return -1;
	e->msgfd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1 || msg_write(m, fd) == -1 ||
	    fsync(fd) == -1 || write_envelope(dfd, "envelope", e) == -1 ||
	    fsync(dfd) == -1)
		return -1;
	(void)q;
	return 0;
}

int
queue_add(struct queue *q, const struct msg *m, const char *origin,
    struct qentry *e, char *err, size_t errlen)
{
	return queue_add_as(q, m, origin, NULL, getuid(), e, err, errlen);
}

int
queue_add_as(struct queue *q, const struct msg *m, const char *origin,
    const char *id, uid_t uid, struct qentry *e, char *err, size_t errlen)
{
	int dfd = -1, ex, saved, renamed = 0;

	memset(e, 0, sizeof(*e));
	e->msgfd = -1;
	errno = 0;
	if (new_entry_dir(q, id, e->id, sizeof(e->id)) == -1) {
		saved = errno;
		return qerr(err, errlen, errno_exit(saved), "%s: %s", q->dir,
		    strerror(saved));
	}
	if (entry_init(e, m, origin) == -1)
		goto fail;
	e->uid = uid;
	if ((dfd = openat(q->tmpfd, e->id, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || build_entry(q, dfd, m, e) == -1)
		goto fail;
	/* The commit: the entry appears whole in queue/, or not at all. */
	if (renameat(q->tmpfd, e->id, q->queuefd, e->id) == -1)
		goto fail;
	renamed = 1;
	if (fsync(q->queuefd) == -1)
		goto fail;
	(void)close(dfd);
	return EX_OK;
fail:
	saved = errno;
	ex = qerr(err, errlen, errno_exit(saved), "%s: %s", q->dir,
	    strerror(saved));
	if (dfd != -1)
		(void)close(dfd);
	/* Not durable, so not accepted: take it out again. */
	if (renamed && renameat(q->queuefd, e->id, q->tmpfd, e->id) == -1)
		purge(q->queuefd, e->id);
	purge(q->tmpfd, e->id);
	qentry_free(e);
	return ex;
}

static int
copy_file(int from, int to)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(from, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (write_all(to, buf, (size_t)n) == -1)
			return -1;
	}
	return 0;
}

/*
 * Something that never became a message (a bad spool file): kept in
 * failed/ID with its bytes, if any could be read, and the reason.
 */
int
queue_add_failed(struct queue *q, const char *id, uid_t uid, int srcfd,
    const char *origin, const char *why, char *err, size_t errlen)
{
	struct qentry e;
	struct stat st;
	int dfd = -1, fd = -1, saved;

	memset(&e, 0, sizeof(e));
	e.msgfd = -1;
	errno = 0;
	if (new_entry_dir(q, id, e.id, sizeof(e.id)) == -1)
		return syserr(q, "tmp", NULL, err, errlen);
	e.uid = uid;
	e.created = e.failed_at = time(NULL);
	if (srcfd != -1 && fstat(srcfd, &st) == 0)
		e.size = st.st_size;
	e.sender = (char *)"";
	e.origin = (char *)origin;
	e.reason = (char *)why;
	if ((dfd = openat(q->tmpfd, e.id, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || (fd = openat(dfd, "message", O_WRONLY |
	    O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    like_parent(dfd, 0660))) == -1 ||
	    (srcfd != -1 && copy_file(srcfd, fd) == -1) || fsync(fd) == -1 ||
	    write_envelope(dfd, "envelope", &e) == -1 || fsync(dfd) == -1 ||
	    renameat(q->tmpfd, e.id, q->failedfd, e.id) == -1 ||
	    fsync(q->failedfd) == -1) {
		saved = errno;
		if (fd != -1)
			(void)close(fd);
		if (dfd != -1)
			(void)close(dfd);
		purge(q->tmpfd, e.id);
		errno = saved;
		return syserr(q, "failed", e.id, err, errlen);
	}
	(void)close(fd);
	(void)close(dfd);
	return EX_OK;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in a directory of entries, sorted, dot-names left out. */
static int
list_dir(struct queue *q, int dirfd, const char *name, char ***idsp,
    size_t *nidsp, char *err, size_t errlen)
{
	struct dirent *de;
	DIR *dp;
	char **ids = NULL, **grown;
	size_t n = 0;
	int fd;

	*idsp = NULL;
	*nidsp = 0;
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1 || (dp = fdopendir(fd)) == NULL) {
		if (fd != -1)
			(void)close(fd);
		return qerr(err, errlen, -1, "%s/%s: %s", q->dir, name,
		    strerror(errno));
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((grown = reallocarray(ids, n + 1, sizeof(*ids))) == NULL) {
			queue_ids_free(ids, n);
			(void)closedir(dp);
			return qerr(err, errlen, -1, "%s", strerror(ENOMEM));
		}
		ids = grown;
		if ((ids[n] = strdup(de->d_name)) == NULL) {
			queue_ids_free(ids, n);
			(void)closedir(dp);
			return qerr(err, errlen, -1, "%s", strerror(ENOMEM));
		}
		n++;
	}
	(void)closedir(dp);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), cmp_names);
	*idsp = ids;
	*nidsp = n;
	return 0;
}

int
queue_ids(struct queue *q, int failed, char ***idsp, size_t *nidsp,
    char *err, size_t errlen)
{
	return list_dir(q, failed ? q->failedfd : q->queuefd, failed ?
	    "failed" : "queue", idsp, nidsp, err, errlen);
}

void
queue_ids_free(char **ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* Is the locked file still queue/ID/message, or has it moved on? */
static int
still_queued(struct queue *q, const char *id, int fd)
{
	char path[64];
	struct stat held, now;

	snprintf(path, sizeof(path), "%s/message", id);
	return fstat(fd, &held) == 0 && held.st_nlink > 0 &&
	    fstatat(q->queuefd, path, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    held.st_ino == now.st_ino && held.st_dev == now.st_dev;
}

static int
open_entry(struct queue *q, int failed, const char *id)
{
	if (strchr(id, '/') != NULL || id[0] == '.') {
		errno = EINVAL;
		return -1;
	}
	return openat(failed ? q->failedfd : q->queuefd, id, O_RDONLY |
	    O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
}

static int
load(struct queue *q, int dfd, const char *id, struct qentry *e, char *err,
    size_t errlen)
{
	if (read_envelope(dfd, e, err, errlen) == -1)
		return -1;
	if (strcmp(e->id, id) != 0) {
		(void)qerr(err, errlen, -1, "envelope says id %s", e->id);
		qentry_free(e);
		return -1;
	}
	(void)q;
	return 0;
}

int
queue_lock(struct queue *q, const char *id, struct qentry *e, char *err,
    size_t errlen)
{
	struct stat st;
	int dfd, fd, saved;

	memset(e, 0, sizeof(*e));
	e->msgfd = -1;
	if ((dfd = open_entry(q, 0, id)) == -1)
		return errno == ENOENT ? 1 : qerr(err, errlen, -1, "%s",
		    strerror(errno));
	if ((fd = openat(dfd, "message", O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1) {
		saved = errno;
		(void)close(dfd);
		/* Moved away since the listing, or broken? */
		if (saved == ENOENT && fstatat(q->queuefd, id, &st,
		    AT_SYMLINK_NOFOLLOW) == -1)
			return 1;
		return qerr(err, errlen, -1, "message: %s", strerror(saved));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1 || !still_queued(q, id, fd)) {
		(void)close(fd);
		(void)close(dfd);
		return 1;
	}
	if (load(q, dfd, id, e, err, errlen) == -1) {
		(void)close(fd);
		(void)close(dfd);
		return -1;
	}
	(void)close(dfd);
	e->msgfd = fd;
	return 0;
}

int
queue_peek(struct queue *q, int failed, const char *id, struct qentry *e,
    char *err, size_t errlen)
{
	int dfd, rv;

	memset(e, 0, sizeof(*e));
	e->msgfd = -1;
	if ((dfd = open_entry(q, failed, id)) == -1)
		return errno == ENOENT ? 1 : qerr(err, errlen, -1, "%s",
		    strerror(errno));
	rv = load(q, dfd, id, e, err, errlen);
	(void)close(dfd);
	if (rv == 0)
		e->failed = failed;
	return rv;
}

int
queue_save(struct queue *q, struct qentry *e, char *err, size_t errlen)
{
	const char *where = e->failed ? "failed" : "queue";
	int dfd, rv = 0;

	if ((dfd = open_entry(q, e->failed, e->id)) == -1)
		return syserr(q, where, e->id, err, errlen);
	if (write_envelope(dfd, "envelope.new", e) == -1 ||
	    renameat(dfd, "envelope.new", dfd, "envelope") == -1 ||
	    fsync(dfd) == -1)
		rv = syserr(q, where, e->id, err, errlen);
	(void)close(dfd);
	return rv;
}

/* Take entry id out of dirfd (queue/ or failed/) in one rename, then empty it. */
static int
discard(struct queue *q, int dirfd, const char *id)
{
	/* A leftover of a crash could be in the way. */
	purge(q->tmpfd, id);
	if (renameat(dirfd, id, q->tmpfd, id) == -1)
		return -1;
	purge(q->tmpfd, id);
	return 0;
}

/*
 * No fsync here: after a crash the rename stands; only a power cut could
 * bring the entry back (sent again, never lost).  queue_sync() at the end
 * of a run closes that window for a whole flush at once.
 */
int
queue_remove(struct queue *q, struct qentry *e, char *err, size_t errlen)
{
	if (discard(q, q->queuefd, e->id) == -1)
		return syserr(q, "queue", e->id, err, errlen);
	return 0;
}

void
queue_sync(struct queue *q)
{
	(void)fsync(q->queuefd);
	(void)fsync(q->tmpfd);
}

int
queue_fail(struct queue *q, struct qentry *e, char *err, size_t errlen)
{
	int ex;

	e->failed_at = time(NULL);	/* failed_max_age counts from here */
	if ((ex = queue_save(q, e, err, errlen)) != 0)
		return ex;
	if (renameat(q->queuefd, e->id, q->failedfd, e->id) == -1)
		return syserr(q, "failed", e->id, err, errlen);
	e->failed = 1;
	if (fsync(q->failedfd) == -1 || fsync(q->queuefd) == -1)
		return syserr(q, "failed", e->id, err, errlen);
	return 0;
}

/* Does a process hold tmp/ID (its message locked: still being built)? */
static int
tmp_held(struct queue *q, const char *id)
{
	char path[64];
	int fd, busy = 0;

	snprintf(path, sizeof(path), "%s/message", id);
	if ((fd = openat(q->tmpfd, path, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) != -1) {
		busy = flock(fd, LOCK_EX | LOCK_NB) == -1;
		(void)close(fd);
	}
	return busy;
}

int
queue_clear_tmp(struct queue *q, const char *id)
{
	struct stat st;

	if (!valid_id(id) || fstatat(q->tmpfd, id, &st,
	    AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	if (!S_ISDIR(st.st_mode) || tmp_held(q, id))
		return -1;
	purge(q->tmpfd, id);
	return fstatat(q->tmpfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1 ? 0 : -1;
}

int
queue_intact(const struct qentry *e, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(e->msgfd, &st) == -1)
		return qerr(err, errlen, -1, "message file: %s",
		    strerror(errno));
	/* "size" is the message file's length (RFC 1870 counts CRLF too). */
	if (st.st_size != e->size)
		return qerr(err, errlen, -1, "message file is %lld octets, the "
		    "envelope says %lld: damaged outside relay",
		    (long long)st.st_size, (long long)e->size);
	return 0;
}

/* When entry id went to failed/: its failed-at, else its envelope's mtime. */
static time_t
failed_since(struct queue *q, const struct qentry *e)
{
	char path[64];
	struct stat st;

	if (e->failed_at != 0)
		return e->failed_at;
	/* Moved by a relay that wrote no failed-at: the envelope was last. */
	snprintf(path, sizeof(path), "%s/envelope", e->id);
	if (fstatat(q->failedfd, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return time(NULL);
	return st.st_mtime;
}

/* failed/ entries older than failed_max_age go; unreadable ones stay. */
static void
expire_failed(struct queue *q, const struct conf *conf)
{
	struct qentry e;
	char **ids, err[ERRLEN];
	size_t n, i;
	time_t age;

	if (conf->failed_max_age == 0 ||
	    list_dir(q, q->failedfd, "failed", &ids, &n, err, sizeof(err)) == -1)
		return;
	for (i = 0; i < n; i++) {
		if (queue_peek(q, 1, ids[i], &e, err, sizeof(err)) != 0)
			continue;
		age = time(NULL) - failed_since(q, &e);
		qentry_free(&e);
		if (age < conf->failed_max_age)
			continue;
		if (discard(q, q->failedfd, ids[i]) == -1)
			log_line(conf, 0, "id=%s error=%s/failed/%s: %s", ids[i],
			    q->dir, ids[i], strerror(errno));
		else
			log_line(conf, 1, "id=%s removed from failed/ after %lld "
			    "days (failed_max_age)", ids[i],
			    (long long)(age / 86400));
	}
	queue_ids_free(ids, n);
	(void)fsync(q->failedfd);
}

/*
 * tmp/ holds what a crash left behind: an entry half built (never
 * committed) or half removed (already delivered).  Neither is wanted.
 */
void
queue_tidy(struct queue *q, const struct conf *conf)
{
	char **ids, err[ERRLEN];
	struct stat st;
	size_t n, i;

	if (list_dir(q, q->tmpfd, "tmp", &ids, &n, err, sizeof(err)) == -1)
		return;
	for (i = 0; i < n; i++) {
		if (fstatat(q->tmpfd, ids[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    st.st_mtime > time(NULL) - ORPHAN_AGE)
			continue;
		if (!S_ISDIR(st.st_mode)) {	/* bounce.c's scratch file */
			(void)unlinkat(q->tmpfd, ids[i], 0);
			continue;
		}
		if (!tmp_held(q, ids[i]))
			purge(q->tmpfd, ids[i]);
	}
	queue_ids_free(ids, n);
	expire_failed(q, conf);
}
