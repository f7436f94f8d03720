//! Seeded scenario generator.
