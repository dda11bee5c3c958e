"""Running a dex cluster on one machine: each node a separate OS process.

`cluster.local` starts, stops, kills and watches the nodes of a ClusterConfig;
`cluster.demo` drives a failover demonstration against a running cluster.
"""
