#!/usr/bin/env bash
# qforge and llama.cpp (built by scripts/build_llamacpp.sh) on the same GGUF files, in one run.
#
# For each model directory it writes three files:
#   NAME.gguf          qforge convert (the original, source dtype)
#   NAME-qf-q4km.gguf  qforge quantize --format q4_k_m (GPTQ on CALIB; METHOD=rtn: no calibration)
#   NAME-ll-q4km.gguf  llama-quantize NAME.gguf Q4_K_M (llama.cpp's own file)
# and every extra .gguf given in EXTRA (space-separated) is taken as it is. For each file:
#   quality  llama-perplexity vs `qforge eval --protocol llama.cpp` (same ctx, chunks, text):
#            ratio qforge/llama.cpp, must be within TOL (0.005: 0.5%)
#   greedy   llama-completion --temp 0 vs `qforge run --temp 0`, NGEN tokens of PROMPT: the texts
#            must be equal
#   speed    (SPEED=1) llama-bench pp512/tg128 vs `qforge bench --prefill 512 --decode 128`, same
#            threads, decoding after DEPTH positions (0: an empty context, llama-bench's
#            default): ratios qforge/llama.cpp
# Exits 1 if a check fails, 77 if llama.cpp has not been built.
#
# usage: scripts/vs_llamacpp.sh MODEL_DIR...
# env:   QFORGE (build/release/qforge)  TEXT (../shared/data/valid.txt)  CTX (512)  CHUNKS (20)
#        CALIB (../shared/data/calib.txt)  CALIB_TOKENS (8192)  METHOD (gptq | rtn)
#        PROMPT ("Once upon a time")  NGEN (32)  THREADS (2)  SPEED (1)  OUT (a temp dir)  TOL
#        QUALITY (1; 0: speed only)
#        DEPTH (0, at most 512)  EXTRA (more .gguf files)  QFORGE_LLAMACPP (~/.cache/qforge/llamacpp)
# A given OUT keeps the files, and files already there are reused.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QFORGE=${QFORGE:-$ROOT/build/release/qforge}
TEXT=${TEXT:-$ROOT/../shared/data/valid.txt}
CALIB=${CALIB:-$ROOT/../shared/data/calib.txt}
CTX=${CTX:-512} CHUNKS=${CHUNKS:-20} CALIB_TOKENS=${CALIB_TOKENS:-8192} METHOD=${METHOD:-gptq}
PROMPT=${PROMPT:-"Once upon a time"} NGEN=${NGEN:-32} THREADS=${THREADS:-2} SPEED=${SPEED:-1}
EXTRA=${EXTRA:-} TOL=${TOL:-0.005} QUALITY=${QUALITY:-1} DEPTH=${DEPTH:-0}
BIN=${QFORGE_LLAMACPP:-$HOME/.cache/qforge/llamacpp}/bin
for t in llama-perplexity llama-quantize llama-completion; do
  [ -x "$BIN/$t" ] || { echo "SKIP: no $t in $BIN (run scripts/build_llamacpp.sh)"; exit 77; }
done
if [ "$SPEED" = 1 ] && ! [ -x "$BIN/llama-bench" ]; then
  echo "no llama-bench in $BIN (rerun scripts/build_llamacpp.sh): speed not compared"
  SPEED=0
fi
if [ -z "${OUT:-}" ]; then
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"
# No OPENBLAS_CORETYPE here: qforge picks OpenBLAS's kernels for the CPU it runs on (SkylakeX only
# where there is AVX-512; forcing it on an AVX2-only CPU dies with SIGILL), and llama.cpp does not
# use OpenBLAS.

