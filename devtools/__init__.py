"""Development-only tools shared by the end-to-end tests, the benchmark and the chaos run (they need
the dev requirements, e.g. psutil). Not part of the runtime image: .dockerignore excludes this package,
and tests/deploy checks that no runtime module imports it."""
