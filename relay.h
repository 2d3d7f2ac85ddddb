/*
 * relay: a sendmail replacement that hands each message to one smarthost
 * over authenticated, verified TLS.  This header declares only what crosses
 * a file boundary.
 */
#ifndef RELAY_H
#define RELAY_H

#include <sys/types.h>
#include <stddef.h>
#include <time.h>

#define RELAY_VERSION		"0.1"
#define RELAY_CONF_DEFAULT	"/etc/relay.conf"
#define RELAY_CA_DEFAULT	"/etc/ssl/certs/ca-certificates.crt"
#define RELAY_QUEUE_DEFAULT	"/var/spool/relay"

/* RFC 5321 4.5.3.1: limits on what goes into a command line. */
#define ADDR_MAX	256	/* path, without the angle brackets */
#define LOCAL_MAX	64
#define DOMAIN_MAX	255
#define ERRLEN		512	/* every err buffer passed between files */

/* ---- conf.c ----------------------------------------------------------- */

enum tls_mode { TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE };
enum log_dest { LOGTO_SYSLOG, LOGTO_STDERR };

/* RFC 5321 4.5.3.2 timeouts, in seconds, indexed by what they guard. */
enum tmo {
	TMO_CONNECT,		/* TCP connect, per address */
	TMO_GREETING,		/* 220 greeting; also the TLS handshake */
	TMO_COMMAND,		/* EHLO, STARTTLS, AUTH, MAIL, RCPT, QUIT */
	TMO_DATA_INIT,		/* 354 reply to DATA */
	TMO_DATA_BLOCK,		/* each write of message data */
	TMO_DATA_END,		/* final reply after the terminating dot */
	TMO_COUNT
};

struct alias {
	char	 *name;		/* local name without '@', or "*" (catch-all) */
	char	**targets;	/* qualified addresses */
	size_t	  ntargets;
};

struct conf {
	char		*path;		/* file the settings came from */
	char		*host;		/* smarthost name as configured */
	int		 port;
	enum tls_mode	 tls;
	char		*user;		/* NULL: no AUTH */
	char		*password;	/* set iff user is; wiped by conf_free */
	char		*from;		/* default envelope sender, or NULL */
	char		*domain;	/* qualifies unaliased local names, or NULL */
	char		*helo;		/* EHLO name, never NULL after load */
	char		*ca_file;	/* never NULL after load */
	int		 pinned;	/* tls_fingerprint given: */
	unsigned char	 pin[32];	/*   SHA-256 of the server's cert */
	int		 key_pinned;	/* tls_pubkey_fingerprint given: */
	unsigned char	 key_pin[32];	/*   SHA-256 of its SubjectPublicKeyInfo */
	int		 verify_chain;	/* also check chain and name when pinned
					   ("tls_verify both"); always without */
	char		*client_cert;	/* PEM chain to present, or NULL */
	char		*client_key;	/*   and its private key (PEM) */
	int		 timeout[TMO_COUNT];
	struct alias	*aliases;
	size_t		 naliases;
	enum log_dest	 log;
	char		*queue;		/* queue directory; NULL: "queue none" */
	char		*spool;		/* spool directory to take in, or NULL */
	int		 retry_min;	/* seconds after the first failed try, */
	int		 retry_max;	/*   doubling up to this */
	int		 max_age;	/* seconds in the queue before bouncing */
	off_t		 max_size;	/* octets a message may have; 0: any */
	size_t		 max_rcpts;	/* recipients a message may have; 0: any */
	char		*password_command;	/* run by conf_secret, or NULL */
	char		*password_env;	/* variable conf_secret reads, or NULL */
};

/*
 * Load and check a configuration file.  On error returns -1 with err set to
 * one line such as `relay.conf:12: unknown keyword "prot"`; the caller exits
 * with EX_CONFIG.
 */
int	 conf_load(struct conf *, const char *path, char *err, size_t errlen);
void	 conf_free(struct conf *);
/* The alias for a local name: an exact match, else "*", else NULL. */
const struct alias *conf_alias(const struct conf *, const char *name);

/* ---- secret.c: secrets from a file, the environment or a command ------ */

/*
 * Fetch the AUTH secret from where the configuration says it is
 * (password_command, password_env...) into conf->password, for runs
 * that will talk to the smarthost; listing the queue does not need it.
 * Returns 0, or -1 with err set to one line (the caller exits EX_CONFIG).
 */
