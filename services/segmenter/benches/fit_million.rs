//! Placeholder: the 1M-profile timing comes in the next commit.

fn main() {}
