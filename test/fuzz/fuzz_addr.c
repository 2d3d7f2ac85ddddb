/*
 * libFuzzer target for the address-list parser: no crash, spans inside
 * the text, and every address it returns is checked without surprises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailbox *mb;
	char err[ERRLEN];
	size_t n, i;

	err[0] = '\0';
	if (addrlist_parse((const char *)data, size, &mb, &n, err,
	    sizeof err) == -1) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (mb[i].mb_start > mb[i].mb_end || mb[i].mb_end > size ||
		    mb[i].as_start > mb[i].as_end || mb[i].as_end > size ||
		    mb[i].as_start < mb[i].mb_start ||
		    mb[i].as_end > mb[i].mb_end)
			abort();
		(void)addr_check(mb[i].addr);
	}
	addrlist_free(mb, n);
	return 0;
}
