//! Helpers of the benches.

pub mod redis_wire;
