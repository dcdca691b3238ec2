//! Placeholder until the webhook benchmark lands in this session.
fn main() {}
