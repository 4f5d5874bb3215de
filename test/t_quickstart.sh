#!/usr/bin/env bash
# README's Quick start works pasted into psql as written: the SQL block under
# "## Quick start", taken from README.md, goes to psql on its standard input
# (as a paste does) in a new database; every statement succeeds, COPY reads
# the lines that follow it up to \., and the view holds what README says.
source "$(dirname "$0")/lib.sh"

use_server
empty_db t_quickstart

block=$(awk '/^## Quick start/ { in_section = 1 }
	in_section && /^```sql$/ { in_block = 1; next }
	in_block && /^```$/ { exit }
	in_block { print }' "$TEST_DIR/../README.md")
[ -n "$block" ] || fail "no \`\`\`sql block under README's \"## Quick start\""

out=$(printf '%s\n' "$block" | psql -X -v ON_ERROR_STOP=1 2>&1) ||
	fail "psql stopped on the Quick start:
$out"
echo "$out"
if grep -q 'ERROR' <<<"$out"; then fail "the Quick start printed an error"; fi
grep -qx 'INSERT 0 1' <<<"$out" || fail "the INSERT did not report one row"
grep -qx 'COPY 3' <<<"$out" || fail "the COPY did not read its three lines"
# the final SELECT: /page/1 (the INSERT's event, max(ts) now(), and one COPY
# line), then /page/2; /home is filtered out
grep -Eq '^ /page/1 \| +2 \| +153 \| +76\.5 \| .+ \| +1$' <<<"$out" ||
	fail "the SELECT did not show /page/1 with count 2, sum 153, avg 76.5, 1 slow"
grep -Eq '^ /page/2 \| +1 \| +35\.5 \| +35\.5 \| .+ \| +0$' <<<"$out" ||
	fail "the SELECT did not show /page/2 with count 1, sum 35.5, 0 slow"
grep -qx '(2 rows)' <<<"$out" || fail "the SELECT did not show two rows"
say "ok: the Quick start runs in psql as written"

[ "$(q "SELECT string_agg(url || ' ' || count || ' ' || sum || ' ' || slow, ', ' ORDER BY url) FROM url_stats")" = \
	"/page/1 2 153 1, /page/2 1 35.5 0" ] || fail "url_stats does not hold what README says"
say "ok: url_stats holds /page/1 (2 events, 1 slow) and /page/2"