int	 conf_secret(struct conf *, char *err, size_t errlen);
/*
 * Open a file holding a secret, given with keyword (password_file,
 * tls_client_key): a regular file that others cannot open.  Returns the
 * descriptor, or -1 with err set to one line that does not say where the
 * keyword was ("password_file /x is readable by others ...").
 */
int	 secret_file_open(const char *keyword, const char *file, char *err,
	    size_t errlen);
/*
 * The secret in the first line of such a file, into *secret (for the
 * caller to freezero).  Returns 0, or -1 with err set as above.
 */
int	 secret_file_read(const char *keyword, const char *file,
	    char **secret, char *err, size_t errlen);
/* "readable", "writable" or "accessible": what others may do, by mode. */
const char *others_can(mode_t);

/* ---- addr.c: RFC 5322 address lists ----------------------------------- */

struct mailbox {
	char	*addr;		/* addr-spec, CFWS and route removed */
	size_t	 mb_start;	/* whole mailbox (name, brackets, comments) */
	size_t	 mb_end;	/*   as offsets into the parsed text */
	size_t	 as_start;	/* the addr-spec as written */
	size_t	 as_end;
};

/*
 * Parse an address list (the body of a To/Cc/Bcc field, or one argv
 * recipient such as "a@x,b@y").  Groups contribute their members; empty
 * groups nothing.  Returns 0, or -1 with err set.
 */
int	 addrlist_parse(const char *text, size_t len, struct mailbox **mbp,
	    size_t *nmbp, char *err, size_t errlen);
void	 addrlist_free(struct mailbox *, size_t);
/*
 * Is this a safe envelope address for MAIL/RCPT?  Returns NULL if so, else a
 * short reason ("contains a line break", "local part longer than 64
 * octets"...).  An empty string is the null path and is accepted.
 */
const char *addr_check(const char *addr);

/* ---- msg.c: the message as read from the caller ----------------------- */

struct rcpt {
	char	*addr;		/* qualified, checked envelope address */
	int	 code;		/* reply to its RCPT, 0 before */
	char	*reply;		/* that reply, sanitised, or NULL */
};

struct msgopts {
	int	  extract;	/* -t: recipients from To, Cc and Bcc */
	int	  dotend;	/* no -i: a line holding only "." ends input */
	const char *from;	/* -f/-r, or NULL */
	const char *fullname;	/* -F, or NULL */
	char	**argv_rcpts;	/* recipients from the command line */
	size_t	  nargv;
};

struct header;

struct msg {
	char		*sender;	/* envelope sender, qualified */
	struct rcpt	*rcpts;
	size_t		 nrcpts;
	off_t		 size;		/* RFC 1870: CRLF form, unstuffed */
	int		 eightbit;	/* some octet >= 0x80 will be sent */
	char		*note;		/* how the body was changed, or NULL */
	/* private to msg.c */
	struct header	*hdrs;
	size_t		 nhdrs;
	int		 spoolfd;	/* body, CRLF lines, not dot-stuffed */
	off_t		 bodyoff;	/*   starting here in spoolfd */
	off_t		 bodylen;
	int		 body8;		/* the body has octets >= 0x80 */
	int		 body_notutf8;	/*   and they are not UTF-8 */
};

typedef int (*msg_put_fn)(void *ctx, const char *buf, size_t len);

/*
 * Read a message from fd, spool its body to an unlinked temporary file, fix
 * it for the wire and work out the envelope.  Returns 0 (EX_OK), or a
 * sysexits code with err set to one line.
 */
int	 msg_read(struct msg *, int fd, const struct msgopts *,
	    const struct conf *, char *err, size_t errlen);
/*
 * Emit the message as DATA content: CRLF lines, dot-stuffed, then ".\r\n".
 * put() returns 0 or -1; msg_send returns 0, or -1 when put() or reading
 * the spool failed.
 */
int	 msg_send(const struct msg *, msg_put_fn put, void *ctx);
/*
 * For a smarthost without 8BITMIME (RFC 6152 3): re-encode an 8-bit body
 * as quoted-printable where that is allowed (a single part, not already
 * encoded).  Returns 0 (EX_OK), or a sysexits code with err set.
 */
int	 msg_to_7bit(struct msg *, char *err, size_t errlen);
void	 msg_free(struct msg *);
/*
 * The queue's copy of a message: the header block, an empty line and the
 * body, all lines CRLF, not dot-stuffed, no terminator.  msg_write puts it
 * on fd (buffered, no fsync) and returns 0, or -1 with errno set.
 */
