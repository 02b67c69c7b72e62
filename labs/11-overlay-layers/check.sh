#!/bin/bash
# Lab 11 check: copy-up, whiteout and new file in lab11's upper dir, image layer untouched.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa inspect lab11 2>/dev/null | jq -r '.[0] | select(.state == "running") | .pid') || true
[ -n "$pid" ] || fail "container lab11 is not running (run: capsa lab start 11)"
line=$(awk '$5 == "/"' "/proc/$pid/mountinfo" | tail -1)
rest=${line#* - }   # after the separator: FSTYPE SOURCE SUPER-OPTIONS
fstype=${rest%% *}
[ "$fstype" = overlay ] || fail "lab11's root is a $fstype mount, not overlay"
opts=${rest##* }
upper=$(tr ',' '\n' <<<"$opts" | sed -n 's/^upperdir=//p')
lower=$(tr ',' '\n' <<<"$opts" | sed -n 's/^lowerdir=//p')
merged=$(awk -v up="upperdir=$upper," '$5 != "/" && index($0, up) {print $5; exit}' /proc/self/mountinfo)
explain "lab11's root in /proc/$pid/mountinfo: overlay, lowerdir=$lower (the image's layers, read-only)"
explain "  upperdir=$upper (this container's own writable layer); on the host it is mounted at ${merged:-?}"
IFS=: read -ra lowers <<<"$lower"
in_lower() { local d; for d in "${lowers[@]}"; do [ -e "$d/$1" ] || [ -L "$d/$1" ] && { echo "$d/$1"; return 0; }; done; return 1; }

# 1. The modified image file: copied up whole into the upper dir, the layer's copy untouched.
[ -f "$upper/etc/passwd" ] ||
  fail "no etc/passwd in the upper dir: nothing was copied up yet (append a line to lab11's /etc/passwd, step 2)"
grep -q '^student:' "$upper/etc/passwd" ||
  fail "the upper dir's etc/passwd has no student line (append it inside lab11, step 2)"
lpw=$(in_lower etc/passwd) || fail "the image layer lost etc/passwd"
grep -q '^student:' "$lpw" && fail "the image layer's own $lpw has the student line: the layer was written, not the container"
explain "copy-up: $upper/etc/passwd ($(wc -l <"$upper/etc/passwd") lines, a full copy) now hides $lpw ($(wc -l <"$lpw") lines)"
explain "  the upper etc/ holds only what changed: $(cd "$upper/etc" && echo *)"

# 2. The deleted image file: a whiteout, a character device 0:0 in the upper dir.
wo=$upper/var/www/index.html
if [ ! -e "$wo" ] && [ ! -L "$wo" ]; then
  capsa exec lab11 test -e /var/www/index.html 2>/dev/null &&
    fail "lab11 still has /var/www/index.html: delete it inside the container (step 3)"
  fail "no whiteout for var/www/index.html in the upper dir"
fi
kind=$(stat -c '%F %t:%T' "$wo")
[ "$kind" = "character special file 0:0" ] ||
  fail "$wo is a '$kind', expected a whiteout (a character device 0:0)"
lidx=$(in_lower var/www/index.html) || fail "the image layer lost var/www/index.html"
capsa exec lab11 test -e /var/www/index.html 2>/dev/null &&
  fail "lab11 still sees /var/www/index.html through its overlay"
explain "whiteout: $wo is a $kind; the layer's $lidx is still there, but the merged view hides it"

# 3. The new file: only in the upper dir.
[ -f "$upper/etc/motd" ] || fail "no etc/motd in the upper dir: create /etc/motd inside lab11 (step 4)"
in_lower etc/motd >/dev/null && fail "etc/motd exists in the image layer too: it should be new"
explain "new file: $upper/etc/motd, in no lower layer"

# 4. The image layer is exactly as setup found it (every busybox container shares it).
if [ -f "$WORK/.lower-sums" ]; then
  sha256sum --quiet -c "$WORK/.lower-sums" >/dev/null 2>&1 ||
    fail "the image layer changed since setup ($(sha256sum -c "$WORK/.lower-sums" 2>&1 | grep -v ': OK$' | head -1)): never write into lowerdir"
fi
explain "the lower layer's etc/passwd and var/www/index.html are byte for byte as before"

# 5. The student's answer: where the container's changes live on the host.
got=$(answer upperdir)
[ -n "$got" ] || fail "no answer in $WORK/upperdir: write lab11's overlay upperdir there"
if [ "$got" != "$upper" ]; then
  [ "$got" = "$merged" ] && explain "$got is the overlay's mount point, the merged view (lower + upper): there index.html is just gone, no whiteout to see"
  for d in "${lowers[@]}"; do [ "$got" = "$d" ] && explain "$got is a lowerdir: the image's read-only layer, shared by every busybox container"; done
  fail "upperdir says $got, but lab11's upperdir (mountinfo) is $upper"
fi
pass "lab11's changes live in $upper: a copy-up, a 0:0 whiteout and a new file, over an untouched image layer"
