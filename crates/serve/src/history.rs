//! History jobs (seed 002): a PostgreSQL table's time range, the columns asked for, decimated
//! to a resolution (a `resample` interval, and/or `points` by MinMaxLTTB), run as a job apart
//! from the request: it streams its progress (rows read, percentage of the range, rows a
//! second), can be cancelled (the query is cancelled on the server), and its result is kept and
//! shared: the same question (table, range, columns, resolution) from any user gets the same
//! job. At most [`RUNNING`] jobs run at once (the others wait their turn), each for at most
//! [`MAX_SECONDS`], each reading the range in batches (memory stays flat whatever the range)
//! and keeping at most [`MAX_ROWS`] result rows.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use streamprep_connectors::postgres::{column_name, quoted, PgSource, PgUrl};
use streamprep_core::{Encoding, IoError, Output, Sink};
use streamprep_engine::{PipelineConfig, Stats};
use utoipa::ToSchema;

use crate::access::{ApiError, Auth, JsonBody, Operator};
use crate::api::AppState;

/// Jobs running at once, at most (the others wait): two, so the server keeps cores for its
/// other requests (BENCHMARKS.md section 13).
pub const RUNNING: usize = 2;
/// The nice value of a job's threads: a request of the server's runs first when both want a
/// core (measured: BENCHMARKS.md section 13).
const JOB_NICE: i32 = 10;
/// The longest a job runs; then it is stopped (its query cancelled).
pub const MAX_SECONDS: u64 = 600;
/// The most result rows a job keeps (ask for points or a coarser interval beyond).
pub const MAX_ROWS: usize = 200_000;
/// Jobs waiting or running at once, at most: beyond, a new question is refused until some end.
pub const QUEUED: usize = 32;
/// Jobs remembered (with their results), the oldest forgotten first.
const KEPT: usize = 64;

/// What a history job reads and how fine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The table: `postgres://USER@HOST:PORT/DB?table=NAME` (a project's PostgreSQL sink, or
    /// any table).
    pub source: String,
    /// The column of times (default `ts`).
    #[serde(default = "default_ts")]
    pub time_column: String,
    /// The first time (ISO 8601, inclusive).
    pub from: String,
    /// The time the range ends before.
    pub to: String,
    /// The numeric columns to chart.
    pub columns: Vec<String>,
    /// A `resample` interval (`1s`, `1min`): the mean of each bin.
    #[serde(default)]
    pub interval: Option<String>,
    /// The points a chart needs: MinMaxLTTB over the (resampled) series.
    #[serde(default)]
    pub points: Option<usize>,
}

fn default_ts() -> String {
    "ts".into()
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// `waiting`, `running`, `done`, `cancelled` or `failed: why`.
    pub state: String,
    /// Rows read from the table so far.
    pub rows_read: u64,
    /// How far into the range the result is, percent.
    pub percent: f64,
    /// Rows read a second, over the job so far.
    pub rows_per_s: f64,
    /// Seconds since the job started.
    pub seconds: f64,
    /// Result rows so far: all of them once done; while it runs, those a step gave already
    /// (the bins of a `resample` as they close; `points` come at the end). From `from_row` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<serde_json::Value>>,
    /// Result rows so far, in all.
    pub total_rows: usize,
}

/// A history job.
pub struct Job {
    id: String,
    /// The question, as asked (its source may hold a password: never shown).
    query: HistoryQuery,
    key: String,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    started: Instant,
    state: Mutex<String>,
    rows: Arc<Mutex<Vec<serde_json::Value>>>,
    from: i64,
    to: i64,
    reached: Arc<AtomicI64>,
}

impl Job {
    fn view(&self, from_row: Option<usize>) -> JobView {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rows_read = self.stats.snapshot().rows_read;
        let seconds = self.started.elapsed().as_secs_f64();
        let percent = if state == "done" {
            100.0
        } else {
            let at = self.reached.load(Ordering::Relaxed);
            ((at - self.from) as f64 / (self.to - self.from).max(1) as f64 * 100.0)
                .clamp(0.0, 100.0)
        };
        JobView {
            id: self.id.clone(),
            state,
            rows_read,
            percent,
            rows_per_s: if seconds > 0.0 {
                rows_read as f64 / seconds
            } else {
                0.0
            },
            seconds,
            rows: from_row.map(|from| {
                let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
                rows.get(from.min(rows.len())..)
                    .unwrap_or_default()
                    .to_vec()
            }),
            total_rows: self.rows.lock().unwrap_or_else(|e| e.into_inner()).len(),
        }
    }

