/* bounce.c: being written (issue 3). */
#include "relay.h"