files=()
for m in "$@"; do  # files already in OUT (a given OUT) are reused
  name=$(basename "$m")
  [ -f "$OUT/$name.gguf" ] || "$QFORGE" convert "$m" -o "$OUT/$name.gguf" >/dev/null
  if [ "$METHOD" = rtn ]; then
    q=(--method rtn)
  else
    q=(--calib "$CALIB" --calib-tokens "$CALIB_TOKENS" --seq-len 512)
  fi
  [ -f "$OUT/$name-qf-q4km.gguf" ] ||
    "$QFORGE" quantize "$m" -o "$OUT/$name-qf-q4km.gguf" --format q4_k_m "${q[@]}" \
      --threads "$THREADS" >"$OUT/$name-qf-q4km.log" 2>&1 ||
    { echo "qforge quantize $m failed:"; tail -5 "$OUT/$name-qf-q4km.log"; exit 1; }
  [ -f "$OUT/$name-ll-q4km.gguf" ] ||
    "$BIN/llama-quantize" "$OUT/$name.gguf" "$OUT/$name-ll-q4km.gguf" Q4_K_M "$THREADS" \
      >"$OUT/$name-ll-q4km.log" 2>&1 ||
    { echo "llama-quantize $name failed:"; tail -5 "$OUT/$name-ll-q4km.log"; exit 1; }
  files+=("$OUT/$name.gguf" "$OUT/$name-qf-q4km.gguf" "$OUT/$name-ll-q4km.gguf")
done
for f in $EXTRA; do
  [ -f "$f" ] || { echo "vs_llamacpp: EXTRA file $f not found" >&2; exit 1; }
  files+=("$f")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print "nan" }'; }
