/*
 * The spool directory: producers drop complete messages there (written
 * as a dot-file, then renamed), and every run of relay moves them into
 * the queue.  A file is claimed by renaming it to ".relay-ID", ID being
 * the queue id it will get, so a crash at any point can be told apart
 * later: if queue/ID or failed/ID exists, the claim was taken in.
 * What a spool file becomes is no runner's: it gets a fixed envelope
 * sender and the spool directory owner's uid (relay(8), SPOOL DIRECTORY).
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "relay.h"

#define CLAIM		".relay-"
#define CLAIM_LEN	(sizeof(CLAIM) - 1)

struct spool {
	struct run	*r;
	int		 dirfd;
	uid_t		 owner;		/* the directory's: its entries' uid */
	char		 sender[ADDR_MAX + 1];	/* their envelope sender */
};

/* Keep a bad file's bytes (if fd != -1) and why in failed/, then drop it. */
static void
reject(struct spool *sp, const char *name, const char *path, const char *id,
    int fd, const char *why)
{
	char origin[300], reason[ERRLEN], err[ERRLEN], safe[256];
	int isdir;

	sanitise(safe, sizeof(safe), name, strlen(name));
	snprintf(origin, sizeof(origin), "spool %s", safe);
	snprintf(reason, sizeof(reason), "spool file %s: %s", safe, why);
	if (fd != -1 && lseek(fd, 0, SEEK_SET) == -1)
		fd = -1;
	if (queue_add_failed(sp->r->q, id, sp->owner, fd, origin, reason, err,
	    sizeof(err)) != EX_OK) {
		log_line(sp->r->conf, 0, "%s (left in the spool: %s)", reason,
		    err);
		return;
	}
	log_line(sp->r->conf, 0, "id=%s status=failed error=%s", id, reason);
	isdir = unlinkat(sp->dirfd, path, 0) == -1 && (errno == EISDIR ||
	    errno == EPERM);
	/* A directory that is not empty: out of the way, not taken again. */
	if (isdir && unlinkat(sp->dirfd, path, AT_REMOVEDIR) == -1) {
		snprintf(origin, sizeof(origin), CLAIM "bad-%s", id);
		(void)renameat(sp->dirfd, path, sp->dirfd, origin);
	}
	(void)fsync(sp->dirfd);
}

/* Read the claimed file as with -t -i, queue it, drop the claim. */
static void
take_in(struct spool *sp, int fd, const char *claim, const char *name,
    const char *id)
{
	struct msgopts mo;
	struct msg m;
	struct qentry e;
	char err[ERRLEN], origin[300], safe[256];
	int ex;

	memset(&mo, 0, sizeof(mo));
	mo.extract = 1;
	/* As with -f and -F "": nothing from the runner's passwd entry. */
	mo.from = sp->sender;
	mo.fullname = "";
	if ((ex = msg_read(&m, fd, &mo, sp->r->conf, err, sizeof(err))) !=
	    EX_OK) {
		if (ex == EX_DATAERR || ex == EX_USAGE || ex == EX_NOUSER)
			reject(sp, name, claim, id, fd, err);
		else
			log_line(sp->r->conf, 0, "spool file %s: %s (left "
			    "for the next run)", claim, err);
		return;
	}
	sanitise(safe, sizeof(safe), name, strlen(name));
	snprintf(origin, sizeof(origin), "spool %s", safe);
	ex = queue_add_as(sp->r->q, &m, origin, id, sp->owner, &e, err,
	    sizeof(err));
	msg_free(&m);
	if (ex != EX_OK) {
		log_line(sp->r->conf, 0, "spool file %s: %s (left for the "
		    "next run)", claim, err);
		return;
	}
	if (unlinkat(sp->dirfd, claim, 0) == -1 || fsync(sp->dirfd) == -1)
		log_line(sp->r->conf, 0, "spool file %s: %s", claim,
		    strerror(errno));
	(void)run_new(sp->r, &e, 0);
	qentry_free(&e);
}