int	 msg_write(const struct msg *, int fd);
/*
 * Take a message back from such a file: the header block is read into
 * memory, the body stays in the file (m->spoolfd is a dup of fd, from
 * m->bodyoff on).  body8/notutf8 are what msg_read found in the
 * body (kept in the queue entry).  The envelope (sender, rcpts) is the
 * caller's to fill.  Returns 0 (EX_OK) or a sysexits code with err set.
 */
int	 msg_load(struct msg *, int fd, int body8, int notutf8, char *err,
	    size_t errlen);

/* ---- tls.c: the connection, plain or TLS ------------------------------ */

struct conn;

/*
 * Connect to the smarthost, trying each of its addresses in turn, and for
 * implicit TLS complete the handshake.  Returns NULL with err set and *exit
 * set to a sysexits code.
 */
struct conn *conn_open(const struct conf *, int *exitcode, char *err,
	    size_t errlen);
/* Start TLS on a plaintext connection (after "220" to STARTTLS). */
int	 conn_starttls(struct conn *, int *exitcode, char *err, size_t errlen);
int	 conn_is_tls(const struct conn *);
/* Bytes received but not yet read by conn_getline. */
size_t	 conn_pending(const struct conn *);
/* Set the deadline for the coming operations, in seconds from now. */
void	 conn_timeout(struct conn *, int seconds);
/*
 * Read one line without its CRLF (or LF) into buf.  Returns its length, or
 * -1 on error/EOF/timeout/overlong line with conn_error() telling why.
 */
ssize_t	 conn_getline(struct conn *, char *buf, size_t size);
int	 conn_write(struct conn *, const char *, size_t);
int	 conn_flush(struct conn *);
const char *conn_error(const struct conn *);
/* "smtp.example.com[192.0.2.1]:465" */
const char *conn_peer(const struct conn *);
void	 conn_close(struct conn *);

/* ---- smtp.c: the dialogue --------------------------------------------- */

#define REPLY_MAX	65536	/* cap on one reply, all lines */

struct reply {
	int	 code;		/* 0 while incomplete */
	int	 lines;
	size_t	 len;
	char	 text[REPLY_MAX];	/* lines joined by '\n', codes kept */
};

/*
 * Feed one reply line (without CRLF).  Returns 1 when the reply is
 * complete, 0 when more lines follow, -1 on a malformed line (err set).
 */
int	 reply_feed(struct reply *, const char *line, size_t len, char *err,
	    size_t errlen);
void	 reply_init(struct reply *);

struct delivery {
	char	 relay[300];	/* conn_peer() of the smarthost used */
	char	 last[512];	/* its final reply, sanitised, one line */
	int	 unsent;	/* smtp_send: the session died before the
				   message went out; safe to try again */
};

struct smtp;

/*
 * A session with the smarthost: connect, greeting, EHLO, STARTTLS, AUTH.
 * Returns NULL with err set and *exitcode a sysexits code.  d->relay is
 * set whenever a connection was made.
 */
struct smtp *smtp_open(const struct conf *, struct delivery *d,
	    int *exitcode, char *err, size_t errlen);
/*
 * One transaction (RSET first unless it is the session's first): MAIL,
 * RCPT, DATA.  Afterwards each msg->rcpts[i].code is that recipient's
 * outcome (2xx taken, 4xx/5xx refused, 0 unknown: the session failed
 * before an answer) with .reply the reply as one line.  A refusal of the
 * whole message (MAIL, DATA, end of data, SIZE, no 8-bit conversion)
 * is copied to every recipient it concerns.  Returns EX_OK when every
 * recipient was taken, else a sysexits code with err set.
 */
int	 smtp_send(struct smtp *, struct msg *, struct delivery *d,
	    char *err, size_t errlen);
/* Can the session take another transaction? */
int	 smtp_usable(const struct smtp *);
/* QUIT (when still possible), close, free. */
void	 smtp_close(struct smtp *);
extern int verbose;		/* -v: SMTP dialogue on stderr */

/* ---- queue.c: the durable queue ------------------------------------ */

#define QUEUE_VERSION	1	/* of the envelope file format */
#define QUEUE_ID_LEN	14	/* hex digits of a fresh id */

enum rstate { RS_PENDING, RS_SENT, RS_FAILED };

struct qrcpt {
	char		*addr;
	enum rstate	 state;
	char		*reply;		/* last reply or error, one line, or NULL */
};

