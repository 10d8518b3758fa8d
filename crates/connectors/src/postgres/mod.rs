//! PostgreSQL: a sink that writes each message with binary `COPY` in one transaction (created
//! table, duplicates after a redelivery written once), and a source that reads a table's time
//! range or a query through binary `COPY ... TO STDOUT`, a batch at a time, cancelled on the
//! server when the run stops.

pub mod copy;
pub mod endpoint;
pub mod sink;
pub mod source;
pub mod tls;

pub use sink::PgSink;
pub use source::PgSource;

/// A `postgres://USER[:PASS]@HOST:PORT/DB?table=NAME&...` address.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// The user.
    pub user: String,
    /// The password, if the address gives one (never shown).
    pub password: Option<String>,
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The database.
    pub db: String,
    /// The table (a checked identifier, `name` or `schema.name`).
    pub table: Option<String>,
    /// Source: the column rows are ordered and ranged by.
    pub time_column: Option<String>,
    /// Source: the first time taken (inclusive).
    pub from: Option<String>,
    /// Source: the time the range ends before.
    pub to: Option<String>,
    /// Source: a SELECT instead of a table.
    pub query: Option<String>,
    /// Sink: write a row again delivered (the same row, after a restart) once (default).
    pub dedupe: bool,
    /// Source: once the range is read, keep reading rows newer than the last (by time_column).
    pub follow: bool,
    /// TLS (`sslmode=require` or `verify-full`): the server verified against this CA file
    /// (`sslrootcert=`), or the system's roots when `None` inside.
    pub tls: Option<Option<std::path::PathBuf>>,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// A plain name PostgreSQL takes unquoted: letters, digits and `_`, not starting with a digit.
fn plain(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 63
        && p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A table's name: `name` or `schema.name`, each part plain (it goes into the SQL quoted).
fn identifier(s: &str) -> Result<String, String> {
    if s.split('.').count() <= 2 && s.split('.').all(plain) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a plain table name (letters, digits, _; schema.table)"
        ))
    }
}

/// A column's name: plain (it goes into the SQL quoted).
pub fn column_name(s: &str) -> Result<String, String> {
    if plain(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a plain column name (letters, digits, _)"
        ))
    }
}

/// A time bound: digits, letters, `-`, `:`, `.`, `+` and spaces only (it goes into the SQL as
/// a literal).
fn time_bound(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-:.+ ".contains(c))
    {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not a time such as 2026-01-01T00:00:00Z"))
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("a bad %-escape in '{s}'"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{s}' is not UTF-8 once decoded"))
}

/// A PostgreSQL error as the server said it (`column "x" does not exist`), not "db error".
pub fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut m = format!("{}: {}", d.severity(), d.message());
            if let Some(h) = d.hint() {
                m.push_str(&format!(" (hint: {h})"));
            }
            m
        }
        None => {
            // the cause too (a TLS handshake's is the certificate it refused)
            let mut m = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let more = c.to_string();
                if !m.contains(&more) {
                    m.push_str(": ");
                    m.push_str(&more);
                }
                cause = c.source();
            }
            m
        }
    }
}

