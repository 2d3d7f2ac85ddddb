/*
 * relay: a sendmail replacement that hands each message to one smarthost
 * over authenticated, verified TLS.  This header declares only what crosses
 * a file boundary.
 *
 * What functions return, by kind:
 * - Work on a message or an entry whose failure the caller passes on as
 *   its exit status (msg_read, queue_add, smtp_send, bounce_add...): a
 *   sysexits(3) code, EX_OK (0) on success, else err holds one line.
 * - Parsers, loaders and other steps that merely fail (conf_load,
 *   addrlist_parse, qentry_parse, secret readers...): 0, or -1 with err
 *   set; helpers without an err buffer (write_all, wbuf_put...) -1 with
 *   errno set.
 * - Look-ups that may find something busy or gone (queue_lock,
 *   queue_peek): 0 found, 1 busy or gone, -1 error (err set).
 * - Constructors (conn_open, smtp_open): the object, or NULL with err set
 *   and *exitcode a sysexits code.
 * - Checks: 1 or 0, or NULL for "fine" and a reason otherwise (addr_check).
 * A declaration marked "(tests)" is exported only for test/ and the
 * fuzzers; nothing else in relay calls it.
 */
#ifndef RELAY_H
#define RELAY_H

#include <sys/types.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
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
/* RFC 5321 4.5.3.1.6, RFC 5322 2.1.1: a line of a message, CRLF excluded. */
#define SMTP_LINE	998

/* ---- conf.c ----------------------------------------------------------- */

enum tls_mode { TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE };
enum log_dest { LOGTO_SYSLOG, LOGTO_STDERR };
/* set_from_header: add a missing From:, make it from, or leave it be. */
enum from_header { FROMHDR_AUTO, FROMHDR_ON, FROMHDR_OFF };

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
	char		**local_domains; /* local_domains: addresses there are */
	size_t		 nlocal_domains; /*   local names, as the host's own */
	int		 force_from;	/* allow_from_override no: sender is from */
	enum from_header set_from;	/* set_from_header */
	char		*helo;		/* EHLO name, or NULL: helo_name() */
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
	int		 failed_max_age; /* seconds failed/ keeps an entry; 0: ever */
	int		 delay_warning;	/* seconds deferred before the sender is
					   told; 0: never */
	off_t		 max_size;	/* octets a message may have; 0: any */
	size_t		 max_rcpts;	/* recipients a message may have; 0: any */
	char		*password_command;	/* run by conf_secret, or NULL */
	char		*password_env;	/* variable conf_secret reads, or NULL */
	char		*password_file;	/* file conf_secret reads, or NULL */
	size_t		 password_line;	/*   and the line that named it */
	int		 submit_timeout;	/* seconds for a submission's
					   first try; 0: no cap */
	/*
	 * Not configuration: while a submission's first try runs, no wait
	 * of its connection (or password_command) goes past this
	 * CLOCK_MONOTONIC time; tv_sec 0: no cap.
	 */
	struct timespec	 submit_end;
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

/* ---- names.c: the machine's own names -------------------------------- */

/* The host's fully qualified name (canonical, with a dot), or NULL. */
const char *host_fqdn(void);
/*
 * Is addr a local name: no '@', or at the host name, its FQDN, localhost
 * or a local_domains entry?  If so 1, with its local part in name (size
 * octets); else 0.  The null path is not a local name.
 */
int	 local_name(const struct conf *, const char *addr, char *name,
	    size_t size);
/* The EHLO name: helo, else the FQDN, else domain; NULL: use a literal. */
const char *helo_name(const struct conf *);
/*
 * The domain of addresses relay makes up (MAILER-DAEMON@, Message-IDs):
 * a dotted helo, the FQDN, domain, from's or user's domain, else
 * "localhost.invalid".  Never NULL, never a bare host name.
 */
const char *own_domain(const struct conf *);

/* ---- secret.c: secrets from a file, the environment or a command ------ */