struct qentry {
	char		 id[32];
	int		 failed;	/* lives in failed/, not queue/ */
	uid_t		 uid;		/* real uid of the submitter */
	time_t		 created;
	time_t		 last_attempt;	/* 0: never tried */
	time_t		 next_attempt;	/* 0: at once */
	unsigned	 attempts;
	off_t		 size;		/* RFC 1870 size of the message */
	int		 body8;		/* what msg_read found in the body */
	int		 body_notutf8;
	char		*sender;	/* "" is the null sender */
	struct qrcpt	*rcpts;
	size_t		 nrcpts;
	char		*origin;	/* "stdin", "spool NAME", "bounce ID" */
	char		*note;		/* how relay changed the message */
	char		*last_error;	/* why the last try failed, or NULL */
	char		*reason;	/* failed/ only: why it is there */
	int		 msgfd;		/* message file, locked, or -1 */
};

struct queue {
	char		*dir;
	int		 fd;		/* the queue directory */
	int		 tmpfd;		/* its tmp/, queue/, failed/ */
	int		 queuefd;
	int		 failedfd;
};

/*
 * Open the queue directory, creating what is missing: the directory
 * 0700, what is inside it with its parent's group rights.
 */
int	 queue_open(struct queue *, const char *dir, char *err, size_t errlen);
void	 queue_close(struct queue *);
/*
 * Make a message durable: message and envelope written, fsync'd, moved
 * into queue/ in one rename.  On success e is filled and holds the lock.
 * Returns EX_OK, or EX_TEMPFAIL/EX_CANTCREAT with err set and nothing
 * left behind.
 */
int	 queue_add(struct queue *, const struct msg *, const char *origin,
	    struct qentry *e, char *err, size_t errlen);
/* The same under a chosen id (see queue_new_id); EEXIST if it is taken. */
int	 queue_add_as(struct queue *, const struct msg *, const char *origin,
	    const char *id, struct qentry *e, char *err, size_t errlen);
/* A fresh id: creation time and randomness, sorting by age. */
void	 queue_new_id(char *id, size_t idlen);
/* Is anything named id in queue/ or failed/ (an entry, locked or not)? */
int	 queue_has(struct queue *, const char *id);
/*
 * Keep what never became a message (a bad spool file) in failed/ID:
 * srcfd's bytes (none if -1) and why.  Returns EX_OK or a sysexits code.
 */
int	 queue_add_failed(struct queue *, const char *id, int srcfd,
	    const char *origin, const char *why, char *err, size_t errlen);
/* Ids in queue/ (or failed/), oldest first.  Returns 0 or -1 (err). */
int	 queue_ids(struct queue *, int failed, char ***ids, size_t *nids,
	    char *err, size_t errlen);
void	 queue_ids_free(char **, size_t);
/*
 * Lock entry id (non-blocking) and read its envelope.  Returns 0 when
 * locked and loaded, 1 when another process holds it or it is gone, -1
 * when it cannot be read (err says why; the entry is left alone).
 */
int	 queue_lock(struct queue *, const char *id, struct qentry *e,
	    char *err, size_t errlen);
/* Read an entry without locking it (mailq).  Returns 0, 1 (gone), -1. */
int	 queue_peek(struct queue *, int failed, const char *id,
	    struct qentry *e, char *err, size_t errlen);
/* Replace the envelope of a locked entry atomically (new file, rename). */
int	 queue_save(struct queue *, struct qentry *, char *err, size_t errlen);
/* Delivered: remove a locked entry. */
int	 queue_remove(struct queue *, struct qentry *, char *err,
	    size_t errlen);
/* Make the removals of a run durable (one fsync for all of them). */
void	 queue_sync(struct queue *);
/* Give up: move a locked entry to failed/, e->reason saying why. */
int	 queue_fail(struct queue *, struct qentry *, char *err, size_t errlen);
/* Remove what a crash left in tmp/ (an hour old, not locked). */
void	 queue_tidy(struct queue *);
/* Release the lock and free the entry. */
void	 qentry_free(struct qentry *);
/* The envelope file format, both ways (also for the fuzzer). */
int	 qentry_parse(struct qentry *, const char *text, size_t len,
	    char *err, size_t errlen);
char	*qentry_format(const struct qentry *);

/* ---- bounce.c: delivery status notifications (RFC 3464) --------------- */

/*
 * Queue a report to e's sender about the recipients listed in which[]
 * (indexes into e->rcpts, each RS_FAILED with its reply), sent from the
 * null sender.  The new entry is returned in *b, locked, for the caller
 * to deliver.  Never call it for a null-sender entry.  Returns EX_OK or
 * a sysexits code with err set.
 */
