#!/bin/bash
# Privileges (issue 4; SECURITY in relay(8)): relay installed setgid to a
# group that alone may read the configuration and the password and write
# the queue.  As nobody and as www-data: a submission is queued and
# delivered; neither can read the configuration, the password or the
# other's queued message; -C and RELAY_CONF make relay give up the group
# before the file is opened, so "-C FILE" shows no byte of a file only the
# group may read (nor of /etc/shadow); TMPDIR is not used; no core dumps
# and no tracing; mailq and -q see the caller's own entries only.  Then
# the mode without setgid (containers, no_new_privs): one user owns the
# queue and the configuration.  Then make install: the group, relay
# 2755 and the queue 2770 (in a mount namespace), or, with DESTDIR, no
# setgid at all.
#
# The group is "mail" (Debian's; the test users run without it); the
# setgid relay is test/obj/relay's objects linked again with leak
# detection built in as off: LeakSanitizer cannot trace a process that
# the kernel makes undumpable, and a setgid process ignores ASAN_OPTIONS
# (AddressSanitizer and UBSan stay on).  test/privs_as.sh runs it as a
# user in a mount namespace whose /etc holds the test's relay.conf: -C
# would make it give up the group.  Needs root, setpriv, unshare,
# overlayfs and a file system without nosuid; otherwise "ok # skip".
. "$(dirname "$0")/lib.sh"
t_setup

G=mail
NOBODY=65534
WWW=33
AS=$TESTDIR/privs_as.sh

skip_all() {
	echo "ok # skip $*"
	exit 0
}

# ---- the setgid installation, in $T -------------------------------------

setgid_relay skip_all
ln -s relay "$T/sbin/mailq"	# setgid through the link, as installed

start_smarthost s --mode smtps
cp "$PKI/ca.crt" "$T/files/ca.crt"
printf '%s\n' "$T_PASS" >"$T/files/password"
write_conf_for s "$T/etc/relay.conf" password - \
    password_file "$T/files/password" ca_file "$T/files/ca.crt" \
    queue "$T/queue" from relay@example.org
install -d -o root -g "$G" -m 2770 "$T/queue"
chown "root:$G" "$T/etc/relay.conf" "$T/files/password" "$T/files/ca.crt"
chmod 640 "$T/etc/relay.conf" "$T/files/password" "$T/files/ca.crt"
# A file for the group only, shaped like a configuration: read with the
# group's rights it would be quoted back in "unknown keyword" errors.
MARK=MARKER-$RANDOM$RANDOM-only-for-$G
printf '%s\n' "$MARK host example.org" >"$T/marker"
chown "root:$G" "$T/marker"
chmod 640 "$T/marker"
echo probe >"$T/etc/relay-probe"
chmod 644 "$T/etc/relay-probe"
QDIR=$T/queue

out=$(bash "$AS" "$T/etc" $NOBODY $NOBODY cat /etc/relay-probe 2>&1)
[ "$out" = probe ] || skip_all "no mount namespace with an overlay on /etc here: $out"

# as UID [VAR=VALUE...] -- ARGS...: run_relay with the setgid relay (or
# $AS_RELAY) as UID (its own group, no others), environment VARs set.
as() {
	local uid=$1 envs=()
	shift
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	RELAY=${AS_RELAY:-$SG} RELAY_PREFIX="bash $AS $T/etc $uid $uid env ${envs[*]}" \
	    run_relay "$@"
}

# cannot USER FILE WHAT: USER (a uid) gets "Permission denied" reading FILE.
cannot() {
	local got
	if ! got=$(setpriv --reuid="$1" --regid="$1" --clear-groups cat "$2" 2>&1) &&
	    [[ $got == *"Permission denied"* ]]; then
		ok "$3: uid $1 cannot read it (Permission denied)"
	else
		fail "$3: uid $1 cannot read it (Permission denied)" "$got"
	fi
}

# ---- submissions as nobody and www-data ---------------------------------

run_relay_as_msg() {	# UID BODY: a message from uid to to@example.org
	printf 'Subject: from uid %s\n\n%s\n' "$1" "$2" | as "$1" -- to@example.org
}

run_relay_as_msg $NOBODY "hello from nobody"
assert_exit 0 "nobody: submission exits 0"
if wait_msgs s 1 5; then
	assert_file_contains "$SMARTHOST_s_OUT/1.eml" "hello from nobody" \
	    "nobody: message delivered"
else
	fail "nobody: message delivered" "$(cat "$RELAY_ERR")"
fi
assert_log "nobody" "status=sent " "uid=$NOBODY( |$)"

