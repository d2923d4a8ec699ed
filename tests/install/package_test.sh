#!/usr/bin/env bash
# The Debian package (issue 14): scripts/package --no-build packs this build tree;
# the .deb holds what an operator needs, unpacks into a scratch root where
# payorchd --check-config accepts the installed configuration, systemd-sysusers
# makes the payorch user from the packaged sysusers.d file, systemd-analyze verify
# accepts the unit without a word, and promtool accepts and unit-tests the rules.
# Usage: package_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in dpkg-deb systemd-analyze systemd-sysusers promtool; do
  command -v "$tool" >/dev/null || fail "$tool is missing: scripts/setup installs it"
done
scratch=$(mktemp -d "${TMPDIR:-/tmp}/payorch-package-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

deb=$(bash "$src/scripts/package" --no-build --build-dir "$build" --out "$scratch/out" | tail -n 1)
[ -f "$deb" ] || fail "scripts/package's last line is not a file: '$deb'"
echo "package: $deb ($(du -h "$deb" | cut -f1))"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/payorchd ./usr/bin/payorchctl ./usr/bin/payex-sim \
         ./etc/payorch/payorch.toml ./usr/lib/systemd/system/payorchd.service \
         ./usr/lib/sysusers.d/payorch.conf \
         ./usr/share/payorch/prometheus/payorch-rules.yml \
         ./usr/share/payorch/prometheus/payorch-rules.test.yml \
         ./usr/share/payorch/grafana/payorch.json ./usr/share/doc/payorch/README.md; do
  grep -qxF "$f" <<<"$contents" || fail "$f is not in the package"
done
mkdir -p "$scratch/control"
dpkg-deb -e "$deb" "$scratch/control"
grep -qxF /etc/payorch/payorch.toml "$scratch/control/conffiles" || fail "payorch.toml is not a conffile"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in librabbitmq4 libsqlite3-0 libprotobuf; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done

root="$scratch/root"
dpkg-deb -x "$deb" "$root"

# The installed configuration, checked by the installed payorchd.
check=$(PAYORCH_PAYEX_TOKEN=test-token PAYORCH_CALLBACK_SECRET=0123456789abcdef0123456789abcdef \
        "$root/usr/bin/payorchd" --check-config --config "$root/etc/payorch/payorch.toml") ||
  fail "payorchd --check-config refused the packaged configuration"
grep -q "/var/lib/payorch/payorch.db" <<<"$check" || fail "the store is not under /var/lib/payorch: $check"
grep -q "test-token" <<<"$check" && fail "--check-config printed a secret"

# The system user, made as the postinst makes it.
mkdir -p "$root/etc"
: >"$root/etc/passwd"
: >"$root/etc/group"
systemd-sysusers --root="$root" payorch.conf
grep -q '^payorch:' "$root/etc/passwd" || fail "systemd-sysusers made no payorch user"

# The unit: systemd-analyze verify in the scratch root (with the host's own units,
# which the unit's dependencies name), and nothing to say about it.
unit="$root/usr/lib/systemd/system/payorchd.service"
for directive in User=payorch StateDirectory=payorch ProtectSystem=strict NoNewPrivileges=yes \
                 PrivateTmp=yes Restart=on-failure RestartPreventExitStatus=2 \
                 EnvironmentFile=-/etc/payorch/payorchd.env LimitNOFILE=4096 \
                 "ExecStart=/usr/bin/payorchd --config /etc/payorch/payorch.toml"; do
  grep -qxF "$directive" "$unit" || fail "the unit lacks $directive"
done
mkdir -p "$root/lib/systemd/system"
cp -rn /lib/systemd/system/. "$root/lib/systemd/system/"
said=$(systemd-analyze verify --root="$root" payorchd.service 2>&1) ||
  fail "systemd-analyze verify refused the unit: $said"
[ -z "$said" ] || fail "systemd-analyze verify had something to say: $said"

# The rules, as installed.
promtool check rules "$root/usr/share/payorch/prometheus/payorch-rules.yml"
(cd "$root/usr/share/payorch/prometheus" && promtool test rules payorch-rules.test.yml)
python3 -m json.tool "$root/usr/share/payorch/grafana/payorch.json" >/dev/null ||
  fail "the dashboard is not JSON"
echo "package: ok"
