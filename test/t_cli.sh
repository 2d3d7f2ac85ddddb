#!/bin/bash
# The command line: the modes that read no message (-bs and -bd, not
# implemented; -bp, -q and its forms, mailq), the names relay is installed
# under, option syntax, the choice of configuration file and its errors,
# closed standard descriptors, exit 0 with and without a queue, -v and
# secrets, and what the production binary links against.
. "$(dirname "$0")/lib.sh"
t_setup
cd "$T" || t_bail "cd $T"	# config errors then show as "relay.conf:3: ..."

printf 'Subject: cli test\n\nhello from t_cli\n' >"$T/msg.txt"
start_smarthost main --mode smtps
write_conf_for main "$T/main.conf" from sender@example.org
export RELAY_CONF=$T/main.conf	# every run could reach "main"

# main_count: messages "main" stored so far (each check waits for the
# message it expects, so this is exact).
main_count() { msg_count main; }

# ---- modes that must not read stdin -------------------------------------

# unread WHAT ARGS...: relay ARGS with a pipe holding a message on stdin;
# then whatever relay left in the pipe is read back into $LEFT (lib.sh sets
# lastpipe, so the { } runs in this shell).
INPUT=$'Subject: must stay unread\n\nbody\n'
unread() {
	local what=$1
	shift
	# shellcheck disable=SC2030,SC2031
	printf %s "$INPUT" | { run_relay "$@"; LEFT=$(cat; echo x); }
	# shellcheck disable=SC2031
	LEFT=${LEFT%x}
	assert_eq "$LEFT" "$INPUT" "$what: stdin left unread"
}

before=$(grep -c '^accept ' "$SMARTHOST_main_OUT/events.log")
for mode in -bs -bd; do
	unread "$mode" "$mode" to@example.org
	assert_exit 64 "$mode: exit 64"
	assert_error "$mode" "$mode" "not implemented"
done
# Listing and running the queue take no recipient: a usage error.
for mode in -bp -q -q30m -qf; do
	unread "$mode with a recipient" "$mode" to@example.org
	assert_exit 64 "$mode with a recipient: exit 64"
	case $mode in
	-q*)	assert_error "$mode with a recipient" "running the queue" \
		    "no recipients" ;;
	*)	assert_error "$mode with a recipient" "listing the queue" \
		    "no recipients" ;;
	esac
done
unread "-qI without an id" -qI
assert_exit 64 "-qI without an id: exit 64"
assert_error "-qI without an id" "-qI needs a queue id"
# Also after -C, and with the option after the recipient-free -f form.
unread "-C FILE -bs" -C "$T/main.conf" -f sender@example.org -bs
assert_exit 64 "-C FILE -bs: exit 64"
assert_eq "$(grep -c '^accept ' "$SMARTHOST_main_OUT/events.log")" "$before" \
    "unimplemented modes, usage errors: the smarthost was never contacted"

# The runs that list the queue, whose stdout is theirs to write.
LISTING=()

# With the queue empty (main.conf's, $T/queue, not even created yet).
unread "-bp" -bp
assert_exit 0 "-bp: exit 0"
assert_eq "$(cat "$RELAY_OUT")" "Mail queue is empty" \
    "-bp, empty queue: \"Mail queue is empty\" on stdout"
assert_eq "$(wc -c <"$RELAY_ERR")" 0 "-bp: nothing on stderr"
LISTING+=("$RELAY_OUT")
for mode in -q -q30m -qf; do
	unread "$mode" "$mode"
	assert_exit 0 "$mode: exit 0"
	assert_eq "$(cat "$RELAY_OUT" "$RELAY_ERR")" "" "$mode, empty queue: silent"
done
assert_eq "$(grep -c '^accept ' "$SMARTHOST_main_OUT/events.log")" "$before" \
    "-bp, -q, empty queue: the smarthost was never contacted"

unread "-bi" -bi
assert_exit 0 "-bi: exit 0"
assert_eq "$(wc -c <"$RELAY_ERR")" 0 "-bi: silent"

