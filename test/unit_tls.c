/*
 * Unit tests for the certificate checks of conn_open (tls.c, with the
 * pins of anchors.c and the client certificate of keys.c), below
 * relay.conf: struct conf is built by hand, so that what conf.c never
 * produces is tried too (a zeroed verify_chain without a pin; both pins
 * at once).  The servers are test/smarthost.py on loopback, started and
 * stopped here by PID.  Run from the top of the tree, as test/run does.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "unit.h"

#define PKI	"test/tmp/pki"
#define OUT	"test/tmp/unit_tls"

struct server {
	pid_t	 pid;
	int	 port;
};

/* Start smarthost.py (smtps, no AUTH) with PKI/cert.chain.pem. */
static int
server_start(struct server *s, const char *name, const char *cert)
{
	char outdir[256], portfile[300], chain[256], key[256];
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	FILE *fp;
	int i;

	snprintf(outdir, sizeof outdir, OUT "/%s", name);
	snprintf(portfile, sizeof portfile, "%s/port", outdir);
	snprintf(chain, sizeof chain, PKI "/%s.chain.pem", cert);
	snprintf(key, sizeof key, PKI "/%s.key", cert);
	(void)unlink(portfile);
	if ((s->pid = fork()) == -1)
		return -1;
	if (s->pid == 0) {
		execl("/usr/bin/python3", "python3", "test/smarthost.py",
		    "--mode", "smtps", "--no-auth", "--cert", chain, "--key",
		    key, "--outdir", outdir, "--portfile", portfile,
		    (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {	/* 10 s */
		if ((fp = fopen(portfile, "r")) != NULL) {
			s->port = 0;
			if (fscanf(fp, "%d", &s->port) != 1)
				s->port = 0;
			fclose(fp);
			if (s->port > 0)
				return 0;
		}
		nanosleep(&pause, NULL);
	}
	return -1;
}

static void
server_stop(struct server *s)
{
	if (s->pid <= 0)
		return;
	(void)kill(s->pid, SIGTERM);
	(void)waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

/* The SHA-256 that a shell pipeline prints (sha256sum's hex). */
static int
sha256_of(const char *cmd, unsigned char out[32])
{
	char hex[65];
	unsigned int v;
	FILE *fp;
	int i, ok;

	if ((fp = popen(cmd, "r")) == NULL)
		return -1;
	ok = fscanf(fp, "%64s", hex) == 1 && strlen(hex) == 64;
	if (pclose(fp) != 0 || !ok)
		return -1;
	for (i = 0; i < 32; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

static int
cert_fp(const char *name, unsigned char out[32])
{
	char cmd[512];

	snprintf(cmd, sizeof cmd, "openssl x509 -in " PKI "/%s.crt -outform "
	    "der | sha256sum", name);
	return sha256_of(cmd, out);
}

static int
key_fp(const char *name, unsigned char out[32])
{
	char cmd[512];

	snprintf(cmd, sizeof cmd, "openssl x509 -in " PKI "/%s.crt -pubkey "
	    "-noout | openssl pkey -pubin -outform der | sha256sum", name);
	return sha256_of(cmd, out);
}

static void
conf_for(struct conf *c, const struct server *s)
{
	int i;

	memset(c, 0, sizeof *c);
	c->host = "localhost";
	c->port = s->port;
	c->tls = TLS_IMPLICIT;
	c->ca_file = PKI "/ca.crt";
	for (i = 0; i < TMO_COUNT; i++)
		c->timeout[i] = 10;
}

/*
 * Connect, and on success read the greeting.  Returns the sysexits code;
 * err holds the error, or the greeting.
 */
static int
try(const struct conf *c, char *err, size_t errlen)
{
	struct conn *cn;
	int ex = EX_OK;

	err[0] = '\0';
	if ((cn = conn_open(c, &ex, err, errlen)) == NULL)
		return ex;
	conn_timeout(cn, 10);
	if (conn_getline(cn, err, errlen) == -1) {
		snprintf(err, errlen, "%s", conn_error(cn));
		ex = EX_TEMPFAIL;
	}
	conn_close(cn);
	return ex;
}

int
main(void)
{
	struct server good = { 0, 0 }, self = { 0, 0 };
	unsigned char fp_cert[32], fp_key[32], fp_self[32], fp_selfkey[32];
	char err[ERRLEN], want[200];
	struct conf c;
	int ex;

	signal(SIGPIPE, SIG_IGN);
	if (system("bash test/pki.sh " PKI " >/dev/null 2>&1") != 0 ||
	    system("mkdir -p " OUT) != 0) {
		CHECK(0, "test PKI and " OUT " (run from the top of the tree)");
		UNIT_END();
	}
	CHECK(cert_fp("server", fp_cert) == 0 && key_fp("server", fp_key) ==
	    0 && cert_fp("selfsigned", fp_self) == 0 &&
	    key_fp("selfsigned", fp_selfkey) == 0,
	    "fingerprints from openssl");
	CHECK(memcmp(fp_cert, fp_key, 32) != 0 &&
	    memcmp(fp_key, fp_selfkey, 32) != 0,
	    "certificate, key and other key fingerprints differ");
	CHECK(server_start(&good, "good", "server") == 0 &&
	    server_start(&self, "self", "selfsigned") == 0,
	    "smarthosts started (ports %d, %d)", good.port, self.port);
	if (good.port == 0 || self.port == 0)
		goto done;

	/* A zeroed conf (no pin, verify_chain 0) still verifies. */
	conf_for(&c, &self);
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_TEMPFAIL && strstr(err, "not signed by a CA") != NULL,
	    "no pin and verify_chain 0: the chain is still checked: %s", err);
	conf_for(&c, &good);
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_OK && strncmp(err, "220 ", 4) == 0,
	    "no pin, valid chain: greeting read: %s", err);

	/* Both pins: both must match. */
	conf_for(&c, &self);
	c.ca_file = PKI "/no-such-ca.pem";
	c.pinned = c.key_pinned = 1;
	memcpy(c.pin, fp_self, 32);
	memcpy(c.key_pin, fp_selfkey, 32);
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_OK && strncmp(err, "220 ", 4) == 0,
	    "both pins match, no ca_file: greeting read: %s", err);
	memcpy(c.key_pin, fp_key, 32);
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_TEMPFAIL && strstr(err, "TLS: public key of localhost "
	    "does not match tls_pubkey_fingerprint") != NULL,
	    "both pins, the key's wrong: %s", err);
	memcpy(c.key_pin, fp_selfkey, 32);
	memcpy(c.pin, fp_cert, 32);
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_TEMPFAIL && strstr(err, "TLS: certificate of localhost "
	    "does not match tls_fingerprint") != NULL,
	    "both pins, the certificate's wrong: %s", err);
	memcpy(c.key_pin, fp_key, 32);
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_TEMPFAIL && strstr(err, "matches neither "
	    "tls_fingerprint nor tls_pubkey_fingerprint") != NULL,
	    "both pins wrong: %s", err);
	/* Each fingerprint the server has, in the form relay shows. */
	snprintf(want, sizeof want, "%02X:%02X:%02X", fp_self[0], fp_self[1],
	    fp_self[2]);
	CHECK(strstr(err, want) != NULL, "the certificate's shown: %s", want);
	snprintf(want, sizeof want, "%02X:%02X:%02X", fp_selfkey[0],
	    fp_selfkey[1], fp_selfkey[2]);
	CHECK(strstr(err, want) != NULL, "the key's shown: %s", want);

	/* tls_verify both: the chain as well. */
	c.verify_chain = 1;
	memcpy(c.pin, fp_self, 32);
	memcpy(c.key_pin, fp_selfkey, 32);
	c.ca_file = PKI "/ca.crt";
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_TEMPFAIL && strstr(err, "not signed by a CA") != NULL,
	    "both pins match, verify_chain, self-signed: refused: %s", err);
	conf_for(&c, &good);
	c.pinned = c.key_pinned = c.verify_chain = 1;
	memcpy(c.pin, fp_cert, 32);
	memcpy(c.key_pin, fp_key, 32);
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_OK, "both pins and verify_chain, valid chain: %s", err);
	c.host = "127.0.0.1";
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_CONFIG && strstr(err, "127.0.0.1 is an IP address") !=
	    NULL, "verify_chain with an IP address: refused: %s", err);
	c.verify_chain = 0;
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_OK, "pins alone with an IP address: %s", err);

	/* A certificate without its key (conf.c refuses it too). */
	conf_for(&c, &good);
	c.client_cert = PKI "/client-ec.crt";
	ex = try(&c, err, sizeof err);
	CHECK(ex == EX_CONFIG && strstr(err, "tls_client_cert is set but "
	    "tls_client_key is not") != NULL, "client cert, no key: %s", err);
done:
	server_stop(&good);
	server_stop(&self);
	UNIT_END();
}
