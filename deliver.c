/*
 * Delivering queue entries: the caller's fresh one, the spool's, or every
 * due one for "relay -q", all over one session with the smarthost.  What
 * each recipient's answer means for the entry (sent, failed and bounced,
 * or waiting for the next try) is decided here.
 */
#include <sys/types.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

/* What one attempt did to an entry, for the log and the caller. */
struct outcome {
	size_t	 sent, failed, pending;	/* recipients, after the attempt */
	size_t	 newly_failed;
	int	 ex;			/* smtp_send's, or the session's */
	int	 tried;			/* the smarthost was asked */
	int	 bounced;		/* a report was queued */
	int	 kept;			/* refused, yet kept in failed/ */
	char	 err[ERRLEN];
};

void
run_init(struct run *r, struct conf *conf, struct queue *q)
{
	memset(r, 0, sizeof(*r));
	r->conf = conf;
	r->q = q;
}

/* RFC 5321 4.5.4.1: back off, doubling, up to retry_max. */
static time_t
backoff(const struct conf *conf, unsigned attempts)
{
	long long delay = conf->retry_min;
	unsigned i;

	for (i = 1; i < attempts && delay < conf->retry_max; i++)
		delay *= 2;
	return (time_t)(delay < conf->retry_max ? delay : conf->retry_max);
}

/*
 * A session, opened on first need; after a failed connect, none.  The
 * secret is fetched here, once per run, and only when something is to
 * be sent: a source that fails (a vault agent down) is a temporary
 * failure of every entry of the run, never a lost message.
 */
static struct smtp *
session(struct run *r)
{
	if (r->smtp != NULL || r->down)
		return r->smtp;
	if (conf_secret(r->conf, r->down_err, sizeof(r->down_err)) == -1) {
		r->down = 1;
		r->down_ex = EX_TEMPFAIL;
		memset(&r->d, 0, sizeof(r->d));
		return NULL;
	}
	r->smtp = smtp_open(r->conf, &r->d, &r->down_ex, r->down_err,
	    sizeof(r->down_err));
	r->down = r->smtp == NULL;
	return r->smtp;
}

static void
session_end(struct run *r)
{
	smtp_close(r->smtp);
	r->smtp = NULL;
}

/* The message of e with its pending recipients, ready for smtp_send. */
static int
load_message(const struct qentry *e, struct msg *m, size_t *idx,
    char *err, size_t errlen)
{
	size_t i;
	int ex;

	if ((ex = msg_load(m, e->msgfd, e->body8, e->body_notutf8, err,
	    errlen)) != EX_OK)
		return ex;
	if ((m->sender = strdup(e->sender)) == NULL ||
	    (m->rcpts = calloc(e->nrcpts, sizeof(*m->rcpts))) == NULL)
		goto nomem;
	for (i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state != RS_PENDING)
			continue;
		idx[m->nrcpts] = i;
		if ((m->rcpts[m->nrcpts].addr = strdup(e->rcpts[i].addr)) ==
		    NULL)
			goto nomem;
		m->nrcpts++;
	}
	return EX_OK;
nomem:
	snprintf(err, errlen, "%s", strerror(errno));
	msg_free(m);
	return EX_OSERR;
}

static int
set_reply(struct qrcpt *rc, const char *text)
{
	char *copy;

	if (text == NULL || text[0] == '\0')
		return 0;
	if ((copy = strdup(text)) == NULL)
		return -1;
	free(rc->reply);
	rc->reply = copy;
	return 0;
}

static void
add_entry_note(struct qentry *e, const char *note)
{
	char *joined;
	size_t len;

	if (e->note != NULL && strstr(e->note, note) != NULL)
		return;
	len = (e->note ? strlen(e->note) + 2 : 0) + strlen(note) + 1;
	if ((joined = malloc(len)) == NULL)
		return;
	snprintf(joined, len, "%s%s%s", e->note ? e->note : "", e->note ?
	    "; " : "", note);
	free(e->note);
	e->note = joined;
}

