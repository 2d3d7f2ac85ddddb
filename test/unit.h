/*
 * A minimal unit-test harness: each CHECK prints "ok - what" or
 * "not ok - what", test/run counts them.
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failed;

#define CHECK(cond, ...) do {						\
	int ok_ = (cond) ? 1 : 0;					\
	printf(ok_ ? "ok - " : "not ok - ");				\
	printf(__VA_ARGS__);						\
	if (!ok_) {							\
		printf("  [%s:%d: %s]", __FILE__, __LINE__, #cond);	\
		unit_failed = 1;					\
	}								\
	printf("\n");							\
} while (0)

#define CHECK_STR(got, want, ...) do {					\
	const char *g_ = (got), *w_ = (want);				\
	int same_ = (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0) ||\
	    (g_ == NULL && w_ == NULL);					\
	CHECK(same_, __VA_ARGS__);					\
	if (!same_)							\
		printf("#   got  \"%s\"\n#   want \"%s\"\n",		\
		    g_ ? g_ : "(null)", w_ ? w_ : "(null)");		\
} while (0)

#define UNIT_END() return unit_failed

#endif
