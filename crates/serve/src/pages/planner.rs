//! The planner page: profile a chain on this server (the paper's procedure) or paste a
//! profile, enter an arrival rate, see every setting's predicted rho and latency and the
//! recommendation, and apply it to a project.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use streamprep_engine::planner;
use streamprep_project::{BufferSetting, MethodName, ProjectSpec};

use super::{figure, html, see_other, Browser, Chrome, PageError, Posted};
use crate::api::AppState;
use crate::store::Role;

/// The fields of the planner's forms, as typed.
#[derive(Debug, Clone, Default)]
pub struct PlannerForm {
    /// A stored profile's name.
    pub profile: String,
    /// A pasted profile (CSV).
    pub profile_csv: String,
    /// Rows a second.
    pub arrival_rate: String,
    /// Keep rho under this.
    pub target_rho: String,
    /// Only settings under this latency, ms.
    pub max_latency_ms: String,
    /// inline, pool, queue or empty (all).
    pub method: String,
    /// Up to this many workers.
    pub max_workers: String,
    /// How rows arrive: random (empty) or regular.
    pub arrivals: String,
    /// The queue's link: round trip, ms (empty: none).
    pub link_rtt_ms: String,
    /// The queue's link: megabits a second.
    pub link_mbit: String,
    /// Worker hosts behind such links.
    pub worker_hosts: String,
    /// Tasks and results across the link: none (empty), lz4 or auto.
    pub task_compression: String,
    /// The chain to profile.
    pub chain: String,
    /// Buffer sizes to profile.
    pub buffers: String,
    /// The name to keep a new profile under.
    pub name: String,
}

/// One setting of the plan.
#[derive(Debug, Clone)]
pub struct PlanLine {
    /// Rows a message.
    pub buffer: String,
    /// Workers.
    pub workers: String,
    /// inline, pool or queue.
    pub method: String,
    /// The method whose measured service time was used.
    pub measured_with: String,
    /// Service time of a message, ms.
    pub service_ms: String,
    /// Predicted rho.
    pub rho: String,
    /// Predicted mean latency, ms.
    pub latency_ms: String,
    /// The most rows a second.
    pub max_rate: String,
    /// Under the target.
    pub fits: bool,
    /// The recommendation.
    pub best: bool,
}

/// The planner page.
#[derive(Template)]
#[template(path = "planner.html")]
pub struct PlannerPage {
    /// The frame.
    pub chrome: Chrome,
    /// Stored profiles.
    pub profiles: Vec<String>,
    /// Projects to apply a setting to: `(id, name)`.
    pub projects: Vec<(String, String)>,
    /// The forms' fields.
    pub f: PlannerForm,
    /// What went wrong.
    pub error: Option<String>,
    /// What was done (a profile measured and kept).
    pub note: Option<String>,
    /// The plan's settings.
    pub lines: Vec<PlanLine>,
    /// The recommendation.
    pub best: Option<PlanLine>,
}

async fn page_with(
    state: &AppState,
    browser: &Browser,
    f: PlannerForm,
) -> Result<PlannerPage, PageError> {
    Ok(PlannerPage {
        chrome: browser.chrome("planner"),
        profiles: state.store.profiles().await?,
        projects: state
            .store
            .projects()
            .await?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect(),
        f,
        error: None,
        note: None,
        lines: Vec::new(),
        best: None,
    })
}

fn defaults() -> PlannerForm {
    PlannerForm {
        arrival_rate: "1000".into(),
        target_rho: "0.7".into(),
        max_workers: "8".into(),
        chain: "fillna_zeros,normalizer,drop_duplicates".into(),
        buffers: "1,10,100,1000".into(),
        name: "paper-chain".into(),
        ..PlannerForm::default()
    }
}

/// `GET /planner`.
pub async fn page(State(state): State<AppState>, browser: Browser) -> Result<Response, PageError> {
    let mut f = defaults();
    f.profile = state
        .store
        .profiles()
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(html(&page_with(&state, &browser, f).await?))
}

