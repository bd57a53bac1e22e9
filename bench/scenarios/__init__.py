"""The bench's phases, one module each, in the order a full run (bench/run.py) measures them:

api.py            1. API accept rate and p99, pipeline idle, vs the bare insert (same server; fastest server);
                     publish A/B
decoupling.py     2. POST p99 idle vs with a backlog of messages waiting in the queues
ceiling_chain.py  3. the bare 3-task Celery chain: drain rate and end-to-end latency (the pipeline's ceilings)
drain.py          4. pipeline drains at latency 0, hot catalog and 1,000-SKU Zipf catalog; cost per 1,000 orders
e2e.py            4. POST -> completed latency at e2e_rate, default publish and the A/B
sustained.py      5. the whole Procfile at open-loop rate steps: highest rate within the p99 target, CPU per order
enrichment.py     6-7. the enrichment stage at 1000 ms provider latency, and scaled out to 1, 2, 4 processes

Each module has the phase's run function(s), taking the run's context (bench/context.py), and the
figures it yields (figures(r, ...) -> {key: figure}).
"""