ln -sf "$RELAY" "$T/newaliases"
ln -sf "$RELAY" "$T/mailq"
RELAY=$T/newaliases unread "newaliases"
assert_exit 0 "newaliases: exit 0"
RELAY=$T/mailq unread "mailq"
assert_exit 0 "mailq: exit 0"
assert_eq "$(cat "$RELAY_OUT")" "Mail queue is empty" \
    "mailq, empty queue: \"Mail queue is empty\" on stdout"
LISTING+=("$RELAY_OUT")

# ---- bad command lines --------------------------------------------------

run_relay -X to@example.org <"$T/msg.txt"
assert_exit 64 "unknown option -X: exit 64"
assert_error "unknown option -X" "unknown option -X"

run_relay -f <"$T/msg.txt"
assert_exit 64 "-f without its argument: exit 64"
assert_error "-f without its argument" "-f needs an argument"

run_relay -f sender@example.org <"$T/msg.txt"
assert_exit 64 "no recipient and no -t: exit 64"
assert_error "no recipient and no -t" "no recipients"
assert_eq "$(main_count)" 0 "bad command lines: nothing sent"

# ---- which configuration -------------------------------------------------

start_smarthost other --mode smtps
write_conf_for other "$T/other.conf" from sender@example.org

run_relay to@example.org <"$T/msg.txt"
assert_exit 0 "RELAY_CONF selects the configuration: exit 0"
check "RELAY_CONF selects the configuration: main got it" wait_msgs main 1 5

run_relay -C "$T/other.conf" to@example.org <"$T/msg.txt"
assert_exit 0 "-C wins over RELAY_CONF: exit 0"
check "-C wins over RELAY_CONF: other got it" wait_msgs other 1 5
assert_eq "$(main_count)" 1 "-C wins over RELAY_CONF: main got nothing more"

RELAY_CONF=$T/no-such.conf run_relay to@example.org <"$T/msg.txt"
assert_exit 78 "RELAY_CONF names a missing file: exit 78"
assert_error "RELAY_CONF names a missing file" "$T/no-such.conf" \
    "No such file"

run_relay -C "$T/no-such.conf" to@example.org <"$T/msg.txt"
assert_exit 78 "-C names a missing file: exit 78"
assert_error "-C names a missing file" "$T/no-such.conf" "No such file"

# Line 3 of an otherwise good file (it points at "main").
write_conf_for main "$T/relay.conf" from sender@example.org
sed -i '3i prot 465' "$T/relay.conf"
run_relay -C relay.conf to@example.org <"$T/msg.txt"
assert_exit 78 "unknown keyword: exit 78"
assert_error "unknown keyword" \
    'relay.conf:3: unknown keyword "prot" (did you mean "port"?)'

write_conf_for main "$T/open.conf" from sender@example.org
chmod 644 "$T/open.conf"
run_relay -C open.conf to@example.org <"$T/msg.txt"
assert_exit 78 "inline password in a 0644 file: exit 78"
assert_error "inline password in a 0644 file" "open.conf:" "password" \
    "chmod o-rwx"
assert_eq "$(main_count)" 1 "configuration errors: nothing sent"

# ---- closed standard descriptors ------------------------------------------

# As mailutils and some cron daemons run it.  Were fd 2 left closed, the
# spool file could become "stderr" and take in relay's own messages.
printf '#!/bin/sh\nexec "$@" <&- >&- 2>&-\n' >"$T/close012"
printf '#!/bin/sh\nexec "$@" >&- 2>&-\n' >"$T/close12"
chmod +x "$T/close012" "$T/close12"

RELAY_PREFIX=$T/close012 run_relay to@example.org
assert_exit 0 "fds 0, 1, 2 closed: exit 0"
if wait_msgs main 2 5; then
	assert_file_contains "$SMARTHOST_main_OUT/2.eml" "Message-ID:" \
	    "fds 0, 1, 2 closed: an empty message, headers added"
	assert_file_lacks "$SMARTHOST_main_OUT/2.eml" "relay" \
	    "fds 0, 1, 2 closed: nothing of relay's output in the message"
else
	fail "fds 0, 1, 2 closed: message stored"
