#!/bin/bash
# bench/peers.sh: the peers relay is benchmarked against (issue 5).
#
#   source bench/peers.sh          a library (functions below)
#   bash bench/peers.sh selftest   fetch, configure, send one message with
#                                  every peer on 465 and 587 to the test
#                                  smarthost, try the queues; prints a table
#
# Peers (Debian 12 packages, fetched with `apt-get download` into
# bench/cache and unpacked with `dpkg -x` into WORKDIR/root: nothing is
# installed as a package, /usr/sbin/sendmail and /etc are left alone):
#
#   msmtp    msmtp 1.8.23-1              verifies (tls_trust_file CAFILE)
#   msmtpq   msmtp 1.8.23-1 msmtpq script (bash) around the same msmtp
#   dma      dma 0.13-1+b1               does NOT verify (no CA, no name
#                                        check, no SNI in 0.13)
#   ssmtp    ssmtp 2.64-11               does NOT verify (TLS_CA_File is
#                                        loaded, but the result is ignored)
#   esmtp    esmtp 1.2-18+b1 + libESMTP  verifies ($HOME/.config/libesmtp/
#                                        ca.pem + host name); STARTTLS only:
#                                        no implicit TLS (465); capped at
#                                        TLS 1.2 (hangs with 1.3, see below)
#   busybox  busybox 1.35.0 sendmail applet; Debian's busybox and
#            busybox-static are built WITHOUT it, so it is built here from
#            Debian's source package (busybox 1:1.35.0-4+deb12u1, Debian's
#            "static" config + CONFIG_SENDMAIL=y), cached in bench/cache.
#            TLS by the -H helper `openssl s_client ... -verify_return_error
#            -verify_hostname|-verify_ip HOST -CAfile CAFILE`: verifies.
#
# Shared libraries the unpacked binaries need and the machine may lack
# (peers_setup installs them with apt-get if missing, and says so):
# libgsasl18 libsecret-1-0 (msmtp), libesmtp6 (esmtp).
#
# Functions:
#   peers_setup WORKDIR
#   peer_config NAME WORKDIR HOST PORT MODE USER PASS CAFILE FROM
#       MODE smtps|starttls.  Writes WORKDIR/conf/NAME.MODE/, prints the
#       send command (shell words, one line); append the recipient and
#       feed the message on stdin.  Exit 2 (message on stderr) if the peer
#       cannot do MODE.
#   peer_enqueue_cmd NAME [WORKDIR [MODE]]   (msmtpq, dma)
#   peer_flush_cmd NAME [WORKDIR [MODE]]     (msmtpq, dma)
#       WORKDIR defaults to $PEERS_WORKDIR, MODE to the last one configured.
#       enqueue: append the recipient, message on stdin; queues without
#       delivering (msmtpq: because the smarthost is down; dma: DEFER).
#       flush: delivers the queue and returns when it is done.
#   peer_verifies NAME   prints yes/no
#
# dma reads /etc/dma/dma.conf only (no option for another file), so its
# command runs in a private mount namespace with an overlay on /etc:
#   unshare -m sh -c 'mount -t overlay -o lowerdir=ETCADD:/etc overlay /etc
#                     && exec dma ...' dma RCPT
# (ETCADD holds dma/dma.conf).  The machine's /etc is not changed.  The cost
# of that wrapper is measured by `peers_wrapper_overhead` (selftest prints it).
#
# Pitfalls seen here (Debian 12, OpenSSL 3.0, the aiosmtpd test smarthost):
# - ssmtp 2.64 sleeps 1 s (clock_nanosleep) before sending the final "."
#   of DATA: every ssmtp send takes > 1 s.
# - dma 0.13: without -D it forks a background delivery and exits 0 at
#   once (the parent's exit says nothing about delivery); with -D it
#   delivers in the foreground, but when the smarthost is down it keeps
#   retrying (sleeping) in the foreground: never use the send command with
#   the smarthost down, use peer_enqueue_cmd (DEFER).  dma -q forks one
#   process per queued message (parallel connections).  As root dma drops
#   to user mail: spool and auth.conf must be mail's.  dma only does AUTH
#   CRAM-MD5/LOGIN.  It does not check the certificate at all.
# - esmtp (libESMTP 1.1.0): the CA file is $HOME/.config/libesmtp/ca.pem
#   (not ~/.authenticate as the docs say), mode 0600 in 0700 directories;
#   the host name check covers DNS names only: HOST must be a name
#   ("localhost"), not 127.0.0.1.  TLS 1.3 hangs (see above).
# - msmtpq always exits 0, also when it only queued the message; it needs
#   EMAIL_CONN_TEST=x or it pings debian.org before every send.
# - busybox sendmail has no TLS; the openssl helper is a shell + openssl
#   process per message; -verify_return_error and -verify_hostname are
#   needed, or s_client carries on after a failed verification.  The
#   password is on the command line (-ap).

PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS_TOP=$(cd "$PEERS_DIR/.." && pwd)
PEERS_CACHE=${PEERS_CACHE:-$PEERS_DIR/cache}
PEERS_LIST="msmtp msmtpq dma ssmtp esmtp busybox"
PEERS_DEBS="msmtp dma ssmtp esmtp"
PEERS_LIBS="libgsasl18 libsecret-1-0 libesmtp6"
PEERS_BB_VER=1.35.0-4+deb12u1
PEERS_BB_BIN=busybox-$PEERS_BB_VER-static-sendmail

_peers_q() { printf '%q' "$1"; }

# _peers_build_busybox: build busybox with the sendmail applet from Debian's
# source package into $PEERS_CACHE/$PEERS_BB_BIN (once).  apt-get source
# with a private deb-src list and private state (nothing in /etc/apt).
_peers_build_busybox() {
	local A=$PEERS_CACHE/apt-src B
	local O=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o APT::Sandbox::User=root)
	if ! ls "$PEERS_CACHE"/busybox_"$PEERS_BB_VER".dsc >/dev/null 2>&1; then
		mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
		printf 'deb-src http://deb.debian.org/debian bookworm main\ndeb-src http://deb.debian.org/debian-security bookworm-security main\n' >"$A/sources.list"
		apt-get "${O[@]}" update >/dev/null &&
		(cd "$PEERS_CACHE" && apt-get "${O[@]}" source --download-only busybox="1:$PEERS_BB_VER" >/dev/null) || return 1
		rm -rf "$A"
	fi
	B=$(mktemp -d) || return 1
	(cd "$B" && dpkg-source -x "$PEERS_CACHE/busybox_$PEERS_BB_VER.dsc" src >/dev/null 2>&1 &&
	 cd src && cp debian/config/pkg/static .config &&
	 sed -i 's/^# CONFIG_SENDMAIL is not set/CONFIG_SENDMAIL=y/' .config &&
	 { yes '' | make oldconfig >/dev/null 2>&1; } &&
	 make -j"$(nproc)" busybox >"$B/build.log" 2>&1 &&
	 cp busybox "$PEERS_CACHE/$PEERS_BB_BIN" && cp .config "$PEERS_CACHE/$PEERS_BB_BIN.config")
	local rc=$?
	rm -rf "$B"
	return $rc
}

peers_setup() {
	local W=${1:?usage: peers_setup WORKDIR} p f missing=
	mkdir -p "$W/root" "$PEERS_CACHE" || return 1
	W=$(cd "$W" && pwd)
	for p in $PEERS_DEBS; do
		ls "$PEERS_CACHE/${p}"_*.deb >/dev/null 2>&1 ||
			(cd "$PEERS_CACHE" && apt-get download "$p" 2>&1 | grep -v '^W: Download is performed unsandboxed') ||
			{ echo "peers_setup: cannot download $p" >&2; return 1; }
		f=$(ls "$PEERS_CACHE/${p}"_*.deb | tail -1)
		dpkg -x "$f" "$W/root" || return 1
	done
	if [ ! -x "$PEERS_CACHE/$PEERS_BB_BIN" ]; then
		echo "peers_setup: building busybox $PEERS_BB_VER with the sendmail applet (about 1 min on 2 cores)" >&2
		_peers_build_busybox || { echo "peers_setup: busybox build failed" >&2; return 1; }
	fi
	mkdir -p "$W/root/bin" && cp "$PEERS_CACHE/$PEERS_BB_BIN" "$W/root/bin/busybox-sendmail"
	# libraries
	for p in $PEERS_LIBS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "peers_setup: apt-get install -y$missing" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null || return 1
	fi
	for f in usr/bin/msmtp usr/sbin/dma usr/sbin/ssmtp usr/bin/esmtp; do
		if ldd "$W/root/$f" | grep -q 'not found'; then
			echo "peers_setup: $f: missing libraries:" >&2
			ldd "$W/root/$f" | grep 'not found' >&2
			return 1
		fi
	done
	export PEERS_WORKDIR=$W
	peers_versions "$W"
}

