//! `streamprep serve`: the Preprocessing App's web server (its first part: the catalogue, the
//! check of a project spec, health, metrics and the OpenAPI document; see streamprep-serve).

use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // the web server's threads; pipelines get threads of their own, never these
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("streamprep-web")
        .enable_all()
        .build()
        .context("starting the web server's runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("--addr: cannot listen on {}", args.addr))?;
        eprintln!(
            "streamprep: serving on http://{} (API at /api/v1, OpenAPI at /api/openapi.json)",
            listener.local_addr()?
        );
        let app = streamprep_serve::router(streamprep_serve::AppState::default());
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .context("serving")?;
        eprintln!("streamprep: stopped serving");
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