/// Double-quote an identifier (`schema.table` part by part).
pub fn quoted(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

impl PgUrl {
    /// Parse the whole spec.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let rest = spec
            .strip_prefix("postgres://")
            .or_else(|| spec.strip_prefix("postgresql://"))
            .ok_or("a PostgreSQL address starts with postgres://")?;
        let (main, params) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, hostpath) = main
            .rsplit_once('@')
            .ok_or("give the user: postgres://USER@HOST:PORT/DB")?;
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (percent_decode(u)?, Some(percent_decode(p)?)),
            None => (percent_decode(auth)?, None),
        };
        let (hostport, db) = hostpath
            .split_once('/')
            .ok_or("give the database: postgres://USER@HOST:PORT/DB")?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("'{p}' is not a port"))?,
            ),
            None => (hostport.to_string(), 5432),
        };
        if host.is_empty() || user.is_empty() || db.is_empty() {
            return Err("postgres://USER@HOST:PORT/DB: user, host and database are needed".into());
        }
        let mut url = PgUrl {
            user,
            password,
            host,
            port,
            db: percent_decode(db)?,
            table: None,
            time_column: None,
            from: None,
            to: None,
            query: None,
            dedupe: true,
            follow: false,
            tls: None,
        };
        let mut root_cert = None;
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k {
                "table" => url.table = Some(identifier(&v)?),
                "time_column" => url.time_column = Some(column_name(&v)?),
                "from" => url.from = Some(time_bound(&v)?),
                "to" => url.to = Some(time_bound(&v)?),
                "query" => url.query = Some(v),
                "dedupe" => {
                    url.dedupe = match v.as_str() {
                        "row" | "1" | "true" => true,
                        "none" | "0" | "false" => false,
                        _ => return Err(format!("dedupe={v}: \"row\" or \"none\"")),
                    }
                }
                "follow" => url.follow = matches!(v.as_str(), "1" | "true"),
                "sslmode" => {
                    url.tls = match v.as_str() {
                        "disable" => None,
                        "require" | "verify-full" => Some(None),
                        _ => return Err(format!(
                            "sslmode={v}: \"disable\" (the default), or \"require\" (TLS, the server's certificate and name always verified, as verify-full)"
                        )),
                    }
                }
                "sslrootcert" => {
                    if !std::path::Path::new(&v).is_file() {
                        return Err(format!("sslrootcert={v}: no such file"));
                    }
                    root_cert = Some(std::path::PathBuf::from(v));
                }
                _ => {
                    return Err(format!(
                        "unknown option '{k}' (table, time_column, from, to, query, dedupe, follow, sslmode, sslrootcert)"
                    ))
                }
            }
        }
        match (&mut url.tls, root_cert) {
            (Some(ca), r) => *ca = r,
            (None, Some(_)) => return Err("sslrootcert needs sslmode=require".into()),
            (None, None) => {}
        }
        if url.table.is_some() && url.query.is_some() {
            return Err("give a table or a query, not both".into());
        }
        if (url.from.is_some() || url.to.is_some() || url.follow) && url.time_column.is_none() {
            return Err(
                "from, to and follow need time_column (the column rows are timed by)".into(),
            );
        }
        Ok(url)
    }

    /// The address as shown (no password).
    pub fn display(&self) -> String {
        let what = match (&self.table, &self.query) {
            (Some(t), _) => format!("?table={t}"),
            (None, Some(_)) => "?query=...".into(),
            _ => String::new(),
        };
        format!(
            "postgres://{}@{}:{}/{}{what}",
            self.user, self.host, self.port, self.db
        )
    }

    /// Connect.
    pub fn connect(&self) -> Result<postgres::Client, streamprep_core::IoError> {
        let mut c = postgres::Config::new();
        c.user(&self.user)
            .host(&self.host)
            .port(self.port)
            .dbname(&self.db)
            .application_name("streamprep")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(p) = &self.password {
            c.password(p);
        }
        let failed = |e: postgres::Error| {
            streamprep_core::IoError::Protocol(format!(
                "connecting to {}: {}",
                self.display(),
                pg_error(&e)
            ))
        };
        match &self.tls {
            None => c.connect(postgres::NoTls).map_err(failed),
            Some(ca) => {
                c.ssl_mode(postgres::config::SslMode::Require);
                let tls = tls::RustlsConnect::new(ca.as_deref()).map_err(|e| {
                    streamprep_core::IoError::Protocol(format!("{}: {e}", self.display()))
                })?;
                c.connect(tls).map_err(failed)
            }
        }
    }

    /// Cancel the query a connection runs (over TLS when the connection is).
    pub fn cancel(&self, token: &postgres::CancelToken) {
        let _ = match &self.tls {
            None => token.cancel_query(postgres::NoTls),
            Some(ca) => match tls::RustlsConnect::new(ca.as_deref()) {
                Ok(tls) => token.cancel_query(tls),
                Err(_) => return,
            },
        };
    }

    /// The source's SELECT: the query, or the table's rows in the range, by time.
    pub fn select(&self) -> Result<String, String> {
        if let Some(q) = &self.query {
            return Ok(q.trim().trim_end_matches(';').to_string());
        }
        let table = self
            .table
            .as_deref()
            .ok_or("give ?table=NAME or ?query=SELECT...")?;
        let mut sql = format!("SELECT * FROM {}", quoted(table));
        if let Some(tc) = &self.time_column {
            let mut conds = Vec::new();
            if let Some(f) = &self.from {
                conds.push(format!("{} >= '{f}'", quoted(tc)));
            }
            if let Some(t) = &self.to {
                conds.push(format!("{} < '{t}'", quoted(tc)));
            }
            if !conds.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&conds.join(" AND "));
            }
            sql.push_str(&format!(" ORDER BY {}", quoted(tc)));
        }
        Ok(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_refuse_what_would_reach_the_sql() {
        let u = PgUrl::parse(
            "postgres://me:s%40cret@db:5433/weather?table=public.cbpm&time_column=ts&from=2026-01-01T00:00:00Z&to=2026-01-02",
        )
        .expect("parses");
        assert_eq!(
            (u.user.as_str(), u.password.as_deref()),
            ("me", Some("s@cret"))
        );
        assert_eq!(
            (u.host.as_str(), u.port, u.db.as_str()),
            ("db", 5433, "weather")
        );
        assert_eq!(
            u.select().expect("select"),
            "SELECT * FROM \"public\".\"cbpm\" WHERE \"ts\" >= '2026-01-01T00:00:00Z' AND \"ts\" < '2026-01-02' ORDER BY \"ts\""
        );
        assert!(!u.display().contains("cret"), "{}", u.display());
        for bad in [
            "postgres://me@db/x?table=a;drop",
            "postgres://me@db/x?table=t&time_column=ts&from=2026'--",
            "postgres://me@db/x?table=t&from=2026",
            "postgres://db/x?table=t",
            "postgres://me@db/x?table=t&query=select+1",
            "postgres://me@db/x?tabel=t",
        ] {
            assert!(PgUrl::parse(bad).is_err(), "{bad}");
        }
        let q = PgUrl::parse("postgres://me@h:1/d?query=SELECT+a,+b+FROM+t%3B").expect("query");
        assert_eq!(q.select().expect("select"), "SELECT a, b FROM t");
        assert_eq!(quoted("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn sslmode_require_verifies_and_other_modes_are_refused() {
        let plain = PgUrl::parse("postgres://me@h/d?table=t").expect("plain");
        assert_eq!(plain.tls, None);
        let system = PgUrl::parse("postgres://me@h/d?table=t&sslmode=require").expect("tls");
        assert_eq!(system.tls, Some(None));
        let ca = tempfile::NamedTempFile::new().expect("ca");
        let path = ca.path().display().to_string();
        let own = PgUrl::parse(&format!(
            "postgres://me@h/d?table=t&sslmode=verify-full&sslrootcert={path}"
        ))
        .expect("tls with a CA");
        assert_eq!(own.tls, Some(Some(ca.path().to_path_buf())));
        assert!(own.display().ends_with("?table=t"), "no file paths shown");
        for (bad, says) in [
            ("sslmode=prefer", "sslmode=prefer"),
            (
                "sslmode=disable&sslrootcert=PATH",
                "sslrootcert needs sslmode=require",
            ),
            ("sslmode=require&sslrootcert=/no/such.pem", "no such file"),
        ] {
            let spec = format!("postgres://me@h/d?table=t&{}", bad.replace("PATH", &path));
            let e = PgUrl::parse(&spec).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        // an empty CA file is refused when connecting, before any row
        let e = tls::RustlsConnect::new(Some(ca.path()))
            .err()
            .unwrap_or_default();
        assert!(e.contains("no CA certificate found"), "{e}");
    }
}
