/*
 * libFuzzer target for the envelope parser: any text is either refused
 * with one line starting "envelope", or parsed into an entry whose
 * addresses pass addr_check, that qentry_format writes back, and whose
 * written form parses and formats to the very same text (a queue_save
 * must never make an entry unreadable or change it on the next save).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qentry e, e2;
	char err[ERRLEN], *text, *again;
	size_t i;

	err[0] = '\0';
	if (qentry_parse(&e, (const char *)data, size, err, sizeof err) != 0) {
		if (strncmp(err, "envelope", 8) != 0 ||
		    strchr(err, '\n') != NULL || e.sender != NULL ||
		    e.rcpts != NULL || e.msgfd != -1)
			abort();
		return 0;
	}
	if (e.sender == NULL || e.id[0] == '\0' || e.msgfd != -1 ||
	    addr_check(e.sender) != NULL)
		abort();
	for (i = 0; i < e.nrcpts; i++)
		if (e.rcpts[i].addr == NULL ||
		    addr_check(e.rcpts[i].addr) != NULL ||
		    e.rcpts[i].state > RS_FAILED)
			abort();
	if ((text = qentry_format(&e)) == NULL)
		abort();
	if (qentry_parse(&e2, text, strlen(text), err, sizeof err) != 0)
		abort();		/* written, then unreadable */
	if ((again = qentry_format(&e2)) == NULL || strcmp(again, text) != 0)
		abort();		/* not a fixed point */
	if (e2.nrcpts != e.nrcpts || strcmp(e2.sender, e.sender) != 0 ||
	    strcmp(e2.id, e.id) != 0)
		abort();
	free(again);
	free(text);
	qentry_free(&e2);
	qentry_free(&e);
	return 0;
}