peers_versions() {
	local W=${1:-$PEERS_WORKDIR} f
	for f in "$PEERS_CACHE"/{msmtp,dma,ssmtp,esmtp}_*.deb; do
		printf '%-8s %s (%s)\n' "$(dpkg-deb -f "$f" Package)" "$(dpkg-deb -f "$f" Version)" "$(basename "$f")"
	done
	printf '%-8s %s\n' msmtp: "$("$W/root/usr/bin/msmtp" --version | head -1)"
	printf '%-8s %s\n' busybox "$("$W/root/bin/busybox-sendmail" 2>&1 | head -1) + sendmail applet, from source $PEERS_BB_VER"
	printf '%-8s %s\n' libesmtp "$(dpkg-query -W -f='${Version}' libesmtp6)"
	printf '%-8s %s\n' openssl "$(openssl version)"
}

peer_verifies() {
	case $1 in
	msmtp|msmtpq|esmtp|busybox) echo yes ;;
	*) echo no ;;
	esac
}

# peer_config NAME WORKDIR HOST PORT MODE USER PASS CAFILE FROM
peer_config() {
	if [ $# -ne 9 ]; then
		echo "usage: peer_config NAME WORKDIR HOST PORT MODE USER PASS CAFILE FROM" >&2
		return 64
	fi
	local N=$1 W=$2 H=$3 P=$4 M=$5 U=$6 PW=$7 CA=$8 F=$9
	local R D cmd enq= fl=
	case $M in smtps|starttls) ;; *) echo "peer_config: MODE must be smtps or starttls" >&2; return 64 ;; esac
	W=$(cd "$W" && pwd) || return 1
	CA=$(readlink -f "$CA")
	R=$W/root
	D=$W/conf/$N.$M
	rm -rf "$D" && mkdir -p "$D" && chmod 755 "$D" || return 1
	local st=off; [ "$M" = starttls ] && st=on
	case $N in
	msmtp|msmtpq)
		umask 077
		cat >"$D/msmtprc" <<-EOF
		defaults
		account default
		host $H
		port $P
		auth on
		user $U
		password $PW
		tls on
		tls_starttls $st
		tls_trust_file $CA
		from $F
		EOF
		umask 022
		chmod 600 "$D/msmtprc"
		if [ "$N" = msmtp ]; then
			cmd="$(_peers_q "$R/usr/bin/msmtp") -C $(_peers_q "$D/msmtprc") -f $(_peers_q "$F")"
		else
			mkdir -p "$D/queue"
			local env="env MSMTP=$(_peers_q "$R/usr/bin/msmtp") MSMTPQ_Q=$(_peers_q "$D/queue") MSMTPQ_LOG=$(_peers_q "$D/msmtpq.log") EMAIL_CONN_TEST=x EMAIL_QUEUE_QUIET=t"
			local q; q=$(_peers_q "$R/usr/libexec/msmtp/msmtpq/msmtpq")
			cmd="$env $q -C $(_peers_q "$D/msmtprc") -f $(_peers_q "$F")"
			enq=$cmd
			fl="$env $q --q-mgmt -r"
		fi
		;;
	dma)
		# dma 0.13 drops root to user mail: the spool must be mail's,
		# auth.conf readable by group mail (as Debian installs it).
		mkdir -p "$D/etc/dma" "$D/etc-defer/dma" "$D/spool"
		chown mail:mail "$D/spool" && chmod 2775 "$D/spool"
		: >"$D/aliases"
		printf '%s|%s:%s\n' "$U" "$H" "$PW" >"$D/auth.conf"
		chgrp mail "$D/auth.conf"; chmod 640 "$D/auth.conf"
		{
			echo "SMARTHOST $H"
			echo "PORT $P"
			echo "ALIASES $D/aliases"
			echo "SPOOLDIR $D/spool"
			echo "AUTHPATH $D/auth.conf"
			echo "MAILNAME localhost"
			echo "SECURETRANSFER"
			[ "$M" = starttls ] && echo "STARTTLS"
		} >"$D/etc/dma/dma.conf"
		{ cat "$D/etc/dma/dma.conf"; echo "DEFER"; } >"$D/etc-defer/dma/dma.conf"
		local dma; dma=$(_peers_q "$R/usr/sbin/dma")
		# -D: no daemon(); the one delivery runs in this process, so the
		# exit means delivered (or failed: then dma sleeps and retries, in
		# the foreground).
		cmd="unshare -m sh -c 'mount -t overlay -o lowerdir=$D/etc:/etc overlay /etc && exec $dma -D -f \"\$0\" \"\$@\"' $(_peers_q "$F")"
		enq="unshare -m sh -c 'mount -t overlay -o lowerdir=$D/etc-defer:/etc overlay /etc && exec $dma -f \"\$0\" \"\$@\"' $(_peers_q "$F")"
		# -q forks one delivery process per queued message (the last one
		# is delivered by dma itself); they keep stdout, so the pipe to
		# cat ends when the last of them is done.
		fl="unshare -m sh -c 'mount -t overlay -o lowerdir=$D/etc:/etc overlay /etc && exec $dma -D -q | cat'"
		;;
	ssmtp)
		umask 077
		cat >"$D/ssmtp.conf" <<-EOF
		root=
		mailhub=$H:$P
		hostname=localhost
		AuthUser=$U
		AuthPass=$PW
		UseTLS=YES
		UseSTARTTLS=$([ "$M" = starttls ] && echo YES || echo NO)
		TLS_CA_File=$CA
		FromLineOverride=YES
		EOF
		umask 022
		cmd="$(_peers_q "$R/usr/sbin/ssmtp") -C $(_peers_q "$D/ssmtp.conf") -f $(_peers_q "$F")"
		;;
	esmtp)
		if [ "$M" = smtps ]; then
			echo "peer_config: esmtp (libESMTP) has no implicit TLS: only STARTTLS" >&2
			rm -rf "$D"
			return 2
		fi
		# libESMTP 1.1 reads $HOME/.config/libesmtp/ca.pem (older
		# versions: $HOME/.authenticate/ca.pem); directories 0700, files
		# 0600, or it ignores them.  Without ca.pem: OpenSSL's defaults.
		mkdir -p "$D/home/.config/libesmtp"
		chmod 700 "$D/home" "$D/home/.config" "$D/home/.config/libesmtp"
		cp "$CA" "$D/home/.config/libesmtp/ca.pem"; chmod 600 "$D/home/.config/libesmtp/ca.pem"
		umask 077
		cat >"$D/home/.esmtprc" <<-EOF
		hostname = $H:$P
		username = "$U"
		password = "$PW"
		starttls = required
		EOF
		umask 022
		# libESMTP 1.1.0 with OpenSSL 3 hangs in about half the runs
		# against a TLS 1.3 server (after the handshake, before the second
		# EHLO; never with TLS 1.2).  esmtp has no TLS option, so
		# OPENSSL_CONF caps it at TLS 1.2 unless PEERS_ESMTP_TLS13=1.
		local oc=
		if [ "${PEERS_ESMTP_TLS13:-0}" != 1 ]; then
			printf '%s\n' 'openssl_conf = openssl_init' '[openssl_init]' 'ssl_conf = ssl_sect' \
				'[ssl_sect]' 'system_default = system_default_sect' \
				'[system_default_sect]' 'MaxProtocol = TLSv1.2' >"$D/openssl.cnf"
			oc=" OPENSSL_CONF=$(_peers_q "$D/openssl.cnf")"
		fi
		cmd="env HOME=$(_peers_q "$D/home")$oc $(_peers_q "$R/usr/bin/esmtp") -f $(_peers_q "$F")"
		;;
	busybox)
		local vh=-verify_hostname
		[[ $H =~ ^[0-9.]+$ || $H == *:* ]] && vh=-verify_ip
		local helper="openssl s_client -quiet -verify_return_error $vh $H -CAfile $CA -connect $H:$P"
		[ "$M" = starttls ] && helper="openssl s_client -starttls smtp -quiet -verify_return_error $vh $H -CAfile $CA -connect $H:$P"
		cmd="$(_peers_q "$R/bin/busybox-sendmail") sendmail -w 30 -H $(_peers_q "$helper") -amPLAIN -au$(_peers_q "$U") -ap$(_peers_q "$PW") -f $(_peers_q "$F")"
		;;
	*) echo "peer_config: unknown peer $N (one of: $PEERS_LIST)" >&2; rm -rf "$D"; return 64 ;;
	esac
	printf '%s\n' "$cmd" >"$D/send.cmd"
	[ -n "$enq" ] && printf '%s\n' "$enq" >"$D/enqueue.cmd"
	[ -n "$fl" ] && printf '%s\n' "$fl" >"$D/flush.cmd"
	echo "$M" >"$W/conf/$N.last"
	printf '%s\n' "$cmd"
}