status=0
echo "text $(basename "$TEXT"), ctx $CTX, $CHUNKS chunks, $THREADS threads; greedy: $NGEN tokens of \"$PROMPT\""
for f in "${files[@]}"; do
  echo "== $(basename "$f") ($(stat -c %s "$f") bytes)"
  if [ "$QUALITY" = 1 ]; then
    # Quality: the same protocol in both engines.
    # llama-perplexity's last lines can be lost like llama-completion's (below): the running PPL
    # after the last chunk is the final estimate too; rerun when neither was printed.
    llog=$OUT/$(basename "$f").ppl.log
    ll=
    for _ in 1 2 3; do
      "$BIN/llama-perplexity" -m "$f" -f "$TEXT" -c "$CTX" -b "$CTX" --chunks "$CHUNKS" \
        -t "$THREADS" >"$llog" 2>&1 || true
      # Neither line may be there (a lost log, a crash): `|| true` keeps set -e from ending the
      # script silently here instead of trying again.
      ll=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$llog" || true)
      [ -n "$ll" ] || ll=$(grep -o "\[$CHUNKS\][0-9.]*" "$llog" | tail -1 | sed 's/.*\]//' || true)
      [ -z "$ll" ] || break
    done
    qf=$("$QFORGE" eval "$f" --text "$TEXT" --protocol llama.cpp --ctx "$CTX" --chunks "$CHUNKS" \
      --threads "$THREADS" --json 2>"$OUT/qforge-eval.err" |
      sed -n 's/.*"ppl":\([0-9.eE+-]*\).*/\1/p' || true)
    if [ -z "$ll" ] || [ -z "$qf" ]; then
      echo "  PPL: llama-perplexity '${ll}' qforge '${qf}': FAILED (log $llog)"
      tail -3 "$llog" | sed 's/^/    /'
      [ -n "$qf" ] || tail -3 "$OUT/qforge-eval.err" | sed 's/^/    qforge eval: /'
      status=1
    else
      r=$(ratio "$qf" "$ll")
      ok=$(awk -v r="$r" -v t="$TOL" 'BEGIN { print (r >= 1 - t && r <= 1 + t) ? "ok" : "DIFFERS" }')
      echo "  PPL       llama.cpp $ll  qforge $(printf %.4f "$qf")  ratio $r  $ok"
      [ "$ok" = ok ] || status=1
    fi
    # Greedy: llama-completion prints only the continuation (--no-display-prompt); qforge run
    # prints the prompt as its tokenizer reads it back, then the continuation. llama-completion
    # logs through a thread that it does not wait for at exit (common/log.cpp), so the last tokens
    # are sometimes lost: its output is complete when it ends with the final "\n\n"; else rerun.
    llama_greedy() {
      local t
      for _ in 1 2 3 4 5; do
        "$BIN/llama-completion" -m "$1" -p "$PROMPT" -n "$NGEN" --temp 0 -no-cnv --no-warmup \
          -t "$THREADS" --no-display-prompt >"$OUT/greedy.txt" 2>"$OUT/greedy.err" </dev/null || true
        if [ "$(tail -c 2 "$OUT/greedy.txt" | od -An -c | tr -d ' ')" = '\n\n' ]; then
          t=$(sed 's/ \[end of text\]$//' "$OUT/greedy.txt")
          echo "${t# }"  # a SentencePiece prompt may read back without its leading space
          return
        fi
      done
    }
    lt=$(llama_greedy "$f")
    qt=$("$QFORGE" run "$f" -p "$PROMPT" -n "$NGEN" --temp 0 --threads "$THREADS" -q 2>/dev/null || true)
    qt=${qt#"$PROMPT"}
    qt=${qt# }
    if [ -n "$lt" ] && [ "$qt" = "$lt" ]; then
      echo "  greedy    same $NGEN-token continuation: $(printf %q "$lt" | cut -c1-100)"
    else
      echo "  greedy    DIFFERS"
      echo "    llama.cpp: $(printf %q "$lt")"
      echo "    qforge:    $(printf %q "$qt")"
      # llama.cpp multiplies block-quantized weights with 8-bit activations (Q8_0/Q8_1/Q8_K), which
      # can flip a near-tie; on qforge's f32 decoding of the same file it computes in f32 too.
      "$QFORGE" convert "$f" -o "$OUT/exact.gguf" --type f32 --force >/dev/null
      lx=$(llama_greedy "$OUT/exact.gguf")
      rm -f "$OUT/exact.gguf"
      if [ -n "$lx" ] && [ "$qt" = "$lx" ]; then
        echo "    llama.cpp on qforge's f32 decoding of this file gives qforge's text: the difference"
        echo "    is llama.cpp's 8-bit activations at a near-tie (not counted as a failure)"
      else
        echo "    llama.cpp on qforge's f32 decoding of this file: $(printf %q "$lx")"
        status=1
      fi
    fi
  fi
  if [ "$SPEED" = 1 ]; then
    # llama-bench's tg decodes after DEPTH positions (its -d), qforge's after --decode-context.
    lb=$("$BIN/llama-bench" -m "$f" -p 512 -n 0 -t "$THREADS" -r 3 -o csv 2>/dev/null || true)
    lb+=$'\n'$("$BIN/llama-bench" -m "$f" -p 0 -n 128 -d "$DEPTH" -t "$THREADS" -r 3 -o csv \
      2>/dev/null | tail -n +2 || true)
    lpp=$(echo "$lb" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); c[$i] = i } }
      NR > 1 { gsub(/"/, ""); if ($c["n_prompt"] > 0) print $c["avg_ts"] }')
    ltg=$(echo "$lb" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); c[$i] = i } }
      NR > 1 { gsub(/"/, ""); if ($c["n_gen"] > 0) print $c["avg_ts"] }')
    qb=$("$QFORGE" bench "$f" --prefill 512 --decode 128 --decode-context "$DEPTH" --repeats 3 \
      --threads "$THREADS" --json 2>/dev/null || true)
    qpp=$(echo "$qb" | sed -n 's/.*"prefill_tok_s":\([0-9.eE+-]*\).*/\1/p')
    qtg=$(echo "$qb" | sed -n 's/.*"decode_tok_s":\([0-9.eE+-]*\).*/\1/p')
    printf '  prefill   llama.cpp pp512 %.1f tok/s  qforge %.1f tok/s  ratio %s\n' \
      "${lpp:-0}" "${qpp:-0}" "$(ratio "${qpp:-0}" "${lpp:-0}")"
    printf '  decode    llama.cpp tg128 @ d%s %.1f tok/s  qforge %.1f tok/s  ratio %s\n' "$DEPTH" \
      "${ltg:-0}" "${qtg:-0}" "$(ratio "${qtg:-0}" "${ltg:-0}")"
  fi
done
[ "$status" = 0 ] && echo "all checks passed" || echo "SOME CHECKS FAILED"
exit $status
