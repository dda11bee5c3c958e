"""The replicated ledger: block codec, each node's hash chain on disk, the Raft
state machine and the leader's block builder."""
