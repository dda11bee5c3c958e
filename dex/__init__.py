"""dex: an order-book exchange whose ledger is replicated by Raft."""
