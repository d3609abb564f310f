# Sourced by bench/run.sh and bench/instructions.sh: what both need to
# measure the module against Caddy's own handlers on the same ports.

# refuse_busy ADDR...: stops the script when something answers on any
# of the addresses already (a Caddy left over would be measured instead)
refuse_busy() {
	local addr
	for addr in "$@"; do
		if curl -s -o /dev/null "http://$addr/"; then
			echo "something answers on $addr already: stop it first" >&2
			exit 1
		fi
	done
}

# page_twin ADDR ROOT HEAD PAGE: prints the site of the profile page's
# twin: Caddy's respond of the page's own bytes (file PAGE) with every
# header the page sent (file HEAD, Content-Length too: without it
# respond's answer is chunked and one header lighter), on a site built
# like the module's (root ROOT, the handle of /private/respond,
# file_server), so that the two differ by the module alone
page_twin() {
	local addr=$1 root=$2 head=$3 page=$4 h
	if grep -q '[{}]' "$page"; then
		echo "the profile page holds a brace, which respond would read as a placeholder" >&2
		exit 1
	fi
	printf 'http://%s {\n\thandle /private/respond {\n\t\trespond "Hello, World!"\n\t}\n\troot * %s\n\tfile_server\n\theader {\n' "$addr" "$root"
	for h in Content-Type Content-Length X-Content-Type-Options Vary Content-Security-Policy Referrer-Policy X-Frame-Options Cache-Control; do
		printf '\t\t%s "%s"\n' "$h" "$(tr -d '\r' <"$head" | sed -n "s/^$h: //Ip")"
	done
	# the heredoc leaves out the newline before its end: the page's own
	# last newline stays
	printf '\t}\n\trespond <<PAGE\n'
	cat "$page"
	printf '\nPAGE 200\n}\n'
}

# same_bytes ADDR PAGE: stops the script unless the twin at ADDR answers
# the page's bytes
same_bytes() {
	if ! curl -sf "http://$1/" | cmp -s "$2" -; then
		echo "the page's twin does not answer the page's bytes" >&2
		exit 1
	fi
}
