#!/usr/bin/env bash
# Makes MariaDB (127.0.0.1:3306, root, empty password) and PostgreSQL
# (127.0.0.1:5432, trust for local TCP, roles root and postgres) available for
# the pipeline's tests and demo. Idempotent: uses running servers, starts
# stopped ones, installs them from Debian packages on a fresh machine. Runs as
# root (sudo otherwise), with or without systemd (containers, chroots, CI).
#
# These are LOCAL DEVELOPMENT servers: the script opens root/trust access on
# loopback. Never point it at a machine that holds real data.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
	if [ "$apt_updated" -eq 0 ]; then
		log "apt-get update"
		as_root apt-get update -qq
		apt_updated=1
	fi
	log "installing $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# run_logged <what> <command...>: runs a start command with its output in a
# file, shown only on failure. Daemons started by it must not inherit our
# stdout/stderr, or a caller reading them through a pipe (CI) never sees EOF.
run_logged() {
	local what=$1 out rc=0
	shift
	out=$(mktemp)
	"$@" </dev/null >"$out" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		log "$what failed (exit $rc):"
		cat "$out" >&2
	fi
	rm -f "$out"
	return "$rc"
}

wait_for() { # wait_for <what> <command...>
	local what=$1
	shift
	for _ in $(seq 1 60); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	log "$what did not come up within 60 s"
	return 1
}

# --- MariaDB -----------------------------------------------------------------
mariadb_tcp() { mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot "$@"; }

if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
	apt_install mariadb-server mariadb-client
fi
if ! mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1 &&
	! mariadb-admin -uroot ping >/dev/null 2>&1; then
	log "starting MariaDB"
	if [ -d /run/systemd/system ]; then
		run_logged "systemctl start mariadb" as_root systemctl start mariadb
	else
		# No systemd (container, chroot, CI): the package's SysV script creates
		# /run/mysqld and runs mysqld_safe, which drops to user mysql (mariadbd
		# itself refuses to run as root unless the config says user=mysql).
		run_logged "/etc/init.d/mariadb start" as_root /etc/init.d/mariadb start
	fi
	wait_for "MariaDB" mariadb-admin -uroot ping
fi
if ! mariadb_tcp -e 'SELECT 1' >/dev/null 2>&1; then
	# Fresh Debian install: root authenticates by unix socket only. Allow the
	# empty-password TCP login the tests use, keeping socket login too.
	log "allowing root@localhost over TCP without a password (local dev server)"
	as_root mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
fi
wait_for "MariaDB on 127.0.0.1:3306" mariadb_tcp -e 'SELECT 1'
if [ "$(mariadb_tcp -N -e 'SELECT @@local_infile')" != "1" ]; then
	mariadb_tcp -e 'SET GLOBAL local_infile=1'
fi
mariadb_tcp -e 'CREATE DATABASE IF NOT EXISTS test'
log "MariaDB ok: $(mariadb_tcp -N -e 'SELECT VERSION()')"

# --- PostgreSQL --------------------------------------------------------------
# -w: never prompt for a password (it would hang an interactive run).
pg_tcp() { psql -X -q -w -h 127.0.0.1 -p 5432 -U postgres -d postgres "$@"; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
	apt_install postgresql postgresql-client
fi
# The newest version that has a "main" cluster; else the newest installed one,
# for which we make the cluster (the package does, unless createcluster.conf
# says not to). "|| true": under pipefail a glob matching nothing would end
# the script silently. (ls is fine: version directories are plain numbers.)
# shellcheck disable=SC2012
pgver=$(ls -d /etc/postgresql/*/main 2>/dev/null | cut -d/ -f4 | sort -V | tail -n 1 || true)
if [ -z "$pgver" ]; then
	# shellcheck disable=SC2012
	pgver=$(ls -d /usr/lib/postgresql/*/bin/postgres | cut -d/ -f5 | sort -V | tail -n 1)
	log "creating PostgreSQL cluster $pgver/main"
	run_logged "pg_createcluster" as_root pg_createcluster "$pgver" main
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
	log "starting PostgreSQL $pgver"
	# Without systemd pg_ctlcluster starts the server itself; with systemd it
	# hands over to postgresql@$pgver-main. Exit 2 is "already running" (then
	# waiting tells whether it answers on 127.0.0.1:5432).
	run_logged "pg_ctlcluster start" as_root pg_ctlcluster "$pgver" main start || true
	wait_for "PostgreSQL" pg_isready -q -h 127.0.0.1 -p 5432
fi
if ! pg_tcp -c 'SELECT 1' >/dev/null 2>&1; then
	# Fresh Debian install: loopback TCP asks for a password. Trust loopback
	# (local dev server only) and reload.
	hba=/etc/postgresql/$pgver/main/pg_hba.conf
	log "trusting loopback TCP in $hba (local dev server)"
	as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
	as_root pg_ctlcluster "$pgver" main reload
	wait_for "PostgreSQL on 127.0.0.1:5432" pg_tcp -c 'SELECT 1'
fi
if [ "$(pg_tcp -tA -c "SELECT count(*) FROM pg_roles WHERE rolname='root'")" != "1" ]; then
	pg_tcp -c 'CREATE ROLE root SUPERUSER LOGIN'
fi
for db in root test; do
	if [ "$(pg_tcp -tA -c "SELECT count(*) FROM pg_database WHERE datname='$db'")" != "1" ]; then
		pg_tcp -c "CREATE DATABASE \"$db\""
	fi
done
log "PostgreSQL ok: $(pg_tcp -tA -c 'SHOW server_version')"
