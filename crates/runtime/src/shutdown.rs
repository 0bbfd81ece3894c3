//! One shutdown signal for a process: SIGTERM or Ctrl-C sets the flag that drivers poll (they
//! then finish their transaction, commit and leave the group); a second signal exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the signal handlers (call inside a tokio runtime) and returns the flag.
pub fn on_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    tokio::spawn(async move {
        loop {
            wait_for_signal().await;
            if f.swap(true, Ordering::SeqCst) {
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            }
            tracing::info!("shutting down: finishing the open transaction");
        }
    });
    flag
}

/// Resolves at the first SIGTERM or Ctrl-C (servers without a transaction to finish).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
