#!/usr/bin/env bash
# Builds the firmware image of examples/embedded (thumbv7em-none-eabihf,
# profile `firmware`: opt-level "s", fat LTO, panic=abort, no heap) and
# reports its code size. Fails above the budget of issue 8.
#
#   scripts/firmware-size.sh          sizes, checked against the budget
#   scripts/firmware-size.sh --top N  also the N largest functions
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_TEXT=16384
MAX_RODATA=3072
TARGET=thumbv7em-none-eabihf
TOP=0
if [[ "${1:-}" == "--top" ]]; then TOP="${2:-20}"; fi

rustup target add "$TARGET" >/dev/null 2>&1 || true
host="$(rustc -vV | awk '/^host:/ { print $2 }')"
tools="$(rustc --print sysroot)/lib/rustlib/$host/bin"
if [[ ! -x "$tools/llvm-size" ]]; then
    rustup component add llvm-tools >/dev/null
fi
llvm_size="$tools/llvm-size"
llvm_nm="$tools/llvm-nm"
llvm_objcopy="$tools/llvm-objcopy"

cargo build -p wsproto-example-embedded --bin firmware --features firmware \
    --target "$TARGET" --profile firmware
elf="target/$TARGET/firmware/firmware"

section() { "$llvm_size" -A "$elf" | awk -v s="$1" '$1 == s { print $2 }'; }
text="$(section .text)"
rodata="$(section .rodata)"
printf 'firmware (%s, profile firmware): .text %s B (budget %s), .rodata %s B (budget %s)\n' \
    "$TARGET" "$text" "$MAX_TEXT" "$rodata" "$MAX_RODATA"
# STATE_SIZES: four little-endian u32 in .rodata (see src/bin/firmware.rs).
addr="$("$llvm_nm" --demangle "$elf" | awk '/ firmware::STATE_SIZES/ { print $1 }')"
base="$("$llvm_size" -A -x "$elf" | awk '$1 == ".rodata" { print $3 }')"
rodata_bin="$(mktemp)"
trap 'rm -f "$rodata_bin"' EXIT
"$llvm_objcopy" -O binary --only-section=.rodata "$elf" "$rodata_bin"
sizes=($(od -An -tu4 --endian=little -j $((0x$addr - base)) -N16 "$rodata_bin"))
printf 'size_of: Handshake client %s B, server %s B; Connection client %s B, server %s B\n' \
    "${sizes[@]}"
if [[ "$TOP" -gt 0 ]]; then
    "$llvm_nm" --print-size --size-sort --radix=d --demangle "$elf" | tail -n "$TOP"
fi

status=0
if [[ "$text" -gt "$MAX_TEXT" ]]; then
    echo "error: .text is $text B, over the budget of $MAX_TEXT B" >&2
    status=1
fi
if [[ "$rodata" -gt "$MAX_RODATA" ]]; then
    echo "error: .rodata is $rodata B, over the budget of $MAX_RODATA B" >&2
    status=1
fi
exit "$status"
