#!/bin/bash
# Static checks that must stay clean: the man pages under mandoc -Tlint,
# the C sources under cppcheck, and no string or number function that
# cannot be used safely (DEVELOPERS' rules: strlcpy, strtonum, snprintf).
. "$(dirname "$0")/lib.sh"
t_setup
cd "$TOP" || t_bail "cannot cd to $TOP"

for page in relay.8 relay.conf.5; do
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	if [ -z "$out" ]; then ok "mandoc -Tlint $page is clean"
	else fail "mandoc -Tlint $page is clean" "$out"; fi
done

srcs=$(ls *.c)
out=$(cppcheck --quiet --enable=warning,portability --inline-suppr \
    -D__GNUC__ --error-exitcode=1 $srcs 2>&1)
if [ $? -eq 0 ] && [ -z "$out" ]; then ok "cppcheck is quiet"
else fail "cppcheck is quiet" "$out"; fi

# Comments may name them; code may not call them.
banned=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll)[[:space:]]*\(' \
    $srcs | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)' || true)
if [ -z "$banned" ]; then ok "no strcpy/strcat/sprintf/gets/atoi in the sources"
else fail "no strcpy/strcat/sprintf/gets/atoi in the sources" "$banned"; fi

# Every configuration keyword is documented in relay.conf.5.
for kw in $(sed -n 's/^[[:space:]]*{ "\([a-z_]*\)",.*kw_.*/\1/p' conf.c); do
	if grep -qE "^\.It (Ic|Cm) $kw( |\$)" relay.conf.5; then ok "keyword $kw documented"
	else fail "keyword $kw documented in relay.conf.5"; fi
done

# Every command-line option relay accepts is documented in relay.8.
for opt in $(sed -n "s/^[[:space:]]*{ '\(.\)', [A-Z]*, opt_.*/\1/p" relay.c); do
	if grep -qE "^\.It .*Fl $opt( |\$|[A-Z])|Fl $opt |Fl $opt\$" relay.8; then ok "option -$opt documented"
	else fail "option -$opt documented in relay.8"; fi
done

t_done
