//! Log signatures (placeholder until the template miner lands).
