/*
 * The BSD functions relay uses that musl lacks, for the static build
 * only (make static passes -include compat.h); the dynamic build takes
 * them from libbsd.  compat.c has them.
 */
#ifndef RELAY_COMPAT_H
#define RELAY_COMPAT_H

#include <stddef.h>
#include <stdint.h>

void	 arc4random_buf(void *buf, size_t n);
uint32_t arc4random_uniform(uint32_t upper_bound);
void	 closefrom(int lowfd);
void	 freezero(void *p, size_t n);
const char *getprogname(void);
long long strtonum(const char *s, long long minval, long long maxval,
	    const char **errstr);

#endif /* RELAY_COMPAT_H */