run_relay_as_msg $WWW "hello from www-data"
assert_exit 0 "www-data: submission exits 0"
if wait_msgs s 2 5; then
	assert_file_contains "$SMARTHOST_s_OUT/2.eml" "hello from www-data" \
	    "www-data: message delivered"
else
	fail "www-data: message delivered" "$(cat "$RELAY_ERR")"
fi
assert_log "www-data" "status=sent " "uid=$WWW( |$)"

# Smarthost down: each one's message stays queued.
stop_server s
run_relay_as_msg $WWW "WWW-DATA-QUEUED-BODY"
assert_exit 0 "www-data, smarthost down: queued, exit 0"
WID=$(q_ids)
assert_match "$WID" '^[0-9a-f]{14}$' "www-data, smarthost down: one entry"
run_relay_as_msg $NOBODY "NOBODY-QUEUED-BODY"
assert_exit 0 "nobody, smarthost down: queued, exit 0"
NID=$(q_ids | grep -vx "$WID")
assert_match "$NID" '^[0-9a-f]{14}$' "nobody, smarthost down: a second entry"
assert_eq "$(q_env "$WID" uid) $(q_env "$NID" uid)" "$WWW $NOBODY" \
    "the envelopes hold the submitters' real uids"
E=$QDIR/queue/$WID
assert_eq "$(stat -c '%a %u:%g' "$E" "$E/message" "$E/envelope" | tr '\n' ' ')" \
    "2770 $WWW:$GID 660 $WWW:$GID 660 $WWW:$GID " \
    "www-data's entry: directory 2770, files 0660, all of group $G"
assert_eq "$(stat -c %a "$QDIR/tmp" "$QDIR/queue" "$QDIR/failed" | tr '\n' ' ')" \
    "2770 2770 2770 " "tmp/ queue/ failed/ made 2770 like the queue"

# ---- what the users cannot read -----------------------------------------

cannot $NOBODY "$T/etc/relay.conf" "the configuration"
cannot $NOBODY "$T/files/password" "the password file"
cannot $NOBODY "$E/message" "www-data's queued message"
cannot $NOBODY "$E/envelope" "www-data's queued envelope"
cannot $WWW "$QDIR/queue/$NID/message" "nobody's queued message"
cannot $WWW "$T/files/password" "the password file"
check_not "nobody cannot list the queue directory" \
    setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups ls "$QDIR"

# ---- mailq: one's own entries -------------------------------------------

as $NOBODY -- -bp
assert_exit 0 "nobody: -bp exits 0"
LIST=$(cat "$RELAY_OUT")
assert_contains "$LIST" "$NID " "nobody: -bp lists nobody's entry"
assert_lacks "$LIST" "$WID" "nobody: -bp does not list www-data's entry"
assert_contains "$LIST" "-- 1 entry of other users not shown" \
    "nobody: -bp says one entry is not shown"
AS_RELAY=$T/sbin/mailq as $WWW --
assert_exit 0 "www-data: mailq exits 0"
LIST=$(cat "$RELAY_OUT")
assert_contains "$LIST" "$WID " "www-data: mailq lists www-data's entry"
assert_lacks "$LIST" "$NID" "www-data: mailq does not list nobody's entry"
as 0 -- -bp
LIST=$(cat "$RELAY_OUT")
if [[ $LIST == *"$WID "* && $LIST == *"$NID "* && $LIST != *"not shown"* ]]; then
	ok "root: -bp lists every entry"
else
	fail "root: -bp lists every entry" "$LIST"
fi

# ---- queue runs: one's own entries --------------------------------------

restart_smarthost s
as $NOBODY -- "-qI$WID"
assert_exit 66 "nobody: -qI of www-data's entry: no such entry (66)"
as $NOBODY -- -qf
assert_exit 0 "nobody: -qf exits 0"
if wait_msgs s 3 5; then
	assert_file_contains "$SMARTHOST_s_OUT/3.eml" NOBODY-QUEUED-BODY \
	    "nobody: -qf sends nobody's entry"
else
	fail "nobody: -qf sends nobody's entry" "$(cat "$RELAY_ERR")"
fi
assert_eq "$(q_ids | tr '\n' ' ')" "$WID " \
    "nobody: -qf leaves www-data's entry alone"
assert_lacks "$(cat "$RELAY_ERR")" "$WID" "nobody: -qf says nothing of www-data's entry"
as $WWW -- -qf
assert_exit 0 "www-data: -qf exits 0"
if wait_msgs s 4 5; then
	assert_file_contains "$SMARTHOST_s_OUT/4.eml" WWW-DATA-QUEUED-BODY \
	    "www-data: -qf sends www-data's entry"