fn form_of(posted: &Posted) -> PlannerForm {
    let g = |k: &str| posted.get(k).trim().to_string();
    PlannerForm {
        profile: g("profile"),
        profile_csv: posted.get("profile_csv").to_string(),
        arrival_rate: g("arrival_rate"),
        target_rho: g("target_rho"),
        max_latency_ms: g("max_latency_ms"),
        method: g("method"),
        max_workers: g("max_workers"),
        arrivals: g("arrivals"),
        link_rtt_ms: g("link_rtt_ms"),
        link_mbit: g("link_mbit"),
        worker_hosts: g("worker_hosts"),
        task_compression: g("task_compression"),
        chain: g("chain"),
        buffers: g("buffers"),
        name: g("name"),
    }
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<Option<T>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{what}: '{text}' is not a number"))
}

/// Measure a chain on this server and keep the profile.
async fn profile(state: &AppState, posted: &Posted, f: &mut PlannerForm) -> Result<String, String> {
    let steps: Vec<String> = streamprep_project::spec::split_chain(&f.chain);
    if steps.is_empty() {
        return Err("chain: name the steps to profile".into());
    }
    let buffers = f
        .buffers
        .split(',')
        .map(|b| match b.trim().parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(format!(
                "buffers: '{}' is not a buffer size from 1 to 10000",
                b.trim()
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if buffers.len() > 8 {
        return Err("buffers: at most 8 sizes".into());
    }
    if f.name.is_empty() || f.name.len() > 200 {
        return Err("name: 1 to 200 bytes".into());
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let req_steps = steps.clone();
    let ring = (2 * buffers.iter().max().copied().unwrap_or(1)).max(1000);
    let lines = tokio::task::spawn_blocking(move || {
        let req = streamprep_project::profile::Request {
            steps: req_steps,
            buffers,
            methods: vec![
                ("inline", streamprep_engine::Method::Inline),
                ("pool", streamprep_engine::Method::Pool { workers }),
            ],
            remote: None,
            rows: streamprep_project::profile::davis_rows(ring),
            format: streamprep_core::RowFormat::Ndjson,
            header: None,
            warmup: 3,
            messages: 20,
            arrival_rate: None,
        };
        streamprep_project::profile::measure(&req, |_| {})
    })
    .await
    .map_err(|_| "the measurement stopped".to_string())??;
    let csv = streamprep_project::profile::to_csv(&lines);
    state
        .store
        .put_profile(&f.name, &csv)
        .await
        .map_err(|e| crate::access::ApiError::from(e).message)?;
    let _ = state
        .store
        .audit(
            &posted.browser.user.name,
            "profile.put",
            &f.name,
            "measured",
        )
        .await;
    f.profile = f.name.clone();
    Ok(format!(
        "measured {} on this server (inline and the pool of {workers}, 20 messages a size) and kept it as profile {:?}",
        steps.join(", "),
        f.name
    ))
}

/// Plan from the form's profile.
async fn plan(state: &AppState, f: &PlannerForm) -> Result<planner::Plan, String> {
    let csv = if !f.profile_csv.trim().is_empty() {
        f.profile_csv.clone()
    } else if !f.profile.is_empty() {
        state
            .store
            .profile(&f.profile)
            .await
            .map_err(|e| crate::access::ApiError::from(e).message)?
    } else {
        return Err("choose a stored profile, paste one, or profile a chain first".into());
    };
    let profile = planner::parse_profile(&csv).map_err(|e| format!("the profile: {e}"))?;
    let arrival_rate = number::<f64>(&f.arrival_rate, "arrival rate")?
        .ok_or("arrival rate: give rows a second")?;
    let req = planner::PlanRequest {
        arrival_rate,
        target_rho: number(&f.target_rho, "target rho")?.unwrap_or(0.7),
        max_latency_ms: number(&f.max_latency_ms, "max latency")?,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        method: Some(f.method.clone()).filter(|m| !m.is_empty()),
        workers: None,
        max_workers: number::<usize>(&f.max_workers, "max workers")?.map(|w| w.clamp(1, 256)),
        arrivals: planner::Arrivals::parse(Some(&f.arrivals))?,
        link: planner::link(
            number(&f.link_rtt_ms, "link round trip")?,
            number(&f.link_mbit, "link bandwidth")?,
            number(&f.worker_hosts, "worker hosts")?,
            Some(f.task_compression.as_str()).filter(|c| !c.is_empty()),
        )?,
    };
    planner::plan(&profile, &req)
}

fn lines_of(p: &planner::Plan) -> (Vec<PlanLine>, Option<PlanLine>) {
    let json = p.to_json();
    let s = |v: &Value, k: &str, d: usize| {
        v.get(k)
            .and_then(Value::as_f64)
            .map_or("unbounded".to_string(), |x| figure(x, d))
    };
    let line = |v: &Value, best: bool| PlanLine {
        buffer: v["buffer"].to_string(),
        workers: v["workers"].to_string(),
        method: v["method"].as_str().unwrap_or_default().to_string(),
        measured_with: v["service_time_from"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        service_ms: s(v, "service_ms", 3),
        rho: s(v, "rho", 3),
        latency_ms: s(v, "latency_ms", 2),
        max_rate: s(v, "max_rate_rows_per_s", 0),
        fits: v["meets_target"].as_bool().unwrap_or(false),
        best,
    };
    let best = json
        .get("recommendation")
        .filter(|v| !v.is_null())
        .map(|v| line(v, true));
    let lines = json["settings"]
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, v)| line(v, p.best == Some(i)))
                .collect()
        })
        .unwrap_or_default();
    (lines, best)
}

/// `POST /planner`: `action=profile` measures a chain and keeps its profile; `action=plan`
/// plans from a profile.
pub async fn submit(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    let mut f = form_of(&posted);
    let mut note = None;
    let mut error = None;
    if posted.get("action") == "profile" {
        match profile(&state, &posted, &mut f).await {
            Ok(n) => note = Some(n),
            Err(e) => error = Some(e),
        }
    }
    let mut lines = Vec::new();
    let mut best = None;
    if error.is_none() {
        match plan(&state, &f).await {
            Ok(p) => (lines, best) = lines_of(&p),
            Err(e) => error = Some(e),
        }
    }
    let failed = error.is_some();
    let mut page = page_with(&state, &posted.browser, f).await?;
    page.error = error;
    page.note = note;
    page.lines = lines;
    page.best = best;
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, html(&page)).into_response())
}

