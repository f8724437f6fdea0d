# Shared by the compare_pytorch*.sh scripts (sourced, not run).

# The value of a numeric JSON field $1 in the line on stdin (its first occurrence).
field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" | head -1; }
# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Installs Debian's PyTorch and the pthreads OpenBLAS it needs to run at its best, if missing.
ensure_pytorch() {
  local need=() p sudo=""
  for p in python3-torch libopenblas0-pthread; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}