/* Send, once more on a new session if the old one died before the data. */
static int
send_once(struct run *r, struct msg *m, char *err, size_t errlen)
{
	int ex, again;

	for (again = 0; again < 2; again++) {
		if (session(r) == NULL) {
			snprintf(err, errlen, "%s", r->down_err);
			return r->down_ex;
		}
		ex = smtp_send(r->smtp, m, &r->d, err, errlen);
		if (smtp_usable(r->smtp))
			return ex;
		session_end(r);
		if (!r->d.unsent)
			return ex;
	}
	return ex;
}

/* Ask the smarthost; fold its answers into the entry's recipients. */
static void
attempt(struct run *r, struct qentry *e, struct outcome *o)
{
	struct msg m;
	size_t *idx, j;
	struct qrcpt *rc;

	if ((idx = calloc(e->nrcpts, sizeof(*idx))) == NULL) {
		o->ex = EX_OSERR;
		snprintf(o->err, sizeof(o->err), "%s", strerror(errno));
		return;
	}
	if ((o->ex = load_message(e, &m, idx, o->err, sizeof(o->err))) !=
	    EX_OK) {
		free(idx);
		return;
	}
	o->tried = 1;
	o->ex = send_once(r, &m, o->err, sizeof(o->err));
	for (j = 0; j < m.nrcpts; j++) {
		rc = &e->rcpts[idx[j]];
		if (m.rcpts[j].code / 100 == 2)
			rc->state = RS_SENT;
		else if (m.rcpts[j].code / 100 == 5) {
			rc->state = RS_FAILED;
			o->newly_failed++;
		}
		/* No answer: the entry's last-error says why. */
		if (m.rcpts[j].code == 0) {
			free(rc->reply);
			rc->reply = NULL;
		} else
			(void)set_reply(rc, m.rcpts[j].reply);
	}
	e->attempts++;
	e->last_attempt = time(NULL);
	if (m.note != NULL)	/* converted on the way (no 8BITMIME) */
		add_entry_note(e, m.note);
	msg_free(&m);
	free(idx);
}

/* RFC 5321 4.5.4.1: after max_age, the pending recipients fail. */
static void
expire(struct run *r, struct qentry *e, struct outcome *o)
{
	char why[ERRLEN];
	size_t i;
	long days = (long)((time(NULL) - e->created) / 86400);

	snprintf(why, sizeof(why), "expired after %ld day%s in the queue%s%s",
	    days, days == 1 ? "" : "s", e->last_error ? "; last error: " :
	    " without an attempt", e->last_error ? e->last_error : "");
	for (i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state != RS_PENDING)
			continue;
		e->rcpts[i].state = RS_FAILED;
		(void)set_reply(&e->rcpts[i], why);
		o->newly_failed++;
	}
	strlcpy(o->err, why, sizeof(o->err));
	(void)r;
}

static void
count(const struct qentry *e, struct outcome *o)
{
	size_t i;

	o->sent = o->failed = o->pending = 0;
	for (i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state == RS_SENT)
			o->sent++;
		else if (e->rcpts[i].state == RS_FAILED)
			o->failed++;
		else
			o->pending++;
	}
}

/* A report just queued goes out at the end of this run (run_finish). */
static void
send_later(struct run *r, struct qentry *b)
{
	char **grown;

	if ((grown = reallocarray(r->later, r->nlater + 1,
	    sizeof(*r->later))) != NULL) {
		r->later = grown;
		if ((r->later[r->nlater] = strdup(b->id)) != NULL)
			r->nlater++;
	}
	/* If that failed, the report waits for the next run: not lost. */
	qentry_free(b);
}

/* Queue a report on which[] to e's sender; never for the null sender. */
static int
report(struct run *r, struct qentry *e, const size_t *which, size_t n,
    struct outcome *o)
{
	struct qentry b;

	if (n == 0 || e->sender[0] == '\0')
		return 0;
	if (bounce_add(r->q, r->conf, REPORT_FAILED, e, which, n, &b, o->err,
	    sizeof(o->err)) != EX_OK)
		return -1;
	send_later(r, &b);
	o->bounced = 1;
	return 0;
}

