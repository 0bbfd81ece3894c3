//! Placeholder: the criterion benchmark comes in the next commit.

fn main() {}
