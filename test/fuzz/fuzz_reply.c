/*
 * libFuzzer target for the SMTP reply parser: lines split at LF are fed
 * until a reply completes or is refused; no crash, and a completed reply
 * has a code from 200 to 559.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct reply r;
	const char *p = (const char *)data, *end = p + size, *nl;
	char err[ERRLEN];
	int rv = 0;

	reply_init(&r);
	while (p < end && rv == 0) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		rv = reply_feed(&r, p, (size_t)(nl - p), err, sizeof err);
		p = nl + 1;
	}
	if (rv == 1 && (r.code < 200 || r.code > 559 || r.len >= REPLY_MAX))
		abort();
	return 0;
}
