//! wk-ops: operator tool (work in progress).
fn main() {}