/* A file that cannot be a message (st, of name): why, or NULL if it can be. */
static const char *
unusable(struct spool *sp, const char *name, const struct stat *st,
    char *why, size_t whylen)
{
	char target[200];
	ssize_t n;

	if (S_ISLNK(st->st_mode)) {
		n = readlinkat(sp->dirfd, name, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		snprintf(why, whylen, "is a symbolic link (to %s); relay does "
		    "not follow links in the spool", target);
		sanitise(target, sizeof(target), why, strlen(why));
		strlcpy(why, target, whylen);
		return why;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "is not a regular file");
		return why;
	}
	/* A link to a file the producer could not read itself. */
	if (st->st_nlink != 1) {
		snprintf(why, whylen, "has %ju hard links; relay takes only "
		    "files with one", (uintmax_t)st->st_nlink);
		return why;
	}
	return NULL;
}

/*
 * The file fd is open on, as fstat(2) sees it: a check by name alone
 * would pass a file swapped in between (a hard link to one the producer
 * may not read).  Returns 0 to read it, -1 (fd closed) to leave it: bad,
 * or not the file named checked (left for the next run).
 */
static int
opened_ok(struct spool *sp, int fd, const char *name, const char *id,
    const struct stat *named)
{
	char why[ERRLEN];
	struct stat st;

	if (fstat(fd, &st) == -1) {
		snprintf(why, sizeof(why), "cannot be read: %s",
		    strerror(errno));
		(void)close(fd);
		reject(sp, name, name, id, -1, why);
		return -1;
	}
	if (unusable(sp, name, &st, why, sizeof(why)) != NULL) {
		(void)close(fd);
		reject(sp, name, name, id, -1, why);
		return -1;
	}
	if (named != NULL && (st.st_dev != named->st_dev ||
	    st.st_ino != named->st_ino)) {
		(void)close(fd);
		return -1;
	}
	return 0;
}

/* One producer's file: claim it, then take it in. */
static void
one_file(struct spool *sp, const char *name)
{
	char why[ERRLEN], claim[64], id[32];
	struct stat named;
	int fd;

	queue_new_id(id, sizeof(id));
	if (fstatat(sp->dirfd, name, &named, AT_SYMLINK_NOFOLLOW) == -1)
		return;			/* gone: another run took it */
	if (unusable(sp, name, &named, why, sizeof(why)) != NULL) {
		reject(sp, name, name, id, -1, why);
		return;
	}
	if ((fd = openat(sp->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1) {
		if (errno != ENOENT) {
			snprintf(why, sizeof(why), "cannot be read: %s",
			    strerror(errno));
			reject(sp, name, name, id, -1, why);
		}
		return;
	}
	if (opened_ok(sp, fd, name, id, &named) == -1)
		return;
	snprintf(claim, sizeof(claim), CLAIM "%s", id);
	/* Busy: another run has it.  Gone: another run took it. */
	if (flock(fd, LOCK_EX | LOCK_NB) == -1 ||
	    renameat(sp->dirfd, name, sp->dirfd, claim) == -1) {
		(void)close(fd);
		return;
	}
	take_in(sp, fd, claim, name, id);
	(void)close(fd);
}

/* ".relay-ID" left by a crash: taken in already, or not yet. */
static void
one_claim(struct spool *sp, const char *claim)
{
	const char *id = claim + CLAIM_LEN;
	int fd;

	size_t i;

	/* Only names relay makes: a producer's own dot-file is not ours. */
	for (i = 0; isxdigit((unsigned char)id[i]); i++)
		;
	if (i != QUEUE_ID_LEN || id[i] != '\0')
		return;
	if ((fd = openat(sp->dirfd, claim, O_RDONLY | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC)) == -1)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		(void)close(fd);	/* its run is still at it */
		return;
	}
	/* A producer may make such a name too: the same checks. */
	if (opened_ok(sp, fd, claim, id, NULL) == -1)
		return;
	if (queue_has(sp->r->q, id)) {
		(void)unlinkat(sp->dirfd, claim, 0);
		(void)fsync(sp->dirfd);
	} else if (queue_clear_tmp(sp->r->q, id) == 0)
		/*
		 * The crash may have come after tmp/ID was made: never
		 * committed, and ours alone while we hold the claim.
		 */
		take_in(sp, fd, claim, claim, id);
	else
		log_line(sp->r->conf, 0, "spool file %s: %s/tmp/%s is in the "
		    "way (left for the next run)", claim, sp->r->q->dir, id);
	(void)close(fd);
}

/* Names first: the loop renames entries of the directory it reads. */
static char **
names(int dirfd, size_t *np)
{
	struct dirent *de;
	DIR *dp;
	char **v = NULL, **grown;
	size_t n = 0;
	int fd;

	*np = 0;
	if ((fd = dup(dirfd)) == -1 || (dp = fdopendir(fd)) == NULL) {
		if (fd != -1)
			(void)close(fd);
		return NULL;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.' && strncmp(de->d_name, CLAIM,
		    CLAIM_LEN) != 0)
			continue;
		if ((grown = reallocarray(v, n + 1, sizeof(*v))) == NULL)
			break;
		v = grown;
		if ((v[n] = strdup(de->d_name)) == NULL)
			break;
		n++;
	}
	(void)closedir(dp);
	*np = n;
	return v;
}

