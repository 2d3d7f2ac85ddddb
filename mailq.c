/*
 * mailq, relay -bp: what waits in the queue and why, and what was given
 * up on; a user other than root sees only their own entries.  Read only:
 * no locks are taken, so a flush is never held up.
 */
#include <sys/types.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

static const char *const state_words[] = {
	[RS_PENDING] = "pending",
	[RS_SENT] = "sent   ",
	[RS_FAILED] = "failed ",
};

/* "45s", "12m", "2h05m", "3d04h" */
static void
fmt_age(char *buf, size_t size, time_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, size, "%llds", (long long)secs);
	else if (secs < 3600)
		snprintf(buf, size, "%lldm", (long long)secs / 60);
	else if (secs < 86400)
		snprintf(buf, size, "%lldh%02lldm", (long long)secs / 3600,
		    (long long)secs % 3600 / 60);
	else
		snprintf(buf, size, "%lldd%02lldh", (long long)secs / 86400,
		    (long long)secs % 86400 / 3600);
}

static void
fmt_when(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		strlcpy(buf, "?", size);
}

/*
 * Text from the envelope, shown safely: it came from a smarthost, and
 * relay encoded it when it wrote it (a reply's "\\" stays one escape).
 */
static void
show(const char *prefix, const char *text)
{
	char safe[1024];

	sanitise_kept(safe, sizeof(safe), text);
	printf("%s%s\n", prefix, safe);
}

static void
attempts_line(const struct qentry *e, time_t now)
{
	char last[40], next[40];

	if (e->attempts == 0) {
		printf("    never tried yet%s\n", e->failed ? "" :
		    ", due now");
		return;
	}
	fmt_when(last, sizeof(last), e->last_attempt);
	if (e->failed)
		printf("    attempts %u, last %s\n", e->attempts, last);
	else if (e->next_attempt <= now)
		printf("    attempts %u, last %s, next: due now\n",
		    e->attempts, last);
	else {
		fmt_when(next, sizeof(next), e->next_attempt);
		printf("    attempts %u, last %s, next %s\n", e->attempts,
		    last, next);
	}
}

static void
list_entry(const struct qentry *e, time_t now)
{
	char age[32], line[1024];
	size_t i;

	fmt_age(age, sizeof(age), now - e->created);
	snprintf(line, sizeof(line), "%s  %lld octets  %s old  from <%s>  "
	    "uid %lu  (%s)", e->id, (long long)e->size, age, e->sender,
	    (unsigned long)e->uid, e->origin ? e->origin : "stdin");
	show("", line);
	attempts_line(e, now);
	if (e->reason != NULL)
		show("    reason: ", e->reason);
	if (e->last_error != NULL)
		show("    last error: ", e->last_error);
	for (i = 0; i < e->nrcpts; i++) {
		snprintf(line, sizeof(line), "    %s <%s>%s%s",
		    state_words[e->rcpts[i].state], e->rcpts[i].addr,
		    e->rcpts[i].reply ? "  " : "", e->rcpts[i].reply ?
		    e->rcpts[i].reply : "");
		show("", line);
	}
}

/*
 * Every entry of queue/ or failed/ that the caller may see (root: all,
 * anyone else: their own, by the uid in the envelope; *hidden counts the
 * others); returns how many could not be read.
 */
static size_t
list_visible(struct queue *q, int failed, size_t *count, long long *octets,
    size_t *hidden)
{
	struct qentry e;
	char **ids, err[ERRLEN];
	size_t n, i, bad = 0;
	time_t now = time(NULL);

	*count = 0;
	if (queue_ids(q, failed, &ids, &n, err, sizeof(err)) == -1) {
		warnx("%s", err);
		return 1;
	}
	for (i = 0; i < n; i++) {
		switch (queue_peek(q, failed, ids[i], &e, err, sizeof(err))) {
		case 0:
			if (getuid() != 0 && e.uid != getuid()) {
				(*hidden)++;
				qentry_free(&e);
				break;
			}
			if (failed && *count == 0)
				printf("failed (kept in %s/failed):\n",
				    q->dir);
			list_entry(&e, now);
			*octets += e.size;
			(*count)++;
			qentry_free(&e);
			break;
		case -1:
			printf("%s  cannot be read: ", ids[i]);
			show("", err);
			bad++;
			break;
		}
	}
	queue_ids_free(ids, n);
	return bad;
}

int
mailq(const struct conf *conf)
{
	struct queue q;
	char err[ERRLEN];
	size_t queued, failed, bad, hidden = 0;
	long long octets = 0, failed_octets = 0;
	int ex;

	if (conf->queue == NULL) {
		printf("Mail queue is empty (%s says \"queue none\")\n",
		    conf->path);
		return EX_OK;
	}
	if ((ex = queue_open(&q, conf->queue, err, sizeof(err))) != EX_OK) {
		warnx("%s", err);
		return ex;
	}
	bad = list_visible(&q, 0, &queued, &octets, &hidden);
	bad += list_visible(&q, 1, &failed, &failed_octets, &hidden);
	if (queued == 0 && failed == 0 && bad == 0 && hidden == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %zu message%s queued (%lld octets); %zu in %s/failed"
		    "\n", queued, queued == 1 ? "" : "s", octets, failed,
		    q.dir);
	/* Mail of other users is theirs; that there is some is not. */
	if (hidden > 0)
		printf("-- %zu entr%s of other users not shown (root sees "
		    "every entry)\n", hidden, hidden == 1 ? "y" : "ies");
	queue_close(&q);
	/* Listed all the same; the status says something is wrong. */
	return bad > 0 ? EX_DATAERR : EX_OK;
}
