//! `streamprep serve`: the Preprocessing App's web server (its first part: the catalogue, the
//! check of a project spec, health, metrics and the OpenAPI document; see streamprep-serve).

use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Where the store (SQLite) lives; created when missing.
    #[arg(long, default_value = "streamprep-data")]
    data_dir: std::path::PathBuf,
    /// A PostgreSQL store instead (postgres://USER@HOST:PORT/DB).
    #[arg(long)]
    store: Option<String>,
    /// Mark the session cookie Secure: browsers reach the server over HTTPS, through a proxy
    /// that terminates TLS.
    #[arg(long)]
    secure_cookies: bool,
    /// Projects read and write files under this directory only (default DATA_DIR/files).
    #[arg(long)]
    files_dir: Option<std::path::PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let rt = web_runtime()?;
    rt.block_on(async {
        let store = super::user::open_store(args.store.as_deref(), &args.data_dir).await?;
        // no default password: the first start makes an admin and shows its password once
        let given = std::env::var("STREAMPREP_ADMIN_PASSWORD").ok();
        if let Some(pw) = store.bootstrap_admin(given.as_deref()).await? {
            if given.is_some() {
                eprintln!("streamprep: created the user admin with the password in STREAMPREP_ADMIN_PASSWORD");
            } else {
                eprintln!(
                    "streamprep: created the user admin with the password {pw} (shown this once; \
                     change it with `streamprep user passwd admin`)"
                );
            }
        }
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("--addr: cannot listen on {}", args.addr))?;
        eprintln!(
            "streamprep: serving on http://{} (API at /api/v1, OpenAPI at /api/openapi.json)",
            listener.local_addr()?
        );
        let mut state = streamprep_serve::AppState::new(store);
        state.secure_cookies = args.secure_cookies;
        let files = args.files_dir.clone().unwrap_or_else(|| args.data_dir.join("files"));
        std::fs::create_dir_all(&files)
            .with_context(|| format!("--files-dir: cannot create {}", files.display()))?;
        let files = std::fs::canonicalize(&files)?;
        eprintln!("streamprep: projects read and write files under {}", files.display());
        state.files_root = Some(files);
        // projects that were running when the server stopped start again
        for (name, r) in streamprep_serve::projects::restart_all(&state).await {
            match r {
                Ok(run) => eprintln!("streamprep: started project {name:?} again (run {run})"),
                Err(e) => eprintln!("streamprep: warning: project {name:?} did not start again: {e}"),
            }
        }
        let app = streamprep_serve::router(state.clone());
        let closing = state.shutting_down.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown().await;
                // live streams end at once (a browser's open page would hold the shutdown)
                closing.store(true, std::sync::atomic::Ordering::SeqCst);
            })
            .await
            .context("serving")?;
        // every run stops cleanly (drain, flush, ack) and the store records it
        state.history.stop_all();
        streamprep_serve::projects::stop_all(&state).await;
        eprintln!("streamprep: stopped serving");
        Ok(ExitCode::SUCCESS)
    })
}

/// The web server's threads (two); pipelines get threads of their own, never these.
pub fn web_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("streamprep-web")
        .enable_all()
        .build()
        .context("starting the web server's runtime")
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
