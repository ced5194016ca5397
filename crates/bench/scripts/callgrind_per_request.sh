#!/bin/bash
# callgrind_per_request.sh PLEXER HELLO N OUT: `plexer serve` (one hello account, audit off) under
# callgrind, N GET requests on one kept FastCGI connection; prints the run's instruction total
# and the number of access-log lines. Instructions per request: (total(2500) - total(500)) / 2000.
# ROUTE (a YAML mapping, `{ by: path_prefix }` by default), EXTRA (more config lines) and COOKIE
# (the requests' Cookie header; COOKIE=SIGN signs bob's routing cookie with this run's key)
# compare routes.
set -e
PLEXER=$1; HELLO=$(realpath "$2"); N=$3; OUT=$4
# As root, plexer refuses pools without user: unless told (hello runs as plexer's user here).
ALLOW_ROOT=$([ "$(id -u)" = 0 ] && echo --allow-root)
D=$(mktemp -d)
mkdir -p $D/accounts.d
cat > $D/plexer.yaml <<CFG
listen: unix:$D/plexer.sock
accounts_dir: $D/accounts.d
runtime_dir: $D/run
secret_file: $D/secret
route: ${ROUTE:-{ by: path_prefix \}}
login: { account: login }
${EXTRA:-}
pool:
  command: [$HELLO]
  pm: static
  max_children: 2
  audit: "off"
CFG
echo "users: [bob]" > $D/accounts.d/bob.yaml
echo "{}" > $D/accounts.d/login.yaml
echo "{}" > $D/accounts.d/auth.yaml
(umask 077; head -c 48 /dev/urandom | base64 -w0 > $D/secret)
valgrind --tool=callgrind --callgrind-out-file=$OUT $PLEXER serve -c $D/plexer.yaml $ALLOW_ROOT > $D/log 2>&1 &
VG=$!
for i in $(seq 1 200); do [ -S $D/plexer.sock ] && break; sleep 0.1; done
sleep 2
[ "${COOKIE:-}" = SIGN ] && COOKIE="plexer_account=$($PLEXER cookie sign bob -c $D/plexer.yaml)"
COOKIE=${COOKIE:-} python3 "$(dirname "$0")/fcgi_keepalive_client.py" $D/plexer.sock $N >/dev/null
kill -TERM $VG; wait $VG || true
grep -E "^summary:|^totals:" $OUT | head -1
grep -c '"request"\|plexer::access\| request \| rt=' $D/log || true
rm -rf $D