    fn set(&self, state: &str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state.to_string();
    }
}

/// The jobs remembered: by id, and their ids oldest first.
type Kept = (HashMap<String, Arc<Job>>, VecDeque<String>);

/// The server's history jobs.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<Kept>,
    running: Mutex<usize>,
    turn: Condvar,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

/// The question checked: the query to run, the chain, the range in microseconds, the cache key.
fn plan(q: &HistoryQuery) -> Result<(PgUrl, Vec<String>, i64, i64, String), String> {
    let mut url = PgUrl::parse(q.source.trim()).map_err(|e| format!("source: {e}"))?;
    let table = url
        .table
        .clone()
        .ok_or("source: name the table, postgres://USER@HOST:PORT/DB?table=NAME")?;
    let ident = |s: &str, what: &str| column_name(s).map_err(|e| format!("{what}: {e}"));
    let tc = ident(&q.time_column, "time_column")?;
    if q.columns.is_empty() || q.columns.len() > 64 {
        return Err("columns: name 1 to 64 numeric columns".into());
    }
    let cols = q
        .columns
        .iter()
        .map(|c| ident(c, "columns"))
        .collect::<Result<Vec<_>, _>>()?;
    let time = |t: &str, what: &str| {
        streamprep_core::time::parse_iso(t)
            .map(|(us, _)| us)
            .ok_or_else(|| format!("{what}: '{t}' is not a time such as 2026-03-01T00:00:00Z"))
    };
    let (from, to) = (time(&q.from, "from")?, time(&q.to, "to")?);
    if to <= from {
        return Err("to: must come after from".into());
    }
    let mut chain = Vec::new();
    if let Some(i) = &q.interval {
        let step = format!(
            "resample{}",
            serde_json::json!({"interval": i, "agg": "mean", "time_column": tc})
        );
        streamprep_ops::registry::build_chain(&[&step]).map_err(|e| format!("interval: {e}"))?;
        chain.push(step);
    }
    if let Some(p) = q.points {
        if !(3..=MAX_ROWS).contains(&p) {
            return Err(format!("points: 3 to {MAX_ROWS}"));
        }
        chain.push(format!(
            "minmax_lttb{}",
            serde_json::json!({"points": p, "time_column": tc})
        ));
    }
    if chain.is_empty() {
        return Err("give an interval (1s, 1min) or points (2000), or both".into());
    }
    // the range as the server reads it: only the columns asked, in time order
    let (f, t) = (
        streamprep_core::time::format_iso(from, true),
        streamprep_core::time::format_iso(to, true),
    );
    let select = std::iter::once(quoted(&tc))
        .chain(cols.iter().map(|c| quoted(c)))
        .collect::<Vec<_>>()
        .join(", ");
    url.query = Some(format!(
        "SELECT {select} FROM {} WHERE {tcq} >= '{f}' AND {tcq} < '{t}' ORDER BY {tcq}",
        quoted(&table),
        tcq = quoted(&tc)
    ));
    url.table = None;
    let key = serde_json::json!([
        url.display(),
        url.query,
        tc,
        cols,
        from,
        to,
        q.interval,
        q.points
    ])
    .to_string();
    Ok((url, chain, from, to, key))
}

/// Collects a job's result rows and how far into the range they reach.
struct Collect {
    rows: Arc<Mutex<Vec<serde_json::Value>>>,
    time_column: String,
    reached: Arc<AtomicI64>,
}

impl Sink for Collect {
    fn encoding(&self) -> Encoding {
        Encoding::Ndjson
    }

