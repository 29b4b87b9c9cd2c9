#!/usr/bin/env bash
# Makes MariaDB (127.0.0.1:3306, root, empty password) and PostgreSQL
# (127.0.0.1:5432, trust for local TCP, roles root and postgres) available for
# the pipeline's tests and demo. Idempotent: uses running servers, starts
# stopped ones, installs them from Debian packages on a fresh machine. Runs as
# root (sudo otherwise), with or without systemd (containers, chroots, CI).
#
# Both servers offer TLS with certificates from a local development CA that
# the script makes with openssl under $PIPELINE_DEV_TLS_DIR (default
# /var/lib/pipeline-dev-tls; regenerated only when missing or expiring), and
# each has test users that must use TLS (see "TLS" below).
#
# These are LOCAL DEVELOPMENT servers: the script opens root/trust access on
# loopback. Never point it at a machine that holds real data.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# One at a time: two copies at once (make test beside make bench) would both
# see TLS off and restart MariaDB under each other. Fd 9 holds the lock; the
# daemons we start must not inherit it (9>&-), or the lock lives on with them.
lock_file=${TMPDIR:-/tmp}/pipeline-services.lock
exec 9>>"$lock_file"
if ! flock -w 600 9; then
	log "another scripts/services.sh has held $lock_file for 10 minutes; giving up"
	exit 1
fi

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
	"$@" </dev/null >"$out" 2>&1 9>&- || rc=$?
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
mariadb_alive() {
	mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1 ||
		as_root mariadb-admin -uroot ping >/dev/null 2>&1
}
start_mariadb() {
	if [ -d /run/systemd/system ]; then
		run_logged "systemctl start mariadb" as_root systemctl start mariadb
	else
		# No systemd (container, chroot, CI): what the package's SysV script
		# does, without its dependence on /etc/mysql/debian.cnf (absent on
		# some images, which makes the script wait and fail): create
		# /run/mysqld and run mysqld_safe, which drops to user mysql, detached
		# and without our stdout/stderr.
		as_root install -d -m 755 -o mysql -g root /run/mysqld
		as_root setsid /usr/bin/mysqld_safe </dev/null >/dev/null 2>&1 9>&- &
	fi
	wait_for "MariaDB" mariadb_alive
}
if ! mariadb_alive; then
	log "starting MariaDB"
	start_mariadb
fi
if ! mariadb_tcp -e 'SELECT 1' >/dev/null 2>&1; then
	# Fresh Debian install: root authenticates by unix socket only. Allow the
	# empty-password TCP login the tests use, keeping socket login too.
	log "allowing root@localhost over TCP without a password (local dev server)"
	as_root mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
fi
wait_for "MariaDB on 127.0.0.1:3306" mariadb_tcp -e 'SELECT 1'

# --- TLS: local development CA ----------------------------------------------
# ca.pem signs server.pem (CN localhost; SANs localhost, 127.0.0.1, ::1) and
# client.pem (CN pipeline_tls_cert, for client-certificate logins).
# wrong-ca.pem is an unrelated CA for the tests that must fail verification.
# Keys of the two CAs stay root-only; each server gets its own copy of the
# server key owned by its user. client.key is world-readable so tests running
# as any user can present it: this CA exists for loopback test servers only.
tls_dir=${PIPELINE_DEV_TLS_DIR:-/var/lib/pipeline-dev-tls}
tls_changed=0 # set when a server's certificate or key was (re)installed

if ! command -v openssl >/dev/null 2>&1; then apt_install openssl; fi

