//! Placeholder until the engine benchmark lands in this session.
fn main() {}