/*
 * Fetch the AUTH secret from where the configuration says it is
 * (password_file, password_command, password_env) into conf->password,
 * right before a connection needs it; once fetched it is kept.  Returns
 * 0, or -1 with err set to one line: a temporary failure, the message
 * waits in the queue.
 */
int	 conf_secret(struct conf *, char *err, size_t errlen);
/*
 * Open a file holding a secret, given with keyword (password_file,
 * tls_client_key): a regular file that others cannot open, owned by
 * root or the real uid, checked on the descriptor.  Returns the
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

/* ---- env.c: settings from RELAY_* variables ---------------------------- */

struct envset {
	char	*var;		/* the variable it came from, for errors */
	char	*keyword;	/* relay.conf's name for it */
	char	*value;
};

/*
 * The RELAY_* variables of the environment as keyword/value pairs, in
 * the order of environ; RELAY_SMARTHOST as several.  Returns 0, or -1
 * with err set (a malformed RELAY_SMARTHOST).
 */
int	 env_settings(struct envset **, size_t *, char *err, size_t errlen);
void	 env_settings_free(struct envset *, size_t);

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
	int	  report;	/* relay's own report: its null sender stays
				   even with allow_from_override no */
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
	int		 dot_rest;	/* input went on after the lone "." */
	/* private to msg.c, header.c and mime.c */
	struct header	*hdrs;
	size_t		 nhdrs;
	int		 bodyfd;	/* body, CRLF lines, not dot-stuffed */
	off_t		 bodyoff;	/*   starting here in bodyfd */
	off_t		 bodylen;
	int		 body8;		/* the body has octets >= 0x80 */
	int		 body_notutf8;	/*   and they are not UTF-8 */
};

typedef int (*msg_put_fn)(void *ctx, const char *buf, size_t len);

/*
 * Read a message from fd (its body into an unlinked temporary file), fix
 * it for the wire and work out the envelope.  Returns 0 (EX_OK), or a
 * sysexits code with err set to one line.
 */
int	 msg_read(struct msg *, int fd, const struct msgopts *,
	    const struct conf *, char *err, size_t errlen);
/*
 * Emit the message as DATA content: CRLF lines, dot-stuffed, then ".\r\n".
 * put() returns 0 or -1; msg_send returns 0, or -1 when put() or reading
 * the body file failed.
 */
int	 msg_send(const struct msg *, msg_put_fn put, void *ctx);
void	 msg_free(struct msg *);
/*
 * The queue's copy of a message: the header block, an empty line and the
 * body, all lines CRLF, not dot-stuffed, no terminator.  msg_write puts it
 * on fd (buffered, no fsync) and returns 0, or -1 with errno set.
 */
int	 msg_write(const struct msg *, int fd);
/*
 * Take a message back from such a file: the header block is read into
 * memory, the body stays in the file (m->bodyfd is a dup of fd, from
 * m->bodyoff on).  body8/notutf8 are what msg_read found in the
 * body (kept in the queue entry).  The envelope (sender, rcpts) is the
 * caller's to fill.  Returns 0 (EX_OK) or a sysexits code with err set.
 */
int	 msg_load(struct msg *, int fd, int body8, int notutf8, char *err,
	    size_t errlen);

/* ---- msg.c: a message being worked on (msg.c, header.c, mime.c only) -- */

/* A header field as read or made. */
struct header {
	char	*text;		/* "Name: value", folds kept as CRLF WSP */
	size_t	 len;		/* no final CRLF */
	size_t	 cap;		/* octets allocated at text */
	size_t	 namelen;	/* field name, WSP before the ':' excluded */
	size_t	 valoff;	/* first octet after the ':' */
};

/* A growing byte string, always NUL-terminated for convenience. */
struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/* The body as it is being written: buffered, to an unlinked file. */
struct bodyfile;