fi

RELAY_PREFIX=$T/close12 run_relay -v to@example.org <"$T/msg.txt"
assert_exit 0 "fds 1, 2 closed, -v: exit 0"
if wait_msgs main 3 5; then
	assert_file_contains "$SMARTHOST_main_OUT/3.eml" "hello from t_cli" \
	    "fds 1, 2 closed: body intact"
	assert_file_lacks "$SMARTHOST_main_OUT/3.eml" ">>>" \
	    "fds 1, 2 closed: no -v trace in the message"
	assert_file_lacks "$SMARTHOST_main_OUT/3.eml" "status=" \
	    "fds 1, 2 closed: no log record in the message"
else
	fail "fds 1, 2 closed, -v: message stored"
fi

# ---- exit 0 means handed over ---------------------------------------------

# Without a queue: only when the smarthost took the message.  With one
# (the same $T/queue as main.conf's): or when it is safely queued, and a
# queue run (-q30m is -q: the entry only when it is due) sends it.
start_smarthost once --mode smtps --fault dot:451:2
write_conf_for once "$T/noq.conf" from sender@example.org queue none
run_relay -C "$T/noq.conf" to@example.org <"$T/msg.txt"
assert_exit 75 "queue none, 451 after the dot: exit 75"
assert_eq "$(msg_count once)" 0 "queue none, 451 after the dot: not stored"

write_conf_for once "$T/once.conf" from sender@example.org
run_relay -C "$T/once.conf" to@example.org <"$T/msg.txt"
assert_exit 0 "451 after the dot, with a queue: exit 0"
id=$(q_ids | head -n 1)
assert_eq "$(msg_count once) $(q_count) $(q_rcpts "$id")" \
    "0 1 pending <to@example.org>" \
    "451 after the dot, with a queue: not stored, queued, pending"
RELAY=$T/mailq run_relay </dev/null
assert_exit 0 "mailq, one entry: exit 0"
assert_file_matches "$RELAY_OUT" "^${id:-ID}  [0-9]+ octets  .*from <sender@example\.org>" \
    "mailq, one entry: lists it, with its sender"
assert_file_matches "$RELAY_OUT" '^ +pending +<to@example\.org> +451 ' \
    "mailq, one entry: the recipient pending, with the 451"
LISTING+=("$RELAY_OUT")
run_relay -C "$T/once.conf" -q30m </dev/null
assert_exit 0 "-q30m, entry not due yet: exit 0"
assert_eq "$(msg_count once) $(q_count)" "0 1" \
    "-q30m, entry not due yet: not sent (it is -q, not -qf)"
q_set "$id" next-attempt "$(iso_utc -60)"
run_relay -C "$T/once.conf" -q30m </dev/null
assert_exit 0 "-q30m, entry due: exit 0"
check "-q30m, entry due: sent" wait_msgs once 1 5
assert_eq "$(q_count) $(q_count failed)" "0 0" "-q30m, entry due: removed"
assert_file_matches "$RELAY_ERR" \
    "^relay: from=<sender@example\.org> .* status=sent .* id=$id attempts=2 " \
    "-q30m, entry due: logged as the entry's second attempt"
run_relay -C "$T/once.conf" to@example.org <"$T/msg.txt"
assert_exit 0 "then 250 after the dot: exit 0"
check "then 250 after the dot: stored" wait_msgs once 2 5
assert_eq "$(q_count)" 0 "then 250 after the dot: nothing left in the queue"

# Silent when all went well and the log goes to syslog: cron mails any
# output to the job's owner.
write_conf_for once "$T/quiet.conf" from sender@example.org log syslog
run_relay -C "$T/quiet.conf" -bm to@example.org <"$T/msg.txt"
assert_exit 0 "log syslog, -bm: exit 0"
check "log syslog, -bm: stored" wait_msgs once 3 5
assert_eq "$(cat "$RELAY_OUT" "$RELAY_ERR")" "" "log syslog: silent on success"

# ---- option syntax ----------------------------------------------------------