/* Is it time to tell e's sender that its pending recipients wait? */
static int
warning_due(const struct run *r, const struct qentry *e,
    const struct outcome *o)
{
	return r->conf->delay_warning > 0 && e->warned == 0 &&
	    e->sender[0] != '\0' && o->pending > 0 &&
	    time(NULL) - e->created >= r->conf->delay_warning;
}

/*
 * Postfix's delay_warning_time: one RFC 3464 "delayed" report for the
 * recipients still pending, once an entry (its delay-warned key).
 */
static void
warn_delay(struct run *r, struct qentry *e, const struct outcome *o)
{
	struct qentry b;
	char err[ERRLEN];
	size_t *which, i, n = 0;

	if (!warning_due(r, e, o) ||
	    (which = calloc(e->nrcpts, sizeof(*which))) == NULL)
		return;
	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == RS_PENDING)
			which[n++] = i;
	/* The report says why: this attempt's error, not the last one's. */
	if (o->err[0] != '\0') {
		free(e->last_error);
		e->last_error = strdup(o->err);
	}
	if (bounce_add(r->q, r->conf, REPORT_DELAYED, e, which, n, &b, err,
	    sizeof(err)) != EX_OK)
		log_line(r->conf, 0, "id=%s error=cannot queue the delay "
		    "warning (tried again next time): %s", e->id, err);
	else {
		e->warned = time(NULL);
		log_line(r->conf, 1, "id=%s delay warning queued as %s",
		    e->id, b.id);
		send_later(r, &b);
	}
	free(which);
}

static void
reason(struct qentry *e, const struct outcome *o)
{
	char why[ERRLEN];

	snprintf(why, sizeof(why), "%zu of %zu recipient%s failed%s%s",
	    o->failed, e->nrcpts, e->nrcpts == 1 ? "" : "s",
	    e->sender[0] == '\0' ? " (no report: the sender is <>)" : "",
	    o->bounced ? "; the sender was sent a report" : "");
	free(e->reason);
	e->reason = strdup(why);
}

/* Write down what the attempt left: wait, done, or given up. */
static int
settle_entry(struct run *r, struct qentry *e, struct outcome *o)
{
	char err[ERRLEN];
	int rv;

	count(e, o);
	if (o->pending > 0) {
		if (o->tried)
			e->next_attempt = e->last_attempt +
			    backoff(r->conf, e->attempts);
		free(e->last_error);
		e->last_error = o->err[0] != '\0' ? strdup(o->err) : NULL;
		rv = queue_save(r->q, e, err, sizeof(err));
	} else if (o->failed == 0)
		rv = queue_remove(r->q, e, err, sizeof(err));
	else {
		reason(e, o);
		rv = queue_fail(r->q, e, err, sizeof(err));
	}
	if (rv != 0)
		log_line(r->conf, 0, "id=%s error=%s", e->id, err);
	return rv;
}

static const char *
outcome_word(const struct qentry *e, const struct outcome *o)
{
	if (o->newly_failed > 0)
		return e->sender[0] == '\0' || !o->bounced ? "failed" :
		    "bounced";
	if (o->pending > 0)
		return "deferred";
	return "sent";
}

