//! `streamprep user add|passwd|del|list`: the users of `streamprep serve`, in its store. The
//! password comes from STREAMPREP_PASSWORD or one line of stdin, never from the command line
//! (where other users of the machine could read it).

use std::process::ExitCode;

use anyhow::Context;
use streamprep_serve::store::{Role, Store};

#[derive(clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    action: Action,
    /// The data directory of `serve` (its SQLite store).
    #[arg(long, default_value = "streamprep-data", global = true)]
    data_dir: std::path::PathBuf,
    /// A PostgreSQL store instead (postgres://USER@HOST:PORT/DB).
    #[arg(long, global = true)]
    store: Option<String>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Add a user (password from STREAMPREP_PASSWORD or stdin).
    Add {
        /// Login name.
        name: String,
        /// viewer (reads), operator (also creates, edits, starts and stops projects) or admin
        /// (also manages users).
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Give a user a new password (from STREAMPREP_PASSWORD or stdin); ends its sessions.
    Passwd {
        /// Login name.
        name: String,
    },
    /// Remove a user, its sessions and its API tokens.
    Del {
        /// Login name.
        name: String,
    },
    /// List the users and their roles.
    List,
}

/// The store `serve` uses with these flags.
pub async fn open_store(store: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Store> {
    Ok(match store {
        Some(url) => Store::open(url)
            .await
            .with_context(|| format!("--store {url}"))?,
        None => Store::open_dir(data_dir).await?,
    })
}

fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("STREAMPREP_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = open_store(args.store.as_deref(), &args.data_dir).await?;
        match args.action {
            Action::Add { name, role } => {
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                store.add_user(&name, role, &password()?).await?;
                store
                    .audit("cli", "user.add", &name, &format!("role {role}"))
                    .await?;
                eprintln!("streamprep: user {name} added ({role})");
            }
            Action::Passwd { name } => {
                store.set_password(&name, &password()?).await?;
                store.audit("cli", "user.passwd", &name, "").await?;
                eprintln!("streamprep: password of {name} changed; its sessions ended");
            }
            Action::Del { name } => {
                store.delete_user(&name).await?;
                store.audit("cli", "user.del", &name, "").await?;
                eprintln!("streamprep: user {name} removed");
            }
            Action::List => {
                for u in store.users().await? {
                    println!("{}\t{}", u.name, u.role);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
