//! Baselines: what normal looked like before the deploy.
