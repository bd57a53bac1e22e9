"""Flower's settings file: Flower loads ./flowerconfig.py at start (the Procfile, compose and k8s run it from here).

Task events stay off unless FLOWER_ENABLE_EVENTS=true: with them on, every task publishes three more
messages that RabbitMQ routes and Flower consumes and stores, which cost about a fifth of the whole system's
CPU per order (bench/README.md, issue 29). Off, Flower still lists the workers (their heartbeats), their pools
and queues, and the broker's queues; what the task views showed is in each order's history (docs/operations.md).
"""

import os

# Flower reads this file after the FLOWER_* variables, so it reads its own here (or the file would win).
enable_events = os.environ.get("FLOWER_ENABLE_EVENTS", "false").strip().lower() in ("1", "true", "yes", "on")