else
	fail "www-data: -qf sends www-data's entry" "$(cat "$RELAY_ERR")"
fi
assert_eq "$(q_count)" 0 "the queue is empty"

# ---- -C and RELAY_CONF: the caller's choice, the caller's rights ---------

# all_output: what the last run printed, both streams.
all_output() { cat "$RELAY_OUT" "$RELAY_ERR"; }

as $NOBODY -- -C "$T/marker" -bp
assert_exit 78 "nobody, -C group-only file: exit 78"
assert_error "nobody, -C group-only file" "$T/marker: Permission denied" \
    "give up the rights of group $G"
assert_lacks "$(all_output)" "MARKER" "nobody, -C group-only file: no byte of it shown"
as $NOBODY "RELAY_CONF=$T/marker" -- -bp
assert_exit 78 "nobody, RELAY_CONF group-only file: exit 78"
assert_error "nobody, RELAY_CONF group-only file" "$T/marker: Permission denied"
assert_lacks "$(all_output)" "MARKER" "nobody, RELAY_CONF group-only file: no byte of it shown"
as 0 -- -C "$T/marker" -bp
assert_contains "$(all_output)" "MARKER-" \
    "root, -C group-only file: read (so the checks above could fail)"

as $NOBODY -- -C /etc/shadow -bp
assert_exit 78 "nobody, -C /etc/shadow: exit 78"
leak=
while IFS= read -r line; do
	[ -n "$line" ] || continue
	f2=$(cut -d: -f2 <<<"$line")
	if grep -qF -- "$line" "$RELAY_OUT" "$RELAY_ERR" ||
	    { [ ${#f2} -gt 2 ] && grep -qF -- "$f2" "$RELAY_OUT" "$RELAY_ERR"; }; then
		leak=1
	fi
done </etc/shadow
if [ -z "$leak" ] && [ -s /etc/shadow ]; then
	ok "nobody, -C /etc/shadow: no line or hash of it shown"
else
	fail "nobody, -C /etc/shadow: no line or hash of it shown" "$(all_output)"
fi
as $NOBODY "RELAY_CONF=/etc/shadow" -- -bp
assert_exit 78 "nobody, RELAY_CONF=/etc/shadow: exit 78"
assert_lacks "$(all_output)" "root:" "nobody, RELAY_CONF=/etc/shadow: nothing of it shown"

# A configuration nobody may read, for the group's queue: the group is
# gone for good, so the queue cannot be written.
mkdir -p "$T/nb"
write_conf_for s "$T/nb/relay.conf" queue "$QDIR" ca_file "$T/files/ca.crt" \
    from nobody@example.org
chown -R $NOBODY:$NOBODY "$T/nb"
printf 'Subject: own conf\n\nown conf\n' | as $NOBODY -- -C "$T/nb/relay.conf" to@example.org
assert_exit 73 "nobody, -C own configuration, group's queue: exit 73"
assert_error "nobody, -C own configuration, group's queue" \
    "relay: cannot queue the message: $QDIR: Permission denied" \
    "give up the rights of group $G"
# The default's own name is no choice: nothing is given up.
as $NOBODY -- -C /etc/relay.conf -bp
assert_exit 0 "nobody, -C /etc/relay.conf (the default): read, exit 0"

# ---- the environment -------------------------------------------------------

# TMPDIR at a directory only the group may write: a setgid relay must not
# create its body file there.  The file has no name (O_TMPFILE), so what
# shows its use is a descriptor into the directory while relay reads.

# reading_any PID: PID is blocked reading a pipe.
reading_any() {
	[[ $(cat "/proc/$1/wchan" 2>/dev/null) == *pipe_read ]]
}

# tmp_used DIR CMD...: run CMD (relay, exec'ing in place) on a message
# held back after its first body line.  Sets TMP_USED to "used" if,
# while it waits for the rest, it has a file in DIR open, else "unused";
# TMP_ST to its exit status.
tmp_used() {
	local dir=$1 pid fd used=unused
	shift
	rm -f "$T/tfifo"
	mkfifo -m 644 "$T/tfifo"
	exec 4<>"$T/tfifo"
	( exec 4>&-; exec "$@" ) <"$T/tfifo" >"$T/tmp.out" 2>"$T/tmp.err" &
	pid=$!
	printf 'Subject: tmpdir\n\nTMPDIR-BODY\n' >&4
	# Not seen waiting: no "unused" that proves nothing.
	wait_for 10 reading_any "$pid" || used="not seen reading"
	for fd in /proc/$pid/fd/*; do
		[[ $(readlink "$fd" 2>/dev/null) == "$dir/"* ]] && used=used
	done
	exec 4>&-
	wait "$pid"
	TMP_ST=$?
	TMP_USED=$used
}
install -d -o root -g "$G" -m 770 "$T/gtmp"
tmp_used "$T/gtmp" bash "$AS" "$T/etc" $NOBODY $NOBODY \
    env "TMPDIR=$T/gtmp" "$SG" to@example.org
assert_eq "$TMP_ST" 0 "nobody, TMPDIR=group's directory: delivered"
assert_eq "$TMP_USED" unused "nobody, TMPDIR=group's directory: not used"
# Without setgid, TMPDIR is the caller's to choose: the same check sees it.
tmp_used "$T/gtmp" env "TMPDIR=$T/gtmp" "$RELAY" -C "$T/etc/relay.conf" \
    to@example.org
assert_eq "$TMP_ST" 0 "root, not setgid, TMPDIR: delivered"
assert_eq "$TMP_USED" used "root, not setgid, TMPDIR: used (so the check above can fail)"
assert_eq "$(ls -A "$T/gtmp")" "" "TMPDIR: nothing left there"

# ---- no core dumps, no tracing ---------------------------------------------

# reading PID: PID is relay ($EXE), blocked reading a pipe.
reading() {
	[ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$EXE" ] &&
	    [[ $(cat "/proc/$1/wchan" 2>/dev/null) == *pipe_read ]]
}

# waiting WHAT CMD...: start CMD (relay, $EXE) with core dumps allowed,
# reading a message from a FIFO; check it while it waits, then send the
# message.  Sets WAIT_OWNER (of /proc/PID/status) and WAIT_GID (real, effective,
# saved).
waiting() {
	local what=$1 pid lim
	shift
	rm -f "$T/fifo"
	mkfifo -m 644 "$T/fifo"
	exec 3<>"$T/fifo"
	( exec 3>&-; ulimit -c unlimited; exec "$@" ) <"$T/fifo" \
	    >"$T/wait.out" 2>"$T/wait.err" &
	pid=$!
	# Past its start (and the configuration), reading the message.
	wait_for 10 reading "$pid" ||
	    fail "$what: relay waits for the message" "$(cat "$T/wait.err")"
	lim=$(awk '/^Max core file size/ { print $5, $6 }' "/proc/$pid/limits")
	assert_eq "$lim" "0 0" "$what: core file size limit 0 (soft and hard)"
	WAIT_OWNER=$(stat -c %u "/proc/$pid/status")
	WAIT_GID=$(awk '/^Gid:/ { print $2, $3, $4 }' "/proc/$pid/status")
	printf 'Subject: core\n\ncore\n' >&3
	exec 3>&-
	wait "$pid"
	assert_eq "$?" 0 "$what: then delivered (exit 0)"
}

EXE=$SG
waiting "setgid relay as nobody" \
    bash "$AS" "$T/etc" $NOBODY $NOBODY "$SG" to@example.org
assert_eq "$WAIT_OWNER" 0 \
    "setgid relay as nobody: undumpable (/proc/PID/status is root's, not nobody's)"
assert_eq "$WAIT_GID" "$NOBODY $GID $GID" \
    "setgid relay as nobody: real gid nobody's, effective and saved $G"

# ---- without setgid: one user owns queue and configuration -----------------

C=$T/c
mkdir -p "$C"
cp "$PKI/ca.crt" "$C/ca.crt"
write_conf_for s "$C/relay.conf" queue "$C/queue" from nobody@example.org \
    ca_file "$C/ca.crt"
chown -R $NOBODY:$NOBODY "$C"
chmod 700 "$C"
NB=(setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups)
EXE=$(readlink -f "$RELAY")
waiting "without setgid, as nobody" "${NB[@]}" "$RELAY" -C "$C/relay.conf" \
    to@example.org
assert_eq "$WAIT_OWNER" $NOBODY \
    "without setgid, as nobody: dumpable as ever (so the check above can fail)"
assert_eq "$(stat -c %a "$C/queue" "$C/queue/queue" | tr '\n' ' ')" "700 700 " \
    "without setgid: the queue relay made is 0700"
stop_server s
printf 'Subject: container\n\nCONTAINER-BODY\n' |
    RELAY_PREFIX=${NB[*]} run_relay -C "$C/relay.conf" to@example.org
assert_exit 0 "without setgid, smarthost down: queued, exit 0"
CID=$(QDIR=$C/queue q_ids)
E=$C/queue/queue/$CID
assert_eq "$(stat -c '%a %u' "$E" "$E/message" "$E/envelope" | tr '\n' ' ')" \
    "700 $NOBODY 600 $NOBODY 600 $NOBODY " \
    "without setgid: entry 0700, files 0600, nobody's"
cannot $WWW "$C/relay.conf" "without setgid: the configuration"
RELAY_PREFIX=${NB[*]} run_relay -C "$C/relay.conf" -bp
assert_contains "$(cat "$RELAY_OUT")" "$CID " "without setgid: nobody's mailq lists it"
restart_smarthost s
RELAY_PREFIX=${NB[*]} run_relay -C "$C/relay.conf" -qf
assert_exit 0 "without setgid: -qf exits 0"
assert_eq "$(QDIR=$C/queue q_count)" 0 "without setgid: -qf sent it"
# Not setgid, against the group's queue: the error says why.
printf 'Subject: x\n\nx\n' | RELAY_PREFIX=${NB[*]} run_relay -C "$T/nb/relay.conf" to@example.org
assert_exit 73 "not setgid, group's queue: exit 73"
assert_error "not setgid, group's queue" \
    "relay: cannot queue the message: $QDIR: Permission denied" \
    "relay is not running setgid $G" "SECURITY in relay(8)"
# no_new_privs (systemd NoNewPrivileges=yes, docker no-new-privileges):
# the kernel ignores the setgid bit.
RELAY=$SG RELAY_PREFIX="bash $AS $T/etc $NOBODY $NOBODY setpriv --no-new-privs" \
    run_relay -bp
assert_exit 78 "no_new_privs: the group's configuration cannot be read, exit 78"
assert_error "no_new_privs" "/etc/relay.conf: Permission denied" "no_new_privs"

# ---- make install ----------------------------------------------------------

if [ ! -x "$TOP/relay" ]; then
	echo "ok # skip make install: no ./relay (run make)"
else
	make -s -C "$TOP" -o relay install DESTDIR="$T/dest" PREFIX=/usr \
	    >"$T/destdir.log" 2>&1
	assert_eq "$?" 0 "make install DESTDIR: exit 0"
	assert_eq "$(stat -c '%a' "$T/dest/usr/sbin/relay" "$T/dest/var/spool/relay" 2>&1 | tr '\n' ' ')" \
	    "755 700 " "make install DESTDIR: relay 0755, not setgid; queue 0700"
	assert_eq "$(readlink "$T/dest/usr/sbin/sendmail")" relay \
	    "make install DESTDIR: sendmail -> relay"
	assert_file_contains "$T/destdir.log" "not setgid" \
	    "make install DESTDIR: says relay is not setgid"
	# As root for the system, in a mount namespace: /etc and /usr/local
	# overlaid (groupadd), an empty /var/spool.
	I=$T/inst
	mkdir -p "$I"/{etc,usr}/{up,work} "$I/spool"
	unshare --mount --propagation private -- /bin/sh -c '
	    I=$1 TOP=$2
	    mount -t overlay -o lowerdir=/etc,upperdir=$I/etc/up,workdir=$I/etc/work relay-test /etc &&
	    mount -t overlay -o lowerdir=/usr/local,upperdir=$I/usr/up,workdir=$I/usr/work relay-test /usr/local &&
	    mount -t tmpfs -o mode=755 relay-test /var/spool || exit 125
	    make -s -C "$TOP" -o relay install >$I/make1.log 2>&1 || exit 1
	    stat -c "%a %U:%G" /usr/local/sbin/relay /var/spool/relay >$I/stat1
	    readlink /usr/local/sbin/sendmail >>$I/stat1
	    chmod 2750 /var/spool/relay
	    make -s -C "$TOP" -o relay install >$I/make2.log 2>&1 || exit 1
	    stat -c "%a %U:%G" /var/spool/relay >$I/stat2
	' sh "$I" "$TOP" >"$I/ns.log" 2>&1
	rc=$?
	if [ $rc = 125 ]; then
		echo "ok # skip make install: no overlay here: $(head -c 300 "$I/ns.log")"
	else
		assert_eq "$rc" 0 "make install: exit 0"
		assert_eq "$(tr '\n' ' ' <"$I/stat1" 2>&1)" \
		    "2755 root:relay 2770 root:relay relay " \
		    "make install: group relay made, relay root:relay 2755, queue root:relay 2770, sendmail -> relay"
		assert_eq "$(cat "$I/stat2" 2>&1)" "2750 root:relay" \
		    "make install again: an existing queue directory is left as it is"
		assert_file_contains "$I/make2.log" "left as it is" \
		    "make install again: says so"
		assert_file_contains "$I/make1.log" "root:relay mode 0640" \
		    "make install: says how to protect /etc/relay.conf"
	fi
fi

t_done
