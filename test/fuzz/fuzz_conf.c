/*
 * libFuzzer target for the configuration parser: any file either loads
 * into a consistent struct conf or is refused with one line naming it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[] = "/tmp/relay-fuzz-conf.XXXXXX";
	static int fd = -1;
	struct conf c;
	char err[ERRLEN];

	if (fd == -1 && (fd = mkstemp(path)) == -1)
		abort();
	if (ftruncate(fd, 0) == -1 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();
	err[0] = '\0';
	if (conf_load(&c, path, err, sizeof err) == -1) {
		if (strncmp(err, path, strlen(path)) != 0 ||
		    strchr(err, '\n') != NULL)
			abort();
		return 0;
	}
	/*
	 * The secret is there, or conf_secret() will fetch it; helo may be
	 * NULL (helo_name() decides then).
	 */
	if (c.host == NULL || c.ca_file == NULL ||
	    c.port < 1 || c.port > 65535 ||
	    (c.user != NULL) != (c.password != NULL ||
	    c.password_command != NULL || c.password_env != NULL ||
	    c.password_file != NULL) ||
	    (c.password != NULL) + (c.password_command != NULL) +
	    (c.password_env != NULL) + (c.password_file != NULL) > 1 ||
	    (c.tls == TLS_NONE && c.user != NULL))
		abort();
	/* A pin, or the chain and name; a client key with its certificate. */
	if ((!c.pinned && !c.key_pinned && !c.verify_chain) ||
	    (c.client_cert != NULL) != (c.client_key != NULL) ||
	    c.max_rcpts < 1 || c.max_size < 0)
		abort();
	conf_free(&c);
	return 0;
}