/* What the body holds, gathered while it is read. */
struct bodystats {
	size_t		 overlong;	/* lines over SMTP_LINE octets */
	size_t		 nuls;
	size_t		 firstnul;	/* message line of the first NUL */
	size_t		 eightbit;	/* octets >= 0x80 */
	int		 notutf8;
	unsigned char	 utf8_need;	/* continuation octets to come */
	unsigned char	 utf8_lo;	/*   and the range of the next one */
	unsigned char	 utf8_hi;
};

/* Reading state while the caller's input is taken in. */
struct intake {
	int		 inbody;
	int		 done;		/* the lone "." was seen */
	int		 rest;		/*   and input came after it */
	int		 pending_cr;	/* last octet was CR: swallow an LF */
	int		 held_dot;	/* body line so far is ".", unwritten */
	size_t		 lineno;	/* message line being read, from 1 */
	size_t		 linelen;	/* octets in the current body line */
	size_t		 hdrbytes;	/* header block so far, CRLFs counted */
	struct buf	 line;		/* current line of the header block */
};

/* Everything msg_read() works with. */
struct work {
	struct msg		*msg;
	const struct msgopts	*opts;
	const struct conf	*conf;
	char			*err;
	size_t			 errlen;
	struct intake		 in;
	struct bodyfile		*body;
	struct bodystats	 st;
	int			 body8;		/* body still has 8-bit */
	size_t			 rcptcap;
	struct buf		 note;
	int			 pw_done;	/* getpwuid() tried */
	char			*login;
	char			*gecos;
};

/* The error, one line, into w->err (cut to fit); returns code. */
#define failf(w, code, ...) \
	errf((w)->err, (w)->errlen, (code), __VA_ARGS__)
/* failf for a failed allocation: EX_OSERR. */
int	 nomem(struct work *w);
/* Append to a buf: 0, or -1 when out of memory (b as it was). */
int	 buf_add(struct buf *b, const void *p, size_t n);
int	 buf_str(struct buf *b, const char *s);
int	 buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((__format__(__printf__, 2, 3)));
/*
 * The body file: opened empty in $TMPDIR, written through its buffer,
 * and handed to w->msg as its body by bodyfile_adopt (which flushes).
 * Each returns EX_OK or a sysexits code with w->err set.
 */
int	 bodyfile_open(struct work *w, struct bodyfile **bfp);
int	 bodyfile_put(struct work *w, struct bodyfile *bf, const char *p,
	    size_t n);
int	 bodyfile_putc(struct work *w, struct bodyfile *bf, char c);
int	 bodyfile_adopt(struct work *w, struct bodyfile *bf);
/* Close and free one not adopted (NULL is fine). */
void	 bodyfile_free(struct bodyfile *bf);
/*
 * Hand m's body to fn chunk by chunk.  Returns 0, fn's non-zero result,
 * or -1 with errno set when the body file cannot be read.
 */
int	 body_chunks(const struct msg *m,
	    int (*fn)(void *, const char *, size_t), void *arg);
/* A work area on message m, errors to err. */
void	 work_init(struct work *w, struct msg *m, char *err, size_t errlen);
/* Add to msg->note, the one-line account of what was changed. */
int	 add_note(struct work *w, const char *what);
/* m->size (RFC 1870) and m->eightbit, from the header block and body. */
void	 measure(struct msg *m);

/* ---- header.c: the header block, the envelope (msg.c, mime.c only) ---- */

/*
 * A field name (RFC 5322 3.6.8, obs WSP before the colon): its length,
 * *valoff just past the ':'; 0 if s is not a header field line.
 */
size_t	 field_name(const char *s, size_t len, size_t *valoff);
/* Is h a field of this name (case-insensitive)? */
int	 field_is(const struct header *h, const char *name);
/* The first field of that name, or NULL. */
struct header *find_field(const struct msg *m, const char *name);
/*
 * Append a field to w->msg: header_push takes text over on success,
 * header_add copies it.  EX_OK or a sysexits code.
 */
