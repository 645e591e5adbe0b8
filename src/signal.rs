//! SIGINT and SIGTERM become one cancellation token; the commands decide how to stop cleanly.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Cancels the returned token on the first SIGINT or SIGTERM.
pub fn cancel_on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let t = token.clone();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if t.is_cancelled() {
                tracing::warn!("{name} again: already stopping, cleaning up");
            } else {
                tracing::warn!("{name} received: stopping and cleaning up");
                t.cancel();
            }
        }
    });
    Ok(token)
}