    fn write(&mut self, out: Output) -> Result<(), IoError> {
        for line in out.encoded.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
            if rows.len() >= MAX_ROWS {
                return Err(IoError::Protocol(format!(
                    "more than {MAX_ROWS} result rows: ask for points or a coarser interval"
                )));
            }
            let v: serde_json::Value = serde_json::from_slice(line)
                .map_err(|e| IoError::Protocol(format!("a result row: {e}")))?;
            if let Some(t) = v[&self.time_column]
                .as_str()
                .and_then(streamprep_core::time::parse_iso)
            {
                self.reached.fetch_max(t.0, Ordering::Relaxed);
            }
            rows.push(v);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

impl Job {
    /// Its id.
    pub fn id(&self) -> String {
        self.id.clone()
    }
}

impl Jobs {
    /// Whether a job of this id is remembered.
    pub fn knows(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// The question a job answers (its source's password in it: for the server only).
    pub fn query_of(&self, id: &str) -> Option<HistoryQuery> {
        self.get(id).map(|j| j.query.clone())
    }

    /// The real source of a remembered job whose source, masked, reads `masked`.
    pub fn real_source(&self, masked: &str) -> Option<String> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.0
            .values()
            .map(|j| &j.query.source)
            .find(|s| crate::projects::mask_url(s) == masked)
            .cloned()
    }

    /// Cancel a job (its query on the server too); false when there is no such job.
    pub fn cancel(&self, id: &str) -> bool {
        match self.get(id) {
            Some(j) => {
                j.stop.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// The job answering `q`: the one already asked (running or done), or a new one.
    pub fn ask(self: &Arc<Self>, q: &HistoryQuery) -> Result<(Arc<Job>, bool), String> {
        let (url, chain, from, to, key) = plan(q)?;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.0.values().find(|j| j.key == key) {
            let state = j.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if state != "cancelled" && !state.starts_with("failed") {
                return Ok((j.clone(), false));
            }
        }
        let busy = jobs
            .0
            .values()
            .filter(|j| {
                matches!(
                    j.state.lock().unwrap_or_else(|e| e.into_inner()).as_str(),
                    "waiting" | "running"
                )
            })
            .count();
        if busy >= QUEUED {
            return Err(format!(
                "busy: {busy} history jobs are waiting or running, at most {QUEUED}; ask again when some have ended (or cancel some)"
            ));
        }
        let job = Arc::new(Job {
            id: crate::auth::random_hex(8),
            query: q.clone(),
            key,
            stop: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(Stats::default()),
            started: Instant::now(),
            state: Mutex::new("waiting".into()),
            rows: Arc::default(),
            from,
            to,
            reached: Arc::new(AtomicI64::new(from)),
        });
        jobs.0.insert(job.id.clone(), job.clone());
        jobs.1.push_back(job.id.clone());
        while jobs.1.len() > KEPT {
            if let Some(old) = jobs.1.pop_front() {
                jobs.0.remove(&old);
            }
        }
        drop(jobs);
        let (me, j) = (self.clone(), job.clone());
        let time_column = q.time_column.clone();
        std::thread::Builder::new()
            .name("streamprep-history".into())
            .spawn(move || me.run(&j, url, chain, time_column))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok((job, true))
    }

    fn run(&self, job: &Job, url: PgUrl, chain: Vec<String>, time_column: String) {
        // behind the server's requests for the cores: this thread (and the ones it starts)
        // at a lower priority (on Linux the nice value is each thread's own)
        if let Err(e) = rustix::process::setpriority_process(None, JOB_NICE) {
            tracing::debug!("history: the job's thread keeps its priority: {e}");
        }
        // wait for a turn
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            while *running >= RUNNING && !job.stop.load(Ordering::SeqCst) {
                running = self
                    .turn
                    .wait_timeout(running, Duration::from_millis(200))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            *running += 1;
        }
        let result = if job.stop.load(Ordering::SeqCst) {
            Err("cancelled".to_string())
        } else {
            job.set("running");
            // the time bound: a watchdog stops it
            let stop = job.stop.clone();
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(MAX_SECONDS);
                while !d.load(Ordering::SeqCst) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(200));
                }
                if !d.load(Ordering::SeqCst) {
                    stop.store(true, Ordering::SeqCst);
                }
            });
            let r = run_job(job, &url, chain, time_column);
            done.store(true, Ordering::SeqCst);
            r
        };
        match result {
            // stopped (a cancel, the time bound, the server stopping): whatever it says
            _ if job.stop.load(Ordering::SeqCst) => job.set("cancelled"),
            Ok(()) => job.set("done"),
            Err(e) => job.set(&format!("failed: {e}")),
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.turn.notify_all();
    }

    fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(id)
            .cloned()
    }

    /// Stop every job (the server stops).
    pub fn stop_all(&self) {
        for j in self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .values()
        {
            j.stop.store(true, Ordering::SeqCst);
        }
    }
}

fn run_job(job: &Job, url: &PgUrl, chain: Vec<String>, time_column: String) -> Result<(), String> {
    let mut source = PgSource::open(url, job.stop.clone()).map_err(|e| e.to_string())?;
    let mut sink = Collect {
        rows: job.rows.clone(),
        time_column,
        reached: job.reached.clone(),
    };
    let mut cfg = PipelineConfig::new(chain, 10_000);
    cfg.stop = job.stop.clone();
    streamprep_engine::run_with(&cfg, &mut source, &mut sink, None, &job.stats)
        .map_err(|e| format!("{e:#}"))?;
    Ok(())
}

/// Start a history job (or get the one already answering the same question).
#[utoipa::path(post, path = "/api/v1/history/jobs", request_body = HistoryQuery, responses((status = 202, body = JobView, description = "started, or waiting its turn"), (status = 200, body = JobView, description = "the same question was asked already: its job"), (status = 422, description = "a field that cannot work"), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn start_job(
    State(state): State<AppState>,
    Operator(_auth): Operator,
    JsonBody(q): JsonBody<HistoryQuery>,
) -> Result<Response, ApiError> {
    let jobs = state.history.clone();
    let (job, new) = tokio::task::spawn_blocking(move || jobs.ask(&q))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the job did not start"))?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let status = if new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(job.view(None))).into_response())
}

