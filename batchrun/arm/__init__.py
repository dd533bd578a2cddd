"""Talking to ARM and ADF: client, transport, rate limits, pacing, retries, reads, auth."""
