/*
 * relay: take one message from the caller, as sendmail(8) would, make it
 * durable in the queue and hand it to the configured smarthost; or, as
 * "relay -q", deliver what waits in the queue; or, as mailq, list it.
 * The exit status tells the caller the truth (sysexits(3)).
 */
#define _GNU_SOURCE		/* setresgid(2), getresgid(2) on glibc */
#include <sys/resource.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <paths.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

enum mode { MODE_SEND, MODE_FLUSH, MODE_LIST };
/* sendmail's -od: when a submission is sent. */
enum when { WHEN_NOW, WHEN_QUEUE, WHEN_BACKGROUND };

struct args {
	struct msgopts	 mo;
	const char	*conf_path;
	enum mode	 mode;
	int		 force;		/* -qf: every entry, due or not */
	const char	*only;		/* -qI: this entry only */
	enum when	 when;		/* -odi/-odf, -odq, -odb */
};

enum argkind { FLAG, ARG, GLUED };	/* GLUED: optional, only -xARG */

/* What to do with each sendmail option; see relay(8). */
struct option {
	char		 letter;
	enum argkind	 kind;
	void		(*handle)(struct args *, const char *arg);
};

static void
opt_t(struct args *a, const char *arg)
{
	(void)arg;
	a->mo.extract = 1;
}

static void
opt_i(struct args *a, const char *arg)
{
	(void)arg;
	a->mo.dotend = 0;
}

static void
opt_f(struct args *a, const char *arg)
{
	a->mo.from = arg;
}

static void
opt_F(struct args *a, const char *arg)
{
	a->mo.fullname = arg;
}

static void
opt_v(struct args *a, const char *arg)
{
	(void)a;
	(void)arg;
	verbose = 1;
}

static void
opt_C(struct args *a, const char *arg)
{
	a->conf_path = arg;
}

static void
opt_ignore(struct args *a, const char *arg)
{
	(void)a;
	(void)arg;
}

/*
 * -oi is "-i"; -odMODE is sendmail's delivery mode: i and f at once (the
 * caller waits, up to submit_timeout), q (and d) queued only, b queued
 * and sent by a child in the background.  Every other -oX sets a
 * sendmail option that means nothing here.
 */
static void
opt_o(struct args *a, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		a->mo.dotend = 0;
	else if (strcmp(arg, "di") == 0 || strcmp(arg, "df") == 0)
		a->when = WHEN_NOW;
	else if (strcmp(arg, "dq") == 0 || strcmp(arg, "dd") == 0)
		a->when = WHEN_QUEUE;
	else if (strcmp(arg, "db") == 0)
		a->when = WHEN_BACKGROUND;
	else if (arg[0] == 'd')
		errx(EX_USAGE, "unknown delivery mode -o%s (-odi, -odb or "
		    "-odq); no message was read or sent", arg);
}

static void
unimplemented(const char *what)
{
	errx(EX_USAGE, "%s is not implemented yet; no message was read or "
	    "sent", what);
}

static void
opt_b(struct args *a, const char *arg)
{
	if (strcmp(arg, "m") == 0)
		return;			/* deliver mail: what we do anyway */
	if (strcmp(arg, "i") == 0)
		exit(EX_OK);		/* newaliases: aliases live in relay.conf */
	if (strcmp(arg, "p") == 0) {
		a->mode = MODE_LIST;
		return;
	}
	if (strcmp(arg, "s") == 0)
		unimplemented("-bs (SMTP on standard input)");
	if (strcmp(arg, "d") == 0 || strcmp(arg, "D") == 0)
		unimplemented("-bd (daemon mode; relay never runs as one)");
	errx(EX_USAGE, "unknown mode -b%s", arg);
}

/*
 * -q: due entries; -qf: all of them now; -qIID: that one now.  An
 * interval (-q30m) would start sendmail's daemon; we run the queue once,
 * which is what cron wants.
 */