/// `POST /planner/apply`: set a project's buffer, method and workers to a planned setting.
pub async fn apply(State(state): State<AppState>, posted: Posted) -> Result<Response, PageError> {
    posted.browser.require(Role::Operator)?;
    let id = posted.get("project").to_string();
    let row = state.store.project(&id).await?;
    let mut spec = ProjectSpec::from_json(&row.spec_json).unwrap_or_default();
    let bad = |m: &str| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let buffer: usize = posted
        .get("buffer")
        .parse()
        .map_err(|_| bad("buffer: not a number"))?;
    let workers: usize = posted
        .get("workers")
        .parse()
        .map_err(|_| bad("workers: not a number"))?;
    spec.buffer = Some(BufferSetting::Rows(buffer));
    match posted.get("method") {
        "inline" => {
            spec.method = Some(MethodName::Inline);
            spec.workers = None;
        }
        "pool" => {
            spec.method = Some(MethodName::Pool);
            spec.workers = Some(workers);
        }
        "queue" => spec.method = Some(MethodName::Queue),
        _ => return Err(bad("method: inline, pool or queue")),
    }
    match crate::projects::save(&state, &posted.browser.user.name, Some(&id), spec).await? {
        Ok(id) => Ok(see_other(&format!("/projects/{id}"))),
        Err(e) => Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the project cannot take this setting: {e}"),
        )),
    }
}
