"""The weekly job: APScheduler runs advise -> report -> deliver, with a persistent job store and a ledger."""
