//! The store: users, sessions, API tokens, projects, the history of runs and the audit log, in
//! an embedded SQLite database in the data directory or in PostgreSQL (`--store
//! postgres://...`), one code path through sqlx's `Any` driver. Migrations are in
//! `crates/serve/migrations`, compiled in and applied at open.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::auth::{digest, hash_password, random_hex};

/// A browser session ends after this long without a request.
pub const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;
/// A browser session ends this long after the login, whatever.
pub const SESSION_MAX_MS: i64 = 12 * 60 * 60 * 1000;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_profiles.sql")),
    (3, include_str!("../migrations/0003_state.sql")),
];

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    /// A name is taken.
    #[error("{0} exists already")]
    Exists(String),
    /// Nothing by that name or id.
    #[error("no {0}")]
    Missing(String),
    /// A value that cannot be stored.
    #[error("{0}")]
    Invalid(String),
}

/// What a user may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Also creates, edits, starts and stops projects.
    Operator,
    /// Also manages users.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("'{s}' is not a role: viewer, operator or admin")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

/// A user (never with the password's hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Its id.
    pub id: String,
    /// The login name.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// Milliseconds since 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// The SQLite database in `dir` (created with the directory when missing).
    pub async fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Invalid(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let db = dir.join("streamprep.db");
        Self::open(&format!("sqlite://{}?mode=rwc", db.display())).await
    }

    /// A store in memory (tests, trials): gone when dropped.
    pub async fn memory() -> Result<Self, StoreError> {
        Self::open("sqlite::memory:").await
    }

    /// Make the first admin when there is no user: with `password`, or a random one, returned
    /// to be shown once. `None` when users exist.
    pub async fn bootstrap_admin(
        &self,
        password: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        if !self.users().await?.is_empty() {
            return Ok(None);
        }
        let password = match password {
            Some(p) => p.to_string(),
            None => random_hex(12),
        };
        self.add_user("admin", Role::Admin, &password).await?;
        self.audit(
            "streamprep",
            "user.add",
            "admin",
            "the first admin, made at the first start",
        )
        .await?;
        Ok(Some(password))
    }

    /// A store by URL (`sqlite://PATH?mode=rwc`, `postgres://USER@HOST:PORT/DB`), migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite:") { 1 } else { 8 })
            .connect(url)
            .await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS streamprep_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM streamprep_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for statement in sql
                .split(';')
                .map(|s| {
                    s.lines()
                        .filter(|l| !l.trim_start().starts_with("--"))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .filter(|s| !s.trim().is_empty())
            {
                // the migrations are compiled in: no outside text reaches this SQL
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO streamprep_migrations (version, applied_ms) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Add a user with a password (hashed with Argon2id).
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<User, StoreError> {
        if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "a user name is 1 to 64 characters, none of them control characters".into(),
            ));
        }
        check_password(password)?;
        if self.user_row(name).await?.is_some() {
            return Err(StoreError::Exists(format!("user '{name}'")));
        }
        let hash = hash_password(password).map_err(StoreError::Invalid)?;
        let id = random_hex(16);
        sqlx::query(
            "INSERT INTO users (id, name, role, password_hash, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(role.to_string())
        .bind(&hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(User {
            id,
            name: name.into(),
            role,
        })
    }

    /// A user and the hash of its password.
    pub async fn user_row(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query("SELECT id, name, role, password_hash FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((user(&r)?, r.try_get::<String, _>("password_hash")?)))
            .transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query("SELECT id, name, role FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user)
            .collect()
    }

    /// Give a user a new password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        check_password(password)?;
        let hash = hash_password(password).map_err(StoreError::Invalid)?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(&hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Missing(format!("user '{name}'")));
        }
        // a new password ends the user's sessions
        sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Remove a user, its sessions and its tokens.
    pub async fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        let Some((u, _)) = self.user_row(name).await? else {
            return Err(StoreError::Missing(format!("user '{name}'")));
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&u.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
            .bind(&u.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&u.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new browser session for `user`: its id (128 random bits, kept only as its SHA-256)
    /// and its CSRF token.
    pub async fn create_session(
        &self,
        user: &User,
        now: i64,
    ) -> Result<(String, String), StoreError> {
        let (id, csrf) = (random_hex(16), random_hex(16));
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_ms, seen_ms) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(digest(&id))
        .bind(&user.id)
        .bind(&csrf)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok((id, csrf))
    }

    /// The user and CSRF token of a live session (seen now); an expired one is removed.
    pub async fn session(&self, id: &str, now: i64) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, s.csrf, s.created_ms, s.seen_ms FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
        )
        .bind(digest(id))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let (created, seen): (i64, i64) = (r.try_get("created_ms")?, r.try_get("seen_ms")?);
        if now - seen > SESSION_IDLE_MS || now - created > SESSION_MAX_MS {
            self.delete_session(id).await?;
            return Ok(None);
        }
        sqlx::query("UPDATE sessions SET seen_ms = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(digest(id))
            .execute(&self.pool)
            .await?;
        Ok(Some((user(&r)?, r.try_get("csrf")?)))
    }

    /// End a session.
    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(digest(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A new API token for `user` (shown once; kept only as its SHA-256).
    pub async fn create_token(
        &self,
        user: &User,
        label: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let token = format!("sp_{}", random_hex(32));
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, label, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(random_hex(16))
        .bind(&user.id)
        .bind(digest(&token))
        .bind(label)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// The user of an API token.
    pub async fn token_user(&self, token: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1",
        )
        .bind(digest(token))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user).transpose()
    }

    /// Add a project (`id` None) or replace one; its name must be unique.
    pub async fn put_project(
        &self,
        id: Option<&str>,
        name: &str,
        spec_json: &str,
    ) -> Result<String, StoreError> {
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if taken.as_deref().is_some_and(|t| Some(t) != id) {
            return Err(StoreError::Exists(format!("a project named '{name}'")));
        }
        let now = now_ms();
        match id {
            None => {
                let id = random_hex(8);
                sqlx::query(
                    "INSERT INTO projects (id, name, spec_json, running, created_ms, updated_ms) VALUES ($1, $2, $3, 0, $4, $4)",
                )
                .bind(&id)
                .bind(name)
                .bind(spec_json)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(id)
            }
            Some(id) => {
                let done = sqlx::query(
                    "UPDATE projects SET name = $1, spec_json = $2, updated_ms = $3 WHERE id = $4",
                )
                .bind(name)
                .bind(spec_json)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Missing(format!("project {id}")));
                }
                Ok(id.to_string())
            }
        }
    }

    /// Every project: (id, name, spec as JSON, running when the server last knew).
    pub async fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        sqlx::query("SELECT id, name, spec_json, running FROM projects ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(project_row)
            .collect()
    }

    /// One project.
    pub async fn project(&self, id: &str) -> Result<ProjectRow, StoreError> {
        let row = sqlx::query("SELECT id, name, spec_json, running FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Missing(format!("project {id}")))?;
        project_row(&row)
    }

    /// Remove a project (its run history stays in the audit log).
    pub async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Missing(format!("project {id}")));
        }
        sqlx::query("DELETE FROM runs WHERE project_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM project_state WHERE project_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The steps' state a project's last run left, if any.
    pub async fn project_state(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use base64::Engine as _;
        let text: Option<String> =
            sqlx::query_scalar("SELECT state FROM project_state WHERE project_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(text.and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok()))
    }

    /// Keep the steps' state a project's run left, for its next run.
    pub async fn save_project_state(&self, id: &str, state: &[u8]) -> Result<(), StoreError> {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(state);
        sqlx::query("DELETE FROM project_state WHERE project_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO project_state (project_id, state, saved_ms) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(text)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a project should run (kept across restarts of the server).
    pub async fn set_running(&self, id: &str, running: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE projects SET running = $1 WHERE id = $2")
            .bind(i64::from(running))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A run begins.
    pub async fn start_run(&self, project_id: &str, by: &str) -> Result<String, StoreError> {
        let id = random_hex(8);
        sqlx::query(
            "INSERT INTO runs (id, project_id, started_by, started_ms, state) VALUES ($1, $2, $3, $4, 'running')",
        )
        .bind(&id)
        .bind(project_id)
        .bind(by)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// A run ended: its final state and summary (JSON), and who stopped it.
    pub async fn end_run(
        &self,
        run_id: &str,
        state: &str,
        summary_json: Option<&str>,
        stopped_by: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET ended_ms = $1, state = $2, summary_json = $3, stopped_by = $4 WHERE id = $5",
        )
        .bind(now_ms())
        .bind(state)
        .bind(summary_json)
        .bind(stopped_by)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A project's runs, newest first.
    pub async fn runs(&self, project_id: &str) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_by, started_ms, stopped_by, ended_ms, state, summary_json FROM runs \
             WHERE project_id = $1 ORDER BY started_ms DESC, id LIMIT 100",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunRow {
                    id: r.try_get("id")?,
                    started_by: r.try_get("started_by")?,
                    started_ms: r.try_get("started_ms")?,
                    stopped_by: r.try_get("stopped_by")?,
                    ended_ms: r.try_get("ended_ms")?,
                    state: r.try_get("state")?,
                    summary: r
                        .try_get::<Option<String>, _>("summary_json")?
                        .and_then(|s| serde_json::from_str(&s).ok()),
                })
            })
            .collect()
    }

    /// Keep a profile (its CSV) by name, replacing one of the same name.
    pub async fn put_profile(&self, name: &str, csv: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM profiles WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO profiles (name, csv, created_ms) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(csv)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A stored profile's CSV.
    pub async fn profile(&self, name: &str) -> Result<String, StoreError> {
        sqlx::query_scalar("SELECT csv FROM profiles WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Missing(format!("profile '{name}'")))
    }

    /// The stored profiles' names.
    pub async fn profiles(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM profiles ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Record a change in the audit log.
    pub async fn audit(
        &self,
        user: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (id, at_ms, user_name, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(random_hex(16))
        .bind(now_ms())
        .bind(user)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The audit log, newest first: (time, user, action, target, detail).
    pub async fn audit_log(
        &self,
        limit: i64,
    ) -> Result<Vec<(i64, String, String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, user_name, action, target, detail FROM audit ORDER BY at_ms DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("at_ms")?,
                    r.try_get("user_name")?,
                    r.try_get("action")?,
                    r.try_get("target")?,
                    r.try_get("detail")?,
                ))
            })
            .collect()
    }
}

/// A stored project.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its spec, as JSON.
    pub spec_json: String,
    /// Running when the server last knew (started again at the server's start).
    pub running: bool,
}

fn project_row(r: &AnyRow) -> Result<ProjectRow, StoreError> {
    Ok(ProjectRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        spec_json: r.try_get("spec_json")?,
        running: r.try_get::<i64, _>("running")? != 0,
    })
}