static void
opt_q(struct args *a, const char *arg)
{
	a->mode = MODE_FLUSH;
	if (strcmp(arg, "f") == 0)
		a->force = 1;
	else if (arg[0] == 'I' && arg[1] != '\0') {
		a->force = 1;
		a->only = arg + 1;
	} else if (arg[0] == 'I')
		errx(EX_USAGE, "-qI needs a queue id, as in -qI%s",
		    "6921b3c5a1f03e");
}

static const struct option options[] = {
	{ 't', FLAG, opt_t },
	{ 'i', FLAG, opt_i },
	{ 'f', ARG, opt_f },
	{ 'r', ARG, opt_f },
	{ 'F', ARG, opt_F },
	{ 'v', FLAG, opt_v },
	{ 'C', ARG, opt_C },
	{ 'o', ARG, opt_o },
	{ 'b', ARG, opt_b },
	{ 'q', GLUED, opt_q },
	{ 'B', ARG, opt_ignore },	/* body type: we look at the bytes */
	{ 'N', ARG, opt_ignore },	/* DSN options */
	{ 'R', ARG, opt_ignore },
	{ 'V', ARG, opt_ignore },
	{ 'h', ARG, opt_ignore },	/* hop count */
	{ 'L', ARG, opt_ignore },	/* syslog label */
	{ 'm', FLAG, opt_ignore },	/* "me too": always true */
	{ 'n', FLAG, opt_ignore },	/* no aliasing: we have no /etc/aliases */
	{ 'U', FLAG, opt_ignore },	/* initial user submission */
};

static const struct option *
find_option(char letter)
{
	size_t i;

	for (i = 0; i < sizeof options / sizeof options[0]; i++)
		if (options[i].letter == letter)
			return &options[i];
	return NULL;
}

/*
 * sendmail's command line: flags may be clustered (-ti), arguments glued
 * (-fuser@host, -oi, -FCronDaemon) or separate; "--" or the first
 * non-option ends the options.  Returns the index of the first recipient.
 */
static int
parse_args(struct args *a, int argc, char *argv[])
{
	const struct option *o;
	const char *p;
	int i;

	for (i = 1; i < argc; i++) {
		p = argv[i];
		if (strcmp(p, "--") == 0)
			return i + 1;
		if (p[0] != '-' || p[1] == '\0')
			return i;
		for (p++; *p != '\0'; p++) {
			if ((o = find_option(*p)) == NULL)
				errx(EX_USAGE, "unknown option -%c; see relay(8)",
				    *p);
			if (o->kind == FLAG) {
				o->handle(a, NULL);
				continue;
			}
			if (p[1] != '\0' || o->kind == GLUED)
				o->handle(a, p + 1);
			else if (i + 1 < argc)
				o->handle(a, argv[++i]);
			else
				errx(EX_USAGE, "option -%c needs an argument",
				    *p);
			break;
		}
	}
	return i;
}

/*
 * mailutils runs us with fds 1 and 2 closed; the first file we open would
 * then become "stdout" and collect our messages.
 */
