#!/bin/sh
# The FIPS layer, an mmdebstrap customize hook run after the recipe's own: "$1" is the finished
# root filesystem, "$2" OpenSSL's FIPS provider (fips.so) built on the host from Debian's
# openssl source (fips.go). What it does mirrors a FIPS Azure Linux image: the provider
# installed and self-tested (fipsinstall), OpenSSL configured to load only the fips and base
# providers with fips=yes (so MD5 and other non-approved algorithms are refused), ssh and sshd
# limited to approved algorithms (overlay/), and a variant name the profiles match. The kernel's
# fips=1 is on the command line (disk.go).
set -eu
root="$1" provider="$2"

# 1. The provider, where the guest's libcrypto looks for modules, and its self-test: fipsinstall
#    runs the known-answer tests and writes the module's MAC into fipsmodule.cnf.
moddir=$(chroot "$root" openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
[ -n "$moddir" ] && [ -d "$root$moddir" ]
install -m 0644 "$provider" "$root$moddir/fips.so"
chroot "$root" openssl fipsinstall -module "$moddir/fips.so" -out /etc/ssl/fipsmodule.cnf > "$root/tmp/fipsinstall.log" 2>&1 ||
  { cat "$root/tmp/fipsinstall.log" >&2; exit 1; }
grep -q 'INSTALL PASSED' "$root/tmp/fipsinstall.log"
rm -f "$root/tmp/fipsinstall.log"

# 2. openssl.cnf: only fips and base (the default provider is not activated, so nothing outside
#    the module is available), and fips=yes for every fetch.
cnf="$root/etc/ssl/openssl.cnf"
grep -q '^\[ *openssl_init *\]' "$cnf"
sed -i '/^\[ *openssl_init *\]/a providers = provider_sect\nalg_section = algorithm_sect' "$cnf"
cat >> "$cnf" <<'CNF'

# azl-vmtest FIPS stand-in: OpenSSL's FIPS provider (fipsmodule.cnf is written by fipsinstall).
.include /etc/ssl/fipsmodule.cnf

[provider_sect]
fips = fips_sect
base = base_sect

[base_sect]
activate = 1

[algorithm_sect]
default_properties = fips=yes
CNF
providers=$(chroot "$root" openssl list -providers)
echo "$providers" | grep -q '^  fips$' || { echo "fips provider not loaded:" >&2; echo "$providers" >&2; exit 1; }
echo "$providers" | grep -q '^  base$'
! echo "$providers" | grep -q '^  default$'
if echo t | chroot "$root" openssl md5 >/dev/null 2>&1; then
  echo "openssl md5 still works with the FIPS configuration" >&2
  exit 1
fi
echo t | chroot "$root" openssl sha256 >/dev/null

# 3. ssh and sshd: approved algorithms only.
cp -r "$(dirname "$0")/overlay/." "$root/"
chroot "$root" sh -ec 'mkdir -p /run/sshd; ssh-keygen -q -t ecdsa -N "" -f /tmp/fips-check-key
  sshd -t -h /tmp/fips-check-key; rm -f /tmp/fips-check-key /tmp/fips-check-key.pub' 

# 4. The variant the profiles match (standin-fips).
sed -i -e 's/^VARIANT=.*/VARIANT="azl-vmtest stand-in, FIPS"/' \
  -e 's/^VARIANT_ID=.*/VARIANT_ID=azl-vmtest-standin-fips/' "$root/usr/lib/os-release"
grep -q '^VARIANT_ID=azl-vmtest-standin-fips$' "$root/usr/lib/os-release"
