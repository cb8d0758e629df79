//! Observation: what AWS already holds.
