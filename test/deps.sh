#!/usr/bin/env bash
# Installs what stream_ext needs to build and test on Debian 12, as root.
# Idempotent and quiet: does nothing (not even apt-get update) when all is there.
set -euo pipefail

# postgresql-15: server, contrib modules and pgbench (Debian ships contrib inside it)
# postgresql-client-15: psql;  postgresql-server-dev-15: pg_config, PGXS, headers
# librdkafka-dev, kcat: Kafka ingestion and its tests;  procps: pkill/pgrep
# prometheus-postgres-exporter, curl: test/t_exporter.sh scrapes the query file
# postgresql-15-hll, postgresql-15-tdigest: test/t_sketches.sh (their aggregates in views)
# python3-psycopg2: a client that LISTENs (test/listen.py: t_notify, bench/changes.sh)
required=(postgresql-15 postgresql-client-15 postgresql-server-dev-15
          librdkafka-dev kcat make gcc procps util-linux coreutils
          prometheus-postgres-exporter curl postgresql-15-hll postgresql-15-tdigest
          python3 python3-psycopg2)
# Only a separate package on some distributions (not on Debian 12).
optional=(postgresql-contrib-15)

installed() { grep -q '^Status: install ok installed' < <(dpkg -s "$1" 2>/dev/null); }
available() { grep -q "^Package: " < <(apt-cache show "$1" 2>/dev/null); }  # real, not virtual

missing=()
for p in "${required[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${optional[@]}"; do
	installed "$p" && continue
	# Without package lists we cannot know yet; decided after apt-get update.
	available "$p" && missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages (${missing[*]}); run as root to install them" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps.sh: installing ${missing[*]}" >&2
apt-get update -qq >/dev/null
for p in "${optional[@]}"; do
	if ! installed "$p" && available "$p" && [[ " ${missing[*]} " != *" $p "* ]]; then
		missing+=("$p")
	fi
done
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