_peer_cmdfile() {
	local N=$1 W=${2:-$PEERS_WORKDIR} M=$3 what=$4
	[ -n "$W" ] || { echo "peer_${what}_cmd: no WORKDIR (give it or set PEERS_WORKDIR)" >&2; return 64; }
	[ -n "$M" ] || M=$(cat "$W/conf/$N.last" 2>/dev/null)
	if [ ! -f "$W/conf/$N.$M/$what.cmd" ]; then
		echo "peer_${what}_cmd: $N has no queue, or is not configured (peer_config first)" >&2
		return 2
	fi
	cat "$W/conf/$N.$M/$what.cmd"
}
peer_enqueue_cmd() { _peer_cmdfile "$1" "$2" "$3" enqueue; }
peer_flush_cmd() { _peer_cmdfile "$1" "$2" "$3" flush; }

# peer_queue_count NAME [WORKDIR [MODE]]: messages waiting in the queue.
peer_queue_count() {
	local N=$1 W=${2:-$PEERS_WORKDIR} M=$3
	[ -n "$M" ] || M=$(cat "$W/conf/$N.last" 2>/dev/null)
	case $N in
	msmtpq) find "$W/conf/$N.$M/queue" -name '*.mail' | wc -l ;;
	dma) find "$W/conf/$N.$M/spool" -name 'Q*' | wc -l ;;
	*) echo 0 ;;
	esac
}