n=$(main_count)
# send_opts WHAT ARGS...: run with ARGS; set N to the stored message.
send_opts() {
	local what=$1
	shift
	run_relay "$@"
	assert_exit 0 "$what: exit 0"
	n=$((n + 1))
	N=$n
	wait_msgs main "$N" 5 || fail "$what: message $N stored"
}

send_opts "-f ADDR" -f one@example.org to@example.org <"$T/msg.txt"
assert_eq "$(msg_json main "$N" mail_from)" one@example.org "-f ADDR: sender"
send_opts "-fADDR" -ftwo@example.org to@example.org <"$T/msg.txt"
assert_eq "$(msg_json main "$N" mail_from)" two@example.org "-fADDR: sender"
send_opts "-r ADDR" -r three@example.org to@example.org <"$T/msg.txt"
assert_eq "$(msg_json main "$N" mail_from)" three@example.org "-r ADDR: sender"
send_opts "-F NAME" -F "Cron Daemon" to@example.org <"$T/msg.txt"
assert_file_contains "$SMARTHOST_main_OUT/$N.eml" "From: Cron Daemon <" \
    "-F NAME: From: has the name"
send_opts "-FNAME" -FCronie to@example.org <"$T/msg.txt"
assert_file_contains "$SMARTHOST_main_OUT/$N.eml" "From: Cronie <" \
    "-FNAME: From: has the name"

# Accepted and ignored, as relay(8) lists them, both argument forms.
send_opts "ignored options" -B 8BITMIME -N never -RHDRS -V envid -n -U \
    -h 5 -Lcron -m -oem -o odi -odb -f four@example.org to@example.org \
    <"$T/msg.txt"
assert_eq "$(msg_json main "$N" mail_from) $(msg_json main "$N" rcpt_tos)" \
    "four@example.org to@example.org" "ignored options: envelope intact"

printf 'To: hdr@example.org\nSubject: dots\n\nfirst\n.\nafter the dot\n' >"$T/dot.txt"
send_opts "-ti grouped" -ti <"$T/dot.txt"
assert_eq "$(msg_json main "$N" rcpt_tos)" hdr@example.org "-ti: -t took To:"
assert_file_contains "$SMARTHOST_main_OUT/$N.eml" "after the dot" \
    "-ti: -i kept the text after a lone dot"
send_opts "-- then -i@..." -- -i@example.org <"$T/dot.txt"
assert_eq "$(msg_json main "$N" rcpt_tos)" -i@example.org \
    "--: -i@example.org is a recipient"
assert_file_lacks "$SMARTHOST_main_OUT/$N.eml" "after the dot" \
    "--: no -i, so a lone dot ended the message"

# ---- -v hides credentials ---------------------------------------------------

# no_secret WHAT: the last run's stderr lacks the password in any form.
no_secret() {
	assert_no_secret "$RELAY_ERR" "$1: no password, plain or base64, on stderr"
}

start_smarthost vplain --mode starttls
write_conf_for vplain "$T/vplain.conf" from sender@example.org
run_relay -v -C "$T/vplain.conf" to@example.org <"$T/msg.txt"
assert_exit 0 "-v, AUTH PLAIN: exit 0"
assert_file_contains "$RELAY_ERR" ">>> AUTH PLAIN [credentials hidden]" \
    "-v, AUTH PLAIN: the AUTH line is shown hidden"
assert_file_contains "$RELAY_ERR" "<<< 235" "-v, AUTH PLAIN: the reply is shown"
assert_file_lacks "$RELAY_ERR" "hello from t_cli" \
    "-v: the message text is not shown"
assert_file_matches "$RELAY_ERR" '^>>> \[message, [0-9]+ octets\]$' \
    "-v: the message is shown as its size"
no_secret "-v, AUTH PLAIN"

start_smarthost vlogin --mode starttls --auth-mech LOGIN
write_conf_for vlogin "$T/vlogin.conf" from sender@example.org
run_relay -v -C "$T/vlogin.conf" to@example.org <"$T/msg.txt"
assert_exit 0 "-v, AUTH LOGIN: exit 0"
assert_eq "$(grep -c '^>>> \[credentials hidden\]$' "$RELAY_ERR")" 2 \
    "-v, AUTH LOGIN: user and password lines shown hidden"
