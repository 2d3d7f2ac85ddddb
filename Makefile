# relay: see README.  `make` builds relay, `make check` runs the test suite
# (against a build with AddressSanitizer and UBSan), `make install` installs.

PROG	= relay
SRCS	= relay.c conf.c env.c secret.c addr.c msg.c header.c mime.c smtp.c tls.c net.c anchors.c keys.c queue.c deliver.c spool.c bounce.c mailq.c names.c util.c
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

# The same for the setgid tests (t_privs, t_holes): without LeakSanitizer.
test/obj/relay-setgid: $(TOBJS) test/nolsan.c
	$(CC) $(SAN) -o $@ $(TOBJS) test/nolsan.c $(LDLIBS)

test/obj/unit_%: test/unit_%.c test/unit.h $(LIBTOBJS)
	$(CC) $(TCFLAGS) $(CPPFLAGS) -I. -o $@ $< $(LIBTOBJS) $(LDLIBS)

# The production build must also be clean under -Werror.
werror:
	$(MAKE) clean-objs
	$(MAKE) CFLAGS="-O2 -g -Werror" $(PROG)

check: werror test/obj/relay test/obj/relay-setgid $(UNITS)
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
# enabled.
#
# The setgid model (relay(8), SECURITY): relay root:$(RELAY_GROUP) mode 2755,
# the queue root:$(RELAY_GROUP) 2770, so that every user can queue mail and
# none can read it.  Run as root without DESTDIR, install makes the group
# and sets that up.  With DESTDIR (a package), or as another user, relay
# is installed 0755 and not setgid, and the queue 0700: chown(8) cannot
# name a group the target system may not have yet, and a setgid relay of
# any other group would lend that group's rights to every user.  An
# existing queue directory is left alone: its mode or owner may have been
# changed on purpose, and install never opens it up.  Its tmp/, queue/
# and failed/ are made here, with the modes queue_open (queue.c) would
# give them, so that the first user to submit does not own them; in an
# existing queue only when it is the setgid model's.
RELAY_GROUP = relay
QUEUESUBDIRS = tmp queue failed

install: $(PROG)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		getent group $(RELAY_GROUP) >/dev/null || \
		    (set -x; groupadd --system $(RELAY_GROUP)) || exit 1; \
		(set -x; install -o root -g $(RELAY_GROUP) -m 2755 $(PROG) \
		    $(SBINDIR)/$(PROG)) || exit 1; \
	else \
		(set -x; install -m 755 $(PROG) \
		    $(DESTDIR)$(SBINDIR)/$(PROG)) || exit 1; \
	fi
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
	@q=$(DESTDIR)$(QUEUEDIR); \
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		have=$$(stat -c '%a %U:%G' $$q 2>/dev/null); \
		if [ -d $$q ] && [ "$$have" != "2770 root:$(RELAY_GROUP)" ]; then \
			echo "install: $$q exists, left as it is ($$have;" \
			    "the setgid model wants 2770 root:$(RELAY_GROUP))"; \
		else \
			for d in $$q $(QUEUESUBDIRS:%=$$q/%); do \
				[ -d $$d ] || (set -x; install -d -o root \
				    -g $(RELAY_GROUP) -m 2770 $$d) || exit 1; \
			done; \
		fi; \
		echo "install: relay is setgid $(RELAY_GROUP): make" \
		    "/etc/relay.conf (and a password_file) root:$(RELAY_GROUP)" \
		    "mode 0640; see SECURITY in relay(8)"; \
	else \
		if [ ! -d $$q ]; then \
			for d in $$q $(QUEUESUBDIRS:%=$$q/%); do \
				(set -x; install -d -m 700 $$d) || exit 1; \
			done; \
		fi; \
		echo "install: DESTDIR set or not root: relay installed" \
		    "0755, not setgid; for the setgid model make it" \
		    "root:$(RELAY_GROUP) 2755 and $(QUEUEDIR) (and its" \
		    "$(QUEUESUBDIRS)) root:$(RELAY_GROUP) 2770 (SECURITY in" \
		    "relay(8))"; \
	fi

