/*
 * relay: take one message from the caller, as sendmail(8) would, make it
 * durable in the queue and hand it to the configured smarthost; or, as
 * "relay -q", deliver what waits in the queue; or, as mailq, list it.
 * The exit status tells the caller the truth (sysexits(3)).
 */
#include <err.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

enum mode { MODE_SEND, MODE_FLUSH, MODE_LIST };

struct args {
	struct msgopts	 mo;
	const char	*conf_path;
	enum mode	 mode;
	int		 force;		/* -qf: every entry, due or not */
	const char	*only;		/* -qI: this entry only */
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

/* -oi is "-i"; every other -oX sets a sendmail option that means nothing here. */
static void
opt_o(struct args *a, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		a->mo.dotend = 0;
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

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
		;
	if (fd == -1)
		exit(EX_OSERR);
	close(fd);
}

static const char *
status_word(int ex)
{
	switch (ex) {
	case EX_OK:
		return "sent";
	case EX_TEMPFAIL:
		return "tempfail";
	default:
		return "failed";
	}
}

/* "queue none": one line per message, as the queue's log has per try. */
static void
log_direct(const struct conf *conf, const struct msg *m,
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
	    m->sender, to, (long long)m->size, d->relay[0] != '\0' ?
	    d->relay : conf->host, status_word(ex), d->last, secs,
	    (unsigned long)getuid(), m->note ? " note=\"" : "",
	    m->note ? m->note : "", m->note ? "\"" : "",
	    ex != EX_OK ? " error=" : "", ex != EX_OK ? err : "");
}

/* No queue: the caller learns every outcome from the exit status. */
static int
send_direct(const struct conf *conf, struct msg *m)
{
	struct smtp *s;
	struct delivery d;
	struct timespec start;
	char err[ERRLEN];
	int ex;

	clock_gettime(CLOCK_MONOTONIC, &start);
	if ((s = smtp_open(conf, &d, &ex, err, sizeof err)) != NULL) {
		ex = smtp_send(s, m, &d, err, sizeof err);
		smtp_close(s);
	}
	if (ex != EX_OK)
		warnx("%s", err);
	log_direct(conf, m, &d, ex, err, seconds_since(&start));
	return ex;
}

/* Durable first, then at once; what cannot go now waits for relay -q. */
static int
send_queued(const struct conf *conf, struct msg *m)
{
	struct queue q;
	struct qentry e;
	struct run r;
	char err[ERRLEN];
	int ex;

	if ((ex = queue_open(&q, conf->queue, err, sizeof err)) == EX_OK &&
	    (ex = queue_add(&q, m, "stdin", &e, err, sizeof err)) != EX_OK)
		queue_close(&q);
	if (ex != EX_OK) {
		warnx("cannot queue the message: %s", err);
		log_line(conf, 0, "from=<%s> size=%lld status=failed uid=%lu "
		    "error=cannot queue the message: %s", m->sender,
		    (long long)m->size, (unsigned long)getuid(), err);
		return ex;
	}
	run_init(&r, conf, &q);
	ex = run_new(&r, &e, 1);
	qentry_free(&e);
	spool_intake(&r);
	run_finish(&r);
	queue_close(&q);
	return ex;
}

static int
send_message(const struct args *a, const struct conf *conf)
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
	if (conf->queue == NULL)
		ex = send_direct(conf, &m);
	else
		ex = send_queued(conf, &m);
	msg_free(&m);
	return ex;
}

/* relay -q: the spool, then every due entry, over one session. */
static int
flush(const struct args *a, const struct conf *conf)
{
	struct queue q;
	struct run r;
	char err[ERRLEN];
	int ex;

	if (conf->queue == NULL)
		return EX_OK;		/* "queue none": nothing can wait */
	if ((ex = queue_open(&q, conf->queue, err, sizeof err)) != EX_OK) {
		warnx("%s", err);
		return ex;
	}
	queue_tidy(&q);
	run_init(&r, conf, &q);
	r.force = a->force;
	/* First, always: a crash may have left a claimed spool file. */
	spool_intake(&r);
	if (a->only != NULL)
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
	char err[ERRLEN];
	const char *name;
	int first, ex;

	fix_std_fds();
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	name = getprogname();
	if (strcmp(name, "newaliases") == 0)
		return EX_OK;		/* aliases live in relay.conf */

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
	if (a.conf_path == NULL)
		a.conf_path = getenv("RELAY_CONF");
	if (a.conf_path == NULL || *a.conf_path == '\0')
		a.conf_path = RELAY_CONF_DEFAULT;
	if (conf_load(&conf, a.conf_path, err, sizeof err) == -1)
		errx(EX_CONFIG, "%s", err);
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
