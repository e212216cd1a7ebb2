#!/usr/bin/env bash
# Test-only stand-ins for the Docker Hub images the deployment files name, for machines that
# cannot pull from Docker Hub (CI). Built from Debian bookworm packages:
#   base   debootstrap --variant=minbase with python3, python3-venv and ca-certificates:
#          Python 3.11 like python:3.11-slim-bookworm (at /usr/bin instead of /usr/local/bin)
#   redis  the base plus Debian's redis-server (7.0), with the official image's conventions:
#          /data as working directory and volume, user redis, `--protected-mode no` added to a
#          `redis-server` command (the official entrypoint does the same)
# Both trust what this host trusts (/etc/ssl/certs/ca-certificates.crt, with PIP_CERT pointing
# pip at it): where a TLS-inspecting proxy stands between the machine and the registries, as on
# CI, its CA is in the host's store and builds need it too. Docker Hub's images would need the
# same (README, "Docker").
# usage: DOCKER_HOST=... deploy/stand-in-base.sh BASE_TAG [REDIS_TAG]
# The root filesystem tarball is cached in $FACESVC_CACHE (default ~/.cache/facesvc), outside
# the repository; without it debootstrap builds it from deb.debian.org (about two minutes).
set -euo pipefail
base_tag=${1:?usage: $0 BASE_TAG [REDIS_TAG]}
redis_tag=${2:-}
cache=${FACESVC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/facesvc}
tarball=$cache/stand-in-bookworm-minbase.tar
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host-trust.crt"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  # No package lists or downloaded .debs in the image: a build's apt-get update fetches its own.
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  tar --numeric-owner -C "$root" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"  # only a complete tarball gets the real name
fi

docker import --change 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt' --change 'CMD ["python3"]' "$tarball" "$base_tag" >/dev/null

if [ -n "$redis_tag" ]; then
  docker build --quiet --tag "$redis_tag" - >/dev/null <<EOF
FROM $base_tag
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
WORKDIR /data
VOLUME /data
USER redis
EXPOSE 6379
ENTRYPOINT ["sh", "-c", "if [ \"\$1\" = redis-server ]; then shift; exec redis-server \"\$@\" --protected-mode no; fi; exec \"\$@\"", "entrypoint"]
CMD ["redis-server"]
EOF
fi