/* One line per attempt: which entry, to whom, where, what came of it. */
static void
log_attempt(struct run *r, const struct qentry *e, const enum rstate *before,
    const struct outcome *o, const char *status, double secs)
{
	char to[1024] = "", addr[ADDR_MAX + 4];
	size_t i, shown = 0;

	for (i = 0; i < e->nrcpts; i++) {
		if (before[i] != RS_PENDING)
			continue;
		snprintf(addr, sizeof(addr), "%s<%s>", shown++ ? "," : "",
		    e->rcpts[i].addr);
		/* Whole addresses only: a cut one would name someone else. */
		if (strlen(to) + strlen(addr) + 24 >= sizeof(to)) {
			snprintf(addr, sizeof(addr), ",(more)");
			strlcat(to, addr, sizeof(to));
			break;
		}
		strlcat(to, addr, sizeof(to));
	}
	log_line(r->conf, strcmp(status, "sent") == 0, "from=<%s> to=%s "
	    "size=%lld relay=%s status=%s reply=\"%s\" duration=%.2fs id=%s "
	    "attempts=%u uid=%lu%s%s%s%s%s", e->sender, to,
	    (long long)e->size, r->d.relay[0] ? r->d.relay : r->conf->host,
	    status, o->tried ? r->d.last : "", secs, e->id, e->attempts,
	    (unsigned long)e->uid, e->note ? " note=\"" : "", e->note ?
	    e->note : "", e->note ? "\"" : "", o->err[0] &&
	    strcmp(status, "sent") ? " error=" : "", o->err[0] &&
	    strcmp(status, "sent") ? o->err : "");
}

/*
 * The caller's own message refused outright: it learns so from the exit
 * status, so no report (RFC 5321 6.1 lets a client refuse at submission
 * instead of bouncing).
 */
static int
refused_at_submission(const struct qentry *e, const struct outcome *o)
{
	return o->tried && o->sent == 0 && o->pending == 0 &&
	    o->newly_failed == e->nrcpts;
}

/*
 * A caller such as cron throws the exit status and the error away, so
 * the refused message is kept in failed/ all the same.  Returns 0 when
 * it is there; else it is removed (never retried: the caller was told).
 */
static int
keep_refused(struct run *r, struct qentry *e, const struct outcome *o,
    int ex)
{
	char why[ERRLEN + 64], err[ERRLEN];

	snprintf(why, sizeof(why), "refused at submission, the caller was "
	    "told (exit %d): %s", ex, o->err);
	free(e->reason);
	e->reason = strdup(why);
	if (queue_fail(r->q, e, err, sizeof(err)) == 0)
		return 0;
	log_line(r->conf, 0, "id=%s error=%s", e->id, err);
	(void)queue_remove(r->q, e, err, sizeof(err));
	return -1;
}

/*
 * The message file is not what the envelope says (cut short or grown
 * outside relay): nothing is sent, no report made, and the entry goes to
 * failed/ with its recipients still pending, for the administrator to
 * repair and move back, or remove.
 */
static const char *
damaged(struct run *r, struct qentry *e, struct outcome *o, int *ex)
{
	char err[ERRLEN];

	free(e->reason);
	e->reason = strdup(o->err);
	if (queue_fail(r->q, e, err, sizeof(err)) != 0)
		log_line(r->conf, 0, "id=%s error=%s", e->id, err);
	count(e, o);
	*ex = EX_IOERR;
	return "failed";
}

/* Try e (or expire it), report, settle it; returns the status word. */
static const char *
try_entry(struct run *r, struct qentry *e, const enum rstate *before,
    int submitted, struct outcome *o, int *ex)
{
	const char *status;
	size_t *which, i, n = 0;

	if ((which = calloc(e->nrcpts, sizeof(*which))) == NULL) {
		snprintf(o->err, sizeof(o->err), "%s", strerror(errno));
		*ex = EX_OSERR;
		return "deferred";
	}
	count(e, o);
	if (!submitted && time(NULL) - e->created >= r->conf->max_age)
		expire(r, e, o);
	else if (o->pending > 0)
		attempt(r, e, o);
	for (i = 0; i < e->nrcpts; i++)
		if (before[i] == RS_PENDING && e->rcpts[i].state == RS_FAILED)
			which[n++] = i;
	count(e, o);
	if (submitted && refused_at_submission(e, o)) {
		*ex = o->ex != EX_OK ? o->ex : EX_UNAVAILABLE;
		o->kept = keep_refused(r, e, o, *ex) == 0;
		free(which);
		return "refused";
	}
	if (report(r, e, which, n, o) == -1) {
		/* No report, no failure: they are tried again. */
		for (i = 0; i < n; i++)
			e->rcpts[which[i]].state = RS_PENDING;
		o->newly_failed = 0;
		count(e, o);
	}
	free(which);
	warn_delay(r, e, o);
	status = outcome_word(e, o);
	(void)settle_entry(r, e, o);
	return status;
}

