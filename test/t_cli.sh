#!/bin/bash
# The command line: modes that are not implemented, the names relay is
# installed under, option syntax, the choice of configuration file and its
# errors, closed standard descriptors, -v and secrets, and what the
# production binary links against.
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
for mode in -bs -bp -bd -q -q30m; do
	unread "$mode" "$mode" to@example.org
	assert_exit 64 "$mode: exit 64"
	case $mode in
	-q*)	assert_error "$mode" "-q" "not implemented" ;;
	*)	assert_error "$mode" "$mode" "not implemented" ;;
	esac
done
# Also after -C, and with the option after the recipient-free -f form.
unread "-C FILE -bs" -C "$T/main.conf" -f sender@example.org -bs
assert_exit 64 "-C FILE -bs: exit 64"
assert_eq "$(grep -c '^accept ' "$SMARTHOST_main_OUT/events.log")" "$before" \
    "unimplemented modes: the smarthost was never contacted"

unread "-bi" -bi
assert_exit 0 "-bi: exit 0"
assert_eq "$(wc -c <"$RELAY_ERR")" 0 "-bi: silent"

ln -sf "$RELAY" "$T/newaliases"
ln -sf "$RELAY" "$T/mailq"
RELAY=$T/newaliases unread "newaliases"
assert_exit 0 "newaliases: exit 0"
RELAY=$T/mailq unread "mailq"
assert_exit 64 "mailq: exit 64"
assert_error "mailq" "mailq" "not implemented"

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

start_smarthost once --mode smtps --fault dot:451:1
write_conf_for once "$T/once.conf" from sender@example.org
run_relay -C "$T/once.conf" to@example.org <"$T/msg.txt"
assert_exit 75 "451 after the dot: exit 75"
assert_eq "$(msg_count once)" 0 "451 after the dot: not stored"
run_relay -C "$T/once.conf" to@example.org <"$T/msg.txt"
assert_exit 0 "then 250 after the dot: exit 0"
check "then 250 after the dot: stored" wait_msgs once 1 5

# Silent when all went well and the log goes to syslog: cron mails any
# output to the job's owner.
write_conf_for once "$T/quiet.conf" from sender@example.org log syslog
run_relay -C "$T/quiet.conf" -bm to@example.org <"$T/msg.txt"
assert_exit 0 "log syslog, -bm: exit 0"
check "log syslog, -bm: stored" wait_msgs once 2 5
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

# A refused password is not shown either.
write_conf_for vplain "$T/vbad.conf" from sender@example.org password "$T_PASS-x"
run_relay -v -C "$T/vbad.conf" to@example.org <"$T/msg.txt"
assert_exit 77 "-v, wrong password: exit 77"
no_secret "-v, wrong password"

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

# Nothing, in any of the runs above, went to standard output.
cat "$T"/run.*.out >"$T/all-stdout"
assert_eq "$(wc -c <"$T/all-stdout")" 0 "no run wrote to stdout"

t_done
