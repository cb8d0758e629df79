//! The apply stages: each takes the plan, performs exactly the steps it lists and returns what
//! happened per consumer. The plan itself is never changed.

pub mod images;