/// A run in a project's history.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RunRow {
    /// Its id.
    pub id: String,
    /// Who started it.
    pub started_by: String,
    /// When, milliseconds since 1970.
    pub started_ms: i64,
    /// Who stopped it (none when its input ended, or it failed).
    pub stopped_by: Option<String>,
    /// When it ended.
    pub ended_ms: Option<i64>,
    /// running, finished, failed: REASON, or interrupted (the server stopped).
    pub state: String,
    /// Its summary (rows in and out, dead letters, dropped, seconds, ...).
    #[schema(value_type = Object)]
    pub summary: Option<serde_json::Value>,
}

fn user(r: &AnyRow) -> Result<User, StoreError> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: role.parse().map_err(StoreError::Invalid)?,
    })
}

/// Passwords of at least 12 characters (OWASP's length rule, no composition rules).
fn check_password(password: &str) -> Result<(), StoreError> {
    if password.chars().count() < 12 || password.len() > 1024 {
        return Err(StoreError::Invalid(
            "a password is 12 to 1024 characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same checks on both stores.
    async fn users_and_audit(store: &Store) {
        let admin = store
            .add_user("admin", Role::Admin, "a long enough password")
            .await
            .expect("admin");
        assert_eq!(admin.role, Role::Admin);
        assert!(matches!(
            store
                .add_user("admin", Role::Viewer, "another long password")
                .await,
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            store.add_user("bob", Role::Viewer, "short").await,
            Err(StoreError::Invalid(_))
        ));
        store
            .add_user(
                "<script>alert(1)</script>",
                Role::Viewer,
                "yet another password",
            )
            .await
            .expect("any printable name is kept as it is");
        let (u, hash) = store.user_row("admin").await.expect("db").expect("admin");
        assert_eq!(u, admin);
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(crate::auth::verify_password(
            "a long enough password",
            &hash
        ));
        store
            .set_password("admin", "a new long password")
            .await
            .expect("passwd");
        let (_, hash) = store.user_row("admin").await.expect("db").expect("admin");
        assert!(crate::auth::verify_password("a new long password", &hash));
        let names: Vec<String> = store
            .users()
            .await
            .expect("users")
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["<script>alert(1)</script>", "admin"]);
        store
            .delete_user("<script>alert(1)</script>")
            .await
            .expect("del");
        assert!(matches!(
            store.delete_user("nobody").await,
            Err(StoreError::Missing(_))
        ));
        store
            .audit("admin", "user.add", "bob", "role viewer")
            .await
            .expect("audit");
        let log = store.audit_log(10).await.expect("log");
        assert_eq!(log[0].1, "admin");
        assert_eq!(log[0].2, "user.add");
    }

    /// Sessions, tokens, projects and runs: the same on both stores.
    async fn sessions_projects_and_runs(store: &Store) {
        let u = store
            .add_user("ops", Role::Operator, "a long enough password")
            .await
            .expect("user");
        let (id, csrf) = store.create_session(&u, 1_000).await.expect("session");
        let (who, c) = store.session(&id, 2_000).await.expect("db").expect("live");
        assert_eq!((who.name.as_str(), c), ("ops", csrf));
        assert!(store
            .session(&id, 2_000 + SESSION_IDLE_MS + 1)
            .await
            .expect("db")
            .is_none());
        assert!(
            store.session(&id, 2_000).await.expect("db").is_none(),
            "removed when expired"
        );
        let token = store.create_token(&u, "ci", 0).await.expect("token");
        assert_eq!(
            store.token_user(&token).await.expect("db").map(|u| u.name),
            Some("ops".into())
        );
        assert!(store.token_user("sp_nope").await.expect("db").is_none());
        let p = store
            .put_project(None, "weather", "{}")
            .await
            .expect("project");
        assert!(matches!(
            store.put_project(None, "weather", "{}").await,
            Err(StoreError::Exists(_))
        ));
        store
            .put_project(Some(&p), "weather", "{\"a\":1}")
            .await
            .expect("update");
        store.set_running(&p, true).await.expect("running");
        let row = store.project(&p).await.expect("row");
        assert!(row.running && row.spec_json == "{\"a\":1}");
        let r = store.start_run(&p, "ops").await.expect("run");
        store
            .end_run(&r, "finished", Some("{\"rows_in\":5}"), Some("ops"))
            .await
            .expect("end");
        let runs = store.runs(&p).await.expect("runs");
        assert_eq!(runs[0].state, "finished");
        assert_eq!(
            runs[0].summary.as_ref().map(|s| s["rows_in"].clone()),
            Some(5.into())
        );
        store.delete_project(&p).await.expect("del");
        assert!(store.projects().await.expect("list").is_empty());
        store.put_profile("paper", "a,b\n").await.expect("profile");
        store.put_profile("paper", "c,d\n").await.expect("replaced");
        assert_eq!(store.profile("paper").await.expect("csv"), "c,d\n");
        assert_eq!(store.profiles().await.expect("names"), ["paper"]);
    }

    #[tokio::test]
    async fn the_first_admin_is_made_once() {
        let store = Store::memory().await.expect("memory");
        let pw = store
            .bootstrap_admin(None)
            .await
            .expect("made")
            .expect("a password");
        assert_eq!(pw.len(), 24);
        let (u, hash) = store.user_row("admin").await.expect("db").expect("admin");
        assert_eq!(u.role, Role::Admin);
        assert!(crate::auth::verify_password(&pw, &hash));
        assert_eq!(store.bootstrap_admin(None).await.expect("again"), None);
        let other = Store::memory().await.expect("memory");
        assert!(
            other.bootstrap_admin(Some("short")).await.is_err(),
            "12 characters at least"
        );
    }

    #[tokio::test]
    async fn sqlite_store_keeps_users_and_the_audit_log_across_opens() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_dir(dir.path()).await.expect("open");
        users_and_audit(&store).await;
        sessions_projects_and_runs(&store).await;
        drop(store);
        // opened again: migrated once, the data kept
        let store = Store::open_dir(dir.path()).await.expect("open again");
        assert_eq!(store.users().await.expect("users").len(), 2);
    }

    #[tokio::test]
    async fn postgres_store_does_the_same() {
        let pg = streamprep_testkit::postgres::Postgres::start();
        let store = Store::open(&pg.url()).await.expect("open");
        users_and_audit(&store).await;
        sessions_projects_and_runs(&store).await;
        drop(store);
        let store = Store::open(&pg.url()).await.expect("open again");
        assert_eq!(store.users().await.expect("users").len(), 2);
    }
}