int	 header_push(struct work *w, char *text, size_t len);
int	 header_add(struct work *w, const char *text);
/* Replace a field's whole text (name included); b is taken over. */
void	 header_replace(struct header *h, struct buf *b);
/* Drop the fields whose drop[] is set (one entry per field). */
void	 header_compact(struct msg *m, const unsigned char *drop);
/*
 * msg_read's steps, in this order: the envelope sender, the recipients
 * (argv and with -t the header), the header rewritten (Bcc out, local
 * names), From/Date/Message-ID added.  EX_OK or a sysexits code.
 */
int	 step_sender(struct work *w);
int	 step_rcpts(struct work *w);
int	 step_rewrite(struct work *w);
int	 step_add_fields(struct work *w);

/* ---- mime.c: a body and header SMTP can carry ------------------------- */

/*
 * For a smarthost without 8BITMIME (RFC 6152 3): re-encode an 8-bit body
 * as quoted-printable where that is allowed (a single part, not already
 * encoded).  Returns 0 (EX_OK), or a sysexits code with err set.
 */
int	 msg_to_7bit(struct msg *, char *err, size_t errlen);
/*
 * msg_read's steps after header.c's (msg.c only): a body with NULs or
 * lines over SMTP_LINE made fit, then header lines over it folded.
 * EX_OK or a sysexits code.
 */
int	 step_body(struct work *w);
int	 step_fold_headers(struct work *w);

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
/*
 * The local end as an RFC 5321 4.1.3 address literal ("[192.0.2.7]",
 * "[IPv6:2001:db8::7]") into buf.  Returns 0, or -1 (getsockname failed).
 */
int	 conn_local_literal(const struct conn *, char *buf, size_t size);
void	 conn_close(struct conn *);

/* ---- net.c: TCP to the smarthost (net.c and tls.c only) --------------- */

/* The socket under a struct conn, and the deadline of what waits on it. */
struct sock {
	int			 fd;		/* -1: not connected */
	char			 peer[300];	/* what conn_peer() gives */
	char			 error[256];	/* the last failure, one line */
	struct timespec		 deadline;
	int			 timeout;	/* seconds, for messages */
	struct timespec		 cap;		/* conf's submit_end */
	int			 cap_seconds;	/*   its submit_timeout */
	int			 capped;	/* the deadline is the cap */
	int			 hungup;	/* peer closed or reset */
};

/*
 * Connect to each address of conf->host in turn until one answers, each
 * try bounded by conf's connect timeout.  Returns 0 with s->fd the
 * socket (non-blocking), or -1 with s->error summing up every try.
 * s->peer names the address last tried.
 */
int	 connect_any(struct sock *, const struct conf *);
/* Set the deadline for the coming waits, in seconds from now (or cap). */
void	 sock_timeout(struct sock *, int seconds);
/*
 * Read or write some octets before the deadline.  Returns how many (at
 * least one), or -1 with s->error set, and s->hungup if the smarthost
 * closed or reset the connection.
 */
ssize_t	 sock_read(struct sock *, void *buf, size_t len);
ssize_t	 sock_write(struct sock *, const void *buf, size_t len);

/*
 * The next two sections use BearSSL's types: they are seen only where
 * <bearssl.h> was included first (anchors.c, keys.c, tls.c), so that the
 * rest of relay does without it.
 */
#ifdef BR_TLS12

/* ---- anchors.c: trust anchors and pins (keys.c and tls.c only) ------- */

#define DN_MAX		1024	/* longest CA subject name we keep */
#define DER_MAX		16384	/* largest CA or client certificate kept */
#define LEAF_MAX	16384	/* server certificate octets kept */

/* A PEM file as pem_load_certs reads it: what a pem_cert_fn is handed. */
struct pem_loader {
	const char		*what;		/* "ca_file", for messages */
	const char		*path;
	br_x509_decoder_context	 dc;
	unsigned char		 dn[DN_MAX];
	size_t			 dnlen;
	int			 dn_overflow;
	unsigned char		 der[DER_MAX];
	size_t			 derlen;
	uint32_t		 acc;		/* Base64 bits not yet output */
	int			 bits;
	int			 padded;	/* '=' seen: object data ends */
};