/// Which rows a job's view carries.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FromRow {
    /// The first result row to send (the rows before it were read already); 0 by default.
    #[serde(default)]
    pub from_row: usize,
}

/// A history job: its progress, and its rows so far (all once done).
#[utoipa::path(get, path = "/api/v1/history/jobs/{id}", params(("id" = String, Path), FromRow), responses((status = 200, body = JobView), (status = 404), (status = 401, description = "not logged in")))]
pub async fn get_job(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<FromRow>,
) -> Result<Json<JobView>, ApiError> {
    let job = state
        .history
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such history job"))?;
    Ok(Json(job.view(Some(q.from_row))))
}

/// Cancel a history job: its query is cancelled on the server.
#[utoipa::path(delete, path = "/api/v1/history/jobs/{id}", params(("id" = String, Path)), responses((status = 202, body = JobView), (status = 404), (status = 401, description = "not logged in"), (status = 403, description = "not allowed for this role, or (a session) no CSRF token or another site")))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Operator(_auth): Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = state
        .history
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such history job"))?;
    job.stop.store(true, Ordering::SeqCst);
    Ok((StatusCode::ACCEPTED, Json(job.view(None))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projects::tests::{call, setup};
    use streamprep_testkit::postgres::Postgres;

    async fn until_over(state: &AppState, t: &str, id: &str) -> serde_json::Value {
        for _ in 0..400 {
            let (s, body) = call(state, t, "GET", &format!("/api/v1/history/jobs/{id}"), "").await;
            assert_eq!(s, StatusCode::OK, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            if !matches!(v["state"].as_str(), Some("waiting" | "running")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job {id} never ended");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_history_job_decimates_a_range_is_shared_and_can_be_cancelled() {
        let pg = Postgres::start();
        pg.psql(
            "CREATE TABLE beam AS SELECT '2026-03-01T00:00:00Z'::timestamptz + n * interval '100 milliseconds' AS ts, \
             n::float8 AS x, (2 * n)::float8 AS y FROM generate_series(0, 1799) AS n",
        );
        let (state, t, viewer) = setup().await;
        let ask = serde_json::json!({
            "source": format!("{}?table=beam", pg.url()),
            "from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:02:00Z",
            "columns": ["x"], "interval": "1s"
        });
        let (s, body) = call(&state, &t, "POST", "/api/v1/history/jobs", &ask.to_string()).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
            .as_str()
            .expect("id")
            .to_string();
        let done = until_over(&state, &viewer, &id).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["percent"], 100.0);
        assert_eq!(done["rows_read"], 1200, "two minutes at 10 Hz");
        let rows = done["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 120, "one a second");
        assert_eq!(rows[0]["ts"], "2026-03-01T00:00:00Z");
        assert_eq!(rows[0]["x"], 4.5, "the mean of rows 0..9");
        assert_eq!(rows[119]["x"], 1194.5);
        assert!(rows[0].get("y").is_none(), "only the columns asked");
        // the rows from a place on (what a page polling the job has not read yet)
        let (_, body) = call(
            &state,
            &viewer,
            "GET",
            &format!("/api/v1/history/jobs/{id}?from_row=100"),
            "",
        )
        .await;
        let part: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(part["total_rows"], 120);
        assert_eq!(part["rows"].as_array().expect("rows").len(), 20);
        assert_eq!(part["rows"][0]["x"], 1004.5);
        // the same question: the same job, its result shared
        let (s, body) = call(&state, &t, "POST", "/api/v1/history/jobs", &ask.to_string()).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body.contains(&id), "{body}");
        // points: MinMaxLTTB over the seconds
        let mut fewer = ask.clone();
        fewer["points"] = 20.into();
        let (_, body) = call(
            &state,
            &t,
            "POST",
            "/api/v1/history/jobs",
            &fewer.to_string(),
        )
        .await;
        let id2 = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
            .as_str()
            .expect("id")
            .to_string();
        assert_ne!(id2, id);
        let done = until_over(&state, &t, &id2).await;
        assert_eq!(done["rows"].as_array().expect("rows").len(), 20, "{done}");
        // a viewer reads jobs but starts none
        let (s, _) = call(
            &state,
            &viewer,
            "POST",
            "/api/v1/history/jobs",
            &ask.to_string(),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // questions that cannot work are refused, each saying why
        for (field, bad) in [
            ("from", serde_json::json!("yesterday")),
            ("columns", serde_json::json!(["x; DROP TABLE beam"])),
            ("interval", serde_json::json!("7s")),
            ("source", serde_json::json!("postgres://me@h/db")),
        ] {
            let mut q = ask.clone();
            q[field] = bad;
            let (s, body) = call(&state, &t, "POST", "/api/v1/history/jobs", &q.to_string()).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
            assert!(body.contains(field), "{field}: {body}");
        }
        // a slow query, cancelled: the job says so and the server's query is gone
        pg.psql(
            "CREATE VIEW slow AS SELECT '2026-03-01T00:00:00Z'::timestamptz AS ts, 1.0::float8 AS x FROM pg_sleep(30)",
        );
        let mut q = ask.clone();
        q["source"] = format!("{}?table=slow", pg.url()).into();
        let (s, body) = call(&state, &t, "POST", "/api/v1/history/jobs", &q.to_string()).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        let id3 = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
            .as_str()
            .expect("id")
            .to_string();
        let active = || {
            pg.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%slow%' AND state = 'active'",
            )
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while active() != "1" {
            assert!(Instant::now() < deadline, "the slow query never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (s, _) = call(
            &state,
            &t,
            "DELETE",
            &format!("/api/v1/history/jobs/{id3}"),
            "",
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let over = until_over(&state, &t, &id3).await;
        assert_eq!(over["state"], "cancelled", "{over}");
        assert_eq!(active(), "0", "the query was cancelled on the server");
        // at most QUEUED jobs wait or run (slow queries keep them so), the next one is refused
        let mut ids = Vec::new();
        for i in 0..QUEUED + 1 {
            let mut q = ask.clone();
            q["source"] = format!("{}?table=slow", pg.url()).into();
            q["to"] = format!("2026-03-01T00:02:{i:02}Z").into();
            let (s, body) = call(&state, &t, "POST", "/api/v1/history/jobs", &q.to_string()).await;
            if i < QUEUED {
                assert_eq!(s, StatusCode::ACCEPTED, "job {i}: {body}");
                ids.push(
                    serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
                        .as_str()
                        .expect("id")
                        .to_string(),
                );
            } else {
                assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
                assert!(body.contains("busy"), "{body}");
            }
        }
        for id in ids {
            call(
                &state,
                &t,
                "DELETE",
                &format!("/api/v1/history/jobs/{id}"),
                "",
            )
            .await;
        }
    }
}
