//! Serving the registry over HTTP/1.1 and h2 (cleartext): an accept loop with a connection cap,
//! a header-read timeout, keep-alive, and a graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::service::Registry;

impl Registry {
    /// The API as an axum router (for serving it next to other routes, or in tests).
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.clone())
    }

    /// Serves the API on `listener` until `shutdown` resolves, then stops accepting, wakes the
    /// long-polls, and waits up to the grace period for requests in flight. Logs one line when
    /// ready, with the address.
    ///
    /// At most `limits.max_connections` connections are open; further clients wait in the listen
    /// backlog until one closes.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let limits = self.limits().clone();
        let addr = listener.local_addr()?;
        let app = self.router();
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
        builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
        tracing::info!(%addr, "registry listening on http://{addr}");

        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, _peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone());
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
        }

        drop(listener);
        self.begin_shutdown();
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(limits.shutdown_grace) => {
                tracing::warn!("requests still in flight after the grace period; closing");
            }
        }
        tracing::info!(%addr, "registry stopped");
        Ok(())
    }
}
