//! The fitstream command. Everything it does lives in the library (`fitstream::cli`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fitstream::cli::run().await
}