# cert_ok <cert> [ca]: the certificate exists, is valid for 30 more days and
# (with a CA) was signed by it.
cert_ok() {
	as_root test -s "$1" || return 1
	as_root openssl x509 -checkend $((30 * 86400)) -noout -in "$1" >/dev/null 2>&1 || return 1
	if [ $# -gt 1 ]; then as_root openssl verify -CAfile "$2" "$1" >/dev/null 2>&1 || return 1; fi
}

# ext_file <lines...>: a temporary openssl extension/config file.
ext_file() {
	local f
	f=$(mktemp)
	printf '%s\n' "$@" >"$f"
	chmod 644 "$f"
	printf '%s' "$f"
}

make_ca() { # make_ca <name> <common name>
	local cfg
	log "making TLS certificate authority $tls_dir/$1.pem"
	cfg=$(ext_file '[req]' 'distinguished_name = dn' 'x509_extensions = ext' '[dn]' '[ext]' \
		'basicConstraints = critical, CA:TRUE' 'keyUsage = critical, keyCertSign, cRLSign' \
		'subjectKeyIdentifier = hash')
	run_logged "openssl req (CA $1)" as_root openssl req -x509 -new -config "$cfg" -newkey ec \
		-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls_dir/$1.key" -out "$tls_dir/$1.pem" \
		-days 3650 -subj "/CN=$2"
	rm -f "$cfg"
	as_root chmod 600 "$tls_dir/$1.key"
	as_root chmod 644 "$tls_dir/$1.pem"
}

make_leaf() { # make_leaf <name> <common name> <extension lines...>
	local name=$1 cn=$2 cfg ext
	shift 2
	log "making TLS certificate $tls_dir/$name.pem (CN $cn)"
	cfg=$(ext_file '[req]' 'distinguished_name = dn' '[dn]')
	ext=$(ext_file 'basicConstraints = critical, CA:FALSE' 'authorityKeyIdentifier = keyid' "$@")
	run_logged "openssl req ($name)" as_root openssl req -new -config "$cfg" -newkey ec \
		-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls_dir/$name.key" -out "$tls_dir/$name.csr" \
		-subj "/CN=$cn"
	run_logged "openssl x509 ($name)" as_root openssl x509 -req -in "$tls_dir/$name.csr" -CA "$tls_dir/ca.pem" \
		-CAkey "$tls_dir/ca.key" -CAcreateserial -CAserial "$tls_dir/ca.srl" -days 825 -extfile "$ext" \
		-out "$tls_dir/$name.pem"
	rm -f "$cfg" "$ext"
	as_root rm -f "$tls_dir/$name.csr"
	as_root chmod 644 "$tls_dir/$name.pem"
}

# install_server_tls <service dir> <owner>: the server certificate, its key
# (owned by the server's user, mode 600 as PostgreSQL demands) and the CA.
install_server_tls() {
	local dir=$tls_dir/$1 f
	as_root install -d -m 755 "$dir"
	for f in server.pem server.key ca.pem; do
		if ! as_root cmp -s "$tls_dir/$f" "$dir/$f"; then
			as_root install -m 600 -o "$2" -g "$2" "$tls_dir/$f" "$dir/$f"
			tls_changed=1
		fi
	done
}

as_root install -d -m 755 "$tls_dir"
if ! cert_ok "$tls_dir/ca.pem"; then
	make_ca ca "pipeline local development CA"
fi
if ! cert_ok "$tls_dir/wrong-ca.pem"; then
	make_ca wrong-ca "pipeline dev WRONG CA (tests expect refusal)"
fi
if ! cert_ok "$tls_dir/server.pem" "$tls_dir/ca.pem"; then
	make_leaf server localhost 'keyUsage = critical, digitalSignature, keyEncipherment' \
		'extendedKeyUsage = serverAuth' 'subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1'
fi
if ! cert_ok "$tls_dir/client.pem" "$tls_dir/ca.pem"; then
	make_leaf client pipeline_tls_cert 'keyUsage = critical, digitalSignature' \
		'extendedKeyUsage = clientAuth'
	as_root chmod 644 "$tls_dir/client.key"
fi

# --- TLS: MariaDB ------------------------------------------------------------
# ssl_cert/ssl_key/ssl_ca are read-only in MariaDB 10.11: they are read at
# start, so switching TLS on takes one restart (only while it is off). New
# certificates at the same paths are picked up by FLUSH SSL without one.
install_server_tls mariadb mysql
mariadb_tls_cnf="[mysqld]
# Written by the pipeline's scripts/services.sh: TLS with the local dev CA.
ssl_ca = $tls_dir/mariadb/ca.pem
ssl_cert = $tls_dir/mariadb/server.pem
ssl_key = $tls_dir/mariadb/server.key"
mariadb_cnf=/etc/mysql/mariadb.conf.d/90-pipeline-dev-tls.cnf
if [ "$(as_root cat "$mariadb_cnf" 2>/dev/null)" != "$mariadb_tls_cnf" ]; then
	log "writing $mariadb_cnf"
	as_root install -d -m 755 /etc/mysql/mariadb.conf.d
	printf '%s\n' "$mariadb_tls_cnf" | as_root tee "$mariadb_cnf" >/dev/null
	as_root chmod 644 "$mariadb_cnf"
fi
mariadb_reads_tls_cnf() { /usr/sbin/mariadbd --print-defaults | grep -q -- "--ssl_cert=$tls_dir/mariadb/server.pem"; }
if ! mariadb_reads_tls_cnf; then
	# Debian's my.cnf includes mariadb.conf.d; a trimmed one may not.
	log "adding !includedir /etc/mysql/mariadb.conf.d/ to /etc/mysql/my.cnf"
	printf '\n!includedir /etc/mysql/mariadb.conf.d/\n' | as_root tee -a /etc/mysql/my.cnf >/dev/null
	mariadb_reads_tls_cnf || {
		log "MariaDB does not read $mariadb_cnf (see: mariadbd --print-defaults)"
		exit 1
	}
fi
if [ "$(mariadb_tcp -N -e 'SELECT @@have_ssl')" != "YES" ]; then
	log "restarting MariaDB once to switch TLS on (its certificate settings are read at start)"
	if [ -d /run/systemd/system ]; then
		run_logged "systemctl restart mariadb" as_root systemctl restart mariadb
	else
		mariadb_tcp -e 'SHUTDOWN' || true
		wait_for "MariaDB to stop" bash -c '! mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping && ! pgrep -x mariadbd'
		start_mariadb
	fi
	wait_for "MariaDB on 127.0.0.1:3306" mariadb_tcp -e 'SELECT 1'
	if [ "$(mariadb_tcp -N -e 'SELECT @@have_ssl')" != "YES" ]; then
		log "MariaDB started without TLS; its error log says why (SHOW VARIABLES LIKE 'log_error')"
		exit 1
	fi
elif [ "$tls_changed" -eq 1 ]; then
	log "MariaDB: loading the renewed certificates (FLUSH SSL)"
	mariadb_tcp -e 'FLUSH SSL'
fi
# Test users that must use TLS: pipeline_tls (password, REQUIRE SSL) and
# pipeline_tls_cert (client certificate from the dev CA, REQUIRE X509), both
# with every privilege on the test databases only.
for u in "pipeline_tls IDENTIFIED BY 'pipeline-tls-dev' REQUIRE SSL" "pipeline_tls_cert REQUIRE X509"; do
	name=${u%% *}
	mariadb_tcp -e "CREATE USER IF NOT EXISTS '$name'@'127.0.0.1'; ALTER USER '$name'@'127.0.0.1' ${u#* };
		GRANT ALL PRIVILEGES ON \`pipeline\\_test\\_%\`.* TO '$name'@'127.0.0.1'"
done
if ! mariadb --protocol=tcp -h127.0.0.1 -P3306 -upipeline_tls -ppipeline-tls-dev --ssl-ca="$tls_dir/ca.pem" \
	--ssl-verify-server-cert -N -e "SHOW SESSION STATUS LIKE 'Ssl_version'" | grep -q TLS; then
	log "MariaDB: a verified TLS login as pipeline_tls failed"
	exit 1
fi
if [ "$(mariadb_tcp -N -e 'SELECT @@local_infile')" != "1" ]; then
	mariadb_tcp -e 'SET GLOBAL local_infile=1'
fi
mariadb_tcp -e 'CREATE DATABASE IF NOT EXISTS test'
log "MariaDB ok: $(mariadb_tcp -N -e 'SELECT VERSION()'), TLS on"

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
	as_root pg_ctlcluster "$pgver" main reload 9>&-
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
# --- TLS: PostgreSQL ---------------------------------------------------------
# ssl and its files are reloadable settings: ALTER SYSTEM and a reload switch
# TLS on (and pick up renewed certificates), no restart.
install_server_tls postgresql postgres
pg_tls_want="on|$tls_dir/postgresql/server.pem|$tls_dir/postgresql/server.key|$tls_dir/postgresql/ca.pem"
pg_tls_have() {
	pg_tcp -tA -c "SELECT concat_ws('|', current_setting('ssl'), current_setting('ssl_cert_file'),
		current_setting('ssl_key_file'), current_setting('ssl_ca_file'))"
}
pg_tls_loaded() { [ "$(pg_tls_have)" = "$pg_tls_want" ]; }
if ! pg_tls_loaded; then
	log "PostgreSQL: switching TLS on with the local dev CA's certificate (ALTER SYSTEM, reload)"
	pg_tcp -c 'ALTER SYSTEM SET ssl = on' \
		-c "ALTER SYSTEM SET ssl_cert_file = '$tls_dir/postgresql/server.pem'" \
		-c "ALTER SYSTEM SET ssl_key_file = '$tls_dir/postgresql/server.key'" \
		-c "ALTER SYSTEM SET ssl_ca_file = '$tls_dir/postgresql/ca.pem'" \
		-c 'SELECT pg_reload_conf()' >/dev/null
	wait_for "PostgreSQL to load the TLS settings" pg_tls_loaded
elif [ "$tls_changed" -eq 1 ]; then
	log "PostgreSQL: loading the renewed certificates (reload)"
	pg_tcp -c 'SELECT pg_reload_conf()' >/dev/null
fi
# Test users that must use TLS, as on MariaDB: pipeline_tls (password) and
# pipeline_tls_cert (client certificate, CN = user name). Their pg_hba.conf
# lines come first: hostssl accepts them, hostnossl rejects them.
pg_tcp -c "DO \$\$BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pipeline_tls') THEN CREATE ROLE pipeline_tls LOGIN; END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pipeline_tls_cert') THEN CREATE ROLE pipeline_tls_cert LOGIN; END IF;
	ALTER ROLE pipeline_tls PASSWORD 'pipeline-tls-dev';
END\$\$" >/dev/null
hba=$(pg_tcp -tA -c 'SHOW hba_file')
hba_block='# pipeline-dev-tls begin (scripts/services.sh: test users that must use TLS)
hostssl   all pipeline_tls      127.0.0.1/32 scram-sha-256
hostssl   all pipeline_tls      ::1/128      scram-sha-256
hostnossl all pipeline_tls      all          reject
hostssl   all pipeline_tls_cert 127.0.0.1/32 cert
hostssl   all pipeline_tls_cert ::1/128      cert
hostnossl all pipeline_tls_cert all          reject
# pipeline-dev-tls end'
if [ "$(as_root sed -n '/^# pipeline-dev-tls begin/,/^# pipeline-dev-tls end/p' "$hba")" != "$hba_block" ]; then
	log "PostgreSQL: adding the TLS-only test users' lines to the top of $hba"
	new_hba=$(mktemp)
	{
		printf '%s\n' "$hba_block"
		as_root sed '/^# pipeline-dev-tls begin/,/^# pipeline-dev-tls end/d' "$hba"
	} >"$new_hba"
	as_root cp "$new_hba" "$hba"
	rm -f "$new_hba"
	pg_tcp -c 'SELECT pg_reload_conf()' >/dev/null
	# Loaded once a plaintext login of pipeline_tls is rejected.
	wait_for "PostgreSQL to load $hba" bash -c "! psql -X -w 'host=127.0.0.1 port=5432 dbname=postgres user=pipeline_tls sslmode=disable' -c 'SELECT 1'"
fi
if ! PGPASSWORD=pipeline-tls-dev psql -X -w -tA "host=127.0.0.1 port=5432 dbname=postgres user=pipeline_tls sslmode=verify-full sslrootcert=$tls_dir/ca.pem" \
	-c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' | grep -qx t; then
	log "PostgreSQL: a verified TLS login as pipeline_tls failed"
	exit 1
fi
log "PostgreSQL ok: $(pg_tcp -tA -c 'SHOW server_version'), TLS on"
