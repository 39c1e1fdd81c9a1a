# Convenience targets; each one does its own set-up through scripts/setup.sh.
.PHONY: demo test report bench bench-quick bench-byvalue bench-peers bench-peers-quick bench-faults \
        bench-chaos bench-original bench-scale bench-billion bench-profile lint cleanup

demo:            ## the small Redis demo on the local cluster, one worker killed at 30 %
	scripts/demo.sh

test:            ## every test against real Redis and RabbitMQ (what CI runs)
	scripts/test.sh

report:          ## HTML reports of every recorded run into outputs/reports/ (code hidden)
	scripts/setup.sh
	.venv/bin/ttg report --hide-code

bench:           ## the full benchmark suite (about 40 minutes), outputs/bench/
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/bench.py

bench-quick:     ## a one-minute smoke of every benchmark
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/bench.py --quick

bench-byvalue:   ## the large preset through a function shipped by value vs by import path
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/byvalue.py

bench-peers:     ## Dask and Ray beside TTG on the same chunks (about 10 minutes)
	scripts/setup.sh --brokers --extras bench
	.venv/bin/python benchmarks/peers.py

bench-peers-quick: ## the same in seconds a workload (a smoke, not figures)
	scripts/setup.sh --brokers --extras bench
	.venv/bin/python benchmarks/peers.py --quick

bench-faults:    ## the README's fault table, both brokers (about 15 minutes)
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/faults.py

bench-chaos:     ## chaos soak: kills every 5 s, a frozen worker, a broker fault (~10 minutes)
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/chaos.py

bench-original:  ## TTG beside the original worker, 1,000,000 points, both brokers (ORIGINAL=DIR)
	@test -n "$(ORIGINAL)" || { echo "usage: make bench-original ORIGINAL=DIR, a checkout of" \
	  "xmedinavei/ttg-distributed-compute (how to get one: benchmarks/original.py)"; exit 2; }
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/original.py --original "$(ORIGINAL)"

bench-scale:     ## 1e6, 1e7, 1e8 points on both brokers, then slices of the largest read back
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/scale.py --read-back

bench-billion:   ## 1e9 points on Redis (about 13 GB of disk), its table read back
	scripts/setup.sh --brokers
	.venv/bin/python benchmarks/scale.py --total 1000000000

bench-profile:   ## py-spy on the large preset (dict values) and 10,000 fine chunks, both brokers
	scripts/setup.sh --brokers --extras bench
	.venv/bin/python benchmarks/cpuprofile.py

lint:
	.venv/bin/ruff check .

cleanup:         ## remove TTG's own processes and queues (nothing else)
	.venv/bin/ttg cleanup --all
