#!/usr/bin/env bash
# Measures the module against Caddy's own handlers, and the seed's WSGI
# design under gunicorn, in one run on loopback, and prints two tables
# (unpinned and pinned): route, median requests/s, p50 and p99 latency,
# ratio to its twin.
#
#   bench/run.sh                      # about 10 minutes on 2 cores
#   DURATION=3 ROUNDS=1 bench/run.sh  # a quick look
#
# The module's routes are measured twice: with Caddy and wrk free to use
# both cores, then with Caddy pinned to core 0 and wrk to core 1
# (taskset), as on a server that is rarely idle.
#
# It installs wrk and python3-gunicorn with apt-get when they are missing,
# builds the project's Caddy once, and stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-6}     # seconds of each wrk run
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}         # each target and its twin, interleaved, this many times
APP=127.0.0.1:8391          # the module's site
TWIN=127.0.0.1:8392         # the same content from Caddy alone
WSGI=127.0.0.1:8393         # the seed's design under gunicorn
PAGE=127.0.0.1:8394         # respond of the profile page's own body and headers
ADMIN=127.0.0.1:2399

if ! command -v wrk >/dev/null || ! /usr/bin/python3 -c 'import gunicorn' 2>/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk python3-gunicorn >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

. bench/twin.sh
refuse_busy "$APP" "$TWIN" "$WSGI" "$PAGE" "$ADMIN"

echo "building cmd/caddy" >&2
go build -o "$work/caddy" ./cmd/caddy
hash=$("$work/caddy" hash-password --plaintext bench-password) # bcrypt, Caddy's default cost (14)
mkdir -p "$work/www/private"
head -c 1024 /dev/zero | tr '\0' 'x' >"$work/www/static.txt"
cp "$work/www/static.txt" "$work/www/private/static.txt"