# peers_wrapper_overhead [RUNS]: median wall time (ms) of `sh -c 'exec true'`
# and of dma's wrapper around `true`; prints both and the difference.
peers_wrapper_overhead() {
	local n=${1:-50} d i t0 a=() b=()
	d=$(mktemp -d) && mkdir -p "$d/dma"
	for ((i = 0; i < n; i++)); do
		t0=$EPOCHREALTIME; sh -c 'exec true'; a+=($(( (${EPOCHREALTIME/./} - ${t0/./}) )))
		t0=$EPOCHREALTIME; unshare -m sh -c "mount -t overlay -o lowerdir=$d:/etc overlay /etc && exec true"; b+=($(( (${EPOCHREALTIME/./} - ${t0/./}) )))
	done
	rmdir "$d/dma" "$d"
	local ma mb
	ma=$(printf '%s\n' "${a[@]}" | sort -n | sed -n "$((n / 2 + 1))p")
	mb=$(printf '%s\n' "${b[@]}" | sort -n | sed -n "$((n / 2 + 1))p")
	printf "sh -c 'exec true': %d.%03d ms; unshare -m + overlay mount + exec true: %d.%03d ms; wrapper overhead: %d.%03d ms (median of %d)\n" \
		$((ma / 1000)) $((ma % 1000)) $((mb / 1000)) $((mb % 1000)) $(((mb - ma) / 1000)) $(((mb - ma) % 1000)) "$n"
}

# ---------------------------------------------------------------- selftest

