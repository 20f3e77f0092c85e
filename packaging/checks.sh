# shellcheck shell=bash disable=SC2016 # bash -c '...' _ VALUES: the quotes are meant
# Checks shared by packaging/build-deb and packaging/build-rpm (sourced, not run).
#
# Each check prints "ok: ..." or "FAILED: ..." and records failures; `finish` prints the
# failures and exits 1 if there were any. Everything works on a package unpacked into a
# scratch root ($root), never on the machine's own /usr.

failed=()
pass() { echo "  ok: $1"; }
fail() {
  echo "  FAILED: $1" >&2
  failed+=("$1")
}
# check DESCRIPTION COMMAND...
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# want_files LISTING ZSH_DIR [EXTRA]: LISTING has "MODE /PATH" lines; checks every file
# a package must install, with its mode. ZSH_DIR differs between distributions; EXTRA
# has more "MODE /PATH" lines, the files only this format installs (licences, changelogs).
want_files() {
  local listing=$1 zsh_dir=$2 extra=${3:-} path mode
  while read -r mode path; do
    [[ -n $path ]] || continue
    if grep -qxF -- "$mode $path" "$listing"; then
      pass "$path ($mode)"
    else
      fail "$path ($mode) not in the package"
    fi
  done <<EOF
-rwxr-xr-x /usr/bin/doc-serve
-rw-r--r-- /usr/lib/systemd/user/doc-serve@.socket
-rw-r--r-- /usr/lib/systemd/user/doc-serve@.service
-rw-r--r-- /usr/lib/systemd/user/doc-serve.socket
-rw-r--r-- /usr/lib/systemd/user/doc-serve.service
-rw-r--r-- /usr/share/man/man1/doc-serve.1.gz
-rw-r--r-- /usr/share/bash-completion/completions/doc-serve
-rw-r--r-- $zsh_dir/_doc-serve
-rw-r--r-- /usr/share/fish/vendor_completions.d/doc-serve.fish
-rw-r--r-- /usr/share/doc/doc-serve/README.md
$extra
EOF
  check "no system units (these are user units)" \
    bash -c '! grep -q "/lib/systemd/system/" "$1"' _ "$listing"
}

# check_unpacked ROOT VERSION ZSH_DIR SCRATCH: runs the unpacked binary and checks the
# files beside it.
check_unpacked() {
  local root=$1 version=$2 zsh_dir=$3 scratch=$4
  local bin=$root/usr/bin/doc-serve unit
  check "doc-serve --version says $version" \
    bash -c '[[ $("$1" --version) == "doc-serve $2" ]]' _ "$bin" "$version"
  # Run from / with no project around: these must not need one.
  (cd / && "$bin" completions bash >"$scratch/bash") || true
  check "doc-serve completions bash runs outside a project" grep -q 'complete -F' "$scratch/bash"
  check "packaged bash completion is what the binary prints" \
    cmp -s "$scratch/bash" "$root/usr/share/bash-completion/completions/doc-serve"
  check "bash completion loads and registers doc-serve" \
    bash -c 'source "$1" && complete -p doc-serve >/dev/null' _ \
    "$root/usr/share/bash-completion/completions/doc-serve"
  check "zsh completion is a #compdef file" \
    grep -q '^#compdef doc-serve' "$root$zsh_dir/_doc-serve"
  check "fish completion completes doc-serve" \
    grep -q '^complete -c doc-serve' "$root/usr/share/fish/vendor_completions.d/doc-serve.fish"
  check "man page is roff with a .TH header" \
    bash -c 'zcat "$1" | grep -q "^\.TH DOC-SERVE 1"' _ "$root/usr/share/man/man1/doc-serve.1.gz"
  if command -v groff >/dev/null; then
    check "man page renders without groff warnings" \
      bash -c '[[ -z $(zcat "$1" | groff -man -ww -z 2>&1) ]]' _ \
      "$root/usr/share/man/man1/doc-serve.1.gz"
  fi
  for unit in systemd/*.socket systemd/*.service; do
    check "packaged $unit matches the repository's" \
      cmp -s "$unit" "$root/usr/lib/systemd/user/$(basename "$unit")"
  done
}

# verify_units ROOT SCRATCH: `systemd-analyze --user verify` on the unpacked user units.
verify_units() {
  local root=$1 scratch=$2
  local units=$scratch/units
  mkdir -p "$units" "$scratch/run"
  chmod 700 "$scratch/run"
  cp "$root"/usr/lib/systemd/user/doc-serve* "$units/"
  if [[ ! -x /usr/bin/doc-serve ]]; then
    # verify checks that ExecStart's binary exists; point it at the unpacked one.
    sed -i "s#^ExecStart=/usr/bin/doc-serve #ExecStart=$root/usr/bin/doc-serve #" \
      "$units"/*.service
  fi
  if XDG_RUNTIME_DIR=$scratch/run systemd-analyze --user --man=no verify "$units"/* \
    >"$scratch/verify" 2>&1 && [[ ! -s $scratch/verify ]]; then
    pass "systemd-analyze verify: no errors or warnings"
  else
    # Unknown keys are only warnings (exit 0), so any output counts as a failure.
    sed 's/^/    /' "$scratch/verify" >&2
    fail "systemd-analyze verify"
  fi
}

# source_tarball OUT VERSION REF: the source tarball the PKGBUILD and the formula build
# from: REF's tree under doc-serve-VERSION/, with target/assets/THIRD-PARTY-LICENSES (run
# packaging/gen-assets first) at its top. That file follows from Cargo.lock, so it is the
# same for every build of the tarball. Same commit, same bytes.
source_tarball() {
  local out=$1 version=$2 ref=$3
  git archive --format=tar --prefix="doc-serve-$version/" \
    --add-file=target/assets/THIRD-PARTY-LICENSES "$ref" | gzip -9n >"$out"
}

# finish NAME: the summary; exits 1 if a check failed.
finish() {
  if ((${#failed[@]})); then
    echo "$1: ${#failed[@]} check(s) failed:" >&2
    printf '  - %s\n' "${failed[@]}" >&2
    exit 1
  fi
  echo "$1: all checks passed"
}
