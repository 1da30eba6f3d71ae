"""`unionhub`: the on-call engineer's command line (dead letters, status), installed with
every service. It reads the broker and the service's database, never its `/metrics`."""
