//! A private PostgreSQL for one test run: Debian's `initdb` and `pg_ctl` (package
//! `postgresql`) on a free port in a temporary directory, stopped and removed when dropped.
//! As root, the server runs as the `postgres` user (PostgreSQL refuses root). A machine
//! without the binaries fails the test and says what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The running server.
#[derive(Debug)]
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's initdb is not installed: apt-get install postgresql \
             (scripts/test.sh does this)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Start one (a few seconds).
    pub fn start() -> Postgres {
        Self::boot(None)
    }

    /// Start one that also takes TLS connections, with this certificate and key (PEM).
    pub fn start_tls(cert: &Path, key: &Path) -> Postgres {
        Self::boot(Some((cert, key)))
    }

    fn boot(tls: Option<(&Path, &Path)>) -> Postgres {
        let bin = bin_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("streamprep-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the server's directory");
        let mut options = String::new();
        if let Some((cert, key)) = tls {
            // the key readable by its owner only, or the server refuses it
            std::fs::copy(cert, dir.join("server.pem")).expect("the certificate");
            std::fs::copy(key, dir.join("server.key")).expect("the key");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod the key");
            options = format!(
                " -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
                dir.display()
            );
        }
        let as_postgres = is_root();
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(st.success(), "chown postgres {}", dir.display());
        }
        let pg = Postgres {
            port,
            dir,
            bin,
            as_postgres,
        };
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "streamprep",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &pg.dir.join("log").to_string_lossy(),
                "-o",
                &format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{options}",
                    pg.dir.display()
                ),
                "-w",
                "start",
            ],
        );
        pg
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .current_dir(&self.dir)
                .output()
        } else {
            Command::new(&path)
                .args(args)
                .current_dir(&self.dir)
                .output()
        }
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A URL for the database `postgres` as the superuser `streamprep`.
    pub fn url(&self) -> String {
        format!("postgres://streamprep@127.0.0.1:{}/postgres", self.port)
    }

    /// Run `sql` through `psql` (Debian's postgresql-client); its output, trimmed. A failing
    /// statement fails the test with the server's message.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .output()
            .expect("psql (apt-get install postgresql-client; scripts/test.sh does)");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let path = self.bin.join("pg_ctl");
        let args = ["-D", &data.to_string_lossy(), "-m", "immediate", "stop"].map(String::from);
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(&args)
                .output()
        } else {
            Command::new(&path).args(&args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
