#!/bin/bash
# test/privs_as.sh ETC UID GID COMMAND [ARGS...]: run COMMAND as UID:GID
# with no supplementary groups (setpriv), in a mount namespace of its own
# where the files of directory ETC are laid over /etc (a read-only
# overlay).  For t_privs.sh: a setgid relay then reads "its"
# /etc/relay.conf without -C or RELAY_CONF, which would make it give up
# its group; nothing changes outside the namespace, and runs may overlap.
# Exits 125 if the namespace or the overlay cannot be had.
set -u
[ $# -ge 4 ] || { echo "usage: $0 ETC UID GID COMMAND..." >&2; exit 2; }
exec unshare --mount --propagation private -- /bin/sh -c '
	mount -t overlay -o ro,lowerdir="$1":/etc relay-test /etc || exit 125
	uid=$2 gid=$3
	shift 3
	exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
' privs_as "$@"