# One fully static relay, static/relay (no ldd dependencies), for
# containers and embedded boxes: musl (musl-tools) and BearSSL built from
# Debian's source package, fetched once into static/ by apt-get source
# through a private deb-src list made from the system's own apt sources
# (the system's apt configuration is not changed; needs dpkg-dev).  musl
# lacks a few BSD functions that libbsd gives the dynamic build: compat.c
# has them, for this build only.  To cross-build, name a musl-targeting
# compiler and BearSSL's CC:
#	make static STATIC_AR=aarch64-linux-gnu-ar MUSLCC="aarch64-linux-gnu-gcc \
#	    -specs /usr/lib/aarch64-linux-musl/musl-gcc.specs"
# (see README: Static build).
STATICDIR = static
BEARSSL	= $(STATICDIR)/bearssl
MUSLCC	?= musl-gcc
STATIC_AR ?= ar
STATIC_CFLAGS = -std=c99 $(WARN) -Werror -Os -ffunction-sections \
	  -fdata-sections -D_DEFAULT_SOURCE -include compat.h -I. \
	  -I$(BEARSSL)/inc
STATIC_OBJS = $(SRCS:%.c=$(STATICDIR)/obj/%.o) $(STATICDIR)/obj/compat.o
SRC_APT	= apt-get -q -o Dir::Etc::SourceList=/dev/null \
	  -o Dir::Etc::SourceParts=$(CURDIR)/$(STATICDIR)/apt/parts \
	  -o Dir::State::Lists=$(CURDIR)/$(STATICDIR)/apt/lists

static: $(STATICDIR)/relay

$(STATICDIR)/relay: $(STATIC_OBJS) $(BEARSSL)/build/libbearssl.a
	$(MUSLCC) -static -s -Wl,--gc-sections -o $@ $(STATIC_OBJS) \
	    $(BEARSSL)/build/libbearssl.a
	@ls -l $@ | awk '{ print "static: " $$NF ", " $$5 " octets, stripped" }'

$(STATIC_OBJS): relay.h compat.h $(BEARSSL)/build/libbearssl.a

$(STATICDIR)/obj/%.o: %.c
	@mkdir -p $(STATICDIR)/obj
	$(MUSLCC) $(STATIC_CFLAGS) -c -o $@ $<

$(BEARSSL)/build/libbearssl.a:
	rm -rf $(STATICDIR)/apt $(BEARSSL) && \
	mkdir -p $(STATICDIR)/apt/parts $(STATICDIR)/apt/lists/partial && \
	sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/*.sources \
	    >$(STATICDIR)/apt/parts/src.sources 2>/dev/null; \
	sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
	    >$(STATICDIR)/apt/parts/src.list 2>/dev/null; \
	$(SRC_APT) update >$(STATICDIR)/apt/update.log 2>&1 && \
	(cd $(STATICDIR)/apt && $(SRC_APT) source --download-only bearssl \
	    >source.log 2>&1) && \
	dpkg-source -x $(STATICDIR)/apt/bearssl_*.dsc $(BEARSSL) \
	    >$(STATICDIR)/apt/extract.log && \
	$(MAKE) -C $(BEARSSL) CONF=Unix CC="$(MUSLCC)" AR="$(STATIC_AR)" \
	    CFLAGS="-W -Wall -Os -ffunction-sections -fdata-sections" lib \
	    >$(STATICDIR)/bearssl.log 2>&1 || \
	{ for f in $(STATICDIR)/apt/*.log $(STATICDIR)/bearssl.log; do \
	    [ -f $$f ] && tail -n 5 $$f; done; exit 1; }

# The end-to-end tests (test/t_*.sh) against static/relay.
check-static: static
	RELAY=$(CURDIR)/$(STATICDIR)/relay bash test/run t_

# relay and its peers side by side (bench/compare, bench/README); never
# part of check.  bench/run measures relay alone.
bench: $(PROG)
	bash bench/compare

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
	rm -rf test/obj test/tmp $(STATICDIR)

.PHONY: all check werror fuzz install lint clean clean-objs demo bench \
	static check-static