cat >"$work/Caddyfile" <<EOF
{
	admin $ADMIN
	auto_https off
	storage file_system $work/storage
	servers {
		trusted_proxies static 127.0.0.1/8
		client_ip_headers X-Forwarded-For
	}
}
http://$APP {
	miniapp {
		user bench $hash
		protect /private/*
		oidc {
			issuer http://$APP
			access_token_lifetime 2h
			client bench {
				secret bench-client-secret-of-32-characters
				redirect_uri http://127.0.0.1:9/cb
			}
		}
	}
	handle /private/respond {
		respond "Hello, World!"
	}
	root * $work/www
	file_server
}
http://$TWIN {
	handle /hello {
		respond "Hello, World!"
	}
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
cp "$work/Caddyfile" "$work/Caddyfile.base"

basic="Authorization: Basic $(printf 'bench:bench-password' | base64)"

# start_caddy [CPU]: Caddy on every core, or pinned to one (its Go runtime
# then runs on that core alone); basic_auth's first check (bcrypt at cost
# 14, then cached) is made before anything is measured
start_caddy() {
	local pin=()
	[ -z "${1:-}" ] || pin=(taskset -c "$1")
	HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work "${pin[@]}" "$work/caddy" run --config "$work/Caddyfile" >"$work/caddy.log" 2>&1 &
	caddy_pid=$!
	pids+=("$caddy_pid")
	for _ in $(seq 100); do
		if curl -sf "http://$APP/hello" >/dev/null; then
			curl -sf -H "$basic" "http://$TWIN/basic/respond" >/dev/null
			return
		fi
		sleep 0.1
	done
	echo "Caddy did not start" >&2
	cat "$work/caddy.log" >&2
	exit 1
}
stop_caddy() {
	kill "$caddy_pid"
	wait "$caddy_pid" 2>/dev/null || true
}

start_caddy
/usr/bin/python3 -m gunicorn --chdir bench --preload --workers 2 --bind "$WSGI" --log-level warning wsgi_app:application &
pids+=("$!")
for _ in $(seq 100); do curl -sf "http://$WSGI/hello" >/dev/null && break; sleep 0.1; done

cookie=$(curl -s -D - -o /dev/null -d 'username=bench&password=bench-password' "http://$APP/login" |
	tr -d '\r' | sed -n 's/^Set-Cookie: \(miniapp_session=[^;]*\).*/\1/Ip')
wsgi_cookie=$(curl -s -D - -o /dev/null -d 'username=bench&password=bench-password' "http://$WSGI/login" |
	tr -d '\r' | sed -n 's/^Set-Cookie: \(session=[^;]*\).*/\1/Ip')
[ -n "$cookie" ] && [ -n "$wsgi_cookie" ] || { echo "login failed" >&2; exit 1; }
[ "$(curl -s -H "Cookie: $cookie" "http://$APP/private/respond")" = "Hello, World!" ] || { echo "session refused" >&2; exit 1; }

# an access token of the OpenID Connect provider, through its code flow
# (PKCE S256), for userinfo
verifier=bench-verifier-of-at-least-forty-three-characters-000
challenge=$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
callback=$(curl -s -o /dev/null -w '%{redirect_url}' "http://$APP/miniapp/oidc/authorize?client_id=bench&response_type=code&scope=openid%20profile%20email&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s&code_challenge=$challenge&code_challenge_method=S256")
code=$(curl -s -o /dev/null -w '%{redirect_url}' -H "Cookie: $cookie" -H "Accept: text/html" "$callback" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
token=$(curl -s -u bench:bench-client-secret-of-32-characters -d grant_type=authorization_code -d "code=$code" \
	--data-urlencode redirect_uri=http://127.0.0.1:9/cb -d "code_verifier=$verifier" "http://$APP/miniapp/oidc/token" |
	sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] && curl -sf -H "Authorization: Bearer $token" "http://$APP/miniapp/oidc/userinfo" >/dev/null ||
	{ echo "no access token from the OpenID Connect provider" >&2; exit 1; }

# the profile page's twin (see page_twin), on the page as Caddy serves it
# (a reload keeps the sessions)
curl -s -D "$work/page.head" -o "$work/page.html" -H "Cookie: $cookie" -H "Accept: text/html" "http://$APP/profile"
{
	cat "$work/Caddyfile.base"
	page_twin "$PAGE" "$work/www" "$work/page.head" "$work/page.html"
} >"$work/Caddyfile"
"$work/caddy" reload --config "$work/Caddyfile" --address "$ADMIN" >/dev/null 2>&1
same_bytes "$PAGE" "$work/page.html"
# after the reload, basic_auth's first check again (see start_caddy)
[ "$(curl -s -H "$basic" "http://$TWIN/basic/respond")" = "Hello, World!" ] || { echo "basic_auth refused" >&2; exit 1; }

# to_ms converts wrk's latency (123.45us, 1.23ms, 1.02s) to milliseconds
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
	}'
}

# measure NAME URL [HEADER...]: one wrk run, appended to results as
# "name rps p50 p99" (the rps also in last_rps); wrk runs under $wrk_pin
# when it is set
wrk_pin=()
measure() {
	local name=$1 url=$2
	shift 2
	local args=()
	for h in "$@"; do args+=(-H "$h"); done
	local out
	out=$("${wrk_pin[@]}" wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --latency "${args[@]}" "$url")
	if grep -q "Non-2xx" <<<"$out"; then
		echo "$name: wrk saw non-2xx responses" >&2
		echo "$out" >&2
		exit 1
	fi
	local rps p50 p99
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	echo "$name $rps $p50 $p99" >>"$work/results"
	last_rps=$rps
	echo "  $name: $rps req/s, p50 ${p50}ms, p99 ${p99}ms" >&2
}

# target NAME URL TWIN_NAME TWIN_URL [HEADER...]: the route, then its twin;
# the first nine are the module's, measured pinned too (userinfo against
# protect in front of respond: a token check against a session check): against a
# respond of 13 bytes, and against the two twins set as targets: a
# respond of the profile page's own body and headers, and Caddy's own
# basic_auth in front of the same respond as protect
targets=(
	"hello|http://$APP/hello?name=World|respond|http://$TWIN/hello|"
	"profile_html|http://$APP/profile|respond|http://$TWIN/hello|Cookie: $cookie;Accept: text/html"
	"profile_html|http://$APP/profile|respond_page|http://$PAGE/|Cookie: $cookie;Accept: text/html"
	"profile_json|http://$APP/profile|respond|http://$TWIN/hello|Cookie: $cookie;Accept: application/json"
	"protect+respond|http://$APP/private/respond|respond_cookie|http://$TWIN/private/respond|Cookie: $cookie"
	"protect+respond|http://$APP/private/respond|basic_auth+respond|http://$TWIN/basic/respond|Cookie: $cookie;$basic"
	"protect+file_server|http://$APP/private/static.txt|file_server|http://$TWIN/private/static.txt|Cookie: $cookie"
	"miniapp_auth|http://$APP/miniapp/auth|respond_auth|http://$TWIN/hello|Cookie: $cookie;X-Forwarded-Proto: http;X-Forwarded-Host: $APP;X-Forwarded-Uri: /app"
	"oidc_userinfo|http://$APP/miniapp/oidc/userinfo|protect+respond|http://$APP/private/respond|Authorization: Bearer $token;Cookie: $cookie"
	"wsgi_hello|http://$WSGI/hello?name=World|respond|http://$TWIN/hello|"
	"wsgi_profile|http://$WSGI/profile|respond|http://$TWIN/hello|Cookie: $wsgi_cookie"
)

: >"$work/results"
: >"$work/pairs"
# rounds PREFIX TARGET...: each target and its twin, ROUNDS times, recorded
# under PREFIX as "route>twin" and "twin@route" (a route measured against
# two twins is two targets); the route goes first in odd rounds and
# second in even ones, so that a machine that speeds up or slows down
# does not favour either; each pair's requests/s also in pairs, as
# "route>twin route_rps twin_rps", for the ratio of each round
rounds() {
	local prefix=$1 round t route_rps twin_rps
	shift
	for round in $(seq "$ROUNDS"); do
		echo "round $round of $ROUNDS${prefix:+ ($prefix)}" >&2
		for t in "$@"; do
			IFS='|' read -r name url twin twin_url headers <<<"$t"
			IFS=';' read -r -a hdrs <<<"$headers"
			if [ $((round % 2)) = 1 ]; then
				measure "$prefix$name>$twin" "$url" "${hdrs[@]}"
				route_rps=$last_rps
				measure "$prefix$twin@$name" "$twin_url" "${hdrs[@]}"
				twin_rps=$last_rps
			else
				measure "$prefix$twin@$name" "$twin_url" "${hdrs[@]}"
				twin_rps=$last_rps
				measure "$prefix$name>$twin" "$url" "${hdrs[@]}"
				route_rps=$last_rps
			fi
			echo "$prefix$name>$twin $route_rps $twin_rps" >>"$work/pairs"
		done
	done
}
rounds "" "${targets[@]}"

# the module's routes again, Caddy on core 0 and wrk on core 1, before
# the logins below add sessions to the profile's list
stop_caddy
start_caddy 0
wrk_pin=(taskset -c 1)
rounds "pinned:" "${targets[@]:0:9}"
wrk_pin=()
stop_caddy
start_caddy

# a CPU profile of Caddy while it serves /profile, top costs in the module
echo "profiling /profile" >&2
curl -s -o "$work/cpu.pprof" "http://$ADMIN/debug/pprof/profile?seconds=5" &
curl_pid=$!
wrk -t 2 -c "$CONNECTIONS" -d 6s -H "Cookie: $cookie" -H "Accept: text/html" "http://$APP/profile" >/dev/null
wait "$curl_pid"
go tool pprof -top -nodecount=400 "$work/caddy" "$work/cpu.pprof" 2>/dev/null |
	awk 'NR <= 6 || /miniapp/' | head -n 26 >"$work/profile.txt"

# logins per second at the configured cost (bcrypt 14): the hash dominates
cat >"$work/login.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "username=bench&password=bench-password"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
EOF
# one connection: a client has one login in progress at a time, and a
# second one at once is refused (429) and charged as a failure
login_out=$(wrk -t 1 -c 1 -d 10s -s "$work/login.lua" "http://$APP/login")
logins=$(awk '/^Requests\/sec:/ {print $2}' <<<"$login_out")
logins_refused=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$login_out")

# /hello alone, then /hello while many addresses flood /login with
# wrong passwords, and the memory that leaves behind
cat >"$work/flood.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "username=nobody&password=wrong"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
	wrk.headers["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
	return wrk.format()
end
EOF
rss() { awk '/^VmRSS/ {print $2}' "/proc/$caddy_pid/status"; }
hello_alone=$(wrk -t 1 -c 16 -d "${DURATION}s" "http://$APP/hello?name=World" | awk '/^Requests\/sec:/ {print $2}')
rss_before_flood=$(rss)
wrk -t 1 -c 64 -d "$((DURATION + 2))s" -s "$work/flood.lua" "http://$APP/login" >"$work/flood.txt" &
flood_pid=$!
sleep 1
hello_flooded=$(wrk -t 1 -c 16 -d "${DURATION}s" "http://$APP/hello?name=World" | awk '/^Requests\/sec:/ {print $2}')
wait "$flood_pid"
flood_requests=$(awk '/requests in/ {print $1}' "$work/flood.txt")
rss_after_flood=$(rss)

# resident memory after a million requests with a session, and after a
# million to respond, each in a fresh Caddy
million() { # URL HEADER...: wrk runs until a million requests in all; prints the count
	local url=$1 total=0 n
	shift
	local args=()
	for h in "$@"; do args+=(-H "$h"); done
	while [ "$total" -lt 1000000 ]; do
		n=$(wrk -t 2 -c "$CONNECTIONS" -d 10s "${args[@]}" "$url" | awk '/requests in/ {print $1}')
		total=$((total + n))
	done
	echo "$total"
}
stop_caddy
start_caddy
cookie=$(curl -s -D - -o /dev/null -d 'username=bench&password=bench-password' "http://$APP/login" |
	tr -d '\r' | sed -n 's/^Set-Cookie: \(miniapp_session=[^;]*\).*/\1/Ip')
n_session=$(million "http://$APP/profile" "Cookie: $cookie" "Accept: text/html")
rss_session=$(rss)
stop_caddy
start_caddy
n_respond=$(million "http://$TWIN/hello" "Cookie: $cookie" "Accept: text/html")
rss_respond=$(rss)

# the table: medians over the rounds, ratios to the twin of each route
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\n%s, %s cores, Caddy %s, wrk -t2 -c%s -d%ss, %s rounds\n\n' \
	"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" "$(nproc)" \
	"$("$work/caddy" version | cut -d' ' -f1)" "$CONNECTIONS" "$DURATION" "$ROUNDS"
# table PREFIX TARGET...: one row per target; "round ratio" is the median
# of each round's ratio, the route against the twin measured right after
# it, which a machine whose speed drifts between rounds moves less
table() {
	local prefix=$1 t
	shift
	printf '| route | median req/s | p50 ms | p99 ms | twin | twin req/s | twin p99 ms | req/s ratio | round ratio | p99 ratio |\n'
	printf '|---|---|---|---|---|---|---|---|---|---|\n'
	for t in "$@"; do
		IFS='|' read -r name _ twin _ _ <<<"$t"
		rps=$(awk -v n="$prefix$name>$twin" '$1 == n {print $2}' "$work/results" | median)
		p50=$(awk -v n="$prefix$name>$twin" '$1 == n {print $3}' "$work/results" | median)
		p99=$(awk -v n="$prefix$name>$twin" '$1 == n {print $4}' "$work/results" | median)
		trps=$(awk -v n="$prefix$twin@$name" '$1 == n {print $2}' "$work/results" | median)
		tp99=$(awk -v n="$prefix$twin@$name" '$1 == n {print $4}' "$work/results" | median)
		paired=$(awk -v n="$prefix$name>$twin" '$1 == n {print $2 / $3}' "$work/pairs" | median)
		awk -v a="$name" -v b="$rps" -v c="$p50" -v d="$p99" -v e="$twin" -v f="$trps" -v g="$tp99" -v h="$paired" \
			'BEGIN {printf "| %s | %.0f | %.3f | %.3f | %s | %.0f | %.3f | %.2f | %.2f | %.2f |\n", a, b, c, d, e, f, g, b / f, h, d / g}'
	done
}
table "" "${targets[@]}"
printf '\npinned: Caddy on core 0 (taskset -c 0), wrk on core 1 (taskset -c 1)\n\n'
table "pinned:" "${targets[@]:0:9}"
printf '\nlogins/s at bcrypt cost 14, 1 connection: %s (refused: %s)\n' "$logins" "${logins_refused:-0}"
awk -v a="$hello_alone" -v b="$hello_flooded" -v n="$flood_requests" -v r1="$rss_before_flood" -v r2="$rss_after_flood" \
	'BEGIN {printf "/hello alone %.0f req/s, during a flood of %d failed logins from random addresses %.0f req/s (ratio %.2f); RSS %d -> %d KiB\n", a, n, b, b / a, r1, r2}'
awk -v ns="$n_session" -v rs="$rss_session" -v nr="$n_respond" -v rr="$rss_respond" \
	'BEGIN {printf "RSS after %d /profile requests with a session: %d KiB; after %d respond requests: %d KiB; difference %.1f MiB\n", ns, rs, nr, rr, (rs - rr) / 1024}'
printf '\ntop of the CPU profile while serving /profile (HTML), module functions:\n\n'
cat "$work/profile.txt"
