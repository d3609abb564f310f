#!/usr/bin/env bash
# Counts the instructions Caddy runs per request (valgrind's callgrind),
# for the module's profile page and protect against their twins in one
# Caddy (the sites of bench/run.sh without its OpenID Connect provider):
# a count that what else the machine does moves little (a garbage
# collection landing in one round or the next moves it by a few per
# cent), unlike the requests per second of bench/run.sh. Each route gets N
# requests on one keep-alive connection after a warm-up and a garbage
# collection; the Go runtime runs on one thread (GOMAXPROCS=1), as on the
# pinned core of bench/run.sh.
#
#   bench/instructions.sh          # about 2 minutes
#   N=1000 ROUNDS=1 bench/instructions.sh
#
# It installs valgrind with apt-get when it is missing, builds the
# project's Caddy once, and stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-3000}        # requests counted per route and round
ROUNDS=${ROUNDS:-3} # every route, this many times
APP=127.0.0.1:8391  # the module's site
TWIN=127.0.0.1:8392 # Caddy alone: respond, basic_auth
PAGE=127.0.0.1:8394 # respond of the profile page's own body and headers
ADMIN=127.0.0.1:2399

if ! command -v valgrind >/dev/null || [ ! -x /usr/bin/python3 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind python3 >/dev/null
fi
. bench/twin.sh
refuse_busy "$APP" "$TWIN" "$PAGE" "$ADMIN"

work=$(mktemp -d)
pid=
cleanup() {
	[ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT

echo "building cmd/caddy" >&2
go build -o "$work/caddy" ./cmd/caddy
hash=$("$work/caddy" hash-password --plaintext bench-password)
mkdir -p "$work/www"
cat >"$work/Caddyfile" <<EOF
{
	admin $ADMIN
	auto_https off
	storage file_system $work/storage
}
http://$APP {
	miniapp {
		user bench $hash
		protect /private/*
	}
	handle /private/respond {
		respond "Hello, World!"
	}
	root * $work/www
	file_server
}
http://$TWIN {
	handle /private/respond {
		respond "Hello, World!"
	}
	handle /basic/respond {
		basic_auth {
			bench $hash
		}
		respond "Hello, World!"
	}
	root * $work/www
	file_server
}
EOF

# run [PREFIX...]: Caddy in the background, under PREFIX
run() {
	HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work "$@" "$work/caddy" run --config "$work/Caddyfile" >"$work/caddy.log" 2>&1 &
	pid=$!
	for _ in $(seq 600); do
		curl -sf "http://$APP/hello" >/dev/null && return
		sleep 0.2
	done
	echo "Caddy did not start" >&2
	cat "$work/caddy.log" >&2
	exit 1
}

# a session and the profile page, from Caddy run as it is (bcrypt at
# cost 14 under valgrind takes minutes); the sessions are kept in the
# storage, so the cookie opens in the Caddy measured below
run
cookie=$(curl -s -D - -o /dev/null -d 'username=bench&password=bench-password' "http://$APP/login" |
	tr -d '\r' | sed -n 's/^Set-Cookie: \(miniapp_session=[^;]*\).*/\1/Ip')
[ -n "$cookie" ] || { echo "login failed" >&2; exit 1; }
curl -s -D "$work/page.head" -o "$work/page.html" -H "Cookie: $cookie" -H "Accept: text/html" "http://$APP/profile"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=
page_twin "$PAGE" "$work/www" "$work/page.head" "$work/page.html" >>"$work/Caddyfile"

run env GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 valgrind --tool=callgrind --instr-atstart=no \
	--callgrind-out-file="$work/callgrind.%p"
same_bytes "$PAGE" "$work/page.html"

# requests HOST PATH COUNT [HEADER...]: COUNT GETs on one connection
requests() {
	/usr/bin/python3 - "$@" <<'EOF'
import http.client, sys
host, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
headers = dict(h.split(': ', 1) for h in sys.argv[4:])
c = http.client.HTTPConnection(host)
for _ in range(n):
    c.request('GET', path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f'{host}{path}: status {r.status}')
EOF
}

basic="Authorization: Basic $(printf 'bench:bench-password' | base64)"
dumps=0
: >"$work/counts"
# count NAME HOST PATH [HEADER...]: instructions per request, appended to
# counts as "name instructions"
count() {
	local name=$1
	shift
	requests "$1" "$2" 200 "${@:3}"
	curl -s -o /dev/null "http://$ADMIN/debug/pprof/heap?gc=1"
	callgrind_control -z "$pid" >/dev/null 2>&1
	callgrind_control -i on "$pid" >/dev/null 2>&1
	requests "$1" "$2" "$N" "${@:3}"
	callgrind_control -i off "$pid" >/dev/null 2>&1
	callgrind_control -d "$name" "$pid" >/dev/null 2>&1
	dumps=$((dumps + 1))
	local out=$work/callgrind.$pid.$dumps
	for _ in $(seq 100); do
		grep -q '^totals:' "$out" 2>/dev/null && break
		sleep 0.2
	done
	awk -v a="$name" -v n="$N" '/^totals:/ {printf "%s %.0f\n", a, $2 / n}' "$out" | tee -a "$work/counts" >&2
	if ! awk -v a="$name" '$1 == a && $2 > 0 {found = 1} END {exit !found}' "$work/counts"; then
		echo "$name: callgrind counted nothing" >&2
		exit 1
	fi
}
for round in $(seq "$ROUNDS"); do
	echo "round $round of $ROUNDS" >&2
	count profile_html "$APP" /profile "Cookie: $cookie" "Accept: text/html"
	count respond_page "$PAGE" / "Cookie: $cookie" "Accept: text/html"
	count protect+respond "$APP" /private/respond "Cookie: $cookie"
	count basic_auth+respond "$TWIN" /basic/respond "Cookie: $cookie" "$basic"
	count respond "$TWIN" /private/respond "Cookie: $cookie"
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\ninstructions per request (callgrind, GOMAXPROCS=1), median of %s rounds of %s requests\n\n' "$ROUNDS" "$N"
printf '| route | instructions | twin | twin instructions | ratio (twin / route) |\n|---|---|---|---|---|\n'
for pair in profile_html:respond_page protect+respond:basic_auth+respond protect+respond:respond; do
	route=${pair%%:*} twin=${pair#*:}
	a=$(awk -v n="$route" '$1 == n {print $2}' "$work/counts" | median)
	b=$(awk -v n="$twin" '$1 == n {print $2}' "$work/counts" | median)
	awk -v r="$route" -v a="$a" -v t="$twin" -v b="$b" 'BEGIN {printf "| %s | %d | %s | %d | %.2f |\n", r, a, t, b, b / a}'
done