_st_pids=()
_st_stop() {
	local p
	for p in "${_st_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	_st_pids=()
}
# _st_server MODE OUTDIR [PORT [CERT]]: start test/smarthost.py; sets _st_port,
# _st_pid (not in a subshell: the PID must be remembered to stop it)
_st_server() {
	local M=$1 O=$2 P=${3:-0} C=${4:-server} i
	mkdir -p "$O"; rm -f "$O.port"
	/usr/bin/python3 "$PEERS_TOP/test/smarthost.py" --mode "$M" --listen 127.0.0.1 --port "$P" \
		--cert "$ST_PKI/$C.chain.pem" --key "$ST_PKI/$C.key" \
		--user "$ST_USER" --password "$ST_PASS" --outdir "$O" --portfile "$O.port" \
		>"$O.log" 2>&1 &
	_st_pid=$!
	_st_pids+=($_st_pid)
	for ((i = 0; i < 100; i++)); do
		[ -s "$O.port" ] && { _st_port=$(cat "$O.port"); return 0; }
		sleep 0.1
	done
	echo "smarthost $M did not start: $(tail -3 "$O.log")" >&2
	return 1
}
_st_count() { find "$1" -name '*.json' 2>/dev/null | wc -l; }
_st_wait() { # DIR N: wait up to 10 s for N messages
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(_st_count "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
_st_msg() {
	printf 'From: bench@example.org\nTo: rcpt@example.org\nSubject: peers selftest %s\nDate: %s\nMessage-ID: <%s.%s@example.org>\n\nhello from %s\n' \
		"$1" "$(date -R)" "$1" "$RANDOM$RANDOM" "$1"
}

peers_selftest() {
	set -u
	local W=$PEERS_DIR/tmp/peers M N cmd rc before after out why p port i
	ST_PKI=$PEERS_DIR/tmp/pki ST_USER=benchuser ST_PASS='s3cret-pass'
	trap '_st_stop' EXIT
	mkdir -p "$W" && rm -rf "$W/conf" "$W/out" "$W/log" "$W/wd-badca" "$W/wd-queue"
	mkdir -p "$W/log"
	echo "== setup"
	peers_setup "$W" || return 1
	bash "$PEERS_TOP/test/pki.sh" "$ST_PKI" >/dev/null || return 1
	local -A PORT
	for M in smtps starttls; do
		_st_server "$M" "$W/out/$M" || return 1
		PORT[$M]=$_st_port
	done
	echo "smarthosts: smtps 127.0.0.1:${PORT[smtps]}, starttls 127.0.0.1:${PORT[starttls]} (pids ${_st_pids[*]})"
	echo "== one message per peer and mode (host localhost, CA = test CA)"
	local -A RES
	for N in $PEERS_LIST; do
		for M in smtps starttls; do
			cmd=$(peer_config "$N" "$W" localhost "${PORT[$M]}" "$M" "$ST_USER" "$ST_PASS" "$ST_PKI/ca.crt" bench@example.org 2>"$W/log/$N.$M.cfg")
			rc=$?
			if [ $rc -ne 0 ]; then
				RES[$N.$M]="n/a: $(cat "$W/log/$N.$M.cfg")"
				continue
			fi
			before=$(_st_count "$W/out/$M")
			_st_msg "$N.$M" | timeout 60 bash -c "$cmd rcpt-$N-$M@example.org" >"$W/log/$N.$M.out" 2>&1
			rc=$?
			_st_wait "$W/out/$M" $((before + 1))
			after=$(_st_count "$W/out/$M")
			if [ $rc -eq 0 ] && [ "$after" -eq $((before + 1)) ]; then
				RES[$N.$M]="ok"
			else
				why=$(tr '\n' ' ' <"$W/log/$N.$M.out" | cut -c1-160)
				RES[$N.$M]="FAIL (exit $rc, $((after - before)) arrived) $why"
			fi
		done
	done
	# negative checks: a verifying peer must refuse a server whose
	# certificate the CA file does not vouch for (unknown: signed by
	# another CA) or that names another host (wronghost: SAN
	# wrong.example only, signed by the trusted CA)
	local -A VER
	local WB=$W/wd-badca WQ=$W/wd-queue cert bad
	mkdir -p "$WB" "$WQ"; ln -sfn ../root "$WB/root"; ln -sfn ../root "$WQ/root"
	for cert in unknown wronghost; do
		echo "== verification check: server certificate $cert"
		for M in smtps starttls; do
			_st_server "$M" "$W/out/$cert.$M" 0 "$cert" || return 1
			for N in msmtp ssmtp busybox dma esmtp; do
				cmd=$(peer_config "$N" "$WB" localhost "$_st_port" "$M" "$ST_USER" "$ST_PASS" "$ST_PKI/ca.crt" bench@example.org 2>/dev/null) || continue
				before=$(_st_count "$W/out/$cert.$M")
				_st_msg "$N.$cert" | timeout 20 bash -c "$cmd rcpt-$N-$cert@example.org" >"$W/log/$N.$cert.$M.out" 2>&1
				rc=$?
				sleep 0.3
				after=$(_st_count "$W/out/$cert.$M")
				if [ "$after" -gt "$before" ]; then VER[$N.$cert]="${VER[$N.$cert]:-}$M: DELIVERED (exit $rc)  "
				else VER[$N.$cert]="${VER[$N.$cert]:-}$M: refused (exit $rc)  "; fi
			done
			kill "$_st_pid"; wait "$_st_pid" 2>/dev/null
		done
	done

	echo "== queues: enqueue 3 with the smarthost down, then flush"
	local qport qout=$W/out/queue
	_st_server smtps "$qout" || return 1
	qport=$_st_port
	kill "$_st_pid"; wait "$_st_pid" 2>/dev/null
	local -A QRES
	for N in msmtpq dma; do
		peer_config "$N" "$WQ" localhost "$qport" smtps "$ST_USER" "$ST_PASS" "$ST_PKI/ca.crt" bench@example.org >/dev/null
		cmd=$(peer_enqueue_cmd "$N" "$WQ" smtps)
		local erc=""
		for i in 1 2 3; do
			_st_msg "$N.q$i" | timeout 60 bash -c "$cmd rcpt-$N-q$i@example.org" >>"$W/log/$N.enqueue.out" 2>&1
			erc="$erc$? "
		done
		QRES[$N]="enqueue exits: $erc; queued: $(peer_queue_count "$N" "$WQ" smtps)"
	done
	_st_server smtps "$qout" "$qport" || return 1
	for N in msmtpq dma; do
		before=$(_st_count "$qout")
		cmd=$(peer_flush_cmd "$N" "$WQ" smtps)
		local t0=$EPOCHREALTIME
		timeout 120 bash -c "$cmd" >"$W/log/$N.flush.out" 2>&1
		rc=$?
		local dt=$(( ${EPOCHREALTIME/./} - ${t0/./} ))
		after=$(_st_count "$qout")
		QRES[$N]="${QRES[$N]}; flush exit $rc in $((dt / 1000)) ms, delivered $((after - before)), left in queue $(peer_queue_count "$N" "$WQ" smtps)"
	done

	echo "== dma/overlay wrapper overhead"
	local ovh; ovh=$(peers_wrapper_overhead 50)

	# processes left behind by any peer (dma forks): report and stop them
	local left
	left=$(pgrep -f -- "$W/(wd-[^/]*/)?root/" || true)
	if [ -n "$left" ]; then
		echo "stray peer processes: $left (stopping them by PID)"
		for p in $left; do kill "$p" 2>/dev/null; done
	fi
	_st_stop
	trap - EXIT

	echo
	echo "== results (details in $W/log, messages in $W/out)"
	for N in $PEERS_LIST; do
		printf '%-8s verifies TLS: %-3s  465: %s\n' "$N" "$(peer_verifies "$N")" "${RES[$N.smtps]}"
		printf '%-8s                    587: %s\n' "" "${RES[$N.starttls]}"
	done
	echo "server certificate from an untrusted CA / for another host name (must be refused):"
	for N in msmtp esmtp busybox ssmtp dma; do
		printf '  %-8s unknown CA: %s\n' "$N" "${VER[$N.unknown]}"
		printf '  %-8s wrong host: %s\n' "" "${VER[$N.wronghost]}"
	done
	echo "queues:"
	for N in msmtpq dma; do printf '  %-8s %s\n' "$N" "${QRES[$N]}"; done
	echo "wrapper: $ovh"
	echo "commands (smtps/starttls):"
	for N in $PEERS_LIST; do
		for M in smtps starttls; do
			[ -f "$W/conf/$N.$M/send.cmd" ] && printf '  %s.%s: %s\n' "$N" "$M" "$(cat "$W/conf/$N.$M/send.cmd")"
		done
	done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case ${1:-} in
	selftest) peers_selftest ;;
	overhead) peers_wrapper_overhead "${2:-50}" ;;
	*) echo "usage: bash bench/peers.sh selftest | overhead [RUNS]; or source it" >&2; exit 64 ;;
	esac
fi