/*
 * The envelope sender of every spool file, the runner's name in none:
 * "from", else MAILER-DAEMON@domain, else the AUTH user if it is an
 * address.  0, or -1 when there is none.
 */
static int
fixed_sender(const struct conf *c, char *buf, size_t size)
{
	int n;

	if (c->from != NULL)
		n = snprintf(buf, size, "%s", c->from);
	else if (c->domain != NULL)
		n = snprintf(buf, size, "MAILER-DAEMON@%s", c->domain);
	else if (c->user != NULL && strchr(c->user, '@') != NULL)
		n = snprintf(buf, size, "%s", c->user);
	else
		return -1;
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/*
 * Only a run that owns the queue may: root's, or one not running setgid
 * (its user owns queue and configuration, or it is the group's own).
 * A user's run of a setgid relay would send others' mail in its name
 * and show them on its stderr (SECURITY in relay(8)).
 */
static int
may_take_in(void)
{
	return !privileged() || getuid() == 0;
}

static int
spool_open(struct spool *sp, struct run *r)
{
	const struct conf *c = r->conf;
	struct stat st;

	sp->r = r;
	if (fixed_sender(c, sp->sender, sizeof(sp->sender)) == -1) {
		log_line(c, 0, "spool %s: no envelope sender for its files: "
		    "set \"from\" in %s (left for the next run)", c->spool,
		    c->path);
		return -1;
	}
	if ((sp->dirfd = open(c->spool, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || fstat(sp->dirfd, &st) == -1) {
		log_line(c, 0, "spool %s: %s", c->spool, strerror(errno));
		if (sp->dirfd != -1)
			(void)close(sp->dirfd);
		return -1;
	}
	sp->owner = st.st_uid;
	return 0;
}

void
spool_intake(struct run *r)
{
	struct spool sp;
	char **v;
	size_t n, i;

	if (r->conf->spool == NULL || !may_take_in() ||
	    spool_open(&sp, r) == -1)
		return;
	errno = 0;
	if ((v = names(sp.dirfd, &n)) == NULL && errno != 0)
		log_line(r->conf, 0, "spool %s: %s", r->conf->spool,
		    strerror(errno));
	for (i = 0; i < n; i++) {
		if (strncmp(v[i], CLAIM, CLAIM_LEN) == 0)
			one_claim(&sp, v[i]);
		else
			one_file(&sp, v[i]);
		free(v[i]);
	}
	free(v);
	(void)close(sp.dirfd);
}
