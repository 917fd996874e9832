#!/usr/bin/env bash
# Make a Docker engine and a PostgreSQL image available WITHOUT any image
# registry, for `--target container` and CI.
#
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
#   3. If $IMAGE is missing (or was built from an older entrypoint), build it:
#      debootstrap --variant=minbase --include=postgresql bookworm from the
#      Debian mirror apt already uses, cached as a tarball in $CACHE_DIR,
#      plus tests/docker/docker-entrypoint.sh, loaded with `docker import`.
#
# Environment:
#   POSTDEPLOY_PG_IMAGE        image name   (default postdeploy/postgres:15-local)
#   POSTDEPLOY_CACHE_DIR       rootfs cache (default /var/cache/postdeploy)
#   POSTDEPLOY_DEBIAN_MIRROR   override the mirror read from apt's sources
#   POSTDEPLOY_DOCKERD_WAIT_S  bounded wait for the engine (default 60)
#   POSTDEPLOY_DOCKERD_FLAGS   extra dockerd flags, tried before the built-in list
#
# Exit codes: 0 ready; 1 usage/setup error; 2 no engine; 3 image build failed.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${POSTDEPLOY_PG_IMAGE:-postdeploy/postgres:15-local}"
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
			sed -n '2,28p' "${BASH_SOURCE[0]}"
			exit 0
			;;
		*) die 1 "unknown argument: $arg (try --help)" ;;
	esac
done

[ -f "$ENTRYPOINT_SRC" ] || die 1 "missing $ENTRYPOINT_SRC"

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
	die 2 "could not start a Docker engine with any flag set; last reason: ${why:-unknown}. Container tests cannot run here (use --target demo)."
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

image_rev() {
	{ echo "recipe=$ROOTFS_RECIPE"; cat "$ENTRYPOINT_SRC"; } | sha256sum | cut -c1-16
}

image_current() {
	local env
	env="$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" 2>/dev/null)" || return 1
	grep -qx "POSTDEPLOY_IMAGE_REV=$(image_rev)" <<<"$env"
}

build_image() {
	if image_current; then
		say "image $IMAGE is present and current"
		return 0
	fi
	say "building image $IMAGE (no registry involved)"
	[ "$(id -u)" = 0 ] || die 3 "need root to build the rootfs"
	mkdir -p "$CACHE_DIR"
	build_rootfs_tarball
	local work rev old_id
	rev="$(image_rev)"
	old_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
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
		--change 'EXPOSE 5432' \
		--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
		--change 'CMD ["postgres"]' \
		"$work/rootfs.tar" "$IMAGE" </dev/null >/dev/null ||
		die 3 "docker import failed"
	rm -rf "$work"
	trap - EXIT
	# Drop the outdated image it replaces (kept if a container still uses it).
	[ -n "$old_id" ] && docker rmi "$old_id" >/dev/null 2>&1 || true
	say "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1000000}'))"
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

	install_packages
	start_engine
	build_image
	[ "$SMOKE_TEST" -eq 1 ] && smoke_test
	say "ready: engine answers, image $IMAGE exists ($((SECONDS - t0))s)"
}

main
