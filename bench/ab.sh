#!/usr/bin/env bash
# Paired A/B of two or more checkouts (git worktrees with .venv linked), alternating, each round in the same
# minutes:  bench/ab.sh pipeline|api ROUNDS OUT_DIR DIR...
#   pipeline: `bench.run --only pipeline` (the bare chain and the hot drain; ORDERS=3000 by default)
#   api:      `bench.run --only api` (both ceilings, the product, c=16 and c=64)
# Prints one line per run; the JSON of every run stays in OUT_DIR. Wrap in `flock /tmp/machine-bench.lock`.
set -u
kind=$1; rounds=$2; out=$3; shift 3; mkdir -p "$out"
for i in $(seq 1 "$rounds"); do j=0; for dir in "$@"; do j=$((j+1))
  if [ "$kind" = pipeline ]; then args=(--only pipeline --size "drain_orders=${ORDERS:-3000}"); else args=(--only api); fi
  (cd "$dir" && .venv/bin/python -m bench.run "${args[@]}" > "$out/v$j-r$i.json" 2> "$out/v$j-r$i.log")
done; done
python3 - "$kind" "$out" "$@" <<'PY'
import glob, json, os, sys
kind, out, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
for f in sorted(glob.glob(out + "/v*.json")):
    name = os.path.basename(f); r = json.load(open(f)); d = dirs[int(name[1]) - 1]
    if kind == "pipeline":
        p = r["phases"]; drain, chain = p["pipeline_drain"], p["ceiling_chain_drain"]
        per = {k: round(v["cpu_s"] / drain["completed"] * 1000, 2) for k, v in drain["cost"].items()}
        workers = round(sum(v for k, v in per.items() if k.startswith("worker_")), 2)
        print(name, d, "drain", drain["rate"], "chain", chain["rate"], "ratio", round(drain["rate"] / chain["rate"], 3),
              "worker CPU ms/order", workers, per)
    else:
        L = r["load_runs"]; p = L["api-orders-c16"]
        fast = max(L[k]["accept_rate"] for k in ("api-ceiling-fast-c16", "api-ceiling-fast-granian-c16") if k in L)
        same = L["api-ceiling-c16"]["accept_rate"]
        print(name, d, "c16", p["accept_rate"], "p99", p["p99_ms"], "fast", fast, "same", same,
              "ratios", round(p["accept_rate"] / fast, 3), round(p["accept_rate"] / same, 3))
PY