/*
 * Called at the end of each certificate with its DER in l->der (l->derlen
 * octets, more than fit if it is oversized).  Returns 0, or -1 with err
 * set.
 */
typedef int (*pem_cert_fn)(void *arg, struct pem_loader *l, char *err,
    size_t errlen);
/*
 * Open path and hand each certificate in it to keep(); other PEM objects
 * are skipped.  what ("ca_file") names the file in messages.  Returns 0,
 * or -1 with err set, by keep() or here.
 */
int	 pem_load_certs(const char *what, const char *path, pem_cert_fn keep,
	    void *arg, char *err, size_t errlen);

/* The CAs of ca_file, as BearSSL takes them; zeroed is none. */
struct anchors {
	br_x509_trust_anchor	*ta;
	size_t			 n;
	int			 how;		/* ANCHORS_FAST, or a test's */
	size_t			 walked;	/* of n, read by ta_walk */
};

/*
 * Load the CAs of the PEM file path (ca_file) into a.  A file without a
 * usable one is an error too.  Returns 0, or -1 with err set.
 */
int	 anchors_load(struct anchors *, const char *path, char *err,
	    size_t errlen);
/* Free what a holds, also after a failed anchors_load. */
void	 anchors_free(struct anchors *);

#define PIN_CERT	1	/* tls_fingerprint did not match */
#define PIN_KEY		2	/* tls_pubkey_fingerprint did not match */

/*
 * The X.509 class of tls_fingerprint and tls_pubkey_fingerprint
 * (pin_vtable).  The caller sets vtable, pin and key_pin, and chain to
 * BearSSL's validator if it must be asked too; after the handshake
 * mismatch says which pin failed, got and got_key what the server has.
 */
struct pin_x509 {
	const br_x509_class	*vtable;	/* first: BearSSL passes &vtable */
	const br_x509_class	**chain;	/* the validator, or NULL */
	const unsigned char	*pin;		/* NULL if not pinned */
	const unsigned char	*key_pin;	/* NULL if not pinned */
	br_sha256_context	 hash;
	br_x509_decoder_context	 leaf;
	unsigned char		 der[LEAF_MAX];	/* the leaf's first octets */
	size_t			 derlen;	/* octets of the leaf seen */
	uint32_t		 leaflen;	/* its length as announced */
	unsigned char		 got[br_sha256_SIZE];	  /* the leaf's hash */
	unsigned char		 got_key[br_sha256_SIZE]; /* its key's hash */
	int			 have_key;	/* got_key is set */
	int			 mismatch;	/* PIN_CERT | PIN_KEY */
	unsigned		 depth;
};

extern const br_x509_class pin_vtable;

/* ---- keys.c: the client certificate and its key (tls.c only) ---------- */

/*
 * tls_client_cert and tls_client_key: what relay shows when the smarthost
 * asks for a certificate.  It also notes that the server asked, so that a
 * refusal can be explained when relay had nothing to show.
 */
struct client_auth {
	const br_ssl_client_certificate_class *vtable;	/* first */
	br_x509_certificate	*chain;		/* DER, leaf first */
	size_t			 nchain;
	br_skey_decoder_context	 key;		/* the private key is in here */
	int			 key_type;	/* BR_KEYTYPE_RSA/EC; 0: none */
	int			 asked;		/* a CertificateRequest came */
	int			 sent;		/* and our chain went */
};

/*
 * Read tls_client_cert and tls_client_key into a, and check that the key
 * is the first certificate's.  Returns 0, or -1 with err set and a freed.
 */
int	 client_key_load(struct client_auth *, const struct conf *,
	    char *err, size_t errlen);
