//! The fitstream command.
fn main() {}