static void
fix_std_fds(void)
{
	int fd;

	/* An empty container has no /dev/null: ask only when one is shut. */
	for (fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
		if (fcntl(fd, F_GETFD) == -1)
			break;
	if (fd > STDERR_FILENO)
		return;
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
		;
	if (fd == -1)
		exit(EX_OSERR);
	close(fd);
}

/*
 * Set when -C or RELAY_CONF made a setgid relay give up its group, to
 * say so when a file of that group is then out of reach.
 */
static int gave_up;
static gid_t lost_gid;

/*
 * First of all: the process will hold the smarthost's password and,
 * installed setgid (relay(8), SECURITY), rights its caller lacks.  No
 * core file may keep the one, and the caller may not trace or read the
 * other out of /proc: the kernel already makes a setgid process
 * undumpable, this makes it so whatever the sysctls say.
 */
static void
harden(void)
{
	struct rlimit rl;

	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1)
		err(EX_OSERR, "setrlimit RLIMIT_CORE");
#ifdef __linux__
	if (privileged() && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		err(EX_OSERR, "prctl PR_SET_DUMPABLE");
#endif
}

/*
 * For good, saved ids included: nothing read from here on may get the
 * group's rights back.
 */
static void
give_up_rights(void)
{
	uid_t uid = getuid(), ruid, euid, suid;
	gid_t gid = getgid(), rgid, egid, sgid;

	lost_gid = getegid();
	if (setresgid(gid, gid, gid) == -1 || setresuid(uid, uid, uid) == -1)
		err(EX_OSERR, "cannot give up the rights of a setgid relay");
	if (getresgid(&rgid, &egid, &sgid) == -1 ||
	    getresuid(&ruid, &euid, &suid) == -1)
		err(EX_OSERR, "getresgid");
	if (rgid != gid || egid != gid || sgid != gid || ruid != uid ||
	    euid != uid || suid != uid || privileged())
		errx(EX_OSERR, "still holds the rights of a setgid relay");
	gave_up = 1;
}

/*
 * The configuration file: -C, else $RELAY_CONF, else the default.  A
 * file named by the caller is the caller's choice: a setgid relay opens
 * it with the caller's rights only, or any file of the group would be
 * shown, an error message at a time, to whoever asks.  Root can read
 * every file anyway, and naming the default changes nothing.
 */
static const char *
config_path(const char *given)
{
	if (given == NULL)
		given = getenv("RELAY_CONF");
	if (given == NULL || *given == '\0' ||
	    strcmp(given, RELAY_CONF_DEFAULT) == 0)
		return RELAY_CONF_DEFAULT;
	if (privileged() && getuid() != 0)
		give_up_rights();
	return given;
}

extern char **environ;

/*
 * A setgid relay trusts nothing its caller set: not TMPDIR (files made
 * with the group's rights where the caller says), nor what a
 * password_command would inherit.  It keeps a PATH of its own.
 */
static void
clean_environment(void)
{
	static char path[] = "PATH=" _PATH_STDPATH;
	static char *clean[] = { path, NULL };

	environ = clean;
}

/*
 * After "PATH: Permission denied" on the queue (want W_OK | X_OK) or on
 * a configuration the caller did not choose (R_OK): the usual reasons,
 * in parentheses, for the end of the error line; "" when it is none of
 * them.
 */
static const char *
rights_hint(const char *path, int want, char *buf, size_t size)
{
	struct stat st;
	struct group *gr;
	mode_t need = 0;
	char name[64];

	buf[0] = '\0';
	if (privileged() || stat(path, &st) == -1 ||
	    access(path, want) == 0 || errno != EACCES ||
	    st.st_uid == getuid())
		return buf;
	need |= (want & R_OK) ? S_IRGRP : 0;
	need |= (want & W_OK) ? S_IWGRP : 0;
	need |= (want & X_OK) ? S_IXGRP : 0;
	/* Refused although the group may: we are not in the group. */
	if ((st.st_mode & need) == need) {
		if ((gr = getgrgid(st.st_gid)) != NULL)
			strlcpy(name, gr->gr_name, sizeof(name));
		else
			snprintf(name, sizeof(name), "%lu",
			    (unsigned long)st.st_gid);
		if (gave_up && st.st_gid == lost_gid)
			snprintf(buf, size, " (-C and RELAY_CONF give up the "
			    "rights of group %s; see SECURITY in relay(8))",
			    name);
		else if (!gave_up)
			snprintf(buf, size, " (relay is not running setgid "
			    "%s: not installed so, a nosuid mount, or "
			    "no_new_privs; see SECURITY in relay(8))", name);
	} else if (!gave_up && (st.st_mode & S_IRWXG) == 0)
		snprintf(buf, size, " (it is uid %lu's alone: run relay as "
		    "that user; see SECURITY in relay(8))",
		    (unsigned long)st.st_uid);
	return buf;
}

/*
 * The log's status for a message relay did not keep (relay(8),
 * Delivery): the caller has it and the exit status says what to do.
 */
static const char *
status_word(int ex)
{
	switch (ex) {
	case EX_OK:
		return "sent";
	case EX_TEMPFAIL:
		return "tempfail";	/* the caller may try again */
	default:
		return "refused";
	}
}

/* "queue none": one line per message, as the queue's log has per try. */
static void
log_direct(const struct conf *conf, const struct msg *m, off_t size,
    const struct delivery *d, int ex, const char *err, double secs)
{
	char to[1024] = "", addr[ADDR_MAX + 4];
	size_t i;

	/* Whole addresses only: a cut one would name someone else. */
	for (i = 0; i < m->nrcpts; i++) {
		snprintf(addr, sizeof addr, "%s<%s>", i > 0 ? "," : "",
		    m->rcpts[i].addr);
		if (strlen(to) + strlen(addr) + 24 >= sizeof to) {
			snprintf(addr, sizeof addr, ",(+%zu more)",
			    m->nrcpts - i);
			strlcat(to, addr, sizeof to);
			break;
		}
		strlcat(to, addr, sizeof to);
	}
	log_line(conf, ex == EX_OK, "from=<%s> to=%s size=%lld relay=%s "
	    "status=%s reply=\"%s\" duration=%.2fs uid=%lu%s%s%s%s%s",
	    m->sender, to, (long long)size, d->relay[0] != '\0' ?
	    d->relay : conf->host, status_word(ex), d->last, secs,
	    (unsigned long)getuid(), m->note ? " note=\"" : "",
	    m->note ? m->note : "", m->note ? "\"" : "",
	    ex != EX_OK ? " error=" : "", ex != EX_OK ? err : "");
}

/*
 * No queue: the caller learns every outcome from the exit status.  The
 * secret is fetched right before connecting; if that fails nothing can
 * be kept, so the caller must retry (75).
 */
static int
send_direct(struct conf *conf, struct msg *m)
{
	struct smtp *s = NULL;
	struct delivery d;
	struct timespec start;
	char err[ERRLEN];
	off_t size = m->size;	/* as read, as a queue would log it */
	int ex = EX_TEMPFAIL;

	clock_gettime(CLOCK_MONOTONIC, &start);
	memset(&d, 0, sizeof d);
	if (conf_secret(conf, err, sizeof err) == 0 &&
	    (s = smtp_open(conf, &d, &ex, err, sizeof err)) != NULL) {
		ex = smtp_send(s, m, &d, err, sizeof err);
		smtp_close(s);
	}
	if (ex != EX_OK)
		warnx("%s", err);
	log_direct(conf, m, size, &d, ex, err, seconds_since(&start));
	return ex;
}

/* -odq: durable, and nothing more; relay -q sends it. */
static void
log_queued(const struct conf *conf, const struct msg *m,
    const struct qentry *e)
{
	log_line(conf, 1, "from=<%s> size=%lld status=queued id=%s uid=%lu "
	    "(-odq: sent by the next relay -q)", m->sender, (long long)m->size,
	    e->id, (unsigned long)getuid());
}

/*
 * -odb: the caller goes at once; a child of its own session, standard
 * I/O on /dev/null, sends the entry with the normal timeouts.  The
 * entry's lock (flock, on the descriptor the child shares) stays held
 * until the child is done.  Returns 1 in the child, 0 in the caller.
 */
static int
background(const struct conf *conf, const struct qentry *e)
{
	pid_t pid;
	int fd;

	(void)fflush(NULL);
	if ((pid = fork()) == -1) {
		warnx("%s queued, will retry: cannot fork to send it in the "
		    "background: %s", e->id, strerror(errno));
		log_line(conf, 0, "id=%s status=deferred error=cannot fork: "
		    "%s", e->id, strerror(errno));
		return 0;
	}
	if (pid > 0)
		return 0;
	if (setsid() == -1 || (fd = open("/dev/null", O_RDWR)) == -1 ||
	    dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1)
		_exit(EX_OSERR);	/* the entry waits for relay -q */
	if (fd > STDERR_FILENO)
		(void)close(fd);
	return 1;
}

/* The caller waits no longer than submit_timeout for the first try. */
static void
cap_submission(struct conf *conf)
{
	if (conf->submit_timeout == 0 ||
	    clock_gettime(CLOCK_MONOTONIC, &conf->submit_end) == -1) {
		memset(&conf->submit_end, 0, sizeof conf->submit_end);
		return;
	}
	conf->submit_end.tv_sec += conf->submit_timeout;
}

/* Durable first, then at once; what cannot go now waits for relay -q. */
static int
send_queued(struct conf *conf, struct msg *m, enum when when)
{
	struct queue q;
	struct qentry e;
	struct run r;
	char err[ERRLEN], hint[256];
	int ex;

	if ((ex = queue_open(&q, conf->queue, err, sizeof err)) == EX_OK &&
	    (ex = queue_add(&q, m, "stdin", &e, err, sizeof err)) != EX_OK)
		queue_close(&q);
	if (ex != EX_OK) {
		warnx("cannot queue the message: %s%s", err,
		    rights_hint(conf->queue, W_OK | X_OK, hint, sizeof hint));
		log_line(conf, 0, "from=<%s> size=%lld status=%s uid=%lu "
		    "error=cannot queue the message: %s", m->sender,
		    (long long)m->size, status_word(ex),
		    (unsigned long)getuid(), err);
		return ex;
	}
	if (when == WHEN_QUEUE || (when == WHEN_BACKGROUND &&
	    !background(conf, &e))) {
		if (when == WHEN_QUEUE)
			log_queued(conf, m, &e);
		qentry_free(&e);
		queue_close(&q);
		return EX_OK;
	}
	if (when == WHEN_NOW)
		cap_submission(conf);
	run_init(&r, conf, &q);
	/* In the background nobody waits for the exit status: reports. */
	ex = run_new(&r, &e, when == WHEN_NOW);
	qentry_free(&e);
	spool_intake(&r);
	run_finish(&r);
	queue_close(&q);
	return ex;
}

static int
send_message(const struct args *a, struct conf *conf)
{
	struct msg m;
	char err[ERRLEN];
	int ex;

	if ((ex = msg_read(&m, STDIN_FILENO, &a->mo, conf, err,
	    sizeof err)) != EX_OK) {
		warnx("%s", err);
		/* Callers such as cron drop our stderr: keep a trace. */
		if (conf->log == LOGTO_SYSLOG)
			syslog(LOG_ERR, "status=%s uid=%lu error=%s",
			    status_word(ex), (unsigned long)getuid(), err);
		return ex;
	}
	if (m.dot_rest)
		warnx("input after a lone \".\" line was ignored: it ends "
		    "the message without -i");
	if (conf->queue == NULL)
		ex = send_direct(conf, &m);
	else
		ex = send_queued(conf, &m, a->when);
	msg_free(&m);
	return ex;
}

/* Is entry id the caller's (the uid in its envelope)? */
static int
callers(struct queue *q, const char *id)
{
	struct qentry e;
	char err[ERRLEN];
	int mine;

	if (queue_peek(q, 0, id, &e, err, sizeof err) != 0)
		return 0;
	mine = e.uid == getuid();
	qentry_free(&e);
	return mine;
}

/*
 * A user's run of a setgid relay sends that user's entries only: its log
 * lines and -v dialogue would otherwise tell who mails whom.  Root's run
 * (cron, the systemd timer) sends everything.
 */
static int
run_callers(struct run *r, const char *only)
{
	char **ids, err[ERRLEN];
	size_t n, i;

	if (only != NULL) {
		if (callers(r->q, only))
			return run_only(r, only);
		warnx("no entry %s in %s/queue", only, r->q->dir);
		return EX_NOINPUT;
	}
	if (queue_ids(r->q, 0, &ids, &n, err, sizeof err) == -1) {
		warnx("%s", err);
		return EX_TEMPFAIL;
	}
	for (i = 0; i < n; i++)
		if (callers(r->q, ids[i]))
			run_entry(r, ids[i]);
	queue_ids_free(ids, n);
	return EX_OK;
}

/* relay -q: the spool, then every due entry, over one session. */
static int
flush(const struct args *a, struct conf *conf)
{
	struct queue q;
	struct run r;
	char err[ERRLEN], hint[256];
	int ex;

	if (conf->queue == NULL)
		return EX_OK;		/* "queue none": nothing can wait */
	if ((ex = queue_open(&q, conf->queue, err, sizeof err)) != EX_OK) {
		warnx("%s%s", err, rights_hint(conf->queue, W_OK | X_OK, hint,
		    sizeof hint));
		return ex;
	}
	queue_tidy(&q, conf);
	run_init(&r, conf, &q);
	r.force = a->force;
	/* First, always: a crash may have left a claimed spool file. */
	spool_intake(&r);
	if (privileged() && getuid() != 0)
		ex = run_callers(&r, a->only);
	else if (a->only != NULL)
		ex = run_only(&r, a->only);
	else
		ex = run_queue(&r);
	run_finish(&r);
	queue_close(&q);
	return ex;
}

int
main(int argc, char *argv[])
{
	struct args a;
	struct conf conf;
	char err[ERRLEN], hint[256];
	const char *name;
	int first, ex;

	fix_std_fds();
	harden();
	signal(SIGPIPE, SIG_IGN);
	/*
	 * A file size limit (ulimit -f) makes a write fail with EFBIG, the
	 * message not queued (exit 75), instead of killing us mid-write.
	 */
	signal(SIGXFSZ, SIG_IGN);
	/*
	 * Group bits only where a directory of the queue has them (queue.c):
	 * a queue shared by group relay.  Every other file relay makes is
	 * mode 0600 (mkstemp).
	 */
	umask(007);
	name = getprogname();
	if (strcmp(name, "newaliases") == 0)
		return EX_OK;		/* aliases live in relay.conf */

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("relay %s\n", RELAY_VERSION);
		return fflush(stdout) == 0 && !ferror(stdout) ? EX_OK :
		    EX_IOERR;
	}
	memset(&a, 0, sizeof(a));
	a.mo.dotend = 1;
	if (strcmp(name, "mailq") == 0)
		a.mode = MODE_LIST;
	first = parse_args(&a, argc, argv);
	a.mo.argv_rcpts = argv + first;
	a.mo.nargv = (size_t)(argc - first);
	if (a.mode != MODE_SEND && a.mo.nargv > 0)
		errx(EX_USAGE, "%s takes no recipients", a.mode == MODE_LIST ?
		    "listing the queue" : "running the queue");
	a.conf_path = config_path(a.conf_path);
	if (privileged())
		clean_environment();
	if (conf_load(&conf, a.conf_path, err, sizeof err) == -1) {
		/* A file the caller named needs no explaining. */
		if (strcmp(a.conf_path, RELAY_CONF_DEFAULT) == 0 || gave_up)
			(void)rights_hint(a.conf_path, R_OK, hint, sizeof hint);
		else
			hint[0] = '\0';
		errx(EX_CONFIG, "%s%s", err, hint);
	}
	/*
	 * The secret is fetched later, by the delivery code, only when a
	 * connection needs it: the message is safe in the queue by then.
	 */
	if (conf.log == LOGTO_SYSLOG)
		openlog(getprogname(), LOG_PID, LOG_MAIL);
	switch (a.mode) {
	case MODE_LIST:
		ex = mailq(&conf);
		break;
	case MODE_FLUSH:
		ex = flush(&a, &conf);
		break;
	default:
		ex = send_message(&a, &conf);
		break;
	}
	conf_free(&conf);
	return ex;
}