/* Free the chain and wipe the key; a zeroed a is fine too. */
void	 client_key_free(struct client_auth *);
/* BearSSL's client certificate handler over a struct client_auth. */
extern const br_ssl_client_certificate_class client_key_vtable;
/* "RSA", "EC" or "unknown": a BR_KEYTYPE_* for messages. */
const char *key_type_name(int type);

#endif /* BR_TLS12 */

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
 * (tests: smtp.c's own reader, exported for unit_smtp and the fuzzer)
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
	time_t		 warned;	/* sender told of the delay; 0: not */
	time_t		 failed_at;	/* moved to failed/; 0: unknown */
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
/*
 * The same under a chosen id (see queue_new_id; EEXIST if it is taken),
 * recording uid as the submitter's.
 */
int	 queue_add_as(struct queue *, const struct msg *, const char *origin,
	    const char *id, uid_t uid, struct qentry *e, char *err,
	    size_t errlen);
/* A fresh id: creation time and randomness, sorting by age. */
void	 queue_new_id(char *id, size_t idlen);
/* Is anything named id in queue/ or failed/ (an entry, locked or not)? */
int	 queue_has(struct queue *, const char *id);
/*
 * Keep what never became a message (a bad spool file) in failed/ID:
 * srcfd's bytes (none if -1), why, uid as the submitter's.  Returns
 * EX_OK or a sysexits code.
 */
int	 queue_add_failed(struct queue *, const char *id, uid_t uid,
	    int srcfd, const char *origin, const char *why, char *err,
	    size_t errlen);
/*
 * Remove tmp/ID left by a crash, for a caller that alone may use that id
 * (spool.c holds its claim's lock).  Returns 0 when there is no tmp/ID
 * (any longer), -1 when a process still holds it or it cannot go.
 */
int	 queue_clear_tmp(struct queue *, const char *id);
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
/*
 * Remove what a crash left in tmp/ (an hour old, not locked), and the
 * entries of failed/ older than conf->failed_max_age (each logged).
 */
void	 queue_tidy(struct queue *, const struct conf *);
/*
 * Is the locked entry's message file as long as its envelope says?
 * Returns 0, or -1 with err saying how it differs.
 */
int	 queue_intact(const struct qentry *, char *err, size_t errlen);
/* Release the lock and free the entry. */
void	 qentry_free(struct qentry *);
/* The envelope file format, both ways.  (tests: the parser's fuzzer) */
int	 qentry_parse(struct qentry *, const char *text, size_t len,
	    char *err, size_t errlen);
char	*qentry_format(const struct qentry *);

/* ---- bounce.c: delivery status notifications (RFC 3464) --------------- */

/* What a report says of its recipients (RFC 3464 2.3.3 Action). */
enum report_kind {
	REPORT_FAILED,		/* given up on: a bounce */
	REPORT_DELAYED		/* still pending after delay_warning */
};

/*
 * Queue a report of kind to e's sender about the recipients listed in
 * which[] (indexes into e->rcpts: RS_FAILED ones with their replies for
 * REPORT_FAILED, RS_PENDING ones for REPORT_DELAYED), sent from the null
 * sender.  The new entry is returned in *b, locked, for the caller to
 * deliver.  Never call it for a null-sender entry.  Returns EX_OK or a
 * sysexits code with err set.
 */
int	 bounce_add(struct queue *, const struct conf *, enum report_kind,
	    const struct qentry *e, const size_t *which, size_t nwhich,
	    struct qentry *b, char *err, size_t errlen);
/*
 * (tests) The report itself, as bounce_add queues it: written to fd (LF or CRLF
 * lines; msg_read canonicalises), the original header block read from
 * e->msgfd.  now is the time the report says it was made.  Returns 0, or
 * -1 with err set.
 */
int	 bounce_write(int fd, const struct conf *, enum report_kind,
	    const struct qentry *e, const size_t *which, size_t nwhich,
	    time_t now, char *err, size_t errlen);

/* ---- deliver.c: delivering queue entries ------------------------------ */

/* One run of relay: a submission or a flush, over one session. */
struct run {
	struct conf		*conf;		/* conf_secret fills it in */
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

void	 run_init(struct run *, struct conf *, struct queue *);
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

/*
 * Write one error line into err (errlen octets, always terminated, cut
 * if need be) and return ret: "return errf(err, errlen, EX_DATAERR,
 * ...)".  The per-file forms (failf, perr, serr, qerr, lerr) only say
 * which buffer and which return value.
 */
int	 errf(char *err, size_t errlen, int ret, const char *fmt, ...)
	    __attribute__((__format__(__printf__, 4, 5)));
int	 verrf(char *err, size_t errlen, int ret, const char *fmt, va_list ap)
	    __attribute__((__format__(__printf__, 4, 0)));
/* One log line: syslog LOG_MAIL (LOG_INFO if ok, else LOG_ERR) or stderr. */
void	 log_line(const struct conf *, int ok, const char *fmt, ...)
	    __attribute__((__format__(__printf__, 3, 4)));
/*
 * Copy src to dst making it safe for a terminal or syslog: "\\" for a
 * backslash, \ooo for octets outside printable ASCII (relay(8), Delivery).
 */
void	 sanitise(char *dst, size_t dstlen, const char *src, size_t srclen);
/* The same for text sanitise() made already: its escapes kept as they are. */
void	 sanitise_kept(char *dst, size_t dstlen, const char *src);
/* Wall time since start (CLOCK_MONOTONIC), in seconds. */
double	 seconds_since(const struct timespec *start);
/* Write all of p, or -1 with errno set. */
int	 write_all(int fd, const char *p, size_t n);
/* Read up to n octets at off; a short count means the end of the file. */
ssize_t	 pread_all(int fd, char *p, size_t n, off_t off);
#define HEX_UPPER	1	/* hex_encode: A-F, else a-f */
#define HEX_COLONS	2	/*   "AB:CD:...", as fingerprints are shown */
/* Hex of n octets of src into dst, cut to fit, always terminated. */
void	 hex_encode(char *dst, size_t dstlen, const void *src, size_t n,
	    int how);
/* Random lowercase hex digits filling dst (up to 64), terminated. */
void	 hex_random(char *dst, size_t dstlen);
/* Base64 (RFC 4648) of src into dst; returns length or -1 if too small. */
ssize_t	 b64_encode(char *dst, size_t dstlen, const void *src, size_t srclen);
/* Is c WSP (RFC 5234: SP or HTAB)?  Inline: it runs per octet. */
static inline int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/*
 * The one buffered writer: octets gather in buf and go to put(ctx) a
 * full buffer at a time (wbuf_put_fd: ctx points to an fd).  put, and
 * so wbuf_put and wbuf_flush, return 0 or -1 with errno set.
 */
#define WBUF_SIZE	65536
struct wbuf {
	msg_put_fn	 put;
	void		*ctx;
	size_t		 used;
	char		 buf[WBUF_SIZE];
};
void	 wbuf_init(struct wbuf *, msg_put_fn put, void *ctx);
int	 wbuf_put_more(struct wbuf *, const char *p, size_t n);
int	 wbuf_flush(struct wbuf *);
int	 wbuf_put_fd(void *ctx, const char *p, size_t n);
/* Inline for what fits: the body is copied a line at a time. */
static inline int
wbuf_put(struct wbuf *b, const char *p, size_t n)
{
	if (n > sizeof(b->buf) - b->used)
		return wbuf_put_more(b, p, n);
	memcpy(b->buf + b->used, p, n);
	b->used += n;
	return 0;
}
static inline int
wbuf_putc(struct wbuf *b, char c)
{
	if (b->used == sizeof(b->buf) && wbuf_flush(b) == -1)
		return -1;
	b->buf[b->used++] = c;
	return 0;
}
/* Does this process run with more rights than its caller (setgid)? */
int	 privileged(void);

/* ---- for the unit tests only: anchors.c, for test/unit_anchors.c ----- */

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
