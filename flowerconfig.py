"""Flower's settings file: Flower loads ./flowerconfig.py at start (the Procfile, compose and k8s run it from here).

Task events stay off unless FLOWER_ENABLE_EVENTS=true: with them on, every task publishes three more
messages that RabbitMQ routes and Flower consumes and stores: 10-41 % more CPU per order for the whole
system in the bench's same-run A/Bs (bench/README.md, issue 29), Flower's own 4-5 ms of it. Off, Flower
still lists the workers (their heartbeats), their pools and queues, and the broker's queues; what the task
views showed is in each order's history (docs/operations.md, "Flower's task views").
"""

import os

# Flower reads this file after the FLOWER_* variables, so it reads its own here (or the file would win).
enable_events = os.environ.get("FLOWER_ENABLE_EVENTS", "false").strip().lower() in ("1", "true", "yes", "on")