assert_eq "$(grep -c '^<<< 334 ' "$RELAY_ERR")" 2 \
    "-v, AUTH LOGIN: both prompts are shown"
no_secret "-v, AUTH LOGIN"
wait_msgs vlogin 1 5 &&
    assert_eq "$(msg_json vlogin 1 auth_mechanism)" LOGIN "-v, AUTH LOGIN: LOGIN used"

# A refused password is not shown either: not without a queue (77), not
# with one (queued: stderr, the entry's files), not by a queue run.
write_conf_for vplain "$T/vbad.conf" from sender@example.org \
    password "$T_PASS-x" queue none
run_relay -v -C "$T/vbad.conf" to@example.org <"$T/msg.txt"
assert_exit 77 "-v, wrong password, queue none: exit 77"
no_secret "-v, wrong password, queue none"
QDIR=$T/qbad
write_conf_for vplain "$T/vbadq.conf" from sender@example.org \
    password "$T_PASS-x" queue "$QDIR"
run_relay -v -C "$T/vbadq.conf" to@example.org <"$T/msg.txt"
assert_exit 0 "-v, wrong password, with a queue: exit 0"
assert_eq "$(q_count)" 1 "-v, wrong password, with a queue: queued"
no_secret "-v, wrong password, with a queue"
find "$QDIR" -type f -exec cat {} + >"$T/qbad.all"
assert_no_secret "$T/qbad.all" \
    "-v, wrong password, with a queue: no password in the queue's files"
run_relay -v -C "$T/vbadq.conf" -qf </dev/null
assert_exit 0 "-qf -v, wrong password: exit 0"
assert_file_contains "$RELAY_ERR" ">>> AUTH PLAIN [credentials hidden]" \
    "-qf -v, wrong password: the AUTH line is shown hidden"
no_secret "-qf -v, wrong password"
unset QDIR

# ---- the production binary ---------------------------------------------------

if [ -x "$TOP/relay" ]; then
	ldd "$TOP/relay" >"$T/ldd.txt" 2>&1
	libs=$(awk '{ print $1 }' "$T/ldd.txt" | sed -E 's|.*/||; s/\.so.*//' |
	    sort | paste -sd' ')
	extra=$(tr ' ' '\n' <<<"$libs" | grep -vxE \
	    'linux-vdso|libbearssl|libbsd|libmd|libc|ld-linux.*' | paste -sd' ')
	assert_eq "$extra" "" "ldd ./relay: nothing beyond vdso, libbearssl, libbsd, libmd, libc, ld.so"
	assert_contains "$libs" "libbearssl" "ldd ./relay: linked with libbearssl"
	assert_file_lacks "$T/ldd.txt" "not found" "ldd ./relay: every library found"
else
	fail "ldd ./relay" "no $TOP/relay: run make relay first"
fi

# Nothing, in any of the runs above but those listing the queue, went to
# standard output.
: >"$T/all-stdout"
for f in "$T"/run.*.out; do
	[[ " ${LISTING[*]} " == *" $f "* ]] || cat "$f" >>"$T/all-stdout"
done
assert_eq "$(ls "$T"/run.*.out | wc -l) ${#LISTING[@]}" "$_T_RUNS 3" \
    "every run's stdout kept, 3 of them listings"
assert_eq "$(wc -c <"$T/all-stdout")" 0 "no run but the listings wrote to stdout"

# ---- --version (after the stdout checks above: it writes to stdout) ------

run_relay --version </dev/null
assert_exit 0 "--version: exit 0"
assert_match "$(cat "$RELAY_OUT")" '^relay [0-9]+\.[0-9]+' "--version prints \"relay VERSION\""
run_relay -v -C "$T/main.conf" to@example.org <"$T/msg.txt"
assert_match "$(head -n 1 "$RELAY_ERR")" '^\*\*\* relay [0-9]+\.[0-9]+' \
    "-v: the trace begins with relay's version"

t_done