int	 bounce_add(struct queue *, const struct conf *, const struct qentry *e,
	    const size_t *which, size_t nwhich, struct qentry *b, char *err,
	    size_t errlen);
/*
 * The report itself, as bounce_add queues it: written to fd (LF or CRLF
 * lines; msg_read canonicalises), the original header block read from
 * e->msgfd.  now is the time the report says it was made.  Returns 0, or
 * -1 with err set.
 */
int	 bounce_write(int fd, const struct conf *, const struct qentry *e,
	    const size_t *which, size_t nwhich, time_t now, char *err,
	    size_t errlen);

/* ---- deliver.c: delivering queue entries ------------------------------ */

/* One run of relay: a submission or a flush, over one session. */
struct run {
	const struct conf	*conf;
	struct queue		*q;
	struct smtp		*smtp;		/* open session, or NULL */
	struct delivery		 d;
	int			 down;		/* a connect failed this run */
	int			 down_ex;
	char			 down_err[ERRLEN];
	int			 force;		/* ignore next-attempt */
	char			**later;	/* reports queued in the run */
	size_t			 nlater;
};

void	 run_init(struct run *, const struct conf *, struct queue *);
/*
 * A fresh entry (locked, from queue_add): try it at once.  Returns EX_OK
 * when it was sent or stays queued.  If the caller waits (a submission)
 * and every recipient is refused, the entry is not kept and the sysexits
 * code is returned: the caller has the message and the error.
 */
int	 run_new(struct run *, struct qentry *, int caller_waits);
/* Lock and deliver one entry if it is due (or r->force). */
void	 run_entry(struct run *, const char *id);
/* -qIID: that entry now.  Returns EX_OK, or why not (66, 75, 65). */
int	 run_only(struct run *, const char *id);
/* Every entry in the queue, oldest first. */
int	 run_queue(struct run *);
/* Deliver the reports made during the run, end the session. */
void	 run_finish(struct run *);

/* ---- spool.c: taking in a spool directory ----------------------------- */

/* Move every complete file of conf->spool into the queue, deliver it. */
void	 spool_intake(struct run *);

/* ---- mailq.c: listing the queue ------------------------------------------ */

int	 mailq(const struct conf *);

/* ---- shared helpers (util.c) ------------------------------------------ */

/* One log line: syslog LOG_MAIL (LOG_INFO if ok, else LOG_ERR) or stderr. */
void	 log_line(const struct conf *, int ok, const char *fmt, ...)
	    __attribute__((__format__(__printf__, 3, 4)));
/* Copy src to dst making it safe for a terminal or syslog (vis-encoded). */
void	 sanitise(char *dst, size_t dstlen, const char *src, size_t srclen);
/* Wall time since start (CLOCK_MONOTONIC), in seconds. */
double	 seconds_since(const struct timespec *start);
/* Write all of p, or -1 with errno set. */
int	 write_all(int fd, const char *p, size_t n);
/* Read up to n octets at off; a short count means the end of the file. */
ssize_t	 pread_all(int fd, char *p, size_t n, off_t off);
/* Base64 (RFC 4648) of src into dst; returns length or -1 if too small. */
ssize_t	 b64_encode(char *dst, size_t dstlen, const void *src, size_t srclen);
/* Does this process run with more rights than its caller (setgid)? */
int	 privileged(void);

/* ---- tls.c, for test/unit_anchors.c ------------------------------------ */

/* How tls_anchors_test reads each certificate: */
#define ANCHORS_FAST	0	/* the DER walker, else br_x509_decoder */
#define ANCHORS_DECODER	1	/* br_x509_decoder alone (relay before) */
#define ANCHORS_WALKER	2	/* the walker alone: what it refuses, skipped */
/*
 * Load the CA certificates of the PEM file path, or the one DER
 * certificate der (len octets) if path is NULL, as ca_file is loaded.
 * *ta gets a br_x509_trust_anchor array of *n (relay.h does without
 * bearssl.h), *walked how many of them the walker read.  Returns 0, or
 * -1 with err set.
 */
int	 tls_anchors_test(const char *path, const unsigned char *der,
	    size_t len, int how, void **ta, size_t *n, size_t *walked,
	    char *err, size_t errlen);
void	 tls_anchors_test_free(void *ta, size_t n);

#endif /* RELAY_H */
