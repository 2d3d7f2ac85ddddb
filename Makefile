# relay: see README.  `make` builds relay, `make check` runs the test suite
# (against a build with AddressSanitizer and UBSan), `make install` installs.

PROG	= relay
SRCS	= relay.c conf.c addr.c msg.c smtp.c tls.c queue.c flush.c spool.c bounce.c mailq.c util.c
OBJS	= $(SRCS:.c=.o)

PREFIX	?= /usr/local
SBINDIR	?= $(PREFIX)/sbin
MANDIR	?= $(PREFIX)/share/man
EXAMPLEDIR ?= $(PREFIX)/share/relay
# The default queue directory: RELAY_QUEUE_DEFAULT in relay.h.
QUEUEDIR = /var/spool/relay

CC	?= cc
CFLAGS	?= -O2 -g
BSD_CFLAGS != pkg-config --cflags libbsd-overlay
BSD_LIBS   != pkg-config --libs libbsd-overlay
WARN	= -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
	  -Wmissing-prototypes -Wformat=2
CPPFLAGS += -D_DEFAULT_SOURCE $(BSD_CFLAGS)
ALLCFLAGS = -std=c99 $(WARN) $(CFLAGS)
LDLIBS	+= -lbearssl $(BSD_LIBS)

# The test build: every warning an error, sanitizers on.
SAN	= -fsanitize=address,undefined -fno-sanitize-recover=all \
	  -fno-omit-frame-pointer
TCFLAGS	= -std=c99 $(WARN) -Werror -O1 -g $(SAN)
TOBJS	= $(SRCS:%.c=test/obj/%.o)
LIBTOBJS = $(filter-out test/obj/relay.o,$(TOBJS))
UNITS	= $(patsubst test/%.c,test/obj/%,$(wildcard test/unit_*.c))

all: $(PROG)

$(PROG): $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

.c.o:
	$(CC) $(ALLCFLAGS) $(CPPFLAGS) -c $<

$(OBJS): relay.h

test/obj/%.o: %.c relay.h
	@mkdir -p test/obj
	$(CC) $(TCFLAGS) $(CPPFLAGS) -c -o $@ $<

test/obj/relay: $(TOBJS)
	$(CC) $(SAN) -o $@ $(TOBJS) $(LDLIBS)

test/obj/unit_%: test/unit_%.c test/unit.h $(LIBTOBJS)
	$(CC) $(TCFLAGS) $(CPPFLAGS) -I. -o $@ $< $(LIBTOBJS) $(LDLIBS)

# The production build must also be clean under -Werror.
werror:
	$(MAKE) clean-objs
	$(MAKE) CFLAGS="-O2 -g -Werror" $(PROG)

check: werror test/obj/relay $(UNITS)
	bash test/run

# Fuzzing (clang's libFuzzer; not part of check): FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
FUZZERS	= addr conf msg queue reply
FUZZ_SRCS = $(filter-out relay.c,$(SRCS))

fuzz:
	@mkdir -p test/obj
	for f in $(FUZZERS); do \
		clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined \
		    -fno-sanitize-recover=all $(CPPFLAGS) -I. \
		    -o test/obj/fuzz_$$f test/fuzz/fuzz_$$f.c $(FUZZ_SRCS) \
		    $(LDLIBS) || exit 1; \
		mkdir -p test/tmp/corpus_$$f; \
		cp test/fuzz/seed_$$f.* test/tmp/corpus_$$f/ 2>/dev/null; \
		test/obj/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) \
		    -max_len=4096 -print_final_stats=1 \
		    test/tmp/corpus_$$f || exit 1; \
	done

# The cron.d file and the systemd units go to EXAMPLEDIR with the path of
# the installed relay, for the administrator to copy (README): nothing is
# enabled.  An existing queue directory is left alone (its mode or owner
# may have been changed on purpose).
install: $(PROG)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(PROG) $(DESTDIR)$(SBINDIR)/$(PROG)
	ln -sf $(PROG) $(DESTDIR)$(SBINDIR)/sendmail
	ln -sf $(PROG) $(DESTDIR)$(SBINDIR)/mailq
	ln -sf $(PROG) $(DESTDIR)$(SBINDIR)/newaliases
	install -m 644 relay.8 $(DESTDIR)$(MANDIR)/man8/relay.8
	ln -sf relay.8 $(DESTDIR)$(MANDIR)/man8/sendmail.8
	ln -sf relay.8 $(DESTDIR)$(MANDIR)/man8/mailq.8
	ln -sf relay.8 $(DESTDIR)$(MANDIR)/man8/newaliases.8
	install -m 644 relay.conf.5 $(DESTDIR)$(MANDIR)/man5/relay.conf.5
	install -d $(DESTDIR)$(EXAMPLEDIR)
	for f in relay.cron relay-queue.service relay-queue.timer; do \
		sed 's|/usr/local/sbin/relay|$(SBINDIR)/$(PROG)|g' $$f \
		    >$(DESTDIR)$(EXAMPLEDIR)/$$f && \
		chmod 644 $(DESTDIR)$(EXAMPLEDIR)/$$f || exit 1; \
	done
	test -d $(DESTDIR)$(QUEUEDIR) || install -d -m 700 $(DESTDIR)$(QUEUEDIR)

# A self-contained demonstration: a cron mail through ./relay to a local
# test smarthost (test/demo.sh).  Not part of check.
demo: $(PROG)
	@bash test/demo.sh

lint:
	mandoc -Tlint -W warning relay.8 relay.conf.5
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --inline-suppr -D__GNUC__ $(SRCS)

clean-objs:
	rm -f $(OBJS)

clean: clean-objs
	rm -f $(PROG)
	rm -rf test/obj test/tmp

.PHONY: all check werror fuzz install lint clean clean-objs demo