static int
process(struct run *r, struct qentry *e, int submitted)
{
	struct outcome o;
	struct timespec start;
	enum rstate *before;
	const char *status;
	size_t i;
	int ex = EX_OK;

	clock_gettime(CLOCK_MONOTONIC, &start);
	memset(&o, 0, sizeof(o));
	if ((before = calloc(e->nrcpts, sizeof(*before))) == NULL) {
		log_line(r->conf, 0, "id=%s error=%s", e->id, strerror(errno));
		return EX_OSERR;
	}
	for (i = 0; i < e->nrcpts; i++)
		before[i] = e->rcpts[i].state;
	r->d.last[0] = '\0';
	if (queue_intact(e, o.err, sizeof(o.err)) == -1)
		status = damaged(r, e, &o, &ex);
	else
		status = try_entry(r, e, before, submitted, &o, &ex);
	log_attempt(r, e, before, &o, status, seconds_since(&start));
	if (submitted && ex == EX_OK && strcmp(status, "sent") != 0)
		warnx("%s %s: %s%s", e->id, o.pending > 0 ?
		    "queued, will retry" : status, o.err, o.bounced ?
		    " (the sender gets a report)" : "");
	else if (submitted && o.kept)
		warnx("%s (kept in %s/failed/%s)", o.err, r->q->dir, e->id);
	else if (submitted && ex != EX_OK)
		warnx("%s", o.err);
	free(before);
	return ex;
}

int
run_new(struct run *r, struct qentry *e, int caller_waits)
{
	return process(r, e, caller_waits);
}

static int
due(const struct run *r, const struct qentry *e)
{
	return r->force || e->next_attempt <= time(NULL) ||
	    time(NULL) - e->created >= r->conf->max_age;
}

/* One entry by id, if nobody else holds it and it is due. */
void
run_entry(struct run *r, const char *id)
{
	struct qentry e;
	char err[ERRLEN];
	int rv;

	if ((rv = queue_lock(r->q, id, &e, err, sizeof(err))) == -1)
		log_line(r->conf, 0, "id=%s cannot be read: %s (left alone)",
		    id, err);
	if (rv != 0)
		return;
	if (due(r, &e))
		(void)process(r, &e, 0);
	qentry_free(&e);
}

/* -qIID: that entry now, or say why not. */
int
run_only(struct run *r, const char *id)
{
	struct qentry e;
	char err[ERRLEN];

	switch (queue_lock(r->q, id, &e, err, sizeof(err))) {
	case 0:
		(void)process(r, &e, 0);
		qentry_free(&e);
		return EX_OK;
	case 1:
		if (queue_peek(r->q, 0, id, &e, err, sizeof(err)) == 0) {
			qentry_free(&e);
			warnx("%s is being delivered by another relay", id);
			return EX_TEMPFAIL;
		}
		warnx("no entry %s in %s/queue", id, r->q->dir);
		return EX_NOINPUT;
	default:
		warnx("%s: %s", id, err);
		return EX_DATAERR;
	}
}

/* Every entry, oldest first. */
int
run_queue(struct run *r)
{
	char **ids, err[ERRLEN];
	size_t n, i;

	if (queue_ids(r->q, 0, &ids, &n, err, sizeof(err)) == -1) {
		warnx("%s", err);
		return EX_TEMPFAIL;
	}
	for (i = 0; i < n; i++)
		run_entry(r, ids[i]);
	queue_ids_free(ids, n);
	return EX_OK;
}

/* Reports made during the run go out in it; then the session ends. */
void
run_finish(struct run *r)
{
	size_t i;
	int force = r->force;

	r->force = 1;
	for (i = 0; i < r->nlater; i++)
		run_entry(r, r->later[i]);
	r->force = force;
	queue_ids_free(r->later, r->nlater);
	r->later = NULL;
	r->nlater = 0;
	session_end(r);
	queue_sync(r->q);
}
